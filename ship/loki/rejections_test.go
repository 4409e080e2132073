package loki

import (
	"strings"
	"testing"
	"time"
)

func TestParseRejections(t *testing.T) {
	ts := time.Date(2025, 8, 1, 16, 43, 38, 850_000_000, time.UTC)
	type want struct {
		reason      string
		stream      string
		count       int
		whole       bool
		time        int64
		exact       bool
		lineLen     int
		metaBytes   int
		labelsFound int
	}
	tests := map[string]struct {
		body     string
		trunc    bool
		scope    Scope
		complete bool
		total    int
		items    []want
	}{
		"too old, RFC 3339 seconds": {
			body:  `entry for stream '{job="a", svc="x"}' has timestamp too old: 2025-08-01T16:43:38Z, oldest acceptable timestamp is: 2025-08-02T00:00:00Z`,
			scope: ScopeRequest, complete: true,
			items: []want{{reason: ReasonTooOld, stream: `{job="a", svc="x"}`, count: 1, time: ts.Truncate(time.Second).UnixNano(), lineLen: -1, metaBytes: -1, labelsFound: 2}},
		},
		"grouped messages joined by semicolons": {
			body: `2 errors like: entry for stream '{job="a"}' has timestamp too new: 2025-08-01T16:43:38Z; ` +
				`1 errors like: Max entry size '262144' bytes exceeded for stream '{job="b; tricky"}' while adding an entry with length '300000' bytes` + "\n",
			scope: ScopeRequest, complete: true,
			items: []want{
				{reason: ReasonTooNew, stream: `{job="a"}`, count: 2, time: ts.Truncate(time.Second).UnixNano(), lineLen: -1, metaBytes: -1, labelsFound: 1},
				{reason: ReasonLineTooLong, stream: `{job="b; tricky"}`, count: 1, lineLen: 300000, metaBytes: -1, labelsFound: 1},
			},
		},
		"label errors reject whole streams": {
			body: `stream '{a="1"}' has label value too long: 'xx'yy'; entry for stream '{a="2"}' has 16 label names; limit 15; ` +
				`Error parsing labels '{a=1}' with error: 1:4: parse error; stream '{a="3"}' has duplicate label name: 'a'`,
			scope: ScopeRequest, complete: true,
			items: []want{
				{reason: ReasonLabelValueTooLong, stream: `{a="1"}`, count: 1, whole: true, lineLen: -1, metaBytes: -1, labelsFound: 1},
				{reason: ReasonTooManyLabels, stream: `{a="2"}`, count: 1, whole: true, lineLen: -1, metaBytes: -1, labelsFound: 1},
				{reason: ReasonInvalidLabels, stream: `{a=1}`, count: 1, whole: true, lineLen: -1, metaBytes: -1},
				{reason: ReasonDuplicateLabelNames, stream: `{a="3"}`, count: 1, whole: true, lineLen: -1, metaBytes: -1, labelsFound: 1},
			},
		},
		"structured metadata": {
			body:  `stream '{a="1"}' has structured metadata too large: '70000' bytes, limit: '65536' bytes. Please see ` + "`limits_config.max_structured_metadata_size`" + ` or contact your Loki administrator to increase it.`,
			scope: ScopeRequest, complete: true,
			items: []want{{reason: ReasonMetadataTooLarge, stream: `{a="1"}`, count: 1, lineLen: -1, metaBytes: 70000, labelsFound: 1}},
		},
		"ingester, current format": {
			body: "entry with timestamp 2025-08-01 16:43:38.85 +0000 UTC ignored, reason: 'entry too far behind, entry timestamp is: 2025-08-01T16:43:38Z, oldest acceptable timestamp is: 2025-08-01T17:00:00Z',\n" +
				"entry with timestamp 2025-08-01 16:43:38.85 +0000 UTC ignored, reason: 'entry out of order',\n" +
				`user 'fake', total ignored: 2 out of 10 for stream: {job="a", service_name="a"}`,
			scope: ScopeStream, complete: true, total: 2,
			items: []want{
				{reason: ReasonTooFarBehind, stream: `{job="a", service_name="a"}`, count: 1, time: ts.UnixNano(), exact: true, lineLen: -1, metaBytes: -1, labelsFound: 2},
				{reason: ReasonOutOfOrder, stream: `{job="a", service_name="a"}`, count: 1, time: ts.UnixNano(), exact: true, lineLen: -1, metaBytes: -1, labelsFound: 2},
			},
		},
		"ingester, old format": {
			body:  "entry with timestamp 2025-08-01 18:43:38.85 +0200 CEST ignored, reason: 'entry out of order' for stream: {foo=\"bar\"},\ntotal ignored: 1 out of 3",
			scope: ScopeStream, complete: true, total: 1,
			items: []want{{reason: ReasonOutOfOrder, stream: `{foo="bar"}`, count: 1, time: ts.UnixNano(), exact: true, lineLen: -1, metaBytes: -1, labelsFound: 1}},
		},
		"ingester lists fewer than it ignored": {
			body:  "entry with timestamp 2025-08-01 16:43:38.85 +0000 UTC ignored, reason: 'entry out of order',\nuser 'fake', total ignored: 12 out of 40 for stream: {job=\"a\"}",
			scope: ScopeStream, complete: false, total: 12,
			items: []want{{reason: ReasonOutOfOrder, stream: `{job="a"}`, count: 1, time: ts.UnixNano(), exact: true, lineLen: -1, metaBytes: -1, labelsFound: 1}},
		},
		"per-stream rate limit quotes the stream inside the reason": {
			body:  "entry with timestamp 2025-08-01 16:43:38.85 +0000 UTC ignored, reason: 'Per stream rate limit exceeded (limit: 3MB/sec) while attempting to ingest for stream '{job=\"a\"}' totaling 4MB, consider splitting',\nuser 'x', total ignored: 1 out of 1 for stream: {job=\"a\"}",
			scope: ScopeStream, complete: true, total: 1,
			items: []want{{reason: ReasonStreamRateLimit, stream: `{job="a"}`, count: 1, time: ts.UnixNano(), exact: true, lineLen: -1, metaBytes: -1, labelsFound: 1}},
		},
		"stream limit": {
			body:  `Maximum active stream limit exceeded when trying to create stream {job="a"}, reduce the number of active streams (reduce labels or reduce label values), or contact your Loki administrator to see if the limit can be increased, user: 'fake'`,
			scope: ScopeStream, complete: true,
			items: []want{{reason: ReasonStreamLimit, stream: `{job="a"}`, count: 1, whole: true, lineLen: -1, metaBytes: -1, labelsFound: 1}},
		},
		"gRPC prefix": {
			body:  `rpc error: code = Code(400) desc = entry for stream '{a="b"}' has timestamp too new: 2025-08-01T16:43:38.85Z`,
			scope: ScopeRequest, complete: true,
			items: []want{{reason: ReasonTooNew, stream: `{a="b"}`, count: 1, time: ts.UnixNano(), exact: true, lineLen: -1, metaBytes: -1, labelsFound: 1}},
		},
		"unknown text makes it incomplete": {
			body:  `entry for stream '{a="b"}' has timestamp too new: 2025-08-01T16:43:38Z; something else entirely`,
			scope: ScopeRequest, complete: false,
			items: []want{{reason: ReasonTooNew, stream: `{a="b"}`, count: 1, time: ts.Truncate(time.Second).UnixNano(), lineLen: -1, metaBytes: -1, labelsFound: 1}},
		},
		"truncated body is incomplete": {
			body: `entry for stream '{a="b"}' has timestamp too new: 2025-08-01T16:43:38Z`, trunc: true,
			scope: ScopeRequest, complete: false,
			items: []want{{reason: ReasonTooNew, stream: `{a="b"}`, count: 1, time: ts.Truncate(time.Second).UnixNano(), lineLen: -1, metaBytes: -1, labelsFound: 1}},
		},
		"parse error of the whole request": {body: "error at least one valid stream is required for ingestion", scope: ScopeUnknown},
		"empty":                            {body: "", scope: ScopeUnknown},
		"old stream limit names no stream": {body: "per-user streams limit (5000) exceeded", scope: ScopeUnknown},
		"broken selector":                  {body: `entry for stream '{a="b' has timestamp too new: 2025-08-01T16:43:38Z`, scope: ScopeUnknown},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			r := ParseRejections(tt.body, tt.trunc)
			if r.Scope != tt.scope || r.Complete != tt.complete || r.Total != tt.total || len(r.Items) != len(tt.items) {
				t.Fatalf("got scope %d complete %v total %d items %d (%+v); want %d %v %d %d",
					r.Scope, r.Complete, r.Total, len(r.Items), r.Items, tt.scope, tt.complete, tt.total, len(tt.items))
			}
			for i, w := range tt.items {
				it := r.Items[i]
				if it.Reason != w.reason || it.Stream != w.stream || it.Count != w.count || it.WholeStream != w.whole ||
					it.LineLen != w.lineLen || it.MetadataBytes != w.metaBytes || len(it.Labels) != w.labelsFound {
					t.Errorf("item %d: %+v, want %+v", i, it, w)
				}
				if w.time != 0 && (!it.HasTime || it.Time != w.time || it.TimeExact != w.exact) {
					t.Errorf("item %d: time %d (has %v exact %v), want %d exact %v", i, it.Time, it.HasTime, it.TimeExact, w.time, w.exact)
				}
				if it.Text == "" {
					t.Errorf("item %d: no text", i)
				}
			}
		})
	}
}

