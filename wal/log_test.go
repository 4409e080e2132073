package wal

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// harness runs a Log in the background and stops it at cleanup.
type harness struct {
	t      *testing.T
	l      *Log
	reg    *prometheus.Registry
	cancel context.CancelFunc
	errc   chan error
}

func start(t *testing.T, dir string, cfg Config) *harness {
	t.Helper()
	reg := prometheus.NewRegistry()
	l, err := Open(dir, cfg, zerolog.Nop(), reg)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{t: t, l: l, reg: reg, cancel: cancel, errc: make(chan error, 1)}
	go func() { h.errc <- l.Run(ctx) }()
	t.Cleanup(h.stop)
	return h
}

func (h *harness) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	h.cancel = nil
	if err := <-h.errc; err != nil {
		h.t.Errorf("run: %v", err)
	}
}

// appendSync appends and waits for the commit.
func (h *harness) appendSync(payload []byte) uint64 {
	h.t.Helper()
	type res struct {
		idx uint64
		err error
	}
	ch := make(chan res, 1)
	if err := h.l.Append(context.Background(), payload, func(i uint64, err error) { ch <- res{i, err} }); err != nil {
		h.t.Fatalf("append: %v", err)
	}
	r := <-ch
	if r.err != nil {
		h.t.Fatalf("append done: %v", r.err)
	}
	return r.idx
}

// appendMany appends payloadN(0..n-1) without waiting between them.
func (h *harness) appendMany(n int) {
	h.t.Helper()
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		if err := h.l.Append(context.Background(), payloadN(i), func(_ uint64, err error) {
			if err != nil {
				h.t.Errorf("append: %v", err)
			}
			wg.Done()
		}); err != nil {
			h.t.Fatalf("append: %v", err)
		}
	}
	wg.Wait()
}

func payloadN(i int) []byte {
	return []byte(fmt.Sprintf("payload-%06d-%s", i, "abcdefghijklmnopqrstuvwxyz"))
}

func smallCfg() Config {
	c := Defaults()
	c.SegmentSize = 64 << 10
	c.MaxEntryBytes = 32 << 10
	c.MaxSize = 64 << 20
	c.SyncInterval = time.Millisecond
	c.Retention = 0
	c.CompactInterval = 20 * time.Millisecond
	return c
}

