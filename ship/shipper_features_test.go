package ship

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/logcapturer/log_capturer_go/ship/loki"
	"github.com/logcapturer/log_capturer_go/wal"
	"github.com/logcapturer/log_capturer_go/wal/record"
)

// memDLQ is an in-memory DeadLetterer for tests. The first failFirst calls
// fail.
type memDLQ struct {
	mu        sync.Mutex
	letters   []Letter
	failFirst int
	calls     int
}

func (d *memDLQ) DeadLetter(_ context.Context, l Letter) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls++
	if d.calls <= d.failFirst {
		return errors.New("dlq: disk full")
	}
	d.letters = append(d.letters, l)
	return nil
}

// byReason returns the dead-lettered lines by reason.
func (d *memDLQ) byReason() map[string][]string {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := map[string][]string{}
	for _, l := range d.letters {
		for _, e := range l.Entries {
			out[l.Reason] = append(out[l.Reason], string(e.Line))
		}
	}
	return out
}

func (d *memDLQ) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, l := range d.letters {
		n += len(l.Entries)
	}
	return n
}

// memDedupStore is an in-memory DedupStore.
type memDedupStore struct {
	mu     sync.Mutex
	chunks []struct {
		at   time.Time
		keys []uint64
	}
	saves int
}

func (m *memDedupStore) LoadDedup(_ string, since time.Time, fn func(time.Time, []uint64)) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, c := range m.chunks {
		if !c.at.Before(since) {
			fn(c.at, c.keys)
		}
	}
	return nil
}

func (m *memDedupStore) SaveDedup(_ string, at time.Time, keys []uint64, expire time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.saves++
	kept := m.chunks[:0]
	for _, c := range m.chunks {
		if !c.at.Before(expire) {
			kept = append(kept, c)
		}
	}
	m.chunks = kept
	m.chunks = append(m.chunks, struct {
		at   time.Time
		keys []uint64
	}{at, append([]uint64(nil), keys...)})
	return nil
}

// scriptSink answers each send with fn's verdict, records what it accepted
// and checks the shipper's promises: a stream is never sent by two requests
// at once, its lines arrive in order, and the cursor never passes a line
// that is being sent.
type scriptSink struct {
	name   string
	fn     func(call int, b *Batch) error
	check  func(labels *record.LabelSet, e *Entry) (string, string)
	cursor *wal.Cursor

	mu        sync.Mutex
	calls     int
	sending   map[string]bool
	lastSeq   map[string]int
	got       map[string]int // line -> times accepted
	violation string
}

func (s *scriptSink) Name() string {
	if s.name == "" {
		return "script"
	}
	return s.name
}

