package file

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/logcapturer/log_capturer_go/ingest/multiline"
	"github.com/logcapturer/log_capturer_go/wal"
	"github.com/logcapturer/log_capturer_go/wal/record"
)

func (b *byteBudget) queued() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.waiters)
}

func (b *byteBudget) held() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// acquireAsync starts acquire(n) and returns the channel its result comes
// on, once the request is queued.
func acquireAsync(t *testing.T, ctx context.Context, b *byteBudget, n int64) <-chan error {
	t.Helper()
	before := b.queued()
	ch := make(chan error, 1)
	go func() { ch <- b.acquire(ctx, n) }()
	waitFor(t, fmt.Sprintf("request of %d queued", n), func() bool { return b.queued() > before })
	return ch
}

func granted(ch <-chan error) bool {
	select {
	case err := <-ch:
		return err == nil
	default:
		return false
	}
}

func TestByteBudget(t *testing.T) {
	ctx := context.Background()
	t.Run("first come first served", func(t *testing.T) {
		b := newByteBudget(10)
		if err := b.acquire(ctx, 6); err != nil {
			t.Fatal(err)
		}
		big := acquireAsync(t, ctx, b, 8)
		small := acquireAsync(t, ctx, b, 1)
		// 1 byte would fit, but a request waits ahead of it.
		if b.tryAcquire(1) {
			t.Fatal("tryAcquire overtook a waiting request")
		}
		if granted(small) {
			t.Fatal("a later request overtook an earlier one")
		}
		b.release(6)
		if err := <-big; err != nil {
			t.Fatal(err)
		}
		if err := <-small; err != nil {
			t.Fatal(err)
		}
		if got := b.held(); got != 9 {
			t.Fatalf("held %d, want 9", got)
		}
		if w := b.waits.Load(); w != 2 {
			t.Fatalf("waits %d, want 2", w)
		}
		b.release(9)
		if b.held() != 0 || b.peak.Load() != 9 {
			t.Fatalf("held %d peak %d", b.held(), b.peak.Load())
		}
	})
	t.Run("larger than the budget goes alone", func(t *testing.T) {
		b := newByteBudget(10)
		if !b.tryAcquire(3) {
			t.Fatal("tryAcquire(3) of 10 failed")
		}
		huge := acquireAsync(t, ctx, b, 25)
		b.release(3)
		if err := <-huge; err != nil {
			t.Fatal(err)
		}
		if b.tryAcquire(1) {
			t.Fatal("a request got in beside one larger than the budget")
		}
		after := acquireAsync(t, ctx, b, 1)
		if granted(after) {
			t.Fatal("a request got in beside one larger than the budget")
		}
		b.release(25)
		if err := <-after; err != nil {
			t.Fatal(err)
		}
		b.release(1)
	})
	t.Run("a cancelled head lets the others through", func(t *testing.T) {
		b := newByteBudget(10)
		if err := b.acquire(ctx, 6); err != nil {
			t.Fatal(err)
		}
		hctx, cancel := context.WithCancel(ctx)
		head := acquireAsync(t, hctx, b, 8)
		next := acquireAsync(t, ctx, b, 4)
		cancel()
		if err := <-head; !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled acquire: %v", err)
		}
		if err := <-next; err != nil {
			t.Fatal(err)
		}
		if b.held() != 10 || b.queued() != 0 {
			t.Fatalf("held %d queued %d, want 10 and 0", b.held(), b.queued())
		}
	})
}

func TestPayloadPoolClasses(t *testing.T) {
	p := newPayloadPool(1 << 20)
	for _, n := range []int{1, 4 << 10, 5000, 300 << 10, 1 << 20} {
		bp := p.get(n)
		if len(*bp) != 0 || cap(*bp) < n || cap(*bp) >= 2*max(n, 4<<10) {
			t.Fatalf("get(%d): len %d cap %d", n, len(*bp), cap(*bp))
		}
		*bp = append(*bp, make([]byte, n)...)
		p.put(bp)
	}
	// A buffer grown past its class goes back to the class it fills.
	b := make([]byte, 0, 40<<10)
	p.put(&b)
	if got := p.get(20 << 10); cap(*got) < 20<<10 {
		t.Fatalf("get(20 KiB) returned cap %d", cap(*got))
	}
}

