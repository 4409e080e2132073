package ship

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/logcapturer/log_capturer_go/ship/loki"
	"github.com/logcapturer/log_capturer_go/wal/record"
)

// twoStreamBatch holds stream {job="a"} with lines a0..a2 and {job="b"}
// with b0..b1, one second apart from t0.
func twoStreamBatch(t0 time.Time) *Batch {
	b := newBatch(0, 1)
	for i, spec := range []struct{ job, line string }{{"a", "a0"}, {"a", "a1"}, {"b", "b0"}, {"a", "a2"}, {"b", "b1xxxxxxxx"}} {
		ls := record.NewLabelSet([]record.Label{{Name: "job", Value: spec.job}})
		r := record.Record{Source: "file:1:1:1", Labels: ls, Offset: uint64(i), Time: t0.Add(time.Duration(i) * time.Second).UnixNano(), Line: []byte(spec.line)}
		b.add(ls.String(), &r, uint64(10+i))
	}
	return b
}

func lokiAt(t *testing.T, status int, body string, header ...string) *LokiSink {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	c, err := loki.NewClient(loki.ClientConfig{URL: srv.URL, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return NewLokiSink(c, LokiSinkConfig{Limits: DefaultLokiLimits()})
}

func TestLokiSinkIdentifiesRejections(t *testing.T) {
	t0 := time.Date(2025, 8, 1, 16, 0, 0, 0, time.UTC)
	goTime := func(i int) string { return t0.Add(time.Duration(i) * time.Second).String() }
	rfc := func(i int) string { return t0.Add(time.Duration(i) * time.Second).Format(time.RFC3339) }
	// Entries are named "stream/entry": a/0 a/1 a/2 b/0 b/1.
	tests := map[string]struct {
		status    int
		body      string
		rejected  []string // "a/1=reason"
		uncertain []string // stream jobs
	}{
		"distributor names two entries": {
			status: 400,
			body: fmt.Sprintf(`entry for stream '{job="a"}' has timestamp too old: %s, oldest acceptable timestamp is: %s; `+
				`Max entry size '8' bytes exceeded for stream '{job="b"}' while adding an entry with length '10' bytes`, rfc(1), rfc(5)),
			rejected: []string{"a/1=" + loki.ReasonTooOld, "b/1=" + loki.ReasonLineTooLong},
		},
		"distributor, labels with service_name added": {
			status:   400,
			body:     fmt.Sprintf(`entry for stream '{job="a", service_name="a"}' has timestamp too new: %s`, rfc(3)),
			rejected: []string{"a/2=" + loki.ReasonTooNew},
		},
		"label error rejects the whole stream": {
			status:   400,
			body:     `stream '{job="b"}' has label value too long: 'b'`,
			rejected: []string{"b/0=" + loki.ReasonLabelValueTooLong, "b/1=" + loki.ReasonLabelValueTooLong},
		},
		"ingester names one stream, the other is uncertain": {
			status: 400,
			body: fmt.Sprintf("entry with timestamp %s ignored, reason: 'entry out of order',\nuser 'fake', total ignored: 1 out of 3 for stream: {job=\"a\"}",
				goTime(0)),
			rejected:  []string{"a/0=" + loki.ReasonOutOfOrder},
			uncertain: []string{"b"},
		},
		"ingester lists fewer than it ignored": {
			status: 400,
			body: fmt.Sprintf("entry with timestamp %s ignored, reason: 'entry out of order',\nuser 'fake', total ignored: 2 out of 3 for stream: {job=\"a\"}",
				goTime(0)),
			rejected:  []string{"a/0=" + loki.ReasonOutOfOrder},
			uncertain: []string{"a", "b"},
		},
		"ambiguous count": {
			status:    400,
			body:      fmt.Sprintf(`2 errors like: entry for stream '{job="a"}' has timestamp too old: %s, oldest acceptable timestamp is: %s`, rfc(0), rfc(5)),
			uncertain: []string{"a", "b"},
		},
		"unknown stream": {
			status:    400,
			body:      fmt.Sprintf(`entry for stream '{job="zzz"}' has timestamp too old: %s, oldest acceptable timestamp is: %s`, rfc(0), rfc(5)),
			uncertain: []string{"a", "b"},
		},
		"unreadable 400": {
			status:    400,
			body:      "something went wrong",
			uncertain: []string{"a", "b"},
		},
		"stream limit 429": {
			status:    429,
			body:      `Maximum active stream limit exceeded when trying to create stream {job="b"}, reduce the number of active streams, user: 'fake'`,
			rejected:  []string{"b/0=" + loki.ReasonStreamLimit, "b/1=" + loki.ReasonStreamLimit},
			uncertain: []string{"a"},
		},
		"old stream limit 429 names nothing": {
			status:    429,
			body:      "per-user streams limit (5000) exceeded",
			uncertain: []string{"a", "b"},
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			sink := lokiAt(t, tt.status, tt.body)
			b := twoStreamBatch(t0)
			err := sink.Send(t.Context(), b)
			var rje *RejectedError
			if !errors.As(err, &rje) {
				t.Fatalf("error %v (%T), want *RejectedError", err, err)
			}
			if rje.Status != tt.status || statusClass(err) != "4xx" {
				t.Fatalf("status %d class %s", rje.Status, statusClass(err))
			}
			job := func(si int) string { v, _ := b.Streams[si].Labels.Get("job"); return v }
			var got []string
			for _, r := range rje.Rejected {
				got = append(got, fmt.Sprintf("%s/%d=%s", job(r.Stream), r.Entry, r.Reason))
			}
			var unc []string
			for _, si := range rje.Uncertain {
				unc = append(unc, job(si))
			}
			slices.Sort(got)
			slices.Sort(unc)
			if !slices.Equal(got, tt.rejected) || !slices.Equal(unc, tt.uncertain) {
				t.Fatalf("rejected %v uncertain %v; want %v %v", got, unc, tt.rejected, tt.uncertain)
			}
		})
	}
}

func TestLokiSinkClassifies(t *testing.T) {
	tests := map[string]struct {
		status     int
		body       string
		header     []string
		check      func(error) bool
		class      string
		retryAfter time.Duration
	}{
		"204 acks": {status: 204, check: func(err error) bool { return err == nil }, class: "2xx"},
		"rate limit 429": {status: 429, body: "Ingestion rate limit exceeded", header: []string{"Retry-After", "7"},
			check: func(err error) bool {
				var re *RetryError
				return errors.As(err, &re) && re.Reason == "429" && re.RetryAfter == 7*time.Second
			},
			class: "4xx"},
		"503 retries": {status: 503, check: func(err error) bool { var re *RetryError; return errors.As(err, &re) && re.Reason == "5xx" },
			class: "5xx"},
		"401 is permanent": {status: 401, body: "no", check: func(err error) bool {
			var pe *PermanentError
			return errors.As(err, &pe) && pe.Reason == "http_401" && pe.Status == 401
		}, class: "4xx"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			sink := lokiAt(t, tt.status, tt.body, tt.header...)
			err := sink.Send(t.Context(), twoStreamBatch(time.Now()))
			if !tt.check(err) {
				t.Fatalf("unexpected result %v (%T)", err, err)
			}
			if c := statusClass(err); c != tt.class {
				t.Fatalf("class %s, want %s", c, tt.class)
			}
		})
	}
	if c := statusClass(&RetryError{Reason: "network", Err: errors.New("refused")}); c != "network" {
		t.Fatalf("transport error class %s", c)
	}
}

