package wal

import (
	"fmt"
	"os"
	"sync/atomic"
	"time"
)

// Cursor marks how far one consumer (a shipper, the positions checkpoint)
// has got: every entry below Next() is done with. Segments are removed only
// below the lowest cursor.
type Cursor struct {
	name string
	next atomic.Uint64
}

// Name returns the cursor's name.
func (c *Cursor) Name() string { return c.name }

// Next returns the first index not yet done with.
func (c *Cursor) Next() uint64 { return c.next.Load() }

// Set moves the cursor. It never moves backwards.
func (c *Cursor) Set(next uint64) {
	for {
		cur := c.next.Load()
		if next <= cur || c.next.CompareAndSwap(cur, next) {
			return
		}
	}
}

// RegisterCursor adds (or returns the existing) cursor named name, starting
// at next. Register every consumer before Run starts compacting, or its
// entries may be removed under it.
func (l *Log) RegisterCursor(name string, next uint64) *Cursor {
	l.cursorsMu.Lock()
	defer l.cursorsMu.Unlock()
	if c, ok := l.cursors[name]; ok {
		return c
	}
	c := &Cursor{name: name}
	c.next.Store(next)
	l.cursors[name] = c
	return c
}

// Cursors returns a snapshot of every cursor's next index.
func (l *Log) Cursors() map[string]uint64 {
	l.cursorsMu.Lock()
	defer l.cursorsMu.Unlock()
	out := make(map[string]uint64, len(l.cursors))
	for n, c := range l.cursors {
		out[n] = c.Next()
	}
	return out
}

// minCursor returns the lowest cursor, and false when there is none (then
// nothing may be removed).
func (l *Log) minCursor() (uint64, bool) {
	l.cursorsMu.Lock()
	defer l.cursorsMu.Unlock()
	if len(l.cursors) == 0 {
		return 0, false
	}
	min := ^uint64(0)
	for _, c := range l.cursors {
		if n := c.Next(); n < min {
			min = n
		}
	}
	return min, true
}

// compact removes whole segments that every cursor has passed and whose
// retention expired. Under budget pressure retention is ignored: delivered
// data may go early, undelivered data never does. The tail segment is never
// removed. It runs on the Run goroutine.
func (l *Log) compact(pressure bool) error {
	min, ok := l.minCursor()
	if !ok {
		return nil
	}
	segs, err := listSegments(l.dir)
	if err != nil {
		return err
	}
	// Segment i holds [segs[i].First, segs[i+1].First); it is delivered when
	// segs[i+1].First <= min.
	cut := -1
	now := time.Now()
	for i := 0; i+1 < len(segs); i++ {
		if segs[i+1].First > min {
			break
		}
		if !pressure && l.cfg.Retention > 0 {
			info, err := os.Stat(segs[i].Path)
			if err != nil {
				return fmt.Errorf("wal: compact: %w", err)
			}
			if now.Sub(info.ModTime()) < l.cfg.Retention {
				break
			}
		}
		cut = i
	}
	if cut < 0 {
		return nil
	}
	newFirst := segs[cut+1].First
	l.twMu.RLock()
	err = l.tw.TruncateFront(newFirst)
	l.twMu.RUnlock()
	if err != nil {
		return fmt.Errorf("wal: compact: truncate front to %d: %w", newFirst, err)
	}
	if err := syncDir(l.dir); err != nil {
		return err
	}
	after, err := listSegments(l.dir)
	if err != nil {
		return err
	}
	var total int64
	for _, s := range after {
		total += s.Size
	}
	l.diskBytes.Store(total)
	l.m.diskBytes.Set(float64(total))
	l.m.segments.Set(float64(len(after)))
	l.m.removedSegs.Add(float64(cut + 1))
	l.logger.Debug().Int("removed", cut+1).Uint64("first_index", newFirst).Bool("budget_pressure", pressure).
		Msg("wal: removed delivered segments")
	l.wakeBudget()
	return nil
}
