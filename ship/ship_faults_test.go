package ship

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/logcapturer/log_capturer_go/internal/testutil/victorialogs"
	"github.com/logcapturer/log_capturer_go/ship/loki"
	"github.com/logcapturer/log_capturer_go/wal"
	"github.com/logcapturer/log_capturer_go/wal/record"
)

// The fault-injecting front: an HTTP server on 127.0.0.1 that decodes each
// push, decides what to do with it and, when the verdict says so, forwards
// (all or part of) it to a real VictoriaLogs. What it forwarded and what it
// rejected is recorded, so each scenario can check in VictoriaLogs that
// nothing was lost, that every rejected line is in the DLQ with its reason,
// and that the only duplicates are the ones the scenario made on purpose
// (a request stored by the receiver whose answer the client never saw).

type verdict int

const (
	forward          verdict = iota
	fail                     // answer status (and Retry-After) without forwarding
	resetBefore              // close the connection with RST, nothing forwarded
	slowBefore               // wait past the client's timeout, nothing forwarded
	slowAfterForward         // forward, then wait past the client's timeout
	partial                  // forward the valid lines, 400 naming the others (Loki-style)
	partialOpaque            // forward the valid lines, 400 naming nothing
	streamLimit              // 429 "Maximum active stream limit" for the marked stream, forward the others
)

type action struct {
	v          verdict
	status     int
	retryAfter string
}

type pushedLine struct {
	stream string // label string as sent
	entry  loki.Entry
}

// frontRequest is what the front saw of one request.
type frontRequest struct {
	at      time.Time
	streams map[string]bool
	act     action
}

type front struct {
	t      *testing.T
	srv    *httptest.Server
	target string
	http   *http.Client
	plan   func(n int, lines []pushedLine) action

	mu        sync.Mutex
	requests  int
	log       []frontRequest
	rejected  map[string]string // line -> reason the front gave
	unacked   map[string]int    // line -> forwarded in a request whose answer the client never got
	forwarded int
}

func newFront(t *testing.T, target string, plan func(n int, lines []pushedLine) action) *front {
	f := &front{t: t, target: target, plan: plan, rejected: map[string]string{}, unacked: map[string]int{},
		http: &http.Client{Timeout: 30 * time.Second}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(func() {
		f.srv.CloseClientConnections()
		f.srv.Close()
		f.http.CloseIdleConnections()
	})
	return f
}

func (f *front) url() string { return f.srv.URL + "/loki/api/v1/push" }

func (f *front) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	pb, err := loki.Decompress(body, 64<<20)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	streams, err := loki.DecodePushRequest(pb)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var lines []pushedLine
	for _, s := range streams {
		for _, e := range s.Entries {
			lines = append(lines, pushedLine{stream: s.Labels, entry: e})
		}
	}
	f.mu.Lock()
	f.requests++
	n := f.requests
	f.mu.Unlock()
	act := f.plan(n, lines)
	seen := map[string]bool{}
	for _, l := range lines {
		seen[l.stream] = true
	}
	f.mu.Lock()
	f.log = append(f.log, frontRequest{at: time.Now(), streams: seen, act: act})
	f.mu.Unlock()
	switch act.v {
	case forward:
		f.forward(w, r, lines, 204, "")
	case fail:
		if act.retryAfter != "" {
			w.Header().Set("Retry-After", act.retryAfter)
		}
		http.Error(w, fmt.Sprintf("injected %d", act.status), act.status)
	case resetBefore:
		f.reset(w)
	case slowBefore:
		<-r.Context().Done()
	case slowAfterForward:
		if !f.push(lines) {
			http.Error(w, "forward failed", 502)
			return
		}
		select {
		case <-r.Context().Done():
			f.noteUnacked(lines)
		case <-time.After(20 * time.Second):
			w.WriteHeader(204)
		}
	case partial, partialOpaque:
		var ok []pushedLine
		var msgs []string
		count := map[string]int{}
		for _, l := range lines {
			reason, msg := markedReason(l)
			if reason == "" {
				ok = append(ok, l)
				continue
			}
			if act.v == partialOpaque {
				// Loki names nothing: the shipper can only dead-letter the
				// whole request as partially accepted.
				reason = ReasonPartiallyAccepted
			}
			f.mu.Lock()
			f.rejected[string(l.entry.Line)] = reason
			f.mu.Unlock()
			if count[msg] == 0 {
				msgs = append(msgs, msg)
			}
			count[msg]++
		}
		if len(msgs) == 0 {
			f.forward(w, r, lines, 204, "")
			return
		}
		text := "validation failed" // names nothing
		if act.v == partial {
			text = lokiGrouped(msgs, count)
		}
		f.forward(w, r, ok, 400, text)
	case streamLimit:
		var ok []pushedLine
		var named string
		for _, l := range lines {
			if strings.Contains(l.stream, `stream="7"`) {
				named = l.stream
				f.mu.Lock()
				f.rejected[string(l.entry.Line)] = ReasonStreamLimit
				f.mu.Unlock()
				continue
			}
			ok = append(ok, l)
		}
		if named == "" {
			f.forward(w, r, lines, 204, "")
			return
		}
		f.forward(w, r, ok, 429, "Maximum active stream limit exceeded when trying to create stream "+named+
			", reduce the number of active streams (reduce labels or reduce label values), or contact your Loki administrator to see if the limit can be increased, user: 'fake'")
	}
}

