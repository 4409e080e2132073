package ship

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
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

// crashStore holds what a shipper persists (cursor, dedup keys, dispatch
// mark) in memory, committed at once. freeze models a SIGKILL: from then on
// nothing reaches "disk"; after returns what the next run finds. failMarks
// makes every mark commit fail.
type crashStore struct {
	mu        sync.Mutex
	frozen    bool
	failMarks bool
	cursors   map[string]uint64
	dedup     memDedupStore
	commits   int
}

func (c *crashStore) SetCursor(name string, next uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.frozen {
		return
	}
	if c.cursors == nil {
		c.cursors = map[string]uint64{}
	}
	c.cursors[name] = next
}

func (c *crashStore) Cursor(name string) (uint64, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.cursors[name]
	return v, ok, nil
}

func (c *crashStore) CommitCursor(_ context.Context, name string, idx uint64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.failMarks {
		return errors.New("disk full")
	}
	if c.frozen {
		return nil // the process is dead: it never sees this return
	}
	if c.cursors == nil {
		c.cursors = map[string]uint64{}
	}
	c.cursors[name] = idx
	c.commits++
	return nil
}

func (c *crashStore) LoadDedup(sink string, since time.Time, fn func(time.Time, []uint64)) error {
	return c.dedup.LoadDedup(sink, since, fn)
}

func (c *crashStore) SaveDedup(sink string, at time.Time, keys []uint64, expire time.Time) error {
	c.mu.Lock()
	frozen := c.frozen
	c.mu.Unlock()
	if frozen {
		return nil
	}
	return c.dedup.SaveDedup(sink, at, keys, expire)
}

func (c *crashStore) freeze() {
	c.mu.Lock()
	c.frozen = true
	c.mu.Unlock()
}

func (c *crashStore) mark(sink string) uint64 {
	v, _, _ := c.Cursor(MarkName(sink))
	return v
}

// after is the state a restart finds.
func (c *crashStore) after() *crashStore {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := &crashStore{cursors: maps.Clone(c.cursors)}
	c.dedup.mu.Lock()
	n.dedup.chunks = append(n.dedup.chunks, c.dedup.chunks...)
	c.dedup.mu.Unlock()
	return n
}

// dyingSink pushes to a real receiver through a LokiSink. Its crashAt-th
// push is stored by the receiver, and then the agent "dies": the store is
// frozen, the answer of that push is never seen, and no later push
// reaches the receiver. Pushes under way in other shards finish (their
// answers come back, but nothing of them reaches the store any more).
type dyingSink struct {
	*LokiSink
	store   *crashStore
	crashAt int

	mu     sync.Mutex
	pushes int
	dead   bool
	last   uint64 // highest WAL index pushed
}

func (d *dyingSink) Send(ctx context.Context, b *Batch) error {
	d.mu.Lock()
	if d.dead {
		d.mu.Unlock()
		<-ctx.Done()
		return ctx.Err()
	}
	d.pushes++
	n := d.pushes
	d.last = max(d.last, b.Last)
	d.mu.Unlock()
	err := d.LokiSink.Send(ctx, b)
	if n == d.crashAt {
		d.mu.Lock()
		d.dead = true
		d.mu.Unlock()
		d.store.freeze()
		<-ctx.Done()
		return ctx.Err()
	}
	return err
}

