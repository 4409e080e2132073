package wal

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// The benchmarks below drive the log the way the agent does: payloads of a
// few hundred KiB (a file tailer's record batch), a bounded number of them
// in flight, and a shipper-like reader following the committed entries and
// moving its cursor so that delivered segments are removed. B/op and
// allocs/op count the whole process (Run goroutine and reader included);
// "copies" in the names below refers to the payload's trips through memory.
//
//	go test -run XXX -bench . -benchmem ./wal/

// benchPayload returns n bytes of log-like text (compressible, not constant).
func benchPayload(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789 =:/.-"
	p := make([]byte, n)
	for i := range p {
		if i%170 == 169 {
			p[i] = '\n'
			continue
		}
		p[i] = alphabet[r.IntN(len(alphabet))]
	}
	return p
}

type benchCase struct {
	payload  int  // bytes per entry
	inFlight int  // appended and not yet acknowledged
	noSync   bool // skip fsync: measures the CPU and allocation path alone
	read     bool // a reader follows the log and moves a cursor
}

func (c benchCase) name() string {
	s := fmt.Sprintf("payload=%dKiB/inflight=%d", c.payload>>10, c.inFlight)
	if c.noSync {
		s += "/nosync"
	} else {
		s += "/fsync"
	}
	if c.read {
		s += "/read"
	}
	return s
}

func runBench(b *testing.B, c benchCase) {
	cfg := Defaults()
	cfg.NoSync = c.noSync
	cfg.Retention = 0
	cfg.CompactInterval = 50 * time.Millisecond
	cfg.MaxEntryBytes = 1 << 20
	l, err := Open(b.TempDir(), cfg, zerolog.Nop(), nil)
	if err != nil {
		b.Fatal(err)
	}
	cur := l.RegisterCursor("bench", 1)
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- l.Run(ctx) }()

	// A few distinct payloads, reused as the file source reuses its buffers
	// once an append is acknowledged.
	payloads := make([][]byte, 8)
	for i := range payloads {
		payloads[i] = benchPayload(c.payload, uint64(i))
	}
	slots := make(chan struct{}, c.inFlight)
	readDone := make(chan error, 1)
	var total uint64
	b.SetBytes(int64(c.payload))
	b.ReportAllocs()
	b.ResetTimer()
	n := uint64(b.N)
	if c.read {
		go func() {
			r := l.NewReader(1)
			var sum int
			for i := uint64(0); i < n; i++ {
				idx, p, err := r.Read(ctx)
				if err != nil {
					readDone <- err
					return
				}
				sum += int(p[len(p)/2]) // touch the payload
				cur.Set(idx + 1)
			}
			_ = sum
			readDone <- nil
		}()
	}
	for i := 0; i < b.N; i++ {
		slots <- struct{}{}
		if err := l.Append(ctx, payloads[i%len(payloads)], func(idx uint64, err error) {
			if err != nil {
				b.Errorf("append: %v", err)
			}
			if !c.read {
				cur.Set(idx + 1)
			}
			<-slots
		}); err != nil {
			b.Fatal(err)
		}
		total += uint64(c.payload)
	}
	for range c.inFlight {
		slots <- struct{}{}
	}
	if c.read {
		if err := <-readDone; err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	cancel()
	if err := <-runErr; err != nil {
		b.Fatal(err)
	}
	_ = total
}

// BenchmarkAppend measures the append path alone (group commit, framing,
// segment writes), with and without fsync.
func BenchmarkAppend(b *testing.B) {
	for _, c := range []benchCase{
		{payload: 256 << 10, inFlight: 8, noSync: true},
		{payload: 256 << 10, inFlight: 8},
		{payload: 4 << 10, inFlight: 64, noSync: true},
	} {
		b.Run(c.name(), func(b *testing.B) { runBench(b, c) })
	}
}

// BenchmarkAppendRead adds a reader that follows the log, as a shipper does:
// the path every captured byte takes from the source to the sink.
func BenchmarkAppendRead(b *testing.B) {
	for _, c := range []benchCase{
		{payload: 256 << 10, inFlight: 8, noSync: true, read: true},
		{payload: 256 << 10, inFlight: 8, read: true},
		{payload: 4 << 10, inFlight: 64, noSync: true, read: true},
	} {
		b.Run(c.name(), func(b *testing.B) { runBench(b, c) })
	}
}

// BenchmarkReadBacklog reads a log written beforehand from its first entry:
// a shipper replaying after an outage (sealed segments, nothing cached).
func BenchmarkReadBacklog(b *testing.B) {
	const payload, entries = 256 << 10, 64 // 16 MiB, 8 segments of 2 MiB
	cfg := Defaults()
	cfg.NoSync = true
	cfg.MaxEntryBytes = 1 << 20
	dir := b.TempDir()
	l, err := Open(dir, cfg, zerolog.Nop(), nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- l.Run(ctx) }()
	p := benchPayload(payload, 7)
	done := make(chan error, entries)
	for range entries {
		if err := l.Append(ctx, p, func(_ uint64, err error) { done <- err }); err != nil {
			b.Fatal(err)
		}
	}
	for range entries {
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	}
	cancel()
	if err := <-runErr; err != nil {
		b.Fatal(err)
	}
	// Reopen: the reader starts with nothing in memory.
	l, err = Open(dir, cfg, zerolog.Nop(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	b.SetBytes(payload * entries)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r := l.NewReader(1)
		for range entries {
			_, got, ok, err := r.TryRead()
			if err != nil || !ok || len(got) != payload {
				b.Fatalf("read: ok=%v len=%d err=%v", ok, len(got), err)
			}
		}
	}
}
