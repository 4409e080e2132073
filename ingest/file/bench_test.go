package file

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/logcapturer/log_capturer_go/ingest/multiline"
)

// ackingWAL acks every payload in order from one goroutine, doing no I/O:
// it measures the source's own cost.
type ackingWAL struct {
	q    chan func()
	wg   sync.WaitGroup
	next uint64
}

func (a *ackingWAL) Append(ctx context.Context, payload []byte, done func(uint64, error)) error {
	a.next++
	idx := a.next
	select {
	case a.q <- func() { done(idx, nil) }:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

type nopState struct{}

func (nopState) SetPosition(string, uint64, uint64, []byte) {}
func (nopState) DeletePosition(string)                      {}

func BenchmarkFileSource(b *testing.B) { benchmarkFileSource(b, 0) }

// BenchmarkFileSourceMultiline reads the same lines grouped five by five
// into entries (a start pattern, as the presets use): ns/line stays per
// framed line.
func BenchmarkFileSourceMultiline(b *testing.B) { benchmarkFileSource(b, 5) }

// benchmarkFileSource follows one file of 200,000 lines of ~170 B; with
// entryLines > 0 a route groups every entryLines lines into one entry.
func benchmarkFileSource(b *testing.B, entryLines int) {
	dir := b.TempDir()
	p := filepath.Join(dir, "bench.log")
	f, err := os.Create(p)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriter(f)
	line := strings.Repeat("m", 169) + "\n" // ~170 B lines, as in DESIGN.md
	head := "E" + line[1:]
	const lines = 200_000
	for i := range lines {
		if entryLines > 0 && i%entryLines == 0 {
			w.WriteString(head)
		} else {
			w.WriteString(line)
		}
	}
	size := uint64(lines * len(line))
	if entryLines > 0 {
		w.WriteString(head) // completes the last entry; not waited for itself
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	f.Close()

	b.SetBytes(int64(size))
	b.ReportAllocs()
	for b.Loop() {
		a := &ackingWAL{q: make(chan func(), 64)}
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			for fn := range a.q {
				fn()
			}
		}()
		cfg := DefaultConfig()
		cfg.Include = []string{p}
		cfg.DisableNotify = true
		if entryLines > 0 {
			cfg.Routes = []Route{{Name: "bench", Match: []string{p},
				Multiline: multiline.Config{Mode: multiline.ModeStart, Pattern: "^E", FlushTimeout: time.Hour}}}
		}
		src, err := New(cfg, a, nopState{}, nil, zerolog.Nop(), nil)
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = src.Run(ctx) }()
		for {
			ps := src.Positions()
			if len(ps) == 1 && ps[0].AckedOffset == size {
				break
			}
			time.Sleep(time.Millisecond)
		}
		cancel()
		<-done
		close(a.q)
		a.wg.Wait()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*lines), "ns/line")
}
