package wal

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

// ErrBehind is returned by a reader whose next index was already removed.
// It wraps the first index still available.
type ErrBehind struct {
	Next, First uint64
}

func (e *ErrBehind) Error() string {
	return fmt.Sprintf("wal: entry %d was removed; the log now starts at %d", e.Next, e.First)
}

// readChunk is the size of a reader's buffer: entries up to this size are
// read several at a time with one read call; a larger payload is read
// straight into its own memory.
const readChunk = 64 << 10

// errFraming reports an entry whose length prefix is unreadable or runs past
// the end of its segment.
var errFraming = errors.New("wal: broken entry framing")

// errRemoved says the reader's segment was removed while it was reading.
var errRemoved = errors.New("wal: segment removed")

// Reader follows the log from an index. It sees committed entries only.
// A Reader is used by one goroutine.
//
// It reads the segment files through the page cache: a payload is read once
// into memory of its own, which the caller may keep.
type Reader struct {
	l    *Log
	next uint64

	// Position: entry index at starts at byte pos of segment seg (valid
	// when seg.path is set). segNext is the first index of the following
	// segment, 0 while seg was the tail when last looked up.
	seg     segment
	segNext uint64
	at      uint64
	pos     int64
	// buf[lo:hi] holds bytes of seg from pos on, all of committed entries.
	buf    []byte
	lo, hi int

	// The file of seg, opened when first needed and kept while the reader
	// stays in seg; how far it may be read (its size once sealed, else the
	// committed end); sealed is its size once known to be final, -1 before.
	f      *os.File
	limit  int64
	sealed int64
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
	if r.next > r.l.CommittedIndex() {
		return 0, nil, false, nil
	}
	index, payload, err = r.read()
	if err != nil {
		return 0, nil, false, err
	}
	return index, payload, true, nil
}

// Read waits for the next committed entry and returns it. The payload is
// the reader's copy: it stays valid after later reads and may be kept, but
// must not be modified (a future version may share it between readers). On
// a damaged entry it returns a *CorruptionErr whose Next says where to
// resume (Seek); on an entry already removed, an *ErrBehind.
func (r *Reader) Read(ctx context.Context) (uint64, []byte, error) {
	for {
		ch := r.l.waitCh()
		if r.next <= r.l.CommittedIndex() {
			return r.read()
		}
		select {
		case <-ch:
		case <-r.l.stop:
			if r.next <= r.l.CommittedIndex() {
				return r.read()
			}
			return 0, nil, ErrClosed
		case <-ctx.Done():
			return 0, nil, ctx.Err()
		}
	}
}

// Close releases the reader's open segment file. A reader left unclosed
// holds at most one file, which the runtime closes once the reader is
// garbage.
func (r *Reader) Close() error {
	r.closeFile()
	r.seg = segment{}
	return nil
}

// read returns entry r.next, which is committed.
func (r *Reader) read() (uint64, []byte, error) {
	cp := r.l.commit.Load()
	for attempt := 0; ; attempt++ {
		payload, err := r.readAt(cp)
		if errors.Is(err, errRemoved) && attempt < 3 {
			r.closeFile()
			r.seg = segment{} // look it up again: ErrBehind, or the log was reopened
			continue
		}
		if err != nil {
			r.closeFile()
			var ce *CorruptionErr
			if errors.As(err, &ce) {
				r.l.m.corruptReads.Inc()
			} else {
				r.seg = segment{} // an I/O error may have left the position mid-entry
			}
			return 0, nil, err
		}
		idx := r.next
		r.next++
		return idx, payload, nil
	}
}

func (r *Reader) readAt(cp *commitPoint) ([]byte, error) {
	if r.seg.path == "" || r.at > r.next || r.seg.first > r.next || (r.segNext != 0 && r.next >= r.segNext) {
		if err := r.locate(); err != nil {
			return nil, err
		}
	}
	for {
		if r.segNext != 0 && r.at == r.segNext {
			if err := r.locate(); err != nil { // the next segment
				return nil, err
			}
			continue
		}
		payload, err := r.entry(cp, r.at == r.next)
		if err != nil {
			return nil, err
		}
		if payload != nil {
			return payload, nil
		}
	}
}

