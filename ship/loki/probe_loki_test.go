package loki

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/logcapturer/log_capturer_go/wal/record"
)

// No Loki runs here (AGPL, not installed): these tests check the requests
// the Loki prober builds and its reading of answers in the format of Loki's
// HTTP API documentation (docs/sources/reference/loki-http-api.md, "Query
// logs within a range of time"):
//
//	{"status":"success","data":{"resultType":"streams","result":[
//	  {"stream":{"filename":"/var/log/myproject.log","job":"varlogs","level":"info"},
//	   "values":[["1569266497240578000","foo"],["1569266492548155000","bar"]]}],
//	 "stats":{...}}}
//
// with categorize-labels (X-Loki-Response-Encoding-Flags), a value carries a
// third element {"structuredMetadata":{...},"parsed":{...}} and data has
// "encodingFlags":["categorize-labels"].

// lokiRow is one stored entry of the fake query_range.
type lokiRow struct {
	stream map[string]string
	ts     int64
	line   string
	meta   map[string]string
}

// lokiStore answers query_range as Loki does for a plain stream selector:
// the streams whose labels include the selector's, entries in [start, end)
// by time, at most limit of them in all (forward: the oldest), grouped by
// stream. It records every request.
type lokiStore struct {
	rows []lokiRow
	reqs []*http.Request
}

func (s *lokiStore) handler(t *testing.T) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.reqs = append(s.reqs, r)
		q := r.URL.Query()
		sel := parseSelector(t, q.Get("query"))
		start, _ := strconv.ParseInt(q.Get("start"), 10, 64)
		end, _ := strconv.ParseInt(q.Get("end"), 10, 64)
		limit, _ := strconv.Atoi(q.Get("limit"))
		var hits []lokiRow
		for _, row := range s.rows {
			if row.ts < start || row.ts >= end {
				continue
			}
			ok := true
			for k, v := range sel {
				if row.stream[k] != v {
					ok = false
				}
			}
			if ok {
				hits = append(hits, row)
			}
		}
		slices.SortStableFunc(hits, func(a, b lokiRow) int { return int(a.ts - b.ts) })
		hits = hits[:min(len(hits), limit)]
		type stream struct {
			Stream map[string]string `json:"stream"`
			Values [][]any           `json:"values"`
		}
		var out []*stream
		byKey := map[string]*stream{}
		for _, h := range hits {
			k := fmt.Sprint(h.stream)
			st := byKey[k]
			if st == nil {
				st = &stream{Stream: h.stream}
				byKey[k] = st
				out = append(out, st)
			}
			v := []any{strconv.FormatInt(h.ts, 10), h.line}
			if r.Header.Get("X-Loki-Response-Encoding-Flags") == "categorize-labels" {
				v = append(v, map[string]any{"structuredMetadata": h.meta})
			}
			st.Values = append(st.Values, v)
		}
		data := map[string]any{"resultType": "streams", "result": out, "stats": map[string]any{}}
		if r.Header.Get("X-Loki-Response-Encoding-Flags") == "categorize-labels" {
			data["encodingFlags"] = []string{"categorize-labels"}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"status": "success", "data": data})
	}
}

// parseSelector reads {name="value", ...} as the prober writes it.
func parseSelector(t *testing.T, s string) map[string]string {
	t.Helper()
	out := map[string]string{}
	s = strings.TrimSuffix(strings.TrimPrefix(s, "{"), "}")
	for s != "" {
		name, rest, _ := strings.Cut(s, "=")
		q, err := strconv.QuotedPrefix(rest)
		if err != nil {
			t.Fatalf("selector value not Go-quoted: %q", rest)
		}
		out[name], _ = strconv.Unquote(q)
		s = strings.TrimPrefix(rest[len(q):], ", ")
	}
	return out
}