// budgetTree writes files × lines lines ("f<i> l<j> " and padding) into a
// tree of directories and returns the paths and every line.
func budgetTree(t *testing.T, root string, files, lines, width int) ([]string, []string) {
	t.Helper()
	var paths, all []string
	for i := range files {
		p := filepath.Join(root, fmt.Sprintf("d%02d", i%10), fmt.Sprintf("f%04d.log", i))
		var b strings.Builder
		for j := range lines {
			l := fmt.Sprintf("f%d l%d %s", i, j, strings.Repeat("x", width))
			all = append(all, l)
			b.WriteString(l)
			b.WriteByte('\n')
		}
		writeFile(t, p, b.String())
		paths = append(paths, p)
	}
	return paths, all
}

// exactlyOnce fails unless got holds every line of want once, each file's
// lines in order.
func exactlyOnce(t *testing.T, got []string, want []string) {
	t.Helper()
	seen := make(map[string]int, len(want))
	last := map[string]int{}
	for _, l := range got {
		seen[l]++
		if seen[l] > 1 {
			t.Fatalf("line %q captured twice", l)
		}
		var f, n int
		if _, err := fmt.Sscanf(l, "f%d l%d", &f, &n); err == nil {
			k := fmt.Sprint(f)
			if prev, ok := last[k]; ok && n != prev+1 {
				t.Fatalf("file %d: line %d after %d", f, n, prev)
			}
			last[k] = n
		}
	}
	for _, l := range want {
		if seen[l] != 1 {
			t.Fatalf("line %q captured %d times", l, seen[l])
		}
	}
	if len(got) != len(want) {
		t.Fatalf("captured %d records, want %d", len(got), len(want))
	}
}

// TestMemoryBudgetManyFiles follows 400 files with a 16 KiB budget for all
// of them and acks held: the source fills the budget and waits, never
// beyond it; once acks flow, every line arrives exactly once.
func TestMemoryBudgetManyFiles(t *testing.T) {
	const budget = 16 << 10
	root := t.TempDir()
	paths, all := budgetTree(t, root, 400, 60, 40)
	cfg := testConfig(filepath.Join(root, "**", "*.log"))
	cfg.MaxInflightBytes = budget
	cfg.ReadBufferBytes = 4 << 10
	w, st := newTestWAL(t), newTestState()
	w.budget = budget
	release := w.hold()
	r := startSource(t, cfg, w, st, nil)

	waitFor(t, "the budget to fill and files to wait", func() bool {
		s := r.src.Stats()
		return s.BudgetWaits > 0 && s.InflightBytes > budget/2
	})
	s := r.src.Stats()
	if s.InflightBytes > budget || s.InflightBytesPeak > budget || s.InflightBytesLimit != budget {
		t.Fatalf("acks held: in flight %d, peak %d, limit %d; budget %d", s.InflightBytes, s.InflightBytesPeak, s.InflightBytesLimit, budget)
	}
	release()

	waitRecords(t, w, len(all))
	exactlyOnce(t, w.lines(), all)
	for _, p := range paths {
		ackedAt(t, r, p, fileSize(t, p))
	}
	waitFor(t, "the budget to drain", func() bool { return r.src.Stats().InflightBytes == 0 })
	s = r.src.Stats()
	w.mu.Lock()
	maxInfl, over := w.maxBytesInfl, w.overBudget
	w.mu.Unlock()
	if s.InflightBytesPeak > budget || maxInfl > budget || over > 0 {
		t.Fatalf("peak %d (source), %d (WAL side), %d appends over budget; budget %d", s.InflightBytesPeak, maxInfl, over, budget)
	}
	if s.ReadBufferWaits == 0 {
		t.Fatalf("400 files shared %d read buffers without waiting: %+v", readSlotsFor(r.src.cfg), s)
	}
	t.Logf("400 files, budget %d: peak %d in the source, %d at the WAL; %d budget waits (%.3fs), %d read-buffer waits, %d appends",
		budget, s.InflightBytesPeak, maxInfl, s.BudgetWaits, s.BudgetWaitSeconds, s.ReadBufferWaits, w.appendCount())
}

