package wal

import (
	"context"
	"errors"
	"fmt"

	tidwall "github.com/tidwall/wal"
)

// ErrBehind is returned by a reader whose next index was already removed.
// It wraps the first index still available.
type ErrBehind struct {
	Next, First uint64
}

func (e *ErrBehind) Error() string {
	return fmt.Sprintf("wal: entry %d was removed; the log now starts at %d", e.Next, e.First)
}

// Reader follows the log from an index. It sees committed entries only.
// A Reader is used by one goroutine.
type Reader struct {
	l    *Log
	next uint64
}

// NewReader returns a reader positioned at index next (1 is the first index
// ever written).
func (l *Log) NewReader(next uint64) *Reader {
	if next == 0 {
		next = 1
	}
	return &Reader{l: l, next: next}
}

// Next returns the index the reader reads next.
func (r *Reader) Next() uint64 { return r.next }

// Seek moves the reader.
func (r *Reader) Seek(next uint64) { r.next = next }

// TryRead returns the next committed entry without waiting; ok is false
// when there is none yet.
func (r *Reader) TryRead() (index uint64, payload []byte, ok bool, err error) {
	if r.next > r.l.committed.Load() {
		return 0, nil, false, nil
	}
	index, payload, err = r.read()
	if err != nil {
		return 0, nil, false, err
	}
	return index, payload, true, nil
}

// Read waits for the next committed entry and returns it. The payload is a
// read-only view of the log's memory: it stays valid after later reads, but
// must never be modified. On a damaged entry
// it returns a *CorruptionErr whose Next says where to resume (Seek); on an
// entry already removed, an *ErrBehind.
func (r *Reader) Read(ctx context.Context) (uint64, []byte, error) {
	for {
		ch := r.l.waitCh()
		if r.next <= r.l.committed.Load() {
			return r.read()
		}
		select {
		case <-ch:
		case <-r.l.stop:
			if r.next <= r.l.committed.Load() {
				return r.read()
			}
			return 0, nil, ErrClosed
		case <-ctx.Done():
			return 0, nil, ctx.Err()
		}
	}
}

func (r *Reader) read() (uint64, []byte, error) {
	idx := r.next
	r.l.twMu.RLock()
	data, err := r.l.tw.Read(idx)
	var first uint64
	if errors.Is(err, tidwall.ErrNotFound) {
		first, _ = r.l.tw.FirstIndex()
	}
	r.l.twMu.RUnlock()
	switch {
	case err == nil:
	case errors.Is(err, tidwall.ErrNotFound) && idx < first:
		return 0, nil, &ErrBehind{Next: idx, First: first}
	case errors.Is(err, tidwall.ErrCorrupt):
		r.l.m.corruptReads.Inc()
		return 0, nil, r.l.segmentCorruption(idx, err)
	default:
		return 0, nil, fmt.Errorf("wal: read %d: %w", idx, err)
	}
	payload, err := unframe(data)
	if err != nil {
		r.l.m.corruptReads.Inc()
		seg := ""
		if s, ok := r.l.segmentOf(idx); ok {
			seg = s.Name
		}
		return 0, nil, &CorruptionErr{Segment: seg, Index: idx, Offset: -1, Next: idx + 1, Err: err}
	}
	r.next = idx + 1
	return idx, payload, nil
}

// segmentOf finds the segment file that holds index.
func (l *Log) segmentOf(index uint64) (segmentFile, bool) {
	segs, err := listSegments(l.dir)
	if err != nil {
		return segmentFile{}, false
	}
	for i := len(segs) - 1; i >= 0; i-- {
		if segs[i].First <= index {
			return segs[i], true
		}
	}
	return segmentFile{}, false
}

// segmentCorruption builds the error for a segment whose framing is broken:
// no entry of it can be trusted past the damage, so the reader resumes at
// the next segment.
func (l *Log) segmentCorruption(index uint64, err error) error {
	segs, lerr := listSegments(l.dir)
	if lerr != nil {
		return fmt.Errorf("wal: read %d: %w", index, err)
	}
	for i := len(segs) - 1; i >= 0; i-- {
		if segs[i].First <= index {
			next := index + 1
			if i+1 < len(segs) {
				next = segs[i+1].First
			}
			return &CorruptionErr{Segment: segs[i].Name, Index: index, Offset: -1, Next: next, Err: err}
		}
	}
	return fmt.Errorf("wal: read %d: %w", index, err)
}
