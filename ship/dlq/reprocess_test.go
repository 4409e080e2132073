package dlq

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/logcapturer/log_capturer_go/ship"
	"github.com/logcapturer/log_capturer_go/state"
)

// receiver is a real HTTP server standing in for Loki where a test needs to
// choose the answers: it answers each push with the next status of its
// script (the last one repeats) and remembers the bodies it accepted.
type receiver struct {
	srv *httptest.Server

	mu       sync.Mutex
	script   []int
	requests int
	accepted map[[32]byte]int // body hash -> times accepted
	// hook, when set, runs before answering request n (1-based); returning
	// true makes the handler wait for the client to give up instead.
	hook func(n int) bool
}

func newReceiver(t *testing.T, script ...int) *receiver {
	rc := &receiver{script: script, accepted: map[[32]byte]int{}}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.requests++
		n := rc.requests
		status := http.StatusNoContent
		if len(rc.script) > 0 {
			status = rc.script[min(n, len(rc.script))-1]
		}
		hook := rc.hook
		rc.mu.Unlock()
		if hook != nil && hook(n) {
			<-r.Context().Done()
			return
		}
		if status == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "0")
		}
		if status/100 == 2 {
			rc.mu.Lock()
			rc.accepted[sha256.Sum256(body)]++
			rc.mu.Unlock()
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, http.StatusText(status))
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) counts() (requests, accepted, dupes int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for _, n := range rc.accepted {
		accepted += n
		dupes += n - 1
	}
	return rc.requests, accepted, dupes
}

func reprocess(t *testing.T, e *env, req Request, sinks ...ship.Sink) *Result {
	t.Helper()
	res, err := e.s.Reprocess(context.Background(), req, sinks, nil)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestReprocessLetterOutcomes(t *testing.T) {
	tests := map[string]struct {
		script       []int
		sink         string
		wantStatus   string
		wantAttempts int
		wantRequests int
	}{
		"accepted":          {script: []int{204}, sink: "loki", wantStatus: "reprocessed", wantAttempts: 1, wantRequests: 1},
		"429 then accepted": {script: []int{429, 204}, sink: "loki", wantStatus: "reprocessed", wantAttempts: 2, wantRequests: 2},
		"500 then accepted": {script: []int{500, 204}, sink: "loki", wantStatus: "reprocessed", wantAttempts: 2, wantRequests: 2},
		"503 until bound":   {script: []int{503}, sink: "loki", wantStatus: "failed", wantAttempts: 3, wantRequests: 3},
		"401 is permanent":  {script: []int{401}, sink: "loki", wantStatus: "failed", wantAttempts: 1, wantRequests: 1},
		// A 400 that names no entry: Loki may have stored some, so the
		// entries move to a new letter marked partially accepted instead of
		// being sent again with the ones it stored.
		"400 is a partial rejection": {script: []int{400}, sink: "loki", wantStatus: "partly_rejected", wantAttempts: 1, wantRequests: 1},
		"sink not available":         {script: []int{204}, sink: "gone", wantStatus: "failed", wantAttempts: 0, wantRequests: 0},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, nil)
			rc := newReceiver(t, tc.script...)
			e.deadLetter(letter(tc.sink, "r", "o", 1, 5, time.Now()))
			before := e.s.Letters(Filter{})[0]

			res := reprocess(t, e, Request{ID: "req"}, lokiSink(t, rc.srv.URL))
			if len(res.Letters) != 1 {
				t.Fatalf("outcomes = %+v", res.Letters)
			}
			out := res.Letters[0]
			if out.Status != tc.wantStatus || out.Attempts != tc.wantAttempts {
				t.Fatalf("outcome = %+v, want %s after %d attempts", out, tc.wantStatus, tc.wantAttempts)
			}
			if reqs, _, _ := rc.counts(); reqs != tc.wantRequests {
				t.Fatalf("receiver saw %d requests, want %d", reqs, tc.wantRequests)
			}
			after, ok := e.s.Letter(before.ID)
			if !ok {
				t.Fatal("letter gone")
			}
			_, statErr := os.Stat(filepath.Join(e.cfg.Dir, before.File))
			if tc.wantStatus == "partly_rejected" {
				pend := e.s.Letters(Filter{Pending: true})
				if after.Status != state.DLQReprocessed || len(pend) != 1 || !pend[0].PartiallyAccepted ||
					pend[0].Reason != ship.ReasonPartiallyAccepted || pend[0].Lines != 5 || res.LinesFailed != 5 {
					t.Fatalf("after a partial rejection: original %+v, pending %+v, result %+v", after, pend, res)
				}
				return
			}
			if tc.wantStatus == "reprocessed" {
				if after.Status != state.DLQReprocessed || !os.IsNotExist(statErr) || res.LinesSent != 5 {
					t.Fatalf("after success: %+v, file err %v, sent %d", after, statErr, res.LinesSent)
				}
				if st := e.s.Stats(); st.Pending.Letters != 0 || st.Reprocessed != 1 {
					t.Fatalf("stats = %+v", st)
				}
				if got := e.metric("logcapturer_dlq_reprocessed_lines_total", nil); got != 5 {
					t.Errorf("reprocessed lines = %v", got)
				}
				return
			}
			if after.Status != state.DLQPending || statErr != nil || after.LastError == "" ||
				after.Attempts != before.Attempts+tc.wantAttempts || res.LinesFailed != 5 {
				t.Fatalf("after failure: %+v, file err %v, failed %d", after, statErr, res.LinesFailed)
			}
			// The failure is durable too.
			e.reopen()
			if again, _ := e.s.Letter(before.ID); again.Attempts != after.Attempts || again.LastError != after.LastError {
				t.Fatalf("after reopen: %+v", again)
			}
		})
	}
}