func TestLokiSinkCheck(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	many := func(n int) []record.Label {
		var ls []record.Label
		for i := range n {
			ls = append(ls, record.Label{Name: fmt.Sprintf("l%02d", i), Value: "v"})
		}
		return ls
	}
	line := func(n int) []byte { return []byte(strings.Repeat("x", n)) }
	lim := DefaultLokiLimits()
	tests := map[string]struct {
		labels []record.Label
		extra  map[string]string
		entry  Entry
		limits *LokiLimits
		want   string
	}{
		"fine":                   {labels: many(3), entry: Entry{Time: now.UnixNano(), Line: line(10)}},
		"line too long":          {labels: many(3), entry: Entry{Time: now.UnixNano(), Line: line(256<<10 + 1)}, want: loki.ReasonLineTooLong},
		"line at the limit":      {labels: many(3), entry: Entry{Time: now.UnixNano(), Line: line(256 << 10)}},
		"too old":                {labels: many(3), entry: Entry{Time: now.Add(-7*24*time.Hour - time.Second).UnixNano()}, want: loki.ReasonTooOld},
		"too new":                {labels: many(3), entry: Entry{Time: now.Add(11 * time.Minute).UnixNano()}, want: loki.ReasonTooNew},
		"age checks off":         {labels: many(3), entry: Entry{Time: 1}, limits: &LokiLimits{}},
		"16 labels":              {labels: many(16), entry: Entry{Time: now.UnixNano()}, want: loki.ReasonTooManyLabels},
		"service_name not count": {labels: append(many(15), record.Label{Name: "service_name", Value: "x"}), entry: Entry{Time: now.UnixNano()}},
		"extra labels count":     {labels: many(15), extra: map[string]string{"env": "prod"}, entry: Entry{Time: now.UnixNano()}, want: loki.ReasonTooManyLabels},
		"bad label name":         {labels: []record.Label{{Name: "a.b", Value: "v"}}, entry: Entry{Time: now.UnixNano()}, want: loki.ReasonInvalidLabels},
		"digit first":            {labels: []record.Label{{Name: "1a", Value: "v"}}, entry: Entry{Time: now.UnixNano()}, want: loki.ReasonInvalidLabels},
		"no labels":              {labels: nil, entry: Entry{Time: now.UnixNano()}, want: loki.ReasonMissingLabels},
		"long value":             {labels: []record.Label{{Name: "a", Value: string(line(2049))}}, entry: Entry{Time: now.UnixNano()}, want: loki.ReasonLabelValueTooLong},
		"long name":              {labels: []record.Label{{Name: string(line(1025)), Value: "v"}}, entry: Entry{Time: now.UnixNano()}, want: loki.ReasonLabelNameTooLong},
		"duplicate names":        {labels: []record.Label{{Name: "a", Value: "1"}, {Name: "a", Value: "2"}}, entry: Entry{Time: now.UnixNano()}, want: loki.ReasonDuplicateLabelNames},
		"metadata too large": {labels: many(1), entry: Entry{Time: now.UnixNano(), Metadata: []record.Label{{Name: "k", Value: string(line(64 << 10))}}},
			want: loki.ReasonMetadataTooLarge},
		"metadata too many": {labels: many(1), entry: Entry{Time: now.UnixNano(), Metadata: many(129)}, want: loki.ReasonMetadataTooMany},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			l := lim
			if tt.limits != nil {
				l = *tt.limits
			}
			sink := NewLokiSink(nil, LokiSinkConfig{Labels: tt.extra, Limits: l})
			got, detail := sink.CheckStream(record.NewLabelSet(tt.labels))
			if got == "" {
				got, detail = sink.CheckEntry(&tt.entry, now)
			}
			if got != tt.want || (got != "" && detail == "") {
				t.Fatalf("Check = %q (%s), want %q", got, detail, tt.want)
			}
		})
	}
	if err := (LokiLimits{MaxLineBytes: -1}).Validate(); err == nil {
		t.Fatal("negative limit accepted")
	}
}