func TestLokiProberRequest(t *testing.T) {
	store := &lokiStore{}
	srv := newRecorder(t, store.handler(t))
	u, _ := url.Parse(srv.URL)
	u.User = url.UserPassword("user", "pass")
	u.Path = "/prefix"
	p, err := NewLokiProber(ProberConfig{URL: u.String(), TenantID: "team-a"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	labels := []record.Label{{Name: "job", Value: "a"}, {Name: "odd", Value: `q"uo\te, x="y" ü`}, {Name: "empty", Value: ""}}
	s := &ProbeStream{Labels: labels, Entries: []ProbeEntry{{Time: 200, Hash: HashLine([]byte("x"))}, {Time: 100, Hash: HashLine([]byte("y"))}}}
	if err := p.Probe(t.Context(), s); err != nil {
		t.Fatal(err)
	}
	if len(srv.reqs) != 1 {
		t.Fatalf("%d requests", len(srv.reqs))
	}
	r := srv.reqs[0]
	q, _ := url.ParseQuery(r.query)
	want := url.Values{
		"query":     {`{job="a", odd="q\"uo\\te, x=\"y\" ü"}`},
		"start":     {"100"},
		"end":       {"201"},
		"limit":     {strconv.Itoa(DefaultPageLimit)},
		"direction": {"forward"},
	}
	if r.method != http.MethodGet || r.path != "/prefix"+QueryRangePath {
		t.Errorf("request %s %s", r.method, r.path)
	}
	for k, v := range want {
		if q.Get(k) != v[0] {
			t.Errorf("%s = %q, want %q", k, q.Get(k), v[0])
		}
	}
	for k, v := range map[string]string{
		"X-Scope-Orgid":                  "team-a",
		"X-Loki-Response-Encoding-Flags": "categorize-labels",
		"Authorization":                  "Basic dXNlcjpwYXNz",
	} {
		if got := r.header.Get(k); got != v {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
}

// TestLokiProberMatching: exact stream (service_name added by Loki is
// tolerated, any other label is another stream), nanosecond timestamps,
// multiplicity, and pagination that stops in the middle of a nanosecond.
func TestLokiProberMatching(t *testing.T) {
	ours := map[string]string{"job": "a", "filename": "/var/log/x.log"}
	withService := map[string]string{"job": "a", "filename": "/var/log/x.log", "service_name": "a"}
	wider := map[string]string{"job": "a", "filename": "/var/log/x.log", "host": "h2"}
	store := &lokiStore{}
	add := func(st map[string]string, ts int64, line string) {
		store.rows = append(store.rows, lokiRow{stream: st, ts: ts, line: line, meta: map[string]string{"trace_id": "t"}})
	}
	// Pages of 4: the first ends after t=10, the second in the middle of
	// t=11; each next page starts at the last nanosecond again, and the
	// rows seen there already must not count twice.
	add(ours, 9, "a")
	add(ours, 10, "same ns 0")
	add(ours, 10, "same ns 1")
	add(wider, 10, "same ns 0")
	add(ours, 11, "dup")
	add(ours, 11, "dup")
	add(withService, 12, "service added")
	add(wider, 13, "wider only")
	add(ours, 15, "last")
	srv := newRecorder(t, store.handler(t))
	p, err := NewLokiProber(ProberConfig{URL: srv.URL, PageLimit: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	labels := []record.Label{{Name: "job", Value: "a"}, {Name: "filename", Value: "/var/log/x.log"}}
	cases := []probeCase{
		{time: 9, line: "a", want: true},
		{time: 10, line: "same ns 0", want: true},
		{time: 10, line: "same ns 0"}, // a second copy: stored once in our stream
		{time: 10, line: "same ns 1", want: true},
		{time: 11, line: "dup", want: true},
		{time: 11, line: "dup", want: true},
		{time: 11, line: "dup"},
		{time: 12, line: "service added", want: true},
		{time: 13, line: "wider only"},
		{time: 14, line: "never"},
		{time: 15, line: "last", want: true},
	}
	got := probe(t, p, labels, cases)
	for i, c := range cases {
		if got[i] != c.want {
			t.Errorf("(%d, %q): present = %v, want %v", c.time, c.line, got[i], c.want)
		}
	}
	if len(store.reqs) != 4 {
		t.Errorf("%d requests: the pages were not followed", len(store.reqs))
	}
}

// Answers the prober must refuse, each an ErrProbe: not a success, not
// streams, malformed values, and a nanosecond holding more entries than a
// page (pagination could not move on).
func TestLokiProberBadAnswers(t *testing.T) {
	tests := map[string]struct {
		status int
		body   string
	}{
		"server error":    {500, "too many outstanding requests"},
		"bad request":     {400, "parse error at line 1, col 2"},
		"not json":        {200, "<html>"},
		"status error":    {200, `{"status":"error","data":{"resultType":"streams","result":[]}}`},
		"matrix":          {200, `{"status":"success","data":{"resultType":"matrix","result":[]}}`},
		"numeric ts":      {200, `{"status":"success","data":{"resultType":"streams","result":[{"stream":{"job":"a"},"values":[[15,"x"]]}]}}`},
		"short value":     {200, `{"status":"success","data":{"resultType":"streams","result":[{"stream":{"job":"a"},"values":[["15"]]}]}}`},
		"bad ts":          {200, `{"status":"success","data":{"resultType":"streams","result":[{"stream":{"job":"a"},"values":[["1.5e9","x"]]}]}}`},
		"stuck on one ns": {200, `{"status":"success","data":{"resultType":"streams","result":[{"stream":{"job":"a"},"values":[["10","x"],["10","y"]]}]}}`},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			srv := newRecorder(t, func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(tt.status)
				_, _ = w.Write([]byte(tt.body))
			})
			p, err := NewLokiProber(ProberConfig{URL: srv.URL, PageLimit: 2})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			err = p.Probe(t.Context(), &ProbeStream{Labels: []record.Label{{Name: "job", Value: "a"}},
				Entries: []ProbeEntry{{Time: 10, Hash: HashLine([]byte("z"))}, {Time: 20}}})
			if !errors.Is(err, ErrProbe) {
				t.Fatalf("err = %v, want ErrProbe", err)
			}
			if tt.status != 200 && !strings.Contains(err.Error(), tt.body) {
				t.Errorf("err %q does not carry the server's message", err)
			}
		})
	}
}

func TestQueryBaseURL(t *testing.T) {
	tests := []struct {
		push, kind, want string
		ok               bool
	}{
		{"http://loki:3100", "loki", "http://loki:3100", true},
		{"http://loki:3100/loki/api/v1/push", "loki", "http://loki:3100", true},
		{"https://u:p@gw.example/tenant1/loki/api/v1/push?x=1", "loki", "https://u:p@gw.example/tenant1", true},
		{"http://vl:9428/insert/loki/api/v1/push?disable_message_parsing=1", "victorialogs", "http://vl:9428", true},
		{"http://vl:9428/insert/loki/api/v1/push", "loki", "http://vl:9428/insert", true},
		{"http://loki:3100/loki/api/v1/push", "victorialogs", "", false},
		{"http://gw/custom/push", "loki", "", false},
		{"http://loki:3100", "elastic", "", false},
		{"loki:3100", "loki", "", false},
	}
	for _, tt := range tests {
		got, err := QueryBaseURL(tt.push, tt.kind)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("QueryBaseURL(%q, %q) = %q, %v; want %q ok=%v", tt.push, tt.kind, got, err, tt.want, tt.ok)
		}
		if err != nil && strings.Contains(err.Error(), "u:p") {
			t.Errorf("error echoes credentials: %v", err)
		}
	}
}

func TestProberConfigErrors(t *testing.T) {
	tests := map[string]ProberConfig{
		"empty url":         {},
		"no scheme":         {URL: "loki:3100"},
		"ftp":               {URL: "ftp://loki"},
		"userinfo and auth": {URL: "http://u:p@loki", BearerToken: "t"},
		"basic and bearer":  {URL: "http://loki", BasicAuthUser: "u", BasicAuthPassword: "p", BearerToken: "t"},
		"negative timeout":  {URL: "http://loki", Timeout: -1},
		"tenant with CR":    {URL: "http://loki", TenantID: "a\rb"},
		"missing ca file":   {URL: "https://loki", CAFile: "/nonexistent/ca.pem"},
	}
	for name, cfg := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := NewLokiProber(cfg); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func FuzzParseVLStream(f *testing.F) {
	for _, s := range []string{`{}`, `{a="b"}`, `{a="b",c="d\"e"}`, `{a="\xff"}`, `{a=b}`, `{a="b",}`, `{`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, ok := parseVLStream(s)
		if !ok {
			return
		}
		// What parses renders back (as VictoriaLogs renders it) to an
		// equal label set.
		names := make([]string, 0, len(m))
		for k := range m {
			names = append(names, k)
		}
		slices.Sort(names)
		var parts []string
		for _, k := range names {
			parts = append(parts, k+"="+strconv.Quote(m[k]))
		}
		again, ok := parseVLStream("{" + strings.Join(parts, ",") + "}")
		if !ok || len(again) != len(m) {
			t.Fatalf("%q parsed to %v, which does not round-trip", s, m)
		}
	})
}

func FuzzParseLokiValue(f *testing.F) {
	for _, s := range []string{`["1","x"]`, `["1","x",{"structuredMetadata":{}}]`, `[1,"x"]`, `["1"]`, `[]`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var v []json.RawMessage
		if json.Unmarshal([]byte(s), &v) != nil {
			return
		}
		r, err := parseLokiValue(v)
		if err != nil && !errors.Is(err, ErrProbe) {
			t.Fatalf("error not ErrProbe: %v", err)
		}
		_ = r
	})
}