// markedReason says whether the front (as Loki) rejects l, with Loki's
// message for it; the stream is printed with service_name added, as Loki 3
// does.
func markedReason(l pushedLine) (reason, msg string) {
	stream := strings.TrimSuffix(l.stream, "}") + `, service_name="test"}`
	line := string(l.entry.Line)
	switch {
	case strings.HasSuffix(line, " OLD"):
		ts := time.Unix(0, l.entry.Time).UTC().Format(time.RFC3339Nano)
		return loki.ReasonTooOld, fmt.Sprintf("entry for stream '%s' has timestamp too old: %s, oldest acceptable timestamp is: %s",
			stream, ts, time.Now().UTC().Format(time.RFC3339))
	case strings.HasSuffix(line, " LONG"):
		return loki.ReasonLineTooLong, fmt.Sprintf("Max entry size '%d' bytes exceeded for stream '%s' while adding an entry with length '%d' bytes",
			16, stream, len(line))
	}
	return "", ""
}

// lokiGrouped renders messages as Loki's distributor does (GroupedErrors).
func lokiGrouped(msgs []string, count map[string]int) string {
	var parts []string
	for _, m := range msgs {
		if len(msgs) > 1 || count[m] > 1 {
			m = fmt.Sprintf("%d errors like: %s", count[m], m)
		}
		parts = append(parts, m)
	}
	return strings.Join(parts, "; ")
}

// forward pushes lines to VictoriaLogs and answers status with text. A
// client that gave up before the answer makes the forwarded lines
// duplicates by construction.
func (f *front) forward(w http.ResponseWriter, r *http.Request, lines []pushedLine, status int, text string) {
	if len(lines) > 0 && !f.push(lines) {
		http.Error(w, "forward failed", 502)
		return
	}
	if r.Context().Err() != nil {
		f.noteUnacked(lines)
		return
	}
	if text != "" {
		http.Error(w, text, status)
		return
	}
	w.WriteHeader(status)
}

func (f *front) noteUnacked(lines []pushedLine) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, l := range lines {
		f.unacked[string(l.entry.Line)]++
	}
}

