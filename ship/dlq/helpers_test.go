package dlq

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/logcapturer/log_capturer_go/ship"
	"github.com/logcapturer/log_capturer_go/ship/loki"
	"github.com/logcapturer/log_capturer_go/state"
	"github.com/logcapturer/log_capturer_go/wal"
	"github.com/logcapturer/log_capturer_go/wal/record"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// clock is a settable Config.Now.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Now()} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// env is a data directory with a state file and a DLQ store over it.
type env struct {
	t     *testing.T
	dir   string
	cfg   Config
	st    *state.Store
	s     *Store
	reg   *prometheus.Registry
	clock *clock
}

func newEnv(t *testing.T, mod func(*Config)) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir(), clock: newClock()}
	e.cfg = Config{MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, MaxAttempts: 3, NoSync: true}
	e.cfg.Dir = filepath.Join(e.dir, "dlq")
	e.cfg.Now = e.clock.Now
	if mod != nil {
		mod(&e.cfg)
	}
	e.open()
	return e
}

// open (re)opens the state and the store with a fresh registry.
func (e *env) open() {
	e.t.Helper()
	st, err := state.Open(filepath.Join(e.dir, state.DefaultFileName), state.Options{NoSync: true}, zerolog.Nop())
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = st.Close() })
	e.st = st
	e.reg = prometheus.NewRegistry()
	s, err := Open(e.cfg, st, zerolog.Nop(), e.reg)
	if err != nil {
		e.t.Fatal(err)
	}
	e.s = s
}

func (e *env) reopen() {
	e.t.Helper()
	if err := e.st.Close(); err != nil {
		e.t.Fatal(err)
	}
	e.open()
}

// metric sums every series of a counter or gauge whose labels include want.
func (e *env) metric(name string, want map[string]string) float64 {
	e.t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		e.t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for k, v := range want {
				if have[k] != v {
					continue next
				}
			}
			if c := m.GetCounter(); c != nil {
				sum += c.GetValue()
			} else {
				sum += m.GetGauge().GetValue()
			}
		}
	}
	return sum
}

var testLabels = record.NewLabelSet([]record.Label{{Name: "app", Value: "dlqtest"}, {Name: "env", Value: "t"}})

// letter builds a letter of n entries from WAL indexes first.., with lines
// "<tag> <i>" and timestamps base+i ms.
func letter(sink, reason, tag string, first uint64, n int, base time.Time) ship.Letter {
	l := ship.Letter{Sink: sink, Reason: reason, First: first, Last: first + uint64(n) - 1, Attempts: 1,
		Detail: "entry too long"}
	for i := range n {
		e := ship.DeadEntry{Labels: testLabels, Time: base.Add(time.Duration(i) * time.Millisecond).UnixNano(),
			Line: fmt.Appendf(nil, "%s %d", tag, i), Source: "file:/var/log/a.log", Offset: uint64(100 * (i + 1)),
			Index: first + uint64(i)}
		if i%3 == 0 {
			e.Metadata = []record.Label{{Name: "trace_id", Value: fmt.Sprintf("t%d", i)}}
		}
		if i%4 == 1 {
			e.Flags = record.FlagTruncated
		}
		l.Entries = append(l.Entries, e)
	}
	return l
}

func (e *env) deadLetter(l ship.Letter) {
	e.t.Helper()
	if err := e.s.DeadLetter(context.Background(), l); err != nil {
		e.t.Fatal(err)
	}
}

// lokiSink is a real LokiSink pushing to url.
func lokiSink(t *testing.T, url string) *ship.LokiSink {
	t.Helper()
	c, err := loki.NewClient(loki.ClientConfig{URL: url, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return ship.NewLokiSink(c, ship.LokiSinkConfig{})
}

// writeWAL appends entries to a WAL in dir: entry k (1-based index k)
// holds perEntry lines "<tag> e<k> l<j> |<pad>" with timestamps ts(k, j).
func writeWAL(t *testing.T, dir string, entries, perEntry int, tag, pad string, ts func(k, j int) int64) {
	t.Helper()
	cfg := wal.Defaults()
	cfg.SegmentSize = 64 << 10
	cfg.MaxEntryBytes = 32 << 10
	cfg.SyncInterval = time.Millisecond
	l, err := wal.Open(dir, cfg, zerolog.Nop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	var wg sync.WaitGroup
	for k := 1; k <= entries; k++ {
		b := record.NewBuilder()
		for j := range perEntry {
			b.Add("src", testLabels, uint64(k*1000+j), ts(k, j), 0, nil, fmt.Appendf(nil, "%s e%d l%d |%s", tag, k, j, pad))
		}
		wg.Add(1)
		if err := l.Append(ctx, b.AppendTo(nil), func(_ uint64, err error) {
			if err != nil {
				t.Errorf("append: %v", err)
			}
			wg.Done()
		}); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}