// crashLines writes lines over streams streams, with sources so that dedup
// keys exist, and returns them by stream.
func crashLines(t *testing.T, l *wal.Log, entries, perEntry, streams int) map[string][]string {
	t.Helper()
	sets := make([]*record.LabelSet, streams)
	for i := range sets {
		sets[i] = record.NewLabelSet([]record.Label{{Name: "job", Value: "crash"}, {Name: "stream", Value: fmt.Sprint(i)}})
	}
	out := map[string][]string{}
	b := record.NewBuilder()
	var wg sync.WaitGroup
	n := 0
	for range entries {
		b.Reset()
		for range perEntry {
			st := n % streams
			line := fmt.Sprintf("line %07d", n)
			b.Add(fmt.Sprintf("file:1:%d:0", st), sets[st], uint64(n+1)*20, time.Now().UnixNano(), 0, nil, []byte(line))
			out[fmt.Sprint(st)] = append(out[fmt.Sprint(st)], line)
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
	return out
}

// countRows returns how many times each line is stored.
func countRows(t *testing.T, vl *victorialogs.Server) map[string]int {
	t.Helper()
	rows, err := vl.Query(t.Context(), `{job="crash"} | fields _msg`)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, r := range rows {
		got[r["_msg"]]++
	}
	return got
}

func crashCfg() Config {
	cfg := testCfg()
	cfg.Concurrency = 3
	cfg.BatchBytes = 1 << 10
	cfg.MaxRequestBytes = 16 << 10
	// Keys acknowledged before the crash are not checkpointed in time:
	// only the probe can spare them a second send.
	cfg.Dedup = DedupConfig{Window: time.Hour, MaxKeys: 100_000, FlushInterval: time.Hour}
	return cfg
}

// TestRecoveryProbeAfterCrash: a shipper dies with a request stored by a
// real VictoriaLogs whose answer it never read, and with batches
// acknowledged but neither under the cursor nor checkpointed in the dedup
// window. The next run probes the range between cursor and dispatch mark,
// finds those lines stored, and sends every other line: each line is
// stored exactly once. Also when the receiver is down at the restart and
// comes back within the probe timeout (the probe is retried).
func TestRecoveryProbeAfterCrash(t *testing.T) {
	for _, down := range []bool{false, true} {
		t.Run(fmt.Sprintf("receiver_down_at_restart=%v", down), func(t *testing.T) { recoveryAfterCrash(t, down) })
	}
}

func recoveryAfterCrash(t *testing.T, receiverDown bool) {
	vl := victorialogs.Start(t)
	l := openWAL(t)
	lines := crashLines(t, l, 60, 20, 4)
	total := 0
	for _, ls := range lines {
		total += len(ls)
	}
	client, err := loki.NewClient(loki.ClientConfig{URL: vl.PushURL(), Timeout: 5 * time.Second, Concurrency: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	vlp, err := loki.NewVictoriaLogsProber(loki.ProberConfig{URL: vl.URL()})
	if err != nil {
		t.Fatal(err)
	}
	defer vlp.Close()

	disk := &crashStore{}
	sink := &dyingSink{LokiSink: NewLokiSink(client, LokiSinkConfig{Labels: map[string]string{"agent": "a1"}}), store: disk, crashAt: 25}
	rec := RecoveryConfig{Lease: 4, Timeout: 30 * time.Second}
	s, err := New(crashCfg(), l, 1, sink, disk, zerolog.Nop(), prometheus.NewRegistry(),
		WithDedupStore(disk), WithRecovery(sink.Prober(vlp), disk, rec))
	if err != nil {
		t.Fatal(err)
	}
	stop := runShipper(t, s)
	waitFor(t, "the crash", func() bool { sink.mu.Lock(); defer sink.mu.Unlock(); return sink.dead })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	after := disk.after()
	cursor := after.cursors[CursorName("loki")]
	mark := after.mark("loki")
	t.Logf("crash: cursor %d, mark %d, highest index pushed %d, rows stored %d", cursor, mark, sink.last, len(countRows(t, vl)))
	if mark < sink.last {
		t.Fatalf("dispatch mark %d below the highest index pushed %d", mark, sink.last)
	}
	if mark < cursor {
		t.Fatalf("nothing in doubt (mark %d, cursor %d): the test crashed too early", mark, cursor)
	}

	if receiverDown {
		vl.Stop()
		go func() {
			time.Sleep(time.Second)
			vl.Restart()
		}()
	}
	// The restart: a new shipper on what the crash left.
	next := NewLokiSink(client, LokiSinkConfig{Labels: map[string]string{"agent": "a1"}})
	reg := prometheus.NewRegistry()
	s2, err := New(crashCfg(), l, cursor, next, after, zerolog.Nop(), reg,
		WithDedupStore(after), WithRecovery(next.Prober(vlp), after, rec))
	if err != nil {
		t.Fatal(err)
	}
	s2.tr = newTracker(cursor) // the WAL still holds the first run's cursor
	stop2 := runShipper(t, s2)
	waitFor(t, "delivery", func() bool { return s2.tr.Next() == l.CommittedIndex()+1 })
	if err := stop2(); err != nil {
		t.Fatal(err)
	}
	st := s2.Status()
	if st.Recovery == nil || st.Recovery.Result != "ok" || st.Recovery.Present == 0 || (receiverDown && st.Recovery.Retries == 0) {
		t.Fatalf("recovery status %+v", st.Recovery)
	}
	if got := testutil.ToFloat64(s2.m.recoveredPresent); got != float64(st.Recovery.Present) {
		t.Errorf("recovered_present metric %v, status %d", got, st.Recovery.Present)
	}
	t.Logf("probe: %+v", *st.Recovery)
	got := countRows(t, vl)
	lost, dup := 0, 0
	for _, ls := range lines {
		for _, line := range ls {
			switch c := got[line]; {
			case c == 0:
				lost++
			case c > 1:
				dup += c - 1
			}
		}
	}
	if lost > 0 || dup > 0 {
		t.Fatalf("%d of %d lines lost, %d duplicates", lost, total, dup)
	}
	// A clean stop lowers the mark to what was sent: nothing is in doubt.
	if m, c := after.mark("loki"), after.cursors[CursorName("loki")]; m >= c {
		t.Errorf("after a clean stop the mark %d is not below the cursor %d", m, c)
	}
}

// TestRecoveryProbeFailsOpen: when the receiver cannot be asked, the probe
// fails, is reported, and every line in doubt is sent again: duplicates,
// never loss.
func TestRecoveryProbeFailsOpen(t *testing.T) {
	vl := victorialogs.Start(t)
	l := openWAL(t)
	lines := crashLines(t, l, 40, 20, 3)
	client, err := loki.NewClient(loki.ClientConfig{URL: vl.PushURL(), Timeout: 5 * time.Second, Concurrency: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	// Nothing listens there.
	dead, err := loki.NewVictoriaLogsProber(loki.ProberConfig{URL: "http://127.0.0.1:1", Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer dead.Close()
	disk := &crashStore{}
	sink := &dyingSink{LokiSink: NewLokiSink(client, LokiSinkConfig{}), store: disk, crashAt: 15}
	rec := RecoveryConfig{Lease: 4, Timeout: 2 * time.Second}
	s, err := New(crashCfg(), l, 1, sink, disk, zerolog.Nop(), prometheus.NewRegistry(),
		WithDedupStore(disk), WithRecovery(sink.Prober(dead), disk, rec))
	if err != nil {
		t.Fatal(err)
	}
	stop := runShipper(t, s)
	waitFor(t, "the crash", func() bool { sink.mu.Lock(); defer sink.mu.Unlock(); return sink.dead })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	after := disk.after()
	cursor := after.cursors[CursorName("loki")]
	next := NewLokiSink(client, LokiSinkConfig{})
	reg := prometheus.NewRegistry()
	s2, err := New(crashCfg(), l, cursor, next, after, zerolog.Nop(), reg,
		WithDedupStore(after), WithRecovery(next.Prober(dead), after, rec))
	if err != nil {
		t.Fatal(err)
	}
	s2.tr = newTracker(cursor)
	stop2 := runShipper(t, s2)
	waitFor(t, "delivery", func() bool { return s2.tr.Next() == l.CommittedIndex()+1 })
	if err := stop2(); err != nil {
		t.Fatal(err)
	}
	st := s2.Status().Recovery
	if st == nil || st.Result != "failed" || st.Error == "" {
		t.Fatalf("recovery status %+v, want failed", st)
	}
	if got := testutil.ToFloat64(s2.m.recoveryProbes.WithLabelValues("failed")); got != 1 {
		t.Errorf("failed probes metric %v", got)
	}
	got := countRows(t, vl)
	dup := 0
	for _, ls := range lines {
		for _, line := range ls {
			if got[line] == 0 {
				t.Fatalf("line %q lost", line)
			}
			dup += got[line] - 1
		}
	}
	t.Logf("probe failed as planned (%s); %d duplicates", st.Error, dup)
	// The mark must keep covering what the failed probe left in doubt
	// until it is sent again; after the full replay that is below the cursor.
	if m, c := after.mark("loki"), after.cursors[CursorName("loki")]; m >= c {
		t.Errorf("after the replay and a clean stop the mark %d is not below the cursor %d", m, c)
	}
}

// TestDispatchMarkCoversEverySend: no request leaves before the mark on
// disk covers its highest WAL index; commits come once per half lease or
// so, not once per batch; and a mark that cannot be committed holds no send
// back (it is counted).
func TestDispatchMarkCoversEverySend(t *testing.T) {
	for _, failing := range []bool{false, true} {
		t.Run(fmt.Sprintf("failing=%v", failing), func(t *testing.T) {
			l := openWAL(t)
			disk := &crashStore{failMarks: failing}
			var violations int
			var sends int
			var mu sync.Mutex
			sink := &scriptSink{fn: func(_ int, b *Batch) error {
				mu.Lock()
				defer mu.Unlock()
				sends++
				if disk.mark("script") < b.Last {
					violations++
				}
				return nil
			}}
			// The prober is never asked: no mark was stored before.
			p, err := loki.NewVictoriaLogsProber(loki.ProberConfig{URL: "http://127.0.0.1:1"})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			cfg := testCfg()
			cfg.Concurrency = 3
			cfg.Dedup = DedupConfig{Window: time.Minute, MaxKeys: 100_000}
			const lease = 16
			reg := prometheus.NewRegistry()
			s, err := New(cfg, l, 1, sink, disk, zerolog.Nop(), reg, WithDedupStore(disk),
				WithRecovery(NewLokiSink(nil, LokiSinkConfig{}).Prober(p), disk, RecoveryConfig{Lease: lease}))
			if err != nil {
				t.Fatal(err)
			}
			stop := runShipper(t, s)
			fillStreams(t, l, 300, 10, 6)
			waitFor(t, "delivery", func() bool { return s.tr.Next() == l.CommittedIndex()+1 })
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			entries := int(l.CommittedIndex())
			commits := testutil.ToFloat64(s.m.markCommits)
			errs := testutil.ToFloat64(s.m.markErrors)
			t.Logf("%d entries, %d sends, %v mark commits, %v failed, %v sends waited", entries, sends, commits, errs,
				testutil.ToFloat64(s.m.markWaits))
			if failing {
				if errs == 0 || violations == 0 {
					t.Fatalf("failing mark store: %v errors, %d sends beyond the mark", errs, violations)
				}
				return
			}
			if violations > 0 {
				t.Fatalf("%d of %d sends left before the mark covered them", violations, sends)
			}
			if limit := float64(2*entries/lease + 2); commits > limit {
				t.Fatalf("%v mark commits for %d entries: more than one per half lease (%v)", commits, entries, limit)
			}
			if m := disk.mark("script"); m != l.CommittedIndex() {
				t.Errorf("after a clean stop the mark is %d, want the last index sent %d", m, l.CommittedIndex())
			}
		})
	}
}

func TestRecoveryNeedsDedup(t *testing.T) {
	l := openWAL(t)
	p, err := loki.NewVictoriaLogsProber(loki.ProberConfig{URL: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	disk := &crashStore{}
	_, err = New(testCfg(), l, 1, &scriptSink{}, disk, zerolog.Nop(), prometheus.NewRegistry(),
		WithRecovery(NewLokiSink(nil, LokiSinkConfig{}).Prober(p), disk, RecoveryConfig{}))
	if err == nil {
		t.Fatal("recovery without dedup was accepted")
	}
}

// TestRecoveryProbeTwins: the file source stamps every line of one read
// with the same time, so identical lines of one read are indistinguishable
// in the receiver. A stored twin (below the cursor, or in the range with a
// known key) must not pass for the line in doubt: that would lose it.
func TestRecoveryProbeTwins(t *testing.T) {
	vl := victorialogs.Start(t)
	l := openWAL(t)
	ls := record.NewLabelSet([]record.Label{{Name: "job", Value: "crash"}, {Name: "stream", Value: "0"}})
	const src = "file:1:9:0"
	read1 := time.Now().Add(-time.Second).UnixNano() // one read: lines same, same, other
	read2 := read1 + 1000                            // the next read: dup, dup
	type line struct {
		off  uint64
		ts   int64
		text string
	}
	entries := [][]line{
		{{10, read1, "same"}},                       // 1: delivered (below the cursor)
		{{20, read1, "same"}, {30, read1, "other"}}, // 2: in doubt
		{{40, read2, "dup"}, {50, read2, "dup"}},    // 3: in doubt; the first one's key is known
	}
	var wg sync.WaitGroup
	for _, e := range entries {
		b := record.NewBuilder()
		for _, ln := range e {
			b.Add(src, ls, ln.off, ln.ts, 0, nil, []byte(ln.text))
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
	client, err := loki.NewClient(loki.ClientConfig{URL: vl.PushURL(), Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	// What the receiver holds: line 1 (delivered), "other" of entry 2 (the
	// request in flight stored it... in part, as a test can arrange), and
	// the known "dup" of entry 3.
	st := loki.Stream{Labels: ls.String(), Entries: []loki.Entry{
		{Time: read1, Line: []byte("same")}, {Time: read1, Line: []byte("other")}, {Time: read2, Line: []byte("dup")},
	}}
	body, err := loki.Compress(nil, loki.AppendPushRequest(nil, []loki.Stream{st}))
	if err != nil {
		t.Fatal(err)
	}
	if res := client.Push(t.Context(), body); res.Class != loki.Ack {
		t.Fatalf("push: %+v", res)
	}
	disk := &crashStore{}
	disk.cursors = map[string]uint64{MarkName("loki"): 3}
	known := dedupKey(&Entry{Source: src, Offset: 40, Time: read2, Line: []byte("dup")})
	if err := disk.SaveDedup("loki", time.Now(), []uint64{known}, time.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	vlp, err := loki.NewVictoriaLogsProber(loki.ProberConfig{URL: vl.URL()})
	if err != nil {
		t.Fatal(err)
	}
	defer vlp.Close()
	sink := NewLokiSink(client, LokiSinkConfig{})
	s, err := New(crashCfg(), l, 2, sink, disk, zerolog.Nop(), prometheus.NewRegistry(),
		WithDedupStore(disk), WithRecovery(sink.Prober(vlp), disk, RecoveryConfig{}))
	if err != nil {
		t.Fatal(err)
	}
	stop := runShipper(t, s)
	waitFor(t, "delivery", func() bool { return s.tr.Next() == l.CommittedIndex()+1 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	rec := s.Status().Recovery
	if rec == nil || rec.Result != "ok" || rec.Present != 1 || rec.Known != 1 || rec.Twins != 2 || rec.Checked != 3 {
		t.Fatalf("recovery %+v; want 3 checked, 1 known, 2 twins, 1 present (\"other\")", rec)
	}
	got := countRows(t, vl)
	want := map[string]int{"same": 2, "other": 1, "dup": 2}
	if !maps.Equal(got, want) {
		t.Fatalf("stored %v, want %v", got, want)
	}
}

// Lines whose twins could not all be looked for stay out of the probe.
func TestDropUnsure(t *testing.T) {
	g := &probeGroup{
		entries: []loki.ProbeEntry{{Time: 5}, {Time: 6}, {Time: 5}, {Time: 5}},
		keys:    []uint64{1, 2, 3, 4},
		sources: []string{"a", "a", "b", "c"},
	}
	st := &RecoveryStatus{Checked: 4}
	g.dropUnsure(map[string]*sourceStart{"a": {time: 5}, "b": {time: 7}}, st)
	if !slices.Equal(g.keys, []uint64{2, 3, 4}) || st.Checked != 3 || st.Unprobeable != 1 {
		t.Fatalf("kept %v, status %+v", g.keys, st)
	}
}