func (f *front) push(lines []pushedLine) bool {
	byStream := map[string]*loki.Stream{}
	var order []string
	for _, l := range lines {
		s := byStream[l.stream]
		if s == nil {
			s = &loki.Stream{Labels: l.stream}
			byStream[l.stream] = s
			order = append(order, l.stream)
		}
		s.Entries = append(s.Entries, l.entry)
	}
	var streams []loki.Stream
	for _, k := range order {
		streams = append(streams, *byStream[k])
	}
	body, err := loki.Compress(nil, loki.AppendPushRequest(nil, streams))
	if err != nil {
		f.t.Errorf("front: %v", err)
		return false
	}
	req, err := http.NewRequest(http.MethodPost, f.target, bytes.NewReader(body))
	if err != nil {
		f.t.Errorf("front: %v", err)
		return false
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	resp, err := f.http.Do(req)
	if err != nil {
		f.t.Errorf("front: forward: %v", err)
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		f.t.Errorf("front: VictoriaLogs answered %d", resp.StatusCode)
		return false
	}
	f.mu.Lock()
	f.forwarded += len(lines)
	f.mu.Unlock()
	return true
}

// reset closes the client's connection with a TCP RST.
func (f *front) reset(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		f.t.Errorf("front: no hijacker")
		return
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		f.t.Errorf("front: hijack: %v", err)
		return
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

// faultScenario is one run: lines written to a WAL while a shipper sends
// them through the front to VictoriaLogs.
type faultScenario struct {
	name          string
	plan          func(n int, lines []pushedLine) action
	clientTimeout time.Duration
	maxBackoff    time.Duration
	markEvery     map[string]int // line suffix -> one line in N carries it
	check         func(t *testing.T, s *Shipper, f *front)
}

const (
	faultLines   = 6000
	faultStreams = 8
)

func TestFaultsAgainstVictoriaLogs(t *testing.T) {
	if testing.Short() {
		t.Skip("starts VictoriaLogs; skipped with -short")
	}
	vl := victorialogs.Start(t)
	retries := func(reason string) func(t *testing.T, s *Shipper, f *front) {
		return func(t *testing.T, s *Shipper, _ *front) {
			if got := testutil.ToFloat64(s.m.retries.WithLabelValues(reason)); got == 0 {
				t.Errorf("no retry counted as %s", reason)
			}
		}
	}
	scenarios := []faultScenario{
		{name: "429_retry_after", maxBackoff: 3 * time.Second,
			plan: func(n int, _ []pushedLine) action {
				if n <= 2 {
					return action{v: fail, status: 429, retryAfter: "1"}
				}
				return action{v: forward}
			},
			check: func(t *testing.T, s *Shipper, f *front) {
				retries("429")(t, s, f)
				// A shard told to wait a second sent its streams no sooner.
				f.mu.Lock()
				defer f.mu.Unlock()
				checked := 0
				for i, r := range f.log {
					if r.act.retryAfter == "" {
						continue
					}
					for _, next := range f.log[i+1:] {
						if !overlaps(r.streams, next.streams) {
							continue
						}
						checked++
						if gap := next.at.Sub(r.at); gap < 900*time.Millisecond {
							t.Errorf("streams resent %v after a 429 with Retry-After: 1", gap)
						}
						break
					}
				}
				if checked == 0 {
					t.Error("no request followed a 429 with Retry-After")
				}
			}},
		{name: "429_plain", plan: func(n int, _ []pushedLine) action {
			if n%3 == 1 && n < 30 {
				return action{v: fail, status: 429}
			}
			return action{v: forward}
		}, check: retries("429")},
		{name: "500", plan: func(n int, _ []pushedLine) action {
			if n%4 == 2 && n < 40 {
				return action{v: fail, status: 500}
			}
			return action{v: forward}
		}, check: retries("5xx")},
		{name: "503_burst", plan: func(n int, _ []pushedLine) action {
			if n <= 8 {
				return action{v: fail, status: 503}
			}
			return action{v: forward}
		}, check: func(t *testing.T, s *Shipper, f *front) {
			retries("5xx")(t, s, f)
			if c := testutil.ToFloat64(s.m.circuit); c != float64(CircuitClosed) {
				t.Errorf("circuit %v after recovery", c)
			}
			if testutil.ToFloat64(s.m.circuitOpens) == 0 {
				t.Error("8 consecutive 503s did not open the circuit")
			}
		}},
		{name: "timeouts", clientTimeout: 500 * time.Millisecond, plan: func(n int, _ []pushedLine) action {
			switch n {
			case 2, 7:
				return action{v: slowAfterForward} // stored, answer lost: duplicates by construction
			case 4:
				return action{v: slowBefore}
			}
			return action{v: forward}
		}, check: func(t *testing.T, s *Shipper, f *front) {
			retries("timeout")(t, s, f)
			if len(f.unacked) == 0 {
				t.Error("no request was stored without an answer")
			}
		}},
		{name: "connection_reset", plan: func(n int, _ []pushedLine) action {
			if n == 1 || n == 3 || n == 6 {
				return action{v: resetBefore}
			}
			return action{v: forward}
		}, check: retries("network")},
		{name: "partial_400", markEvery: map[string]int{" OLD": 97, " LONG": 89},
			plan: func(int, []pushedLine) action { return action{v: partial} },
			check: func(t *testing.T, s *Shipper, f *front) {
				if got := testutil.ToFloat64(s.m.deadLettered.WithLabelValues(ReasonPartiallyAccepted)); got != 0 {
					t.Errorf("%v lines marked partially accepted although Loki named every rejected entry", got)
				}
			}},
		{name: "partial_400_unnamed", markEvery: map[string]int{" OLD": 1500},
			plan: func(int, []pushedLine) action { return action{v: partialOpaque} },
			check: func(t *testing.T, s *Shipper, f *front) {
				if got := testutil.ToFloat64(s.m.deadLettered.WithLabelValues(ReasonPartiallyAccepted)); got == 0 {
					t.Error("no line marked partially accepted")
				}
			}},
		{name: "stream_limit_429",
			plan: func(int, []pushedLine) action { return action{v: streamLimit} },
			check: func(t *testing.T, s *Shipper, f *front) {
				if got := testutil.ToFloat64(s.m.deadLettered.WithLabelValues(ReasonStreamLimit)); got != faultLines/faultStreams {
					t.Errorf("stream_limit lines %v, want %d", got, faultLines/faultStreams)
				}
				if got := testutil.ToFloat64(s.m.retries.WithLabelValues("429")); got != 0 {
					t.Errorf("a stream-limit 429 was retried %v times", got)
				}
			}},
	}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) { runFaultScenario(t, vl, sc) })
	}
}