// TestMemoryBudgetLineLargerThanBudget reads a 40 KiB line with a 4 KiB
// budget: its payload goes through alone (nothing else in flight beside
// it), whole, and the lines around it in that file and others follow.
func TestMemoryBudgetLineLargerThanBudget(t *testing.T) {
	const budget = 4 << 10
	root := t.TempDir()
	paths, all := budgetTree(t, root, 20, 50, 30)
	huge := "f20 l0 " + strings.Repeat("h", 40<<10)
	big := filepath.Join(root, "d00", "f0020.log")
	writeFile(t, big, huge+"\nf20 l1 after\n")
	all = append(all, huge, "f20 l1 after")
	paths = append(paths, big)

	cfg := testConfig(filepath.Join(root, "**", "*.log"))
	cfg.MaxInflightBytes = budget
	cfg.MaxLineBytes = 64 << 10
	cfg.ReadBufferBytes = 4 << 10
	w, st := newTestWAL(t), newTestState()
	w.budget = budget
	r := startSource(t, cfg, w, st, nil)
	waitRecords(t, w, len(all))
	exactlyOnce(t, w.lines(), all)
	for _, p := range paths {
		ackedAt(t, r, p, fileSize(t, p))
	}
	waitFor(t, "the budget to drain", func() bool { return r.src.Stats().InflightBytes == 0 })
	w.mu.Lock()
	over, maxPayload := w.overBudget, w.maxPayload
	w.mu.Unlock()
	if over > 0 {
		t.Fatalf("%d appends went beyond the budget beside other payloads", over)
	}
	if maxPayload <= budget {
		t.Fatalf("largest payload %d: the huge line was not one payload over the budget", maxPayload)
	}
	if s := r.src.Stats(); s.InflightBytesPeak < int64(maxPayload) || s.LinesTruncated != 0 {
		t.Fatalf("stats %+v: the huge payload was not accounted, or was cut", s)
	}
}

// TestMemoryBudgetFairness reads three 6 MiB files with two read buffers
// between them, and a one-line file that appears once they are being read:
// the files take turns, so the small file's line arrives while the big ones
// are far from done (without turns it would wait for a big file's end).
func TestMemoryBudgetFairness(t *testing.T) {
	root := t.TempDir()
	var bigLines int
	line := strings.Repeat("b", 120)
	for i := range 3 {
		p := filepath.Join(root, fmt.Sprintf("big%d.log", i))
		var sb strings.Builder
		for sb.Len() < 6<<20 {
			sb.WriteString(line)
			sb.WriteByte('\n')
			bigLines++
		}
		writeFile(t, p, sb.String())
	}
	cfg := testConfig(filepath.Join(root, "*.log"))
	cfg.MaxInflightBytes = 256 << 10
	cfg.MaxEntryBytes = 64 << 10
	cfg.MaxLineBytes = 16 << 10
	cfg.ReadBufferBytes = 16 << 10
	cfg.ScanInterval = 20 * time.Millisecond // the small file is found soon
	if n := readSlotsFor(cfg.WithDefaults()); n != 2 {
		t.Fatalf("read slots %d, want 2 for this test", n)
	}
	w, st := newTestWAL(t), newTestState()
	r := startSource(t, cfg, w, st, nil)
	waitFor(t, "three big files open and read", func() bool {
		return r.src.Stats().FilesOpen == 3 && len(w.records()) > 0
	})
	small := filepath.Join(root, "small.log")
	writeFile(t, small, "the small file's line\n")
	recs := waitRecords(t, w, bigLines+1)
	at := slices.IndexFunc(recs, func(c capRec) bool { return c.filename == small })
	if at < 0 {
		t.Fatal("the small file's line was not captured")
	}
	if at > bigLines/2 {
		t.Fatalf("the small file's line came after %d of %d lines of the big files: starved", at, bigLines)
	}
	t.Logf("the small file's line came after %d of %d lines of the big files", at, bigLines)
}

