package file

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/logcapturer/log_capturer_go/ingest"
	"github.com/logcapturer/log_capturer_go/wal/record"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// capRec is one decoded record.
type capRec struct {
	source   string
	line     string
	offset   uint64
	flags    record.Flags
	filename string
	host     string
	job      string
	time     int64
}

type pendingAck struct {
	recs []capRec
	idx  uint64
	err  error
	done func(uint64, error)
	size int
}

// testWAL implements the ingest.Appender contract for tests: it decodes every
// payload with record.Each and acks payloads in append order from its own
// goroutine. Acks can be held, delayed, or failed.
type testWAL struct {
	queue chan pendingAck
	stop  chan struct{}
	wg    sync.WaitGroup

	mu         sync.Mutex
	next       uint64
	appends    int
	captured   []capRec // records of successfully acked payloads, in ack order
	gate       chan struct{}
	ackDelay   time.Duration
	failAck    func(n int) error // error for the done of payload n (1-based)
	failAppend func(n int) error // error returned by Append for payload n
	unblock    chan struct{}     // when set, Append blocks until it is closed or ctx ends
	reorder    bool              // ack pairs of payloads in reverse order
	inflight   map[string]int
	maxInfl    int
	maxPayload int
	entered    chan struct{} // signalled on each Append call
	// Payload bytes appended and not yet acked, their peak, and Appends
	// that broke budget (set by the test): the bytes in flight plus the new
	// payload exceed it while something else is in flight.
	bytesInfl    int
	maxBytesInfl int
	budget       int
	overBudget   int
}

func newTestWAL(t *testing.T) *testWAL {
	w := &testWAL{
		queue:    make(chan pendingAck, 1<<14),
		stop:     make(chan struct{}),
		inflight: map[string]int{},
		entered:  make(chan struct{}, 1),
	}
	w.wg.Add(1)
	go w.ackLoop()
	t.Cleanup(func() {
		close(w.stop)
		w.wg.Wait()
	})
	return w
}

func (w *testWAL) Append(ctx context.Context, payload []byte, done func(uint64, error)) error {
	select {
	case w.entered <- struct{}{}:
	default:
	}
	var recs []capRec
	if err := record.Each(payload, func(r *record.Record) error {
		c := capRec{source: r.Source, line: string(r.Line), offset: r.Offset, flags: r.Flags, time: r.Time}
		c.filename, _ = r.Labels.Get(LabelFilename)
		c.host, _ = r.Labels.Get(LabelHost)
		c.job, _ = r.Labels.Get("job")
		recs = append(recs, c)
		return nil
	}); err != nil {
		return fmt.Errorf("test wal: %w", err)
	}
	w.mu.Lock()
	w.appends++
	n := w.appends
	unblock, failAppend, failAck := w.unblock, w.failAppend, w.failAck
	w.maxPayload = max(w.maxPayload, len(payload))
	w.mu.Unlock()
	if unblock != nil {
		select {
		case <-unblock:
		case <-ctx.Done():
			return fmt.Errorf("test wal: %w", ctx.Err())
		}
	}
	if failAppend != nil {
		if err := failAppend(n); err != nil {
			return err
		}
	}
	var ackErr error
	if failAck != nil {
		ackErr = failAck(n)
	}
	w.mu.Lock()
	w.next++
	idx := w.next
	if w.budget > 0 && w.bytesInfl > 0 && w.bytesInfl+len(payload) > w.budget {
		w.overBudget++
	}
	w.bytesInfl += len(payload)
	w.maxBytesInfl = max(w.maxBytesInfl, w.bytesInfl)
	if len(recs) > 0 {
		w.inflight[recs[0].source]++
		w.maxInfl = max(w.maxInfl, w.inflight[recs[0].source])
	}
	w.mu.Unlock()
	w.queue <- pendingAck{recs: recs, idx: idx, err: ackErr, done: done, size: len(payload)}
	return nil
}