func runFaultScenario(t *testing.T, vl *victorialogs.Server, sc faultScenario) {
	f := newFront(t, vl.PushURL(), sc.plan)
	timeout := sc.clientTimeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	client, err := loki.NewClient(loki.ClientConfig{URL: f.url(), Timeout: timeout, Concurrency: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	sink := NewLokiSink(client, LokiSinkConfig{Limits: DefaultLokiLimits()})
	cfg := Defaults()
	cfg.BatchBytes = 8 << 10
	cfg.MaxRequestBytes = 64 << 10
	cfg.BatchWait = 20 * time.Millisecond
	cfg.Concurrency = 4
	cfg.MinBackoff = 5 * time.Millisecond
	cfg.MaxBackoff = 200 * time.Millisecond
	if sc.maxBackoff > 0 {
		cfg.MaxBackoff = sc.maxBackoff
	}
	cfg.CircuitCooldown = 50 * time.Millisecond
	cfg.DrainTimeout = 2 * time.Second
	cfg.Dedup = DedupConfig{Window: time.Minute, MaxKeys: 100_000}
	dlq := &memDLQ{}
	l := openWAL(t)
	store := &memStore{}
	reg := prometheus.NewRegistry()
	s, err := New(cfg, l, 1, sink, store, zerolog.Nop(), reg, WithDeadLetterer(dlq))
	if err != nil {
		t.Fatal(err)
	}
	stop := runShipper(t, s)
	lines := writeScenario(t, l, sc.name, sc.markEvery)
	waitFor(t, "cursor at end", func() bool { return store.get(CursorName("loki")) == l.CommittedIndex()+1 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	rows, err := vl.Query(t.Context(), fmt.Sprintf(`{scenario=%q} | fields _msg`, sc.name))
	if err != nil {
		t.Fatal(err)
	}
	inVL := map[string]int{}
	for _, r := range rows {
		inVL[r["_msg"]]++
	}
	dead := map[string]string{}
	for reason, ls := range dlq.byReason() {
		for _, l := range ls {
			if prev, ok := dead[l]; ok {
				t.Errorf("%q dead-lettered twice (%s, %s)", l, prev, reason)
			}
			dead[l] = reason
		}
	}
	f.mu.Lock()
	lost, dups, expectedDups := 0, 0, 0
	for _, line := range lines {
		n := inVL[line]
		reason, isDead := dead[line]
		if want, rejected := f.rejected[line]; rejected {
			if !isDead || reason != want {
				t.Errorf("%q rejected by Loki as %s; DLQ has %q", line, want, reason)
			}
			if n != 0 {
				t.Errorf("%q rejected but stored %d times", line, n)
			}
			continue
		}
		if n == 0 && !isDead {
			lost++
			if lost <= 5 {
				t.Errorf("lost: %q", line)
			}
		}
		if isDead && reason != ReasonPartiallyAccepted {
			t.Errorf("%q dead-lettered as %s, never rejected", line, reason)
		}
		if n > 1 {
			dups += n - 1
			if f.unacked[line] >= n-1 {
				expectedDups += n - 1
			} else {
				t.Errorf("%q stored %d times; %d of them by construction", line, n, f.unacked[line])
			}
		}
	}
	requests, forwarded := f.requests, f.forwarded
	f.mu.Unlock()
	if len(inVL) > len(lines) {
		t.Errorf("VictoriaLogs holds %d distinct lines for %d written", len(inVL), len(lines))
	}
	t.Logf("%s: lines=%d requests=%d forwarded=%d stored_rows=%d lost=%d duplicates=%d (by construction %d: "+
		"stored by the receiver, answer lost) dead_lettered=%d retries=%v",
		sc.name, len(lines), requests, forwarded, len(rows), lost, dups, expectedDups, len(dead), retrySummary(s))
	if lost != 0 {
		t.Errorf("%d lines lost", lost)
	}
	if unexpected := dups - expectedDups; float64(unexpected) >= 0.00001*float64(len(lines)) && unexpected > 0 {
		t.Errorf("%d unexpected duplicates", unexpected)
	}
	// Every line is counted once: shipped, or dead-lettered (partially
	// accepted ones included, although the receiver may hold them).
	shipped := int(testutil.ToFloat64(s.m.linesShipped))
	deadMetric := 0
	for _, r := range []string{ReasonPartiallyAccepted, ReasonStreamLimit, loki.ReasonTooOld, loki.ReasonLineTooLong} {
		deadMetric += int(testutil.ToFloat64(s.m.deadLettered.WithLabelValues(r)))
	}
	if shipped+len(dead) != len(lines) || deadMetric != len(dead) {
		t.Errorf("metrics: shipped %d + dead-lettered %d (metric %d) != %d lines", shipped, len(dead), deadMetric, len(lines))
	}
	if testutil.CollectAndCount(s.m.requestSeconds) == 0 {
		t.Error("no request latency observed")
	}
	if sc.check != nil {
		sc.check(t, s, f)
	}
}

func overlaps(a, b map[string]bool) bool {
	for k := range a {
		if b[k] {
			return true
		}
	}
	return false
}

func retrySummary(s *Shipper) string {
	var out []string
	for _, r := range []string{"429", "5xx", "timeout", "network"} {
		if v := testutil.ToFloat64(s.m.retries.WithLabelValues(r)); v > 0 {
			out = append(out, r+"="+strconv.Itoa(int(v)))
		}
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

// writeScenario appends faultLines lines over faultStreams streams, in
// entries of 25 lines, half of them before the shipper has caught up and
// half while it runs. Lines carry a marker suffix per markEvery.
func writeScenario(t *testing.T, l *wal.Log, scenario string, markEvery map[string]int) []string {
	t.Helper()
	sets := make([]*record.LabelSet, faultStreams)
	for i := range sets {
		sets[i] = record.NewLabelSet([]record.Label{{Name: "scenario", Value: scenario}, {Name: "stream", Value: strconv.Itoa(i)}})
	}
	var lines []string
	b := record.NewBuilder()
	var wg sync.WaitGroup
	for n := 0; n < faultLines; {
		b.Reset()
		for range 25 {
			line := fmt.Sprintf("s=%s seq=%06d stream=%d", scenario, n, n%faultStreams)
			for suffix, every := range markEvery {
				if n%every == every-1 {
					line += suffix
					break
				}
			}
			lines = append(lines, line)
			b.Add(fmt.Sprintf("file:9:%d:1", n%faultStreams), sets[n%faultStreams], uint64(n+1), time.Now().UnixNano(), 0, nil, []byte(line))
			n++
		}
		wg.Add(1)
		if err := l.Append(context.Background(), b.AppendTo(nil), func(_ uint64, err error) {
			if err != nil {
				t.Errorf("append: %v", err)
			}
			wg.Done()
		}); err != nil {
			t.Fatal(err)
		}
		if n == faultLines/2 {
			time.Sleep(50 * time.Millisecond)
		}
	}
	wg.Wait()
	return lines
}