func TestIsStreamLimit(t *testing.T) {
	tests := map[string]bool{
		"Maximum active stream limit exceeded when trying to create stream {a=\"b\"}, reduce": true,
		"per-user streams limit (5000) exceeded":                                              true,
		"Ingestion rate limit exceeded for user fake (limit: 4194304 bytes/sec)":              false,
		"Per stream rate limit exceeded (limit: 3MB/sec) while attempting to ingest":          false,
		"": false,
	}
	for body, want := range tests {
		if got := IsStreamLimit(body); got != want {
			t.Errorf("%q: %v, want %v", body, got, want)
		}
	}
}

func TestScanLabelsRoundTrip(t *testing.T) {
	for _, s := range []string{`{}`, `{a="b"}`, `{a="b", c="d\"e"}`, `{a="\xff\n", b=""}`, `{a="b",c="d"}`} {
		raw, _, rest, ok := scanLabels(s + "tail")
		if !ok || raw != s || rest != "tail" {
			t.Errorf("%s: raw %q rest %q ok %v", s, raw, rest, ok)
		}
	}
	for _, s := range []string{``, `{`, `{a}`, `{a="b"`, `{="b"}`, `{a="b" c="d"}`} {
		if _, _, _, ok := scanLabels(s); ok {
			t.Errorf("%q accepted", s)
		}
	}
}

func FuzzParseRejections(f *testing.F) {
	f.Add("2 errors like: entry for stream '{a=\"b\"}' has timestamp too new: 2025-08-01T16:43:38Z; x", false)
	f.Add("entry with timestamp 2025-08-01 16:43:38.85 +0000 UTC ignored, reason: 'entry out of order',\nuser 'x', total ignored: 1 out of 2 for stream: {a=\"b\"}", false)
	f.Add("Max entry size '1' bytes exceeded for stream '{a=\"b\"}' while adding an entry with length '2' bytes", true)
	f.Add("stream '{a=\"b\"}' has label name too long: '", false)
	f.Fuzz(func(t *testing.T, body string, trunc bool) {
		r := ParseRejections(body, trunc)
		for _, it := range r.Items {
			if it.Count < 1 || it.Reason == "" {
				t.Fatalf("bad item %+v", it)
			}
			if r.Complete && it.Stream == "" {
				t.Fatalf("complete with an unnamed stream: %+v", r)
			}
		}
		if trunc && r.Complete {
			t.Fatal("truncated body reported complete")
		}
		if strings.TrimSpace(body) == "" && len(r.Items) != 0 {
			t.Fatal("items from an empty body")
		}
	})
}