// TestMemoryBudgetRealWAL follows 300 files, a third of them through a
// multiline route, into a real WAL (fsync on) with a 32 KiB budget, then
// reads the WAL back: every line and entry exactly once.
func TestMemoryBudgetRealWAL(t *testing.T) {
	const budget = 32 << 10
	root := t.TempDir()
	_, all := budgetTree(t, filepath.Join(root, "plain"), 200, 40, 60)
	var entries []string
	for i := range 100 {
		var b strings.Builder
		for n := range 12 {
			e := fmt.Sprintf("f%d l%d E%d head\n  at frame one\n  at frame two %s", 1000+i, n, n, strings.Repeat("y", 50))
			entries = append(entries, e)
			b.WriteString(e)
			b.WriteByte('\n')
		}
		b.WriteString(fmt.Sprintf("f%d l12 E12 last head\n", 1000+i)) // closes the last entry
		writeFile(t, filepath.Join(root, "ml", fmt.Sprintf("m%03d.log", i)), b.String())
	}
	want := append(slices.Clone(all), entries...)

	wcfg := wal.Defaults()
	wcfg.MaxSize = 1 << 30
	l, err := wal.Open(filepath.Join(root, "wal"), wcfg, zerolog.Nop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	wctx, wstop := context.WithCancel(context.Background())
	wdone := make(chan error, 1)
	go func() { wdone <- l.Run(wctx) }()
	defer func() {
		wstop()
		if err := <-wdone; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("wal run: %v", err)
		}
	}()

	cfg := testConfig(filepath.Join(root, "plain", "**", "*.log"))
	cfg.MaxInflightBytes = budget
	cfg.ReadBufferBytes = 4 << 10
	cfg.MaxEntryBytes = wcfg.MaxEntryBytes
	cfg.Routes = []Route{{Name: "ml", Match: []string{filepath.Join(root, "ml", "*.log")},
		Multiline: multiline.Config{Mode: multiline.ModeStart, Pattern: `^f[0-9]+ l[0-9]+ E`, FlushTimeout: time.Hour}}}
	st := newTestState()
	r := startSource(t, cfg, l, st, nil)
	waitFor(t, "every line acknowledged", func() bool {
		return r.src.Stats().LinesRead == uint64(len(all)+100*(12*3+1)) && r.src.Stats().InflightBytes == 0
	})
	r.stop(t)

	var got []string
	rd := l.NewReader(1)
	for {
		_, payload, ok, err := rd.TryRead()
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		if err := record.Each(payload, func(rec *record.Record) error {
			got = append(got, string(rec.Line))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	exactlyOnce(t, got, want)
	if s := r.src.Stats(); s.InflightBytesPeak > budget {
		t.Fatalf("peak %d over the budget %d", s.InflightBytesPeak, budget)
	}
}

// TestMemoryBudgetConfig checks the bounds of max_inflight_bytes.
func TestMemoryBudgetConfig(t *testing.T) {
	for _, tc := range []struct {
		n  int
		ok bool
	}{{0, true}, {4 << 10, true}, {8 << 20, true}, {1 << 30, true}, {4095, false}, {1<<30 + 1, false}, {-1, false}} {
		c := DefaultConfig()
		c.MaxInflightBytes = tc.n
		c = c.WithDefaults()
		if err := c.Validate(); (err == nil) != tc.ok {
			t.Errorf("max_inflight_bytes %d: %v", tc.n, err)
		}
	}
	if DefaultConfig().MaxInflightBytes != DefaultMaxInflightBytes {
		t.Fatal("default not set")
	}
}

// TestMemoryBudgetFailures fails some appends and some acks of 100 files
// under a 16 KiB budget: every failed payload gives its budget back, the
// files read again from their last acked line, every line arrives (at
// least once), and the budget drains to zero.
func TestMemoryBudgetFailures(t *testing.T) {
	const budget = 16 << 10
	root := t.TempDir()
	_, all := budgetTree(t, root, 100, 60, 40)
	cfg := testConfig(filepath.Join(root, "**", "*.log"))
	cfg.MaxInflightBytes = budget
	cfg.ReadBufferBytes = 4 << 10
	w, st := newTestWAL(t), newTestState()
	w.budget = budget
	w.failAck = func(n int) error {
		if n%7 == 0 {
			return errInjected
		}
		return nil
	}
	w.failAppend = func(n int) error {
		if n%11 == 0 {
			return errInjected
		}
		return nil
	}
	r := startSource(t, cfg, w, st, nil)
	want := make(map[string]bool, len(all))
	for _, l := range all {
		want[l] = true
	}
	waitFor(t, "every line captured", func() bool {
		got := map[string]bool{}
		for _, l := range w.lines() {
			if want[l] {
				got[l] = true
			}
		}
		return len(got) == len(want)
	})
	waitFor(t, "the budget to drain", func() bool { return r.src.Stats().InflightBytes == 0 })
	s := r.src.Stats()
	if s.AppendErrors == 0 || s.InflightBytesPeak > budget {
		t.Fatalf("stats %+v: want failed appends and the budget never exceeded", s)
	}
}

// TestMemoryBudgetStopWhileWaiting stops the source while files wait for
// budget and read buffers behind held acks: Run returns and no goroutine
// is left (goleak in TestMain).
func TestMemoryBudgetStopWhileWaiting(t *testing.T) {
	root := t.TempDir()
	budgetTree(t, root, 50, 200, 40)
	cfg := testConfig(filepath.Join(root, "**", "*.log"))
	cfg.MaxInflightBytes = 8 << 10
	cfg.ReadBufferBytes = 4 << 10
	cfg.StopTimeout = 50 * time.Millisecond
	w, st := newTestWAL(t), newTestState()
	release := w.hold()
	defer release()
	r := startSource(t, cfg, w, st, nil)
	waitFor(t, "files waiting for budget and buffers", func() bool {
		s := r.src.Stats()
		return s.BudgetWaits > 0 && s.ReadBufferWaits > 0
	})
	r.stop(t)
	if n := r.src.budget.queued(); n != 0 {
		t.Fatalf("%d requests still queued for budget after Run returned", n)
	}
}