func TestReprocessSameIDSendsOnce(t *testing.T) {
	e := newEnv(t, nil)
	rc := newReceiver(t)
	sink := lokiSink(t, rc.srv.URL)
	for i := range 3 {
		e.deadLetter(letter("loki", "r", "i", uint64(1+10*i), 10, time.Now()))
	}
	first := reprocess(t, e, Request{ID: "once"}, sink)
	if first.Repeated || first.Reprocessed != 3 || first.LinesSent != 30 {
		t.Fatalf("first run = %+v", first)
	}
	again := reprocess(t, e, Request{ID: "once"}, sink)
	if !again.Repeated || again.Reprocessed != 3 || again.LinesSent != 30 {
		t.Fatalf("repeat = %+v", again)
	}
	// The stored outcome survives a restart.
	e.reopen()
	if r := reprocess(t, e, Request{ID: "once"}, sink); !r.Repeated || r.LinesSent != 30 {
		t.Fatalf("repeat after reopen = %+v", r)
	}
	if reqs, accepted, dupes := rc.counts(); reqs != 3 || accepted != 3 || dupes != 0 {
		t.Fatalf("receiver: %d requests, %d accepted, %d duplicates; want 3, 3, 0", reqs, accepted, dupes)
	}
	// A new id finds nothing pending: reprocessed letters are released.
	if r := reprocess(t, e, Request{ID: "twice"}, sink); r.Repeated || r.LinesSent != 0 {
		t.Fatalf("new id = %+v", r)
	}
	// The same id with another selection is refused, not silently answered.
	if _, err := e.s.Reprocess(context.Background(), Request{ID: "once", Reason: "x"}, []ship.Sink{sink}, nil); !errors.Is(err, ErrRequestIDReused) {
		t.Fatalf("reused id: err = %v", err)
	}
	// The registry is new since the reopen: one repeat counted there.
	if got := e.metric("logcapturer_dlq_reprocess_requests_total", map[string]string{"outcome": "repeated"}); got != 1 {
		t.Errorf("repeated requests = %v, want 1", got)
	}
}

func TestReprocessSelection(t *testing.T) {
	seed := func(t *testing.T) *env {
		e := newEnv(t, nil)
		e.deadLetter(letter("loki", "too_old", "a", 1, 2, time.Now()))   // 1
		e.deadLetter(letter("loki", "line_long", "b", 3, 3, time.Now())) // 2
		e.deadLetter(letter("file", "too_old", "c", 6, 4, time.Now()))   // 3
		e.deadLetter(letter("loki", "too_old", "d", 10, 5, time.Now()))  // 4
		return e
	}
	tests := map[string]struct {
		req      Request
		sent     []uint64
		outcomes map[uint64]string
	}{
		"all":            {req: Request{}, sent: []uint64{1, 2, 3, 4}},
		"by reason":      {req: Request{Reason: "too_old"}, sent: []uint64{1, 3, 4}},
		"by sink":        {req: Request{Sink: "file"}, sent: []uint64{3}},
		"by ids":         {req: Request{Letters: []uint64{4, 2, 99}}, sent: []uint64{2, 4}, outcomes: map[uint64]string{99: "not_found"}},
		"reason and ids": {req: Request{Reason: "too_old", Letters: []uint64{1, 2}}, sent: []uint64{1}, outcomes: map[uint64]string{2: "not_selected"}},
		"limit":          {req: Request{Limit: 2}, sent: []uint64{1, 2}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			e := seed(t)
			rc := newReceiver(t)
			fileOut := filepath.Join(t.TempDir(), "out.jsonl")
			fs, err := ship.NewFileSink(ship.FileSinkConfig{Path: fileOut})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = fs.Close() })
			tc.req.ID = name
			res := reprocess(t, e, tc.req, lokiSink(t, rc.srv.URL), fs)
			var sent []uint64
			for _, o := range res.Letters {
				if o.Status == "reprocessed" {
					sent = append(sent, o.ID)
				} else if tc.outcomes[o.ID] != o.Status {
					t.Errorf("outcome %+v unexpected", o)
				}
			}
			if !equalIDs(sent, tc.sent) {
				t.Fatalf("sent %v, want %v (%+v)", sent, tc.sent, res.Letters)
			}
			for _, id := range tc.sent {
				if l, _ := e.s.Letter(id); l.Status != state.DLQReprocessed {
					t.Errorf("letter %d is %s", id, l.Status)
				}
			}
		})
	}
}

