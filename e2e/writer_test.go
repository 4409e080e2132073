package e2e

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Lines are "seq=NNNNNNN file=F payload=<100 bytes>": a global sequence
// number, the file it belongs to (seq % files) and a filler derived from seq,
// so a received line is checked byte for byte, not just by its number.
const (
	payloadLen = 100
	seqDigits  = 7
	fillerBase = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"
)

var filler = fillerBase + fillerBase + fillerBase

// line returns the line of seq, without its '\n'.
func line(seq, files int) string {
	off := seq % len(fillerBase)
	return fmt.Sprintf("seq=%0*d file=%d payload=%s", seqDigits, seq, seq%files, filler[off:off+payloadLen])
}

// lineLen is the length of every line without its '\n' (the sequence number
// has a fixed width).
func lineLen() int { return len(line(0, 1)) }

// parseLine returns the sequence number of msg if msg is exactly the line
// that number stands for.
func parseLine(msg string, files, total int) (int, bool) {
	const prefix = "seq="
	if len(msg) < len(prefix)+seqDigits || msg[:len(prefix)] != prefix {
		return 0, false
	}
	seq, err := strconv.Atoi(msg[len(prefix) : len(prefix)+seqDigits])
	if err != nil || seq < 0 || seq >= total {
		return 0, false
	}
	return seq, msg == line(seq, files)
}

// writeLoad describes the writers: Files files in Dir, Lines lines in all,
// line seq going to file seq % Files, at Rate lines per second overall.
type writeLoad struct {
	Dir   string
	Files int
	Lines int
	Rate  float64
	// About one line in SplitEvery is written in two calls with a pause of
	// SplitMin..SplitMax between them, so the agent sees a partial last
	// line (and may be killed while it holds one back).
	SplitEvery         int
	SplitMin, SplitMax time.Duration
	Seed               uint64
}

func (w writeLoad) path(file int) string {
	return filepath.Join(w.Dir, fmt.Sprintf("app-%d.log", file))
}

// sizes returns the final size of each file.
func (w writeLoad) sizes() map[string]int64 {
	out := map[string]int64{}
	n := int64(lineLen() + 1)
	for f := range w.Files {
		lines := w.Lines / w.Files
		if f < w.Lines%w.Files {
			lines++
		}
		out[w.path(f)] = int64(lines) * n
	}
	return out
}

// duration is how long the writers take at Rate.
func (w writeLoad) duration() time.Duration {
	return time.Duration(float64(w.Lines) / w.Rate * float64(time.Second))
}

// writers runs one goroutine per file. done is closed when all have
// returned; err is valid after that.
type writers struct {
	written atomic.Int64
	splits  atomic.Int64
	done    chan struct{}
	err     error
}

// create makes the (empty) files so they exist before the agent's first scan.
func (w writeLoad) create() error {
	if err := os.MkdirAll(w.Dir, 0o755); err != nil {
		return err
	}
	for f := range w.Files {
		fh, err := os.OpenFile(w.path(f), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
		if err != nil {
			return err
		}
		if err := fh.Close(); err != nil {
			return err
		}
	}
	return nil
}

// start runs the writers until every line is written or ctx ends.
func (w writeLoad) start(ctx context.Context) *writers {
	return startWriters(ctx, w.Files, w.writeFile)
}

// startWriters runs writeFile for files 0..n-1, one goroutine each, and
// reports their joined errors through the returned writers.
func startWriters(ctx context.Context, n int, writeFile func(ctx context.Context, f int, ws *writers) error) *writers {
	ws := &writers{done: make(chan struct{})}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for f := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := writeFile(ctx, f, ws); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("writer %d: %w", f, err))
				mu.Unlock()
			}
		}()
	}
	go func() {
		wg.Wait()
		ws.err = errors.Join(errs...)
		close(ws.done)
	}()
	return ws
}

// writeFile writes file f's lines in small bursts, paced against the start
// time so pauses (splits, a slow disk) are caught up afterwards. Every write
// is one whole line, except the split ones.
func (w writeLoad) writeFile(ctx context.Context, f int, ws *writers) error {
	fh, err := os.OpenFile(w.path(f), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer fh.Close()
	rng := rand.New(rand.NewPCG(w.Seed, uint64(f)))
	perFile := w.Rate / float64(w.Files)
	start := time.Now()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	buf := make([]byte, 0, lineLen()+1)
	n := 0 // lines of this file written
	for seq := f; seq < w.Lines; {
		due := int(time.Since(start).Seconds()*perFile) + 1
		for ; n < due && seq < w.Lines; n, seq = n+1, seq+w.Files {
			buf = append(append(buf[:0], line(seq, w.Files)...), '\n')
			if w.SplitEvery > 0 && rng.IntN(w.SplitEvery) == 0 {
				cut := 1 + rng.IntN(len(buf)-1)
				if _, err := fh.Write(buf[:cut]); err != nil {
					return err
				}
				pause := w.SplitMin + time.Duration(rng.Int64N(int64(w.SplitMax-w.SplitMin)+1))
				select {
				case <-time.After(pause):
				case <-ctx.Done():
					return ctx.Err()
				}
				buf = buf[cut:]
				ws.splits.Add(1)
			}
			if _, err := fh.Write(buf); err != nil {
				return err
			}
			ws.written.Add(1)
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return fh.Close()
}
