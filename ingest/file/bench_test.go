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

func BenchmarkFileSource(b *testing.B) {
	dir := b.TempDir()
	p := filepath.Join(dir, "bench.log")
	f, err := os.Create(p)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriter(f)
	line := strings.Repeat("m", 169) + "\n" // ~170 B lines, as in DESIGN.md
	const lines = 200_000
	for range lines {
		w.WriteString(line)
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	f.Close()
	size := uint64(lines * len(line))

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