func equalIDs(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestReprocessDryRun(t *testing.T) {
	e := newEnv(t, nil)
	rc := newReceiver(t)
	e.deadLetter(letter("loki", "r", "d", 1, 4, time.Now()))
	res := reprocess(t, e, Request{DryRun: true}, lokiSink(t, rc.srv.URL))
	if !res.DryRun || len(res.Letters) != 1 || res.Letters[0].Status != "would_send" || res.LinesSent != 4 {
		t.Fatalf("dry run = %+v", res)
	}
	// With an id, a dry run is not remembered: the real run still happens.
	reprocess(t, e, Request{ID: "x", DryRun: true}, lokiSink(t, rc.srv.URL))
	if reqs, _, _ := rc.counts(); reqs != 0 {
		t.Fatalf("dry run sent %d requests", reqs)
	}
	if r := reprocess(t, e, Request{ID: "x"}, lokiSink(t, rc.srv.URL)); r.Repeated || r.Reprocessed != 1 {
		t.Fatalf("real run after dry run = %+v", r)
	}
}

func TestReprocessRejectsBadRequests(t *testing.T) {
	e := newEnv(t, nil)
	sink := lokiSink(t, "http://127.0.0.1:1")
	walSrc := DirSource(t.TempDir())
	since := time.Now()
	tests := map[string]struct {
		req Request
		src WALSource
	}{
		"no id":                {req: Request{}},
		"id too long":          {req: Request{ID: strings.Repeat("i", maxIDBytes+1)}},
		"range and reason":     {req: Request{ID: "a", FromIndex: 1, Reason: "r"}, src: walSrc},
		"range and letters":    {req: Request{ID: "a", Since: since, Letters: []uint64{1}}, src: walSrc},
		"from after to":        {req: Request{ID: "a", FromIndex: 9, ToIndex: 3}, src: walSrc},
		"until before since":   {req: Request{ID: "a", Since: since, Until: since.Add(-time.Second)}, src: walSrc},
		"negative limit":       {req: Request{ID: "a", Limit: -1}},
		"unknown replay sink":  {req: Request{ID: "a", FromIndex: 1, Sink: "nope"}, src: walSrc},
		"replay without a WAL": {req: Request{ID: "a", FromIndex: 1}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := e.s.Reprocess(context.Background(), tc.req, []ship.Sink{sink}, tc.src)
			if !errors.Is(err, ErrInvalidRequest) {
				t.Fatalf("err = %v, want ErrInvalidRequest", err)
			}
		})
	}
	// Nothing was remembered for a refused request.
	if _, ok, _ := e.st.DLQRequest("a"); ok {
		t.Fatal("a refused request was stored")
	}
}