// locate positions the reader at the start of the segment holding r.next.
func (r *Reader) locate() error {
	r.closeFile()
	r.l.segMu.RLock()
	segs := r.l.segs
	r.l.segMu.RUnlock()
	if r.next < segs[0].first {
		return &ErrBehind{Next: r.next, First: segs[0].first}
	}
	i := len(segs) - 1
	for i > 0 && segs[i].first > r.next {
		i--
	}
	r.seg, r.at, r.pos, r.lo, r.hi = segs[i], segs[i].first, 0, 0, 0
	r.segNext = 0
	if i+1 < len(segs) {
		r.segNext = segs[i+1].first
	}
	return nil
}

// entry reads the entry at r.at and moves past it. It returns its payload
// when want is set, nil otherwise (the entry is only skipped, unchecked).
// At the end of the segment's bytes it learns where the next segment starts
// and returns nil, nil.
func (r *Reader) entry(cp *commitPoint, want bool) ([]byte, error) {
	if err := r.openFile(cp); err != nil {
		return nil, err
	}
	if err := r.fill(maxFrameHeader); err != nil {
		return nil, err
	}
	start := r.pos
	if r.lo == r.hi {
		return nil, r.segmentEnd()
	}
	size, n := binary.Uvarint(r.buf[r.lo:r.hi])
	if n <= 0 {
		return nil, r.framingErr(fmt.Errorf("%w: unreadable length at byte %d", errFraming, r.pos))
	}
	end := r.pos + int64(n) + int64(size)
	if size > uint64(r.limit) || end > r.limit {
		return nil, r.framingErr(fmt.Errorf("%w: entry of %d bytes at byte %d runs past the end (%d)", errFraming, size, r.pos, r.limit))
	}
	if !want {
		r.advance(int64(n) + int64(size))
		r.at++
		return nil, nil
	}
	if size < entryHeaderSize {
		r.advance(int64(n) + int64(size))
		r.at++
		return nil, r.entryErr(start, fmt.Errorf("%w: entry of %d bytes is shorter than its header", ErrChecksum, size))
	}
	// The header is in the buffer (fill got maxFrameHeader bytes or the
	// whole rest of the segment, and the entry fits in that rest).
	h := r.buf[r.lo+n : r.lo+n+entryHeaderSize]
	version, crc := h[0], binary.LittleEndian.Uint32(h[1:])
	r.advance(int64(n + entryHeaderSize))
	plen := int(size) - entryHeaderSize
	var payload []byte
	if have := r.hi - r.lo; have >= plen {
		payload = make([]byte, plen)
		copy(payload, r.buf[r.lo:r.lo+plen])
		r.advance(int64(plen))
	} else if plen <= readChunk/2 {
		if err := r.fill(plen); err != nil {
			return nil, err
		}
		if r.hi-r.lo < plen {
			return nil, r.framingErr(fmt.Errorf("%w: entry of %d bytes at byte %d runs past the end of the file", errTorn, size, start))
		}
		payload = make([]byte, plen)
		copy(payload, r.buf[r.lo:r.lo+plen])
		r.advance(int64(plen))
	} else {
		// Large: what is buffered, then the rest straight into place.
		payload = make([]byte, plen)
		copy(payload, r.buf[r.lo:r.hi])
		rest := payload[have:]
		r.pos += int64(have)
		r.lo, r.hi = 0, 0
		if _, err := r.f.ReadAt(rest, r.pos); err != nil {
			return nil, fmt.Errorf("wal: read segment %s at %d: %w", r.seg.name, r.pos, err)
		}
		r.pos += int64(len(rest))
	}
	r.at++
	if version != entryVersion {
		return nil, r.entryErr(start, fmt.Errorf("%w: %d", ErrVersion, version))
	}
	if checksum(payload) != crc {
		return nil, r.entryErr(start, ErrChecksum)
	}
	return payload, nil
}

// advance consumes n buffered bytes, or skips past them when fewer are
// buffered.
func (r *Reader) advance(n int64) {
	if int64(r.hi-r.lo) >= n {
		r.lo += int(n)
	} else {
		r.lo, r.hi = 0, 0
	}
	r.pos += n
}

