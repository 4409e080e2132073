package ship

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/logcapturer/log_capturer_go/internal/testutil/victorialogs"
	"github.com/logcapturer/log_capturer_go/ship/loki"
	"github.com/logcapturer/log_capturer_go/state"
	"github.com/logcapturer/log_capturer_go/wal"
	"github.com/logcapturer/log_capturer_go/wal/record"
)

// Shipper throughput: a WAL holding benchLines lines of ~170 bytes over
// benchStreams streams (entries of 256 lines, as the file source writes
// them under load) is shipped from index 1 to the end, at concurrency 1,
// 2, 4 and 8, to a blackhole receiver (snappy + protobuf decode, count) and
// to a real VictoriaLogs. Receiver and shipper share the machine, so the
// figures are end to end on this box, not the agent's cost alone. The
// shipper runs as the agent does by default: dedup on, Loki limits checked.
//
//	go test -run XXX -bench BenchmarkShip -benchtime 5x ./ship/
//
// SHIP_BENCH_MARK=1 adds the dispatch mark of the recovery probe
// (sinks.loki.verify), committed to a real state file with fsync, and
// reports its commits per round.
const (
	benchLines   = 800 * benchPerEnt // 204,800
	benchStreams = 32
	benchPerEnt  = 256
)

// benchLog writes the benchmark WAL.
func benchLog(b *testing.B) *wal.Log {
	b.Helper()
	cfg := wal.Defaults()
	cfg.SegmentSize = 8 << 20
	cfg.MaxSize = 4 << 30
	cfg.Retention = time.Hour
	cfg.SyncInterval = 5 * time.Millisecond
	dir := b.TempDir()
	l, err := wal.Open(dir, cfg, zerolog.Nop(), nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	b.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			b.Errorf("wal: %v", err)
		}
	})
	sets := make([]*record.LabelSet, benchStreams)
	for i := range sets {
		sets[i] = record.NewLabelSet([]record.Label{{Name: "job", Value: "bench"}, {Name: "host", Value: "h1"},
			{Name: "filename", Value: fmt.Sprintf("/var/log/app-%02d.log", i)}})
	}
	payload := make([]byte, 0, 64<<10)
	rb := record.NewBuilder()
	var wg sync.WaitGroup
	now := time.Now().UnixNano()
	for n := 0; n < benchLines; {
		rb.Reset()
		for range benchPerEnt {
			line := fmt.Sprintf("2025-08-01T16:43:38.850Z INFO  [worker-%02d] request id=%08d method=GET path=/api/v1/items status=200 bytes=%d dur=%dms user=u%05d",
				n%benchStreams, n, 1000+n%5000, n%300, n%10000)
			rb.Add("file:1:"+strconv.Itoa(n%benchStreams)+":1", sets[n%benchStreams], uint64(n+1)*170, now+int64(n), 0, nil, []byte(line))
			n++
		}
		wg.Add(1)
		payload = rb.AppendTo(payload[:0])
		if err := l.Append(context.Background(), append([]byte(nil), payload...), func(_ uint64, err error) {
			if err != nil {
				b.Errorf("append: %v", err)
			}
			wg.Done()
		}); err != nil {
			b.Fatal(err)
		}
	}
	wg.Wait()
	return l
}

// namedSink gives each benchmark round its own cursor.
type namedSink struct {
	*LokiSink
	name string
}

func (n namedSink) Name() string { return n.name }

func BenchmarkShipBlackhole(b *testing.B) {
	var lines atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err == nil {
			var pb []byte
			if pb, err = loki.Decompress(body, 64<<20); err == nil {
				var streams []loki.Stream
				if streams, err = loki.DecodePushRequest(pb); err == nil {
					for _, s := range streams {
						lines.Add(int64(len(s.Entries)))
					}
					w.WriteHeader(204)
					return
				}
			}
		}
		http.Error(w, err.Error(), 400)
	}))
	defer srv.Close()
	benchShip(b, srv.URL)
}

func BenchmarkShipVictoriaLogs(b *testing.B) {
	vl := victorialogs.Start(b)
	benchShip(b, vl.PushURL())
}

func benchShip(b *testing.B, url string) {
	l := benchLog(b)
	last := l.CommittedIndex()
	for _, conc := range []int{1, 2, 4, 8} {
		b.Run(fmt.Sprintf("c=%d", conc), func(b *testing.B) {
			client, err := loki.NewClient(loki.ClientConfig{URL: url, Timeout: time.Minute, Concurrency: conc})
			if err != nil {
				b.Fatal(err)
			}
			defer client.Close()
			cfg := Defaults()
			cfg.Concurrency = conc
			cfg.BatchWait = 100 * time.Millisecond
			cfg.MinBackoff = 10 * time.Millisecond
			cfg.MaxBackoff = time.Second
			// As the agent runs by default: dedup on, Loki limits checked.
			// SHIP_BENCH_NO_DEDUP=1 measures without dedup.
			if os.Getenv("SHIP_BENCH_NO_DEDUP") == "" {
				cfg.Dedup = DedupConfig{Window: 10 * time.Minute, MaxKeys: 1_000_000}
			}
			var opts []Option
			var marks *state.Store
			if os.Getenv("SHIP_BENCH_MARK") != "" {
				var err error
				if marks, err = state.Open(filepath.Join(b.TempDir(), state.DefaultFileName), state.Options{}, zerolog.Nop()); err != nil {
					b.Fatal(err)
				}
				defer marks.Close()
				// Never asked: no mark is stored before a round.
				p, err := loki.NewVictoriaLogsProber(loki.ProberConfig{URL: "http://127.0.0.1:1"})
				if err != nil {
					b.Fatal(err)
				}
				defer p.Close()
				opts = append(opts, WithRecovery(NewLokiSink(nil, LokiSinkConfig{}).Prober(p), marks, RecoveryConfig{}))
			}
			var markCommits, markWaits float64
			round := 0
			b.SetBytes(int64(benchLines) * 170)
			var total time.Duration
			for b.Loop() {
				round++
				store := &memStore{}
				sink := namedSink{NewLokiSink(client, LokiSinkConfig{Limits: DefaultLokiLimits()}), fmt.Sprintf("bench-%d-%d", conc, round)}
				s, err := New(cfg, l, 1, sink, store, zerolog.Nop(), prometheus.NewRegistry(), opts...)
				if err != nil {
					b.Fatal(err)
				}
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error, 1)
				start := time.Now()
				go func() { done <- s.Run(ctx) }()
				for s.tr.Next() <= last {
					time.Sleep(time.Millisecond)
				}
				total += time.Since(start)
				cancel()
				if err := <-done; err != nil {
					b.Fatal(err)
				}
				if got := s.Status().LinesShipped; got != benchLines {
					b.Fatalf("shipped %d lines, want %d", got, benchLines)
				}
				markCommits += testutil.ToFloat64(s.m.markCommits)
				markWaits += testutil.ToFloat64(s.m.markWaits)
			}
			b.ReportMetric(float64(benchLines)*float64(round)/total.Seconds(), "lines/s")
			if marks != nil {
				b.ReportMetric(markCommits/float64(round), "mark_commits/op")
				b.ReportMetric(markWaits/float64(round), "mark_waits/op")
			}
		})
	}
}