// readFileSink returns the lines a FileSink wrote.
func readFileSink(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

func TestReplayRange(t *testing.T) {
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	ts := func(k, j int) int64 {
		return base.Add(time.Duration(k)*time.Second + time.Duration(j)*time.Millisecond).UnixNano()
	}
	tests := map[string]struct {
		req            Request
		dropFirstSeg   bool
		wantLines      int
		wantUnavail    bool
		wantEntries    int64
		checkLineRange [2]int // entries whose lines must all be there
	}{
		"index range":    {req: Request{FromIndex: 5, ToIndex: 12}, wantLines: 8 * 4, wantEntries: 8, checkLineRange: [2]int{5, 12}},
		"open end":       {req: Request{FromIndex: 55}, wantLines: 6 * 4, wantEntries: 6, checkLineRange: [2]int{55, 60}},
		"time range":     {req: Request{Since: time.Unix(0, ts(3, 0)), Until: time.Unix(0, ts(6, 0))}, wantLines: 3 * 4, wantEntries: 60, checkLineRange: [2]int{3, 5}},
		"limit":          {req: Request{FromIndex: 10, Limit: 3}, wantLines: 3 * 4, wantEntries: 3, checkLineRange: [2]int{10, 12}},
		"beyond the end": {req: Request{FromIndex: 58, ToIndex: 70}, wantLines: 3 * 4, wantUnavail: true, wantEntries: 3, checkLineRange: [2]int{58, 60}},
		"removed head":   {req: Request{FromIndex: 1, ToIndex: 60}, dropFirstSeg: true, wantUnavail: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, func(c *Config) { c.BatchBytes = 100 })
			walDir := filepath.Join(e.dir, "wal")
			writeWAL(t, walDir, 60, 4, "rp", strings.Repeat("p", 1000), ts)
			if tc.dropFirstSeg {
				segs, _ := filepath.Glob(filepath.Join(walDir, "0*"))
				if len(segs) < 3 {
					t.Fatalf("want several segments, got %v", segs)
				}
				if err := os.Remove(segs[0]); err != nil {
					t.Fatal(err)
				}
			}
			out := filepath.Join(t.TempDir(), "out.jsonl")
			fs, err := ship.NewFileSink(ship.FileSinkConfig{Path: out})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = fs.Close() })
			tc.req.ID = "replay"
			res, err := e.s.Reprocess(context.Background(), tc.req, []ship.Sink{fs}, DirSource(walDir))
			if err != nil {
				t.Fatal(err)
			}
			lines := readFileSink(t, out)
			if tc.dropFirstSeg {
				if len(res.Unavailable) == 0 || res.Unavailable[0].From != 1 || !strings.Contains(res.Unavailable[0].Why, "removed") {
					t.Fatalf("unavailable = %+v", res.Unavailable)
				}
				if int64(len(lines)) != res.LinesSent || len(lines) != 4*(60-int(res.Unavailable[0].To)) {
					t.Fatalf("sent %d lines (file %d) after a hole %+v", res.LinesSent, len(lines), res.Unavailable)
				}
				return
			}
			if len(lines) != tc.wantLines || res.LinesSent != int64(tc.wantLines) || res.EntriesRead != tc.wantEntries {
				t.Fatalf("file has %d lines, result %+v; want %d lines, %d entries", len(lines), res, tc.wantLines, tc.wantEntries)
			}
			if tc.wantUnavail != (len(res.Unavailable) > 0) {
				t.Fatalf("unavailable = %+v", res.Unavailable)
			}
			all := strings.Join(lines, "\n")
			for k := tc.checkLineRange[0]; k <= tc.checkLineRange[1]; k++ {
				for j := range 4 {
					if want := fmt.Sprintf("rp e%d l%d |", k, j); !strings.Contains(all, want) {
						t.Fatalf("line %q missing", want)
					}
				}
			}
			// Repeating the id sends nothing more.
			again, err := e.s.Reprocess(context.Background(), tc.req, []ship.Sink{fs}, DirSource(walDir))
			if err != nil || !again.Repeated {
				t.Fatalf("repeat = %+v, %v", again, err)
			}
			if n := len(readFileSink(t, out)); n != tc.wantLines {
				t.Fatalf("repeat wrote more: %d lines", n)
			}
		})
	}
}

// TestReplayResumesAfterInterruption cuts a replay off mid-way (the client
// gives up during the third push) and repeats the request: the second run
// carries on, and every batch is accepted exactly once.
func TestReplayResumesAfterInterruption(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.BatchBytes = 1 }) // one WAL entry per batch
	walDir := filepath.Join(e.dir, "wal")
	now := time.Now()
	writeWAL(t, walDir, 10, 3, "rs", "", func(k, j int) int64 { return now.Add(time.Duration(k*10+j) * time.Millisecond).UnixNano() })
	rc := newReceiver(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rc.hook = func(n int) bool {
		if n == 3 {
			cancel()
			return true
		}
		return false
	}
	sink := lokiSink(t, rc.srv.URL)
	req := Request{ID: "resume", FromIndex: 1, ToIndex: 10}
	if _, err := e.s.Reprocess(ctx, req, []ship.Sink{sink}, DirSource(walDir)); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted run: err = %v", err)
	}
	if q, ok, _ := e.st.DLQRequest("resume"); !ok || q.Status != state.DLQRequestRunning {
		t.Fatalf("stored request = %+v, %t", q, ok)
	}
	rc.mu.Lock()
	rc.hook = nil
	rc.mu.Unlock()
	e.reopen() // as after a crash
	res, err := e.s.Reprocess(context.Background(), req, []ship.Sink{sink}, DirSource(walDir))
	if err != nil {
		t.Fatal(err)
	}
	if !res.Resumed || res.Repeated || res.LinesSent != 30 || res.Batches != 10 {
		t.Fatalf("resumed run = %+v", res)
	}
	if _, accepted, dupes := rc.counts(); accepted != 10 || dupes != 0 {
		t.Fatalf("receiver accepted %d batches with %d duplicates; want 10, 0", accepted, dupes)
	}
	if r, err := e.s.Reprocess(context.Background(), req, []ship.Sink{sink}, DirSource(walDir)); err != nil || !r.Repeated {
		t.Fatalf("third call = %+v, %v", r, err)
	}
}