func (s *scriptSink) Send(ctx context.Context, b *Batch) error {
	s.mu.Lock()
	s.calls++
	call := s.calls
	if s.sending == nil {
		s.sending, s.lastSeq, s.got = map[string]bool{}, map[string]int{}, map[string]int{}
	}
	for _, st := range b.Streams {
		k := st.Labels.String()
		if s.sending[k] && s.violation == "" {
			s.violation = "stream " + k + " sent by two requests at once"
		}
		s.sending[k] = true
	}
	if s.cursor != nil {
		for _, st := range b.Streams {
			for _, e := range st.Entries {
				if s.cursor.Next() > e.Index && s.violation == "" {
					s.violation = fmt.Sprintf("cursor %d passed in-flight entry %d", s.cursor.Next(), e.Index)
				}
			}
		}
	}
	s.mu.Unlock()
	var err error
	if s.fn != nil {
		err = s.fn(call, b)
	}
	if err == nil {
		err = ctx.Err()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, st := range b.Streams {
		s.sending[st.Labels.String()] = false
	}
	if err != nil {
		return err
	}
	for _, st := range b.Streams {
		k := st.Labels.String()
		for _, e := range st.Entries {
			s.got[string(e.Line)]++
			var seq int
			if _, e := fmt.Sscanf(string(e.Line), "line %d", &seq); e == nil {
				if last, ok := s.lastSeq[k]; ok && seq <= last && s.violation == "" {
					s.violation = fmt.Sprintf("stream %s: line %d after %d", k, seq, last)
				}
				s.lastSeq[k] = seq
			}
		}
	}
	return nil
}

// checkedSink is a scriptSink that is also a Checker.
type checkedSink struct{ *scriptSink }

func (c checkedSink) CheckStream(*record.LabelSet) (string, string) { return "", "" }

func (c checkedSink) CheckEntry(e *Entry, _ time.Time) (string, string) { return c.check(nil, e) }

// fillStreams appends entries of perEntry lines spread over streams label
// sets, numbering lines from 0 ("line %07d").
func fillStreams(t *testing.T, l *wal.Log, entries, perEntry, streams int) int {
	t.Helper()
	sets := make([]*record.LabelSet, streams)
	for i := range sets {
		sets[i] = record.NewLabelSet([]record.Label{{Name: "job", Value: "test"}, {Name: "stream", Value: fmt.Sprint(i)}})
	}
	b := record.NewBuilder()
	var wg sync.WaitGroup
	n := 0
	for range entries {
		b.Reset()
		for range perEntry {
			b.Add(fmt.Sprintf("file:1:%d:0", n%streams), sets[n%streams], uint64(n+1), time.Now().UnixNano(), 0, nil, []byte(fmt.Sprintf("line %07d", n)))
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

func waitCursorAtEnd(t *testing.T, l *wal.Log, store *memStore, name string) {
	t.Helper()
	waitFor(t, "cursor at end", func() bool { return store.get(CursorName(name)) == l.CommittedIndex()+1 })
}

// TestShardedDeliveryKeepsStreamOrder ships 16 streams through 4 shards
// with random delays and transient failures: every line arrives once, each
// stream in order and never from two requests at once, and the cursor
// never passes a line still being sent.
func TestShardedDeliveryKeepsStreamOrder(t *testing.T) {
	l := openWAL(t)
	rnd := rand.New(rand.NewPCG(3, 9))
	var rmu sync.Mutex
	sink := &scriptSink{fn: func(call int, b *Batch) error {
		rmu.Lock()
		d, fail := time.Duration(rnd.IntN(4))*time.Millisecond, rnd.IntN(10) == 0
		rmu.Unlock()
		time.Sleep(d)
		if fail {
			return &RetryError{Reason: "5xx", Status: 503, Err: errors.New("503")}
		}
		return nil
	}}
	cfg := testCfg()
	cfg.Concurrency = 4
	cfg.BatchBytes = 2 << 10
	store := &memStore{}
	s, err := New(cfg, l, 1, sink, store, zerolog.Nop(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	sink.cursor = s.cursor
	stop := runShipper(t, s)
	n := fillStreams(t, l, 300, 20, 16)
	waitCursorAtEnd(t, l, store, sink.Name())
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if sink.violation != "" {
		t.Fatal(sink.violation)
	}
	if len(sink.got) != n {
		t.Fatalf("received %d distinct lines, want %d", len(sink.got), n)
	}
	for line, c := range sink.got {
		if c != 1 {
			t.Fatalf("%q received %d times", line, c)
		}
	}
	if got := testutil.ToFloat64(s.m.linesShipped); got != float64(n) {
		t.Fatalf("lines metric %v, want %d", got, n)
	}
	if got := testutil.ToFloat64(s.m.retries.WithLabelValues("5xx")); got == 0 {
		t.Fatal("no retry counted")
	}
	if cnt := testutil.CollectAndCount(s.m.requestSeconds); cnt < 2 {
		t.Fatalf("request histogram has %d series, want 2xx and 5xx", cnt)
	}
	if st := s.Status(); st.Shards != 4 || st.InFlight != 0 || st.LagEntries != 0 {
		t.Fatalf("status %+v", st)
	}
}

// TestPrecheckGoesToDLQ: entries the sink's Checker refuses never reach
// the sink and land in the DLQ with the reason and their WAL index.
func TestPrecheckGoesToDLQ(t *testing.T) {
	l := openWAL(t)
	sink := checkedSink{&scriptSink{check: func(_ *record.LabelSet, e *Entry) (string, string) {
		var seq int
		fmt.Sscanf(string(e.Line), "line %d", &seq)
		if seq%100 == 7 {
			return loki.ReasonLineTooLong, "too long"
		}
		return "", ""
	}}}
	dlq := &memDLQ{}
	store := &memStore{}
	s, err := New(testCfg(), l, 1, sink, store, zerolog.Nop(), prometheus.NewRegistry(), WithDeadLetterer(dlq))
	if err != nil {
		t.Fatal(err)
	}
	stop := runShipper(t, s)
	n := fillStreams(t, l, 50, 20, 3)
	waitCursorAtEnd(t, l, store, sink.Name())
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	dead := dlq.byReason()[loki.ReasonLineTooLong]
	if len(dead) != n/100 || len(sink.got)+len(dead) != n {
		t.Fatalf("dead %d, delivered %d, total %d", len(dead), len(sink.got), n)
	}
	for _, line := range dead {
		if sink.got[line] != 0 {
			t.Fatalf("%q was sent although refused", line)
		}
	}
	for _, lt := range dlq.letters {
		if lt.Attempts != 0 || lt.First == 0 || lt.Last < lt.First || !strings.HasPrefix(lt.Detail, "refused before sending") {
			t.Fatalf("letter %+v", lt)
		}
		for _, e := range lt.Entries {
			if e.Index < lt.First || e.Index > lt.Last || e.Labels == nil || e.Source == "" {
				t.Fatalf("entry %+v outside letter range %d..%d", e, lt.First, lt.Last)
			}
		}
	}
	if got := testutil.ToFloat64(s.m.deadLettered.WithLabelValues(loki.ReasonLineTooLong)); got != float64(len(dead)) {
		t.Fatalf("dead-lettered metric %v, want %d", got, len(dead))
	}
}

// TestPartialRejection: a batch the receiver partly rejects is never sent
// again; the named entries and the uncertain ones go to the DLQ, the rest
// counts as delivered.
func TestPartialRejection(t *testing.T) {
	l := openWAL(t)
	dlq := &memDLQ{}
	sent := map[uint64]int{} // batch First -> sends
	var mu sync.Mutex
	sink := &scriptSink{fn: func(call int, b *Batch) error {
		mu.Lock()
		sent[b.First]++
		mu.Unlock()
		if call != 1 {
			return nil
		}
		// The first request: its first entry of stream 0 is rejected,
		// stream 1 is uncertain, the rest was stored.
		var rj RejectedError
		rj.Status = 400
		rj.Err = errors.New("400")
		for si, st := range b.Streams {
			v, _ := st.Labels.Get("stream")
			switch v {
			case "0":
				rj.Rejected = append(rj.Rejected, Rejection{Stream: si, Entry: 0, Reason: loki.ReasonTooOld})
			case "1":
				rj.Uncertain = append(rj.Uncertain, si)
			}
		}
		return &rj
	}}
	store := &memStore{}
	cfg := testCfg()
	cfg.Concurrency = 1
	s, err := New(cfg, l, 1, sink, store, zerolog.Nop(), prometheus.NewRegistry(), WithDeadLetterer(dlq))
	if err != nil {
		t.Fatal(err)
	}
	stop := runShipper(t, s)
	n := fillStreams(t, l, 20, 30, 3)
	waitCursorAtEnd(t, l, store, sink.Name())
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	for first, c := range sent {
		if c != 1 {
			t.Fatalf("batch at %d sent %d times", first, c)
		}
	}
	byReason := dlq.byReason()
	if len(byReason[loki.ReasonTooOld]) != 1 || len(byReason[ReasonPartiallyAccepted]) == 0 {
		t.Fatalf("DLQ %v", byReason)
	}
	for _, lt := range dlq.letters {
		if lt.PartiallyAccepted != (lt.Reason == ReasonPartiallyAccepted) || lt.Attempts != 1 {
			t.Fatalf("letter %s partially=%v attempts=%d", lt.Reason, lt.PartiallyAccepted, lt.Attempts)
		}
	}
	stored := int(testutil.ToFloat64(s.m.linesShipped))
	if stored+dlq.count() != n {
		t.Fatalf("stored %d + dead %d != %d", stored, dlq.count(), n)
	}
}

// TestMaxElapsedGoesToDLQ: with max_elapsed set, a receiver that keeps
// failing gets the batch dead-lettered as retry_exhausted, and the cursor
// moves on.
func TestMaxElapsedGoesToDLQ(t *testing.T) {
	l := openWAL(t)
	dlq := &memDLQ{failFirst: 2} // the DLQ itself fails twice: retried
	sink := &scriptSink{fn: func(int, *Batch) error { return &RetryError{Reason: "network", Err: errors.New("refused")} }}
	cfg := testCfg()
	cfg.MaxElapsed = 30 * time.Millisecond
	cfg.CircuitFailures = 0
	store := &memStore{}
	s, err := New(cfg, l, 1, sink, store, zerolog.Nop(), prometheus.NewRegistry(), WithDeadLetterer(dlq))
	if err != nil {
		t.Fatal(err)
	}
	stop := runShipper(t, s)
	n := fillStreams(t, l, 10, 10, 2)
	waitCursorAtEnd(t, l, store, sink.Name())
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := len(dlq.byReason()[ReasonRetryExhausted]); got != n {
		t.Fatalf("retry_exhausted %d lines, want %d", got, n)
	}
	if got := testutil.ToFloat64(s.m.dlqErrors); got != 2 {
		t.Fatalf("DLQ errors %v, want 2", got)
	}
	if got := testutil.ToFloat64(s.m.retries.WithLabelValues("network")); got == 0 {
		t.Fatal("no network retry counted")
	}
}

// TestDedupAfterLostCursor: a second shipper that starts from the
// beginning (its cursor was lost, as after a crash before the commit)
// sends nothing the sink acknowledged, thanks to the persisted keys.
func TestDedupAfterLostCursor(t *testing.T) {
	l := openWAL(t)
	ds := &memDedupStore{}
	cfg := testCfg()
	cfg.Concurrency = 3
	cfg.Dedup = DedupConfig{Window: time.Minute, MaxKeys: 100_000, FlushInterval: 10 * time.Millisecond}
	sink := &scriptSink{}
	store := &memStore{}
	s, err := New(cfg, l, 1, sink, store, zerolog.Nop(), prometheus.NewRegistry(), WithDedupStore(ds))
	if err != nil {
		t.Fatal(err)
	}
	stop := runShipper(t, s)
	n := fillStreams(t, l, 40, 25, 5)
	waitCursorAtEnd(t, l, store, sink.Name())
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if ds.saves == 0 {
		t.Fatal("no dedup checkpoint")
	}
	again := &scriptSink{}
	store2 := &memStore{}
	reg := prometheus.NewRegistry()
	s2, err := New(cfg, l, 1, again, store2, zerolog.Nop(), reg, WithDedupStore(ds))
	if err != nil {
		t.Fatal(err)
	}
	// A fresh registration of the same cursor name keeps the old cursor;
	// move the reader back by hand to replay from 1.
	s2.tr = newTracker(1)
	stop2 := runShipper(t, s2)
	waitFor(t, "replay", func() bool { return testutil.ToFloat64(s2.m.dedupHits) == float64(n) })
	if err := stop2(); err != nil {
		t.Fatal(err)
	}
	if len(again.got) != 0 {
		t.Fatalf("%d lines sent again", len(again.got))
	}
	if st := s2.Status(); st.DedupHits != uint64(n) || st.DedupKeys != n {
		t.Fatalf("status %+v", st)
	}
}

// TestCircuitBreaker: a receiver that fails opens the circuit (visible in
// the gauge and the status); once it answers, a probe closes it and every
// line arrives.
func TestCircuitBreaker(t *testing.T) {
	l := openWAL(t)
	var down sync.Mutex
	healthy := false
	sink := &scriptSink{fn: func(int, *Batch) error {
		down.Lock()
		defer down.Unlock()
		if !healthy {
			return &RetryError{Reason: "network", Err: errors.New("connection refused")}
		}
		return nil
	}}
	cfg := testCfg()
	cfg.Concurrency = 2
	cfg.CircuitFailures = 3
	cfg.CircuitCooldown = 30 * time.Millisecond
	store := &memStore{}
	s, err := New(cfg, l, 1, sink, store, zerolog.Nop(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	stop := runShipper(t, s)
	n := fillStreams(t, l, 20, 10, 4)
	waitFor(t, "open circuit", func() bool {
		return s.Status().Circuit == "open" && testutil.ToFloat64(s.m.circuit) == float64(CircuitOpen)
	})
	down.Lock()
	healthy = true
	down.Unlock()
	waitCursorAtEnd(t, l, store, sink.Name())
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if st := s.Status(); st.Circuit != "closed" || testutil.ToFloat64(s.m.circuit) != 0 {
		t.Fatalf("circuit %s after recovery", st.Circuit)
	}
	if len(sink.got) != n {
		t.Fatalf("received %d lines, want %d", len(sink.got), n)
	}
}

// TestShutdownAbandonsWaitingBatches: at shutdown a batch waiting for a
// retry is abandoned at once (no drain wait), and the cursor stays before it.
func TestShutdownAbandonsWaitingBatches(t *testing.T) {
	l := openWAL(t)
	sink := &scriptSink{fn: func(int, *Batch) error { return &RetryError{Reason: "5xx", Status: 500, Err: errors.New("500")} }}
	cfg := testCfg()
	cfg.MinBackoff, cfg.MaxBackoff = time.Minute, time.Minute
	cfg.DrainTimeout = time.Minute
	store := &memStore{}
	s, err := New(cfg, l, 1, sink, store, zerolog.Nop(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	stop := runShipper(t, s)
	fillStreams(t, l, 5, 5, 2)
	waitFor(t, "a failed send", func() bool { sink.mu.Lock(); defer sink.mu.Unlock(); return sink.calls > 0 })
	began := time.Now()
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(began); d > 10*time.Second {
		t.Fatalf("shutdown took %v", d)
	}
	if c := store.get(CursorName(sink.Name())); c != 1 {
		t.Fatalf("cursor %d persisted with nothing acknowledged", c)
	}
}

func (m *memDedupStore) keys() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, c := range m.chunks {
		n += len(c.keys)
	}
	return n
}

// TestDedupCheckpointsBounded: the store keeps about MaxKeys keys however
// many lines go by within the window.
func TestDedupCheckpointsBounded(t *testing.T) {
	l := openWAL(t)
	ds := &memDedupStore{}
	cfg := testCfg()
	cfg.Dedup = DedupConfig{Window: time.Hour, MaxKeys: 300, FlushInterval: 5 * time.Millisecond}
	store := &memStore{}
	sink := &scriptSink{fn: func(int, *Batch) error { time.Sleep(time.Millisecond); return nil }}
	s, err := New(cfg, l, 1, sink, store, zerolog.Nop(), prometheus.NewRegistry(), WithDedupStore(ds))
	if err != nil {
		t.Fatal(err)
	}
	stop := runShipper(t, s)
	n := fillStreams(t, l, 100, 20, 2)
	waitCursorAtEnd(t, l, store, sink.Name())
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if ds.saves < 3 {
		t.Fatalf("only %d checkpoints", ds.saves)
	}
	// At most MaxKeys plus the last checkpoint, which may be large.
	if k := ds.keys(); k < 300 || k > 300+n/2 {
		t.Fatalf("store holds %d keys after %d lines, want about 300", k, n)
	}
	if got := s.dedup.size(); got > 300 {
		t.Fatalf("set holds %d keys, cap 300", got)
	}
}

// TestUndecodableEntryIsSkipped: a WAL entry that is not a record payload
// is counted as skipped and passed; everything around it is delivered.
func TestUndecodableEntryIsSkipped(t *testing.T) {
	l := openWAL(t)
	sink := &scriptSink{}
	store := &memStore{}
	s, err := New(testCfg(), l, 1, sink, store, zerolog.Nop(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	stop := runShipper(t, s)
	n := fillStreams(t, l, 5, 10, 2)
	done := make(chan error, 1)
	if err := l.Append(context.Background(), []byte{0x7f, 1, 2, 3}, func(_ uint64, err error) { done <- err }); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	n += fillStreams(t, l, 5, 10, 2)
	waitCursorAtEnd(t, l, store, sink.Name())
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(s.m.corrupt); got != 1 {
		t.Fatalf("skipped %v entries, want 1", got)
	}
	// Both fills number their lines from 0: each line arrives twice.
	total := 0
	for _, c := range sink.got {
		total += c
	}
	if total != n {
		t.Fatalf("delivered %d lines, want %d", total, n)
	}
}

// TestPermanentErrorGoesToDLQ: a 4xx other than 400 sends the whole batch
// to the DLQ under http_<code>, once.
func TestPermanentErrorGoesToDLQ(t *testing.T) {
	l := openWAL(t)
	dlq := &memDLQ{}
	sink := &scriptSink{fn: func(int, *Batch) error {
		return &PermanentError{Reason: "http_413", Status: 413, Err: errors.New("too large")}
	}}
	store := &memStore{}
	s, err := New(testCfg(), l, 1, sink, store, zerolog.Nop(), prometheus.NewRegistry(), WithDeadLetterer(dlq))
	if err != nil {
		t.Fatal(err)
	}
	stop := runShipper(t, s)
	n := fillStreams(t, l, 10, 10, 3)
	waitCursorAtEnd(t, l, store, sink.Name())
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := dlq.byReason()["http_413"]; len(got) != n {
		t.Fatalf("DLQ holds %d lines as http_413, want %d", len(got), n)
	}
	for _, lt := range dlq.letters {
		if lt.PartiallyAccepted || lt.Attempts != 1 {
			t.Fatalf("letter %+v", lt)
		}
	}
	if st := s.Status(); st.LinesRejected != uint64(n) || st.ConsecutiveErrors != 0 || st.LastError == "" {
		t.Fatalf("status %+v", st)
	}
}
