package ship

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/logcapturer/log_capturer_go/wal"
	"github.com/logcapturer/log_capturer_go/wal/record"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type memStore struct {
	mu sync.Mutex
	c  map[string]uint64
}

func (m *memStore) SetCursor(name string, next uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.c == nil {
		m.c = map[string]uint64{}
	}
	m.c[name] = next
}

func (m *memStore) get(name string) uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.c[name]
}

// openWAL runs a real WAL for the test.
func openWAL(t *testing.T) *wal.Log {
	t.Helper()
	cfg := wal.Defaults()
	cfg.SegmentSize = 256 << 10
	cfg.MaxEntryBytes = 128 << 10
	cfg.MaxSize = 64 << 20
	cfg.SyncInterval = time.Millisecond
	cfg.Retention = 0
	l, err := wal.Open(t.TempDir(), cfg, zerolog.Nop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("wal run: %v", err)
		}
	})
	return l
}

var testLabels = record.NewLabelSet([]record.Label{{Name: "job", Value: "test"}})

// fill appends entries of perEntry lines each, numbering lines from 0.
func fill(t *testing.T, l *wal.Log, entries, perEntry int) int {
	t.Helper()
	b := record.NewBuilder()
	var wg sync.WaitGroup
	n := 0
	for e := 0; e < entries; e++ {
		b.Reset()
		for i := 0; i < perEntry; i++ {
			b.Add("src", testLabels, uint64(n+1), int64(1_700_000_000_000_000_000+n), 0, nil, []byte(fmt.Sprintf("line %07d", n)))
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
	}
	wg.Wait()
	return n
}

func testCfg() Config {
	c := Defaults()
	c.BatchBytes = 4 << 10
	c.MaxRequestBytes = 64 << 10
	c.BatchWait = 20 * time.Millisecond
	c.MinBackoff = time.Millisecond
	c.MaxBackoff = 10 * time.Millisecond
	c.DrainTimeout = time.Second
	c.CircuitCooldown = 20 * time.Millisecond
	return c
}

func runShipper(t *testing.T, s *Shipper) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() { cancel(); err = <-done })
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestFileSinkReceivesEveryLineInOrder(t *testing.T) {
	l := openWAL(t)
	path := filepath.Join(t.TempDir(), "out", "logs.jsonl")
	fsink, err := NewFileSink(FileSinkConfig{Path: path, MaxBytes: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	defer fsink.Close()
	store := &memStore{}
	reg := prometheus.NewRegistry()
	cfg := testCfg()
	cfg.Concurrency = 1 // the file sink keeps WAL order only with one writer
	s, err := New(cfg, l, 1, fsink, store, zerolog.Nop(), reg)
	if err != nil {
		t.Fatal(err)
	}
	stop := runShipper(t, s)
	n := fill(t, l, 200, 50)
	waitFor(t, "cursor at end", func() bool { return store.get(CursorName("file")) == l.CommittedIndex()+1 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	i := 0
	for sc.Scan() {
		var v struct {
			TS     string            `json:"ts"`
			Labels map[string]string `json:"labels"`
			Line   string            `json:"line"`
		}
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			t.Fatalf("line %d: %v: %s", i, err, sc.Bytes())
		}
		if want := fmt.Sprintf("line %07d", i); v.Line != want || v.Labels["job"] != "test" {
			t.Fatalf("line %d: %+v want %q", i, v, want)
		}
		i++
	}
	if i != n {
		t.Fatalf("file holds %d lines, want %d", i, n)
	}
	if got := testutil.ToFloat64(s.m.linesShipped); got != float64(n) {
		t.Fatalf("shipped metric %v want %d", got, n)
	}
}

// faultSink fails the way a receiver does and records what it accepted.
type faultSink struct {
	mu        sync.Mutex
	accepted  map[uint64]int // batch First -> times accepted
	lines     map[string]int
	failFirst int // transient failures before the first success
	permanent func(b *Batch) bool
	delay     func() time.Duration
	calls     int
	inflight  map[uint64]uint64 // First -> Last of batches being sent
	cursor    *wal.Cursor
	violation string
}

func (f *faultSink) Name() string { return "fault" }

func (f *faultSink) Send(ctx context.Context, b *Batch) error {
	f.mu.Lock()
	f.calls++
	call := f.calls
	if f.inflight == nil {
		f.inflight = map[uint64]uint64{}
	}
	f.inflight[b.First] = b.Last
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		delete(f.inflight, b.First)
		f.mu.Unlock()
	}()
	if f.delay != nil {
		select {
		case <-time.After(f.delay()):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if call <= f.failFirst {
		if call%2 == 0 {
			return &RetryError{Reason: "5xx", Status: 503, Err: errors.New("503")}
		}
		return &RetryError{Reason: "429", Status: 429, RetryAfter: time.Millisecond, Err: errors.New("429")}
	}
	if f.permanent != nil && f.permanent(b) {
		return &PermanentError{Reason: "bad_request", Err: errors.New("400")}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	// The cursor may never have passed a batch that is still being sent.
	if f.cursor != nil && f.cursor.Next() > b.First {
		f.violation = fmt.Sprintf("cursor %d passed in-flight batch %d..%d", f.cursor.Next(), b.First, b.Last)
	}
	if f.accepted == nil {
		f.accepted, f.lines = map[uint64]int{}, map[string]int{}
	}
	f.accepted[b.First]++
	for _, st := range b.Streams {
		for _, e := range st.Entries {
			f.lines[string(e.Line)]++
		}
	}
	return nil
}

func TestRetriesThenDelivers(t *testing.T) {
	l := openWAL(t)
	sink := &faultSink{failFirst: 6}
	store := &memStore{}
	s, err := New(testCfg(), l, 1, sink, store, zerolog.Nop(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	stop := runShipper(t, s)
	n := fill(t, l, 50, 20)
	waitFor(t, "delivery", func() bool { return store.get(CursorName("fault")) == l.CommittedIndex()+1 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if len(sink.lines) != n {
		t.Fatalf("received %d distinct lines, want %d", len(sink.lines), n)
	}
	if r := testutil.ToFloat64(s.m.retries.WithLabelValues("429")) + testutil.ToFloat64(s.m.retries.WithLabelValues("5xx")); r != 6 {
		t.Fatalf("retries counted %v, want 6", r)
	}
}

func TestPermanentRejectionIsCountedAndPassed(t *testing.T) {
	l := openWAL(t)
	sink := &faultSink{permanent: func(b *Batch) bool { return b.First == 1 }}
	store := &memStore{}
	s, err := New(testCfg(), l, 1, sink, store, zerolog.Nop(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	stop := runShipper(t, s)
	n := fill(t, l, 10, 20)
	waitFor(t, "delivery", func() bool { return store.get(CursorName("fault")) == l.CommittedIndex()+1 })
	stop()
	rejected := testutil.ToFloat64(s.m.deadLettered.WithLabelValues("bad_request"))
	if rejected == 0 || int(rejected)+len(sink.lines) != n {
		t.Fatalf("rejected %v + delivered %d != %d", rejected, len(sink.lines), n)
	}
	if st := s.Status(); st.LinesRejected != uint64(rejected) || st.LastError == "" {
		t.Fatalf("status %+v", st)
	}
}

// TestOutOfOrderCompletion sends with 4 workers and random delays: every
// line arrives once, and the cursor never passes a batch still in flight.
func TestOutOfOrderCompletion(t *testing.T) {
	l := openWAL(t)
	rnd := rand.New(rand.NewPCG(1, 2))
	var rmu sync.Mutex
	sink := &faultSink{delay: func() time.Duration {
		rmu.Lock()
		defer rmu.Unlock()
		return time.Duration(rnd.IntN(5)) * time.Millisecond
	}}
	cfg := testCfg()
	cfg.Concurrency = 4
	store := &memStore{}
	s, err := New(cfg, l, 1, sink, store, zerolog.Nop(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	sink.cursor = s.cursor
	stop := runShipper(t, s)
	n := fill(t, l, 300, 20)
	waitFor(t, "delivery", func() bool { return store.get(CursorName("fault")) == l.CommittedIndex()+1 })
	stop()
	if sink.violation != "" {
		t.Fatal(sink.violation)
	}
	if len(sink.lines) != n {
		t.Fatalf("received %d distinct lines, want %d", len(sink.lines), n)
	}
	for line, c := range sink.lines {
		if c != 1 {
			t.Fatalf("%q received %d times", line, c)
		}
	}
}

// TestShutdownKeepsUnackedBatches stops while the sink fails: the cursor
// stays before the unacknowledged batch, so a restart re-sends it.
func TestShutdownKeepsUnackedBatches(t *testing.T) {
	l := openWAL(t)
	sink := &faultSink{failFirst: 1 << 30}
	cfg := testCfg()
	cfg.DrainTimeout = 50 * time.Millisecond
	store := &memStore{}
	s, err := New(cfg, l, 1, sink, store, zerolog.Nop(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	stop := runShipper(t, s)
	fill(t, l, 5, 5)
	waitFor(t, "a retry", func() bool { sink.mu.Lock(); defer sink.mu.Unlock(); return sink.calls > 2 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if c := s.cursor.Next(); c != 1 {
		t.Fatalf("cursor moved to %d with nothing acknowledged", c)
	}
	// Restart with a healthy sink from the stored cursor: everything arrives.
	healthy := &faultSink{}
	s2, err := New(testCfg(), l, store.get(CursorName("fault")), healthy, store, zerolog.Nop(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	stop2 := runShipper(t, s2)
	waitFor(t, "delivery", func() bool { return store.get(CursorName("fault")) == l.CommittedIndex()+1 })
	stop2()
	if len(healthy.lines) != 25 {
		t.Fatalf("after restart %d lines, want 25", len(healthy.lines))
	}
}

func TestBackoffBounds(t *testing.T) {
	rnd := rand.New(rand.NewPCG(3, 4))
	for attempt := 0; attempt < 200; attempt++ {
		d := backoff(500*time.Millisecond, 5*time.Minute, attempt, rnd)
		ceil := 5 * time.Minute
		if attempt < 10 {
			ceil = min(ceil, (500*time.Millisecond)<<attempt)
		}
		if d < time.Millisecond || d > ceil {
			t.Fatalf("attempt %d: %v outside [1ms, %v]", attempt, d, ceil)
		}
	}
}

func TestAppendJSONString(t *testing.T) {
	cases := map[string]string{
		"plain":      `"plain"`,
		"q\"b\\n\n":  `"q\"b\\n\n"`,
		"tab\tcr\r":  `"tab\tcr\r"`,
		"\x00\x1f":   `"\u0000\u001f"`,
		"ünï":        `"ünï"`,
		"bad\xffend": `"bad\ufffdend"`,
	}
	for in, want := range cases {
		if got := string(appendJSONString(nil, []byte(in))); got != want {
			t.Errorf("%q: got %s want %s", in, got, want)
		}
		var back string
		if err := json.Unmarshal(appendJSONString(nil, []byte(in)), &back); err != nil {
			t.Errorf("%q: not valid JSON: %v", in, err)
		}
	}
}