// fill makes at least want bytes available in buf[lo:hi] when the segment
// holds them (fewer at its end). It never reads past r.limit.
func (r *Reader) fill(want int) error {
	if r.hi-r.lo >= want {
		return nil
	}
	if r.buf == nil {
		r.buf = make([]byte, readChunk)
	}
	if r.lo > 0 {
		r.hi = copy(r.buf, r.buf[r.lo:r.hi])
		r.lo = 0
	}
	off := r.pos + int64(r.hi)
	n := min(int64(len(r.buf)-r.hi), r.limit-off)
	if n <= 0 {
		return nil
	}
	got, err := r.f.ReadAt(r.buf[r.hi:r.hi+int(n)], off)
	r.hi += got
	if errors.Is(err, io.EOF) {
		// The file is shorter than it was: the caller reports the damage
		// at its position.
		r.limit = off + int64(got)
		err = nil
	}
	if err != nil {
		return fmt.Errorf("wal: read segment %s at %d: %w", r.seg.name, off, err)
	}
	return nil
}

// openFile opens r.seg if needed, under segMu so that it cannot be removed
// in between, and learns how far it may be read under commit point cp.
func (r *Reader) openFile(cp *commitPoint) error {
	if r.f != nil {
		return r.setLimit(cp)
	}
	r.l.segMu.RLock()
	segs := r.l.segs
	listed := len(segs) > 0 && r.seg.first >= segs[0].first
	var f *os.File
	var err error
	if listed {
		f, err = os.Open(r.seg.path)
	}
	r.l.segMu.RUnlock()
	if !listed || errors.Is(err, os.ErrNotExist) {
		return errRemoved
	}
	if err != nil {
		return fmt.Errorf("wal: open segment %s: %w", r.seg.name, err)
	}
	r.f, r.sealed = f, -1
	return r.setLimit(cp)
}

// setLimit bounds the reads of r.f: the committed end of the tail, or the
// size of a sealed segment (final: a sealed segment never changes).
func (r *Reader) setLimit(cp *commitPoint) error {
	switch {
	case r.seg.first == cp.tailFirst:
		r.limit = cp.tailEnd
	case r.sealed >= 0:
		r.limit = r.sealed
	default:
		fi, err := r.f.Stat()
		if err != nil {
			r.closeFile()
			return fmt.Errorf("wal: stat segment %s: %w", r.seg.name, err)
		}
		r.sealed = fi.Size()
		r.limit = r.sealed
	}
	return nil
}

func (r *Reader) closeFile() {
	if r.f != nil {
		r.f.Close()
		r.f = nil
	}
}

// segmentEnd is reached when the reader's segment has no more bytes to give:
// the next entry must start the following segment.
func (r *Reader) segmentEnd() error {
	if r.segNext == 0 {
		r.l.segMu.RLock()
		for _, s := range r.l.segs {
			if s.first > r.seg.first {
				r.segNext = s.first
				break
			}
		}
		r.l.segMu.RUnlock()
	}
	if r.segNext != 0 && r.at == r.segNext {
		return nil // readAt moves on to it
	}
	err := fmt.Errorf("%w: segment ends at entry %d", errTorn, r.at)
	return r.framingErr(err)
}

// framingErr reports a segment whose framing broke at the reader's
// position: nothing after it in the segment can be trusted, so the reader
// resumes at the next segment.
func (r *Reader) framingErr(err error) error {
	next := r.next + 1
	if r.segNext == 0 {
		r.l.segMu.RLock()
		for _, s := range r.l.segs {
			if s.first > r.seg.first {
				r.segNext = s.first
				break
			}
		}
		r.l.segMu.RUnlock()
	}
	if r.segNext > r.next {
		next = r.segNext
	}
	ce := &CorruptionErr{Segment: r.seg.name, Index: r.next, Offset: r.pos, Next: next, Err: err}
	r.seg = segment{} // look the segment up again after a Seek
	return ce
}

// entryErr reports one damaged entry, starting at byte offset, whose framing
// is intact: the reader is already past it.
func (r *Reader) entryErr(offset int64, err error) error {
	return &CorruptionErr{Segment: r.seg.name, Index: r.at - 1, Offset: offset, Next: r.at, Err: err}
}