func (w *testWAL) ackLoop() {
	defer w.wg.Done()
	var next []pendingAck
	for {
		var p pendingAck
		if len(next) > 0 {
			p, next = next[0], next[1:]
		} else {
			select {
			case <-w.stop:
				return
			case p = <-w.queue:
			}
		}
		w.mu.Lock()
		gate, delay, reorder := w.gate, w.ackDelay, w.reorder
		w.mu.Unlock()
		if reorder && len(next) == 0 {
			select {
			case q := <-w.queue:
				p, next = q, []pendingAck{p}
			case <-time.After(20 * time.Millisecond):
			}
		}
		if gate != nil {
			select {
			case <-gate:
			case <-w.stop:
				return
			}
		}
		if delay > 0 {
			time.Sleep(delay)
		}
		w.mu.Lock()
		if p.err == nil {
			w.captured = append(w.captured, p.recs...)
		}
		if len(p.recs) > 0 {
			w.inflight[p.recs[0].source]--
		}
		w.bytesInfl -= p.size
		w.mu.Unlock()
		p.done(p.idx, p.err)
	}
}

// hold makes acks wait until the returned release is called.
func (w *testWAL) hold() (release func()) {
	g := make(chan struct{})
	w.mu.Lock()
	w.gate = g
	w.mu.Unlock()
	return func() {
		w.mu.Lock()
		w.gate = nil
		w.mu.Unlock()
		close(g)
	}
}

func (w *testWAL) records() []capRec {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.captured)
}

func (w *testWAL) lines() []string {
	var out []string
	for _, r := range w.records() {
		out = append(out, r.line)
	}
	return out
}

func (w *testWAL) appendCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.appends
}

// testState implements ingest.Checkpointer in memory and records the calls.
type testState struct {
	mu      sync.Mutex
	pos     map[string]ingest.SavedPosition
	calls   []stateCall
	deleted map[string]bool
}

type stateCall struct {
	del      bool
	id       string
	offset   uint64
	walIndex uint64
}

func newTestState() *testState {
	return &testState{pos: map[string]ingest.SavedPosition{}, deleted: map[string]bool{}}
}

func (s *testState) SetPosition(id string, offset, walIndex uint64, meta []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pos[id] = ingest.SavedPosition{ID: id, Offset: offset, WALIndex: walIndex, Meta: meta}
	s.calls = append(s.calls, stateCall{id: id, offset: offset, walIndex: walIndex})
}

func (s *testState) DeletePosition(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.pos, id)
	s.deleted[id] = true
	s.calls = append(s.calls, stateCall{del: true, id: id})
}

func (s *testState) saved() []ingest.SavedPosition {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]ingest.SavedPosition, 0, len(s.pos))
	for _, p := range s.pos {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func (s *testState) position(id string) (ingest.SavedPosition, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.pos[id]
	return p, ok
}

func (s *testState) wasDeleted(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.deleted[id]
}

func (s *testState) history() []stateCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

func testConfig(include ...string) Config {
	c := DefaultConfig()
	c.Include = include
	c.PollInterval = 10 * time.Millisecond
	c.ScanInterval = 100 * time.Millisecond
	c.RotateWait = 100 * time.Millisecond
	c.StopTimeout = 2 * time.Second
	c.Hostname = "h1"
	c.Labels = map[string]string{"job": "test"}
	return c
}

// running is a Source whose Run goroutine the test controls.
type running struct {
	src    *Source
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

func (r *running) stop(t *testing.T) {
	t.Helper()
	r.once.Do(func() {
		r.cancel()
		select {
		case err := <-r.done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("Run did not return after cancel")
		}
	})
}

func startSource(t *testing.T, cfg Config, w ingest.Appender, st ingest.Checkpointer, saved []ingest.SavedPosition) *running {
	t.Helper()
	reg := prometheus.NewRegistry()
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel)
	src, err := New(cfg, w, st, saved, log, reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{src: src, reg: reg, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- src.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// waitFor polls cond; the generous timeout only guards against hangs.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func appendFile(t *testing.T, path, content string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(content); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func fileSize(t *testing.T, path string) uint64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return uint64(fi.Size())
}

// positionOf returns the followed file at path.
func positionOf(r *running, path string) (PositionInfo, bool) {
	for _, p := range r.src.Positions() {
		if p.Path == path {
			return p, true
		}
	}
	return PositionInfo{}, false
}

// ackedAt waits until the file at path is followed and acknowledged up to off.
func ackedAt(t *testing.T, r *running, path string, off uint64) PositionInfo {
	t.Helper()
	var p PositionInfo
	waitFor(t, fmt.Sprintf("%s acked at %d", path, off), func() bool {
		var ok bool
		p, ok = positionOf(r, path)
		return ok && p.AckedOffset == off && p.ReadOffset >= off
	})
	return p
}

var errInjected = errors.New("injected WAL failure")