func TestAppendReadRoundTripAndReopen(t *testing.T) {
	dir := t.TempDir()
	h := start(t, dir, smallCfg())
	const n = 3000
	var wg sync.WaitGroup
	idxs := make([]uint64, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		i := i
		if err := h.l.Append(context.Background(), payloadN(i), func(idx uint64, err error) {
			if err != nil {
				t.Errorf("done %d: %v", i, err)
			}
			idxs[i] = idx
			wg.Done()
		}); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	for i := range idxs {
		if idxs[i] != uint64(i+1) {
			t.Fatalf("entry %d got index %d, want %d (appends from one goroutine are ordered)", i, idxs[i], i+1)
		}
	}
	if got := h.l.CommittedIndex(); got != n {
		t.Fatalf("committed %d, want %d", got, n)
	}
	if f := testutil.ToFloat64(h.l.m.fsyncs); f < 1 || f > n {
		t.Fatalf("fsyncs %v: group commit should cover several entries per fsync", f)
	}
	r := h.l.NewReader(1)
	for i := 0; i < n; i++ {
		idx, p, err := r.Read(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if idx != uint64(i+1) || string(p) != string(payloadN(i)) {
			t.Fatalf("read %d: idx %d payload %q", i, idx, p)
		}
	}
	h.stop()
	segs, _ := listSegments(dir)
	if len(segs) < 2 {
		t.Fatalf("expected several segments with a 64KiB segment size, got %d", len(segs))
	}

	h2 := start(t, dir, smallCfg())
	if got := h2.l.CommittedIndex(); got != n {
		t.Fatalf("after reopen committed %d, want %d", got, n)
	}
	if idx := h2.appendSync([]byte("after reopen")); idx != n+1 {
		t.Fatalf("index after reopen %d, want %d", idx, n+1)
	}
	rep, err := Verify(dir)
	if err != nil || !rep.OK() || rep.Entries != n+1 {
		t.Fatalf("verify: %+v %v", rep, err)
	}
}

func TestReaderWaitsForCommit(t *testing.T) {
	h := start(t, t.TempDir(), smallCfg())
	r := h.l.NewReader(1)
	got := make(chan string, 1)
	go func() {
		_, p, err := r.Read(context.Background())
		if err != nil {
			got <- "error: " + err.Error()
			return
		}
		got <- string(p)
	}()
	select {
	case v := <-got:
		t.Fatalf("read returned %q before any append", v)
	case <-time.After(30 * time.Millisecond):
	}
	h.appendSync([]byte("hello"))
	if v := <-got; v != "hello" {
		t.Fatalf("got %q", v)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := r.Read(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("read on cancelled ctx: %v", err)
	}
}

func TestTooLarge(t *testing.T) {
	cfg := smallCfg()
	cfg.MaxEntryBytes = 100
	h := start(t, t.TempDir(), cfg)
	err := h.l.Append(context.Background(), make([]byte, 101), func(uint64, error) {})
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("got %v", err)
	}
}

// TestTornTail cuts the last entry at every byte of its header and at points
// inside its payload, and appends garbage: reopen keeps every complete
// entry, counts the repair and keeps the bad bytes aside.
func TestTornTail(t *testing.T) {
	const n = 20
	payload := make([]byte, 300) // a 2-byte uvarint length prefix
	for i := range payload {
		payload[i] = byte(i)
	}
	base := t.TempDir()
	tmpl := filepath.Join(base, "tmpl")
	h := start(t, tmpl, smallCfg())
	for i := 0; i < n; i++ {
		h.appendSync(payload)
	}
	h.stop()
	seg := filepath.Join(tmpl, segmentName(1))
	full, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	entry := int(diskSize(len(payload) + entryHeaderSize))
	lastStart := len(full) - entry

	type tc struct {
		name string
		data []byte
	}
	var cases []tc
	// Every byte of the header: 2 length bytes, version, 4 CRC bytes.
	for cut := 1; cut <= 7; cut++ {
		cases = append(cases, tc{fmt.Sprintf("cut_header_byte_%d", cut), full[:lastStart+cut]})
	}
	for _, cut := range []int{8, 50, entry / 2, entry - 1} {
		cases = append(cases, tc{fmt.Sprintf("cut_payload_at_%d", cut), full[:lastStart+cut]})
	}
	flipped := append([]byte(nil), full...)
	flipped[len(flipped)-10] ^= 0xff
	cases = append(cases, tc{"flipped_payload_byte", flipped})
	badVersion := append([]byte(nil), full...)
	badVersion[lastStart+2] = 9
	cases = append(cases, tc{"unknown_version", badVersion})
	zeros := append(append([]byte(nil), full...), make([]byte, 4096)...)
	cases = append(cases, tc{"zero_filled_tail", zeros})

	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(base, c.name)
			if err := os.MkdirAll(dir, 0o750); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, segmentName(1)), c.data, 0o640); err != nil {
				t.Fatal(err)
			}
			want := uint64(n - 1)
			if c.name == "zero_filled_tail" {
				want = n
			}
			h := start(t, dir, smallCfg())
			if got := h.l.CommittedIndex(); got != want {
				t.Fatalf("kept %d entries, want %d", got, want)
			}
			if got := testutil.ToFloat64(h.l.m.repairs); got != 1 {
				t.Fatalf("repairs counted %v, want 1", got)
			}
			reps := h.l.Repairs()
			if len(reps) != 1 || reps[0].BadBytes <= 0 {
				t.Fatalf("repairs %+v", reps)
			}
			saved, err := os.ReadFile(reps[0].SavedAs)
			if err != nil || int64(len(saved)) != reps[0].BadBytes {
				t.Fatalf("bad bytes not kept aside: %v (%d bytes)", err, len(saved))
			}
			// The log goes on from the cut.
			if idx := h.appendSync([]byte("next")); idx != want+1 {
				t.Fatalf("next index %d, want %d", idx, want+1)
			}
			r := h.l.NewReader(1)
			for i := uint64(1); i <= want; i++ {
				_, p, err := r.Read(context.Background())
				if err != nil || len(p) != len(payload) {
					t.Fatalf("entry %d: %v", i, err)
				}
			}
			h.stop()
			if rep, err := Verify(dir); err != nil || !rep.OK() {
				t.Fatalf("verify after repair: %+v %v", rep, err)
			}
		})
	}
}

func TestVerifyReportsFlippedByteInMiddleSegment(t *testing.T) {
	dir := t.TempDir()
	h := start(t, dir, smallCfg())
	h.appendMany(3000)
	h.stop()
	segs, _ := listSegments(dir)
	if len(segs) < 3 {
		t.Fatalf("need 3 segments, have %d", len(segs))
	}
	mid := segs[1]
	data, _ := os.ReadFile(mid.Path)
	// Entry k of the middle segment starts at k*entrySize: damage entry 5's payload.
	esz := int(diskSize(len(payloadN(0)) + entryHeaderSize))
	data[5*esz+esz-3] ^= 0x01
	if err := os.WriteFile(mid.Path, data, 0o640); err != nil {
		t.Fatal(err)
	}
	rep, err := Verify(dir)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() || len(rep.Problems) != 1 {
		t.Fatalf("verify: %+v", rep)
	}
	p := rep.Problems[0]
	if p.Segment != mid.Name || p.Index != mid.First+5 || !errors.Is(p.Err, ErrChecksum) {
		t.Fatalf("problem %+v, want segment %s index %d checksum", p, mid.Name, mid.First+5)
	}

	// A reader reports the damaged entry and can resume past it.
	h2 := start(t, dir, smallCfg())
	r := h2.l.NewReader(mid.First + 4)
	if _, _, err := r.Read(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, _, err = r.Read(context.Background())
	var ce *CorruptionErr
	if !errors.As(err, &ce) || ce.Index != mid.First+5 || ce.Segment != mid.Name {
		t.Fatalf("read damaged entry: %v", err)
	}
	r.Seek(ce.Next)
	idx, p2, err := r.Read(context.Background())
	if err != nil || idx != mid.First+6 || string(p2) != string(payloadN(int(idx-1))) {
		t.Fatalf("resume: %d %q %v", idx, p2, err)
	}
	if got := testutil.ToFloat64(h2.l.m.corruptReads); got != 1 {
		t.Fatalf("corrupt reads counted %v", got)
	}
}

func TestCompactionRespectsCursorsAndRetention(t *testing.T) {
	cfg := smallCfg()
	cfg.Retention = time.Hour
	dir := t.TempDir()
	h := start(t, dir, cfg)
	c1 := h.l.RegisterCursor("a", 1)
	c2 := h.l.RegisterCursor("b", 1)
	h.appendMany(3000)
	segsBefore, _ := listSegments(dir)
	c1.Set(3001)
	c2.Set(3001)
	time.Sleep(100 * time.Millisecond)
	if segs, _ := listSegments(dir); len(segs) != len(segsBefore) {
		t.Fatalf("segments removed before retention expired: %d -> %d", len(segsBefore), len(segs))
	}
	h.stop()

	cfg.Retention = 0
	h = start(t, dir, cfg)
	c1 = h.l.RegisterCursor("a", 1)
	c2 = h.l.RegisterCursor("b", 1)
	c1.Set(3001)
	c2.Set(segsBefore[2].First) // b has delivered the first two segments only
	waitFor(t, func() bool { s, _ := listSegments(dir); return len(s) == len(segsBefore)-2 })
	first, _ := h.l.FirstIndex()
	if first != segsBefore[2].First {
		t.Fatalf("first index %d, want %d", first, segsBefore[2].First)
	}
	// An entry not yet delivered to b is still readable.
	if _, _, err := h.l.NewReader(segsBefore[2].First).Read(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Reading removed data says so.
	_, _, err := h.l.NewReader(1).Read(context.Background())
	var eb *ErrBehind
	if !errors.As(err, &eb) || eb.First != segsBefore[2].First {
		t.Fatalf("read removed entry: %v", err)
	}
	if rep, err := Verify(dir); err != nil || !rep.OK() {
		t.Fatalf("verify: %+v %v", rep, err)
	}
}

// TestBudgetBackpressure fills the disk budget with undelivered data: appends
// block (nothing is dropped) until the cursor moves, then go on.
func TestBudgetBackpressure(t *testing.T) {
	cfg := smallCfg()
	cfg.MaxSize = 256 << 10
	cfg.Retention = time.Hour // budget pressure ignores retention
	h := start(t, t.TempDir(), cfg)
	cur := h.l.RegisterCursor("ship", 1)
	big := make([]byte, 16<<10)
	var acked sync.WaitGroup
	blocked := make(chan struct{})
	go func() {
		defer close(blocked)
		for i := 0; i < 40; i++ {
			acked.Add(1)
			if err := h.l.Append(context.Background(), big, func(uint64, error) { acked.Done() }); err != nil {
				t.Errorf("append %d: %v", i, err)
				acked.Done()
				return
			}
		}
	}()
	waitFor(t, func() bool { b, _ := h.l.Backpressure(); return b })
	select {
	case <-blocked:
		t.Fatal("all appends passed although the budget was exhausted")
	case <-time.After(50 * time.Millisecond):
	}
	if v := testutil.ToFloat64(h.l.m.blocked); v != 1 {
		t.Fatalf("backpressure gauge %v", v)
	}
	// Deliver everything written so far: budget frees, appends resume.
	go func() {
		for {
			select {
			case <-blocked:
				return
			case <-time.After(5 * time.Millisecond):
				cur.Set(h.l.CommittedIndex() + 1)
			}
		}
	}()
	<-blocked
	acked.Wait()
	if h.l.CommittedIndex() != 40 {
		t.Fatalf("committed %d, want 40", h.l.CommittedIndex())
	}
}

func TestCloseFailsNothingSilently(t *testing.T) {
	h := start(t, t.TempDir(), smallCfg())
	var mu sync.Mutex
	results := map[string]int{}
	var wg sync.WaitGroup
	for i := 0; i < 500; i++ {
		wg.Add(1)
		if err := h.l.Append(context.Background(), payloadN(i), func(_ uint64, err error) {
			mu.Lock()
			if err == nil {
				results["ok"]++
			} else {
				results["err"]++
			}
			mu.Unlock()
			wg.Done()
		}); err != nil {
			wg.Done()
		}
	}
	h.stop()
	wg.Wait()
	if results["ok"]+results["err"] != 500 {
		t.Fatalf("every done must be called once: %v", results)
	}
	if err := h.l.Append(context.Background(), []byte("x"), func(uint64, error) {}); !errors.Is(err, ErrClosed) {
		t.Fatalf("append after close: %v", err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func FuzzUnframe(f *testing.F) {
	f.Add(frame(nil, []byte("hello")))
	f.Add([]byte{1, 0, 0, 0, 0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := unframe(data)
		if err == nil {
			if string(frame(nil, p)) != string(data) {
				t.Fatalf("unframe accepted %x but reframing differs", data)
			}
		}
	})
}
