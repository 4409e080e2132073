package file

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/logcapturer/log_capturer_go/ingest/multiline"
	"github.com/logcapturer/log_capturer_go/wal/record"
)

// errRewind says an append failed: the tailer must wait for its in-flight
// payloads, then read again from the last acknowledged line.
var errRewind = errors.New("file: append failed")

// changeError says the file no longer holds the bytes read before the read
// position: it was truncated (copytruncate, or in place), maybe regrown.
type changeError struct{ why identVerdict }

func (e *changeError) Error() string { return "file: content changed: " + e.why.String() }

// recordOverhead bounds the per-line framing a Builder adds.
const recordOverhead = 48

// ringBytes is how many bytes read just before the read position a file
// keeps: the last markBytes of them are checked on every read (a file
// truncated and regrown past the position is noticed), and all of them let
// a rotated copy shorter than the position be recognised as read.
const ringBytes = 8 << 10

// yieldAfter is how long a file that never reaches its end keeps its slot
// while others wait for one.
const yieldAfter = time.Second

const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 10 * time.Second
)

type ackState uint8

const (
	ackPending ackState = iota
	ackOK
	ackFailed
)

// inflight is one payload appended and not yet settled.
type inflight struct {
	end   uint64      // end offset of its last line
	mark  fingerprint // the bytes before end
	idx   uint64
	state ackState
}

// tailer follows one open file in its own goroutine. The read side (framer,
// builder, offsets) belongs to that goroutine; what done callbacks, scans and
// Positions touch is under mu.
type tailer struct {
	s      *Source
	f      *os.File
	key    fileKey
	stream string // filename label: the path its lines are attributed to
	labels *record.LabelSet
	hdr    int           // payload header estimate: source id and labels
	wake   chan struct{} // hints: data written, ack failed, file left
	slots  chan struct{} // one token per payload in flight
	conv   converter
	// asm groups lines into entries (the file's route asks for multiline);
	// nil: one record per line. Records then end where entries end, so the
	// acknowledged position never passes the pending entry's start.
	asm *multiline.Assembler

	fr       framer
	src      *os.File // the file being read: f, or a rotated copy
	b        *record.Builder
	bEnd     uint64
	resv     int64 // budget held for b (Source.budget)
	ts       int64
	now      time.Time // when the bytes being framed were read
	startOff uint64
	startMid bool
	lastData time.Time
	openedAt time.Time
	backoff  time.Duration
	rewindAt uint64
	fpDone   bool
	ring     []byte // bytes just before ringEnd (== fr.off between reads)
	ringEnd  uint64
	lastSize uint64
	markBuf  [markBytes]byte
	nLines   uint64
	nTrunc   uint64
	nPartial uint64
	nEscaped uint64
	nTransc  uint64
	nCut     uint64
	nEntries uint64 // multiline entries appended
	nEntPart uint64 // of them flagged partial
	nSplit   uint64
	nFlushed uint64

	readOff atomic.Uint64

	mu       sync.Mutex
	id       string
	path     string
	fp       fingerprint
	seen     int64 // unix ns: last seen at its stream path
	acked    uint64
	ackIdx   uint64
	ackMark  fingerprint
	queue    []*inflight
	failed   bool
	failErr  error
	orphaned bool
	leftAt   time.Time
	size     uint64
}

func newTailer(s *Source, f *os.File, key fileKey, path string, size uint64, st startPoint) *tailer {
	now := time.Now()
	r := s.routeFor(st.stream)
	t := &tailer{
		s:        s,
		f:        f,
		src:      f,
		key:      key,
		stream:   st.stream,
		labels:   s.labelsFor(st.stream, r),
		asm:      s.newAssembler(r),
		wake:     make(chan struct{}, 1),
		slots:    make(chan struct{}, s.cfg.MaxInflight),
		conv:     newConverter(s.cfg),
		fr:       newFramer(s.cfg.MaxLineBytes, st.offset),
		startOff: st.offset,
		startMid: st.midLine,
		lastData: now,
		openedAt: now,
		rewindAt: st.offset,
		id:       st.id,
		path:     path,
		fp:       st.fp,
		seen:     st.seen,
		acked:    st.offset,
		ackMark:  st.mark,
		size:     size,
		lastSize: size,
	}
	if path == t.stream {
		t.seen = now.UnixNano()
	}
	if st.midLine {
		t.fr.startMidLine()
	}
	if t.asm != nil {
		t.asm.Reset(st.offset)
	}
	t.fpDone = int(st.fp.n) >= s.cfg.FingerprintBytes
	t.hdr = len(st.id) + 32
	for _, l := range t.labels.Labels() {
		t.hdr += len(l.Name) + len(l.Value) + 2*4
	}
	t.readOff.Store(st.offset)
	return t
}

// metaLocked is the position meta for mark, taken at markOff; t.mu is held.
func (t *tailer) metaLocked(mark fingerprint, markOff uint64) []byte {
	m := meta{path: t.path, fp: t.fp, mark: mark, markOff: markOff, seen: t.seen, rotated: t.orphaned || t.path != t.stream}
	if t.stream != t.path {
		m.stream = t.stream
	}
	return m.encode()
}

func (t *tailer) poke() {
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

func (t *tailer) currentPath() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.path
}

// seenAt records that a scan found the file at path; it returns the previous
// path, and a search for unseen rotated files when the file just moved away
// from its stream path (rotated to a name that is still matched). A file
// that had left its path and came back is followed again.
func (t *tailer) seenAt(path string, now time.Time) (string, *rotationTrigger) {
	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.path
	var tr *rotationTrigger
	if path != old {
		if old == t.stream && path != t.stream {
			tr = &rotationTrigger{stream: t.stream, notBefore: t.seen - int64(t.s.siblingSlack())}
		}
		t.path = path
	}
	if path == t.stream {
		t.seen = now.UnixNano()
	}
	t.orphaned = false
	return old, tr
}

// leave marks the file as no longer at any matched path. It reports the
// path, a search for unseen rotated files when it left its stream path, and
// whether this is news.
func (t *tailer) leave(now time.Time) (string, *rotationTrigger, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.orphaned {
		return t.path, nil, false
	}
	t.orphaned, t.leftAt = true, now
	t.poke()
	var tr *rotationTrigger
	if t.path == t.stream {
		tr = &rotationTrigger{stream: t.stream, notBefore: t.seen - int64(t.s.siblingSlack())}
	}
	return t.path, tr, true
}

// rotatedAway reports whether the file is no longer the live one of its
// stream: it left every matched path, or moved to another matched name.
func (t *tailer) rotatedAway() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.orphaned || t.path != t.stream
}

func (t *tailer) info() PositionInfo {
	t.mu.Lock()
	defer t.mu.Unlock()
	return PositionInfo{
		ID:          t.id,
		Path:        t.path,
		Stream:      t.stream,
		ReadOffset:  t.readOff.Load(),
		AckedOffset: t.acked,
		Size:        t.size,
		InFlight:    len(t.queue),
		Draining:    t.orphaned,
		Open:        true,
	}
}

// known is what a scan compares new files with (see copyOfKnown).
func (t *tailer) known() knownFile {
	t.mu.Lock()
	defer t.mu.Unlock()
	return knownFile{key: t.key, path: t.path, fp: t.fp, markOff: t.acked, mark: t.ackMark, f: t.f}
}

func (t *tailer) hasFailed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.failed
}

func (t *tailer) run(ctx context.Context) {
	t.loadRing(t.fr.off)
	hb, requeue := t.loop(ctx)
	t.releaseBuilder() // every exit has appended or dropped it; the budget is given back either way
	t.flushCounters()
	_ = t.f.Close()
	t.s.cnt.filesOpen.Add(-1)
	t.s.tailerExited(t, hb, requeue)
}

// loop reads until ctx ends, the file is closed (drained after it was
// rotated, idle, or giving up its slot), or a read error; it returns the
// position to keep (nil at shutdown) and whether to queue the file again.
func (t *tailer) loop(ctx context.Context) (*resumeEntry, bool) {
	timer := time.NewTimer(t.s.cfg.PollInterval)
	defer timer.Stop()
	for {
		if ctx.Err() != nil {
			t.stop()
			return nil, false
		}
		if t.hasFailed() {
			if !t.rewind(ctx) {
				t.stop()
				return nil, false
			}
			continue
		}
		n, err := t.readFrom(ctx, t.f)
		if err == nil {
			err = t.checkSize()
		}
		t.flushCounters()
		var ce *changeError
		switch {
		case ctx.Err() != nil:
			t.stop()
			return nil, false
		case errors.Is(err, errRewind):
			continue
		case errors.As(err, &ce):
			if err := t.truncated(ctx, ce.why); err != nil {
				if ctx.Err() != nil {
					t.stop()
					return nil, false
				}
				return t.failRead(ctx, err), false
			}
			continue
		case err != nil:
			return t.failRead(ctx, err), false
		}
		if n > 0 {
			t.lastData = time.Now()
			if t.s.waiting() && time.Since(t.openedAt) >= yieldAfter && !t.rotatedAway() {
				// Never at its end while others wait: give the slot up, and
				// queue again behind them.
				if hb, ok := t.close(ctx, false); ok {
					return hb, true
				}
			}
			// Read again before sleeping: more may have arrived meanwhile.
			continue
		}
		if hb, ok := t.maybeClose(ctx); ok {
			return hb, false
		}
		timer.Reset(t.pollWait())
		select {
		case <-ctx.Done():
		case <-t.wake:
		case <-timer.C:
		}
	}
}

// pollWait is how long a file at its end sleeps before it reads again:
// PollInterval, or less when a pending multiline entry's flush is due first.
func (t *tailer) pollWait() time.Duration {
	d := t.s.cfg.PollInterval
	if t.asm != nil {
		if at, ok := t.asm.NextFlush(); ok {
			d = min(d, max(time.Until(at), time.Millisecond))
		}
	}
	return d
}

// maybeClose closes a file at its end that is no longer needed open: rotated
// away and idle for RotateWait, idle for IdleTimeout, or holding a slot
// others wait for. A live file with a multiline entry pending stays open
// until its flush timeout emits it: closed, it would be reopened only when
// it grows, and the entry would wait for that.
func (t *tailer) maybeClose(ctx context.Context) (*resumeEntry, bool) {
	idle := time.Since(t.lastData)
	rotated := t.rotatedAway()
	if !rotated && t.asm != nil {
		if _, pending := t.asm.NextFlush(); pending {
			return nil, false
		}
	}
	if rotated {
		t.mu.Lock()
		since := t.leftAt
		t.mu.Unlock()
		if since.IsZero() || t.lastData.After(since) {
			since = t.lastData
		}
		if time.Since(since) >= t.s.cfg.RotateWait {
			return t.close(ctx, true)
		}
		return nil, false
	}
	if idle >= t.s.cfg.IdleTimeout || t.s.waiting() {
		return t.close(ctx, false)
	}
	return nil, false
}

// close ends following the file for now. Its size and mtime are taken
// first, then it is read to its end once more: anything written after that
// look changes them, so a scan opens it again. A rotated file's incomplete
// last line is emitted with FlagPartial (its writer has moved on), and its
// pending multiline entry is emitted; a live file's stay unread (the
// position is before them), to be read whole later. ok is false when the file
// must be read on (more data, a failed append) or ctx ended.
func (t *tailer) close(ctx context.Context, rotated bool) (*resumeEntry, bool) {
	fi, err := t.f.Stat()
	if err != nil {
		return nil, false
	}
	n, err := t.readFrom(ctx, t.f)
	if err != nil || n > 0 {
		if err != nil && !errors.Is(err, errRewind) {
			var ce *changeError
			if !errors.As(err, &ce) {
				t.s.cnt.readErrors.Add(1)
			}
		}
		return nil, false
	}
	if rotated {
		t.now = time.Now()
		t.ts = t.now.UnixNano()
		err = t.fr.flush(t.emitter(ctx))
		if err == nil && t.asm != nil {
			err = t.asm.FlushAll(t.entryEmitter(ctx))
		}
		if err == nil && t.b != nil && t.b.Len() > 0 {
			err = t.appendBatch(ctx)
		}
		t.releaseBuilder()
	}
	t.flushCounters()
	if err != nil || !t.settle(ctx) || t.hasFailed() {
		return nil, false
	}
	hb := t.handBack()
	hb.closedSize, hb.closedMtime = fi.Size(), fi.ModTime().UnixNano()
	hb.midLine = hb.offset == t.startOff && t.startMid
	if rotated {
		t.s.log.Info().Str("path", t.currentPath()).Msg("file: rotated file drained and closed")
	} else {
		t.s.cnt.filesClosed.Add(1)
	}
	return hb, true
}

// failRead gives up on the descriptor after a read error; the next scan
// opens the file again and resumes from the last acknowledged line.
func (t *tailer) failRead(ctx context.Context, err error) *resumeEntry {
	t.s.cnt.readErrors.Add(1)
	t.s.log.Warn().Err(err).Str("path", t.currentPath()).Msg("file: read failed; reopening at the next scan")
	t.dropBatch()
	if !t.settle(ctx) {
		t.stop()
		return nil
	}
	return t.handBack()
}

func (t *tailer) handBack() *resumeEntry {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, gen, _, _ := parseID(t.id)
	m := meta{path: t.path, fp: t.fp, mark: t.ackMark, markOff: t.acked, seen: t.seen, rotated: t.orphaned || t.path != t.stream}
	if t.stream != t.path {
		m.stream = t.stream
	}
	return &resumeEntry{key: t.key, id: t.id, gen: gen, offset: t.acked, meta: m, hasMeta: true,
		closedSize: -1, closedMtime: -1, rotated: t.orphaned}
}

// readFrom reads and frames everything in f from the read position to its
// end, appending full payloads as it goes and the last one at the end. Each
// read starts a few bytes early to check they are still the ones read: a
// *changeError says they are not (or the file is shorter than the read
// position).
func (t *tailer) readFrom(ctx context.Context, f *os.File) (uint64, error) {
	t.src = f
	defer func() { t.src = t.f }()
	total, err := t.readChunks(ctx, f)
	if err != nil {
		return total, err
	}
	if total > 0 {
		t.s.cnt.bytes.Add(total)
		if f == t.f {
			t.refreshFingerprint()
		}
	}
	if t.asm != nil && f == t.f {
		// Nothing continued the pending entry within its flush timeout.
		t.now = time.Now()
		t.ts = t.now.UnixNano()
		if err := t.asm.Flush(t.now, t.entryEmitter(ctx)); err != nil {
			return total, err
		}
	}
	if t.b != nil && t.b.Len() > 0 {
		if err := t.appendBatch(ctx); err != nil {
			return total, err
		}
	}
	t.releaseBuilder()
	t.conv.release()
	return total, nil
}

// readChunks is readFrom's read loop. It reads with one of the source's
// shared read buffers (Source.reads), lent for a turn: when files wait for
// one, a file that has read turnBytes appends what it has built and lines
// up again. Lines alias the buffer only while framed, so nothing keeps it
// between turns. A file with nothing new does not wait for a buffer.
func (t *tailer) readChunks(ctx context.Context, f *os.File) (uint64, error) {
	bp, ok := t.s.reads.tryGet()
	if !ok {
		if f == t.f {
			if fi, err := f.Stat(); err == nil && uint64(fi.Size()) == t.fr.off {
				return 0, nil // at its end: nothing to read
			}
		}
		var err error
		if bp, err = t.waitReadBuf(ctx); err != nil {
			return 0, err
		}
	}
	defer func() {
		if bp != nil {
			t.s.reads.put(bp)
		}
	}()
	emit := t.emitter(ctx)
	var total, turn uint64
	for {
		buf := *bp
		off := t.fr.off
		ov := 0
		if t.ringEnd == off {
			ov = min(len(t.ring), markBytes)
		}
		n, err := f.ReadAt(buf, int64(off)-int64(ov))
		if err != nil && !errors.Is(err, io.EOF) {
			return total, fmt.Errorf("file: read %s: %w", t.currentPath(), err)
		}
		if n < ov {
			return total, &changeError{identTruncated}
		}
		if !bytes.Equal(buf[:ov], t.ring[len(t.ring)-ov:]) {
			return total, &changeError{identRewritten}
		}
		if data := buf[ov:n]; len(data) > 0 {
			t.now = time.Now()
			t.ts = t.now.UnixNano()
			if ferr := t.fr.feed(data, emit); ferr != nil {
				return total, ferr
			}
			t.pushRing(data, t.fr.off)
			total += uint64(len(data))
			turn += uint64(len(data))
			t.readOff.Store(t.fr.off)
		}
		if err != nil {
			return total, nil // io.EOF
		}
		if ctx.Err() != nil {
			return total, ctx.Err()
		}
		if turn >= t.s.turnBytes && t.s.reads.contended() {
			// Others wait for a buffer: give this one up, holding nothing
			// of the budget while waiting in line for the next.
			if t.b != nil && t.b.Len() > 0 {
				if err := t.appendBatch(ctx); err != nil {
					return total, err
				}
			}
			t.releaseBuilder()
			t.s.reads.put(bp)
			bp = nil
			if bp, err = t.s.reads.get(ctx); err != nil {
				return total, err
			}
			turn = 0
		}
	}
}

// waitReadBuf waits for a read buffer. What was built before is appended
// first: a file must not hold budget while it waits (see byteBudget), nor
// a builder (only files that read need one).
func (t *tailer) waitReadBuf(ctx context.Context) (*[]byte, error) {
	if t.b != nil && t.b.Len() > 0 {
		if err := t.appendBatch(ctx); err != nil {
			return nil, err
		}
	}
	t.releaseBuilder()
	return t.s.reads.get(ctx)
}

// pushRing appends data, which ends at end, to the ring of bytes read.
func (t *tailer) pushRing(data []byte, end uint64) {
	if t.ring == nil {
		t.ring = make([]byte, 0, ringBytes)
	}
	if len(data) >= ringBytes {
		t.ring = append(t.ring[:0], data[len(data)-ringBytes:]...)
	} else {
		keep := min(len(t.ring), ringBytes-len(data))
		copy(t.ring, t.ring[len(t.ring)-keep:])
		t.ring = append(t.ring[:keep], data...)
	}
	t.ringEnd = end
}

// loadRing fills the ring with the bytes of the file just before off.
func (t *tailer) loadRing(off uint64) {
	t.ring, t.ringEnd = t.ring[:0], off
	if off == 0 {
		return
	}
	if t.ring == nil {
		t.ring = make([]byte, 0, ringBytes)
	}
	n := min(off, ringBytes)
	t.ring = t.ring[:n]
	got, _ := t.f.ReadAt(t.ring, int64(off-n))
	if got < int(n) {
		// Shorter than off: the next read says so.
		t.ring = t.ring[:0]
		t.ringEnd = ^uint64(0)
	}
}

// markFor is the mark of the bytes before end in the file being read.
func (t *tailer) markFor(end uint64) fingerprint {
	want := min(end, markBytes)
	// The ring holds [ringEnd-len(ring), ringEnd). With multiline, a batch
	// ends where the last entry ends, usually before the read position.
	if end <= t.ringEnd && t.ringEnd-end <= uint64(len(t.ring)) && uint64(len(t.ring))-(t.ringEnd-end) >= want {
		i := uint64(len(t.ring)) - (t.ringEnd - end)
		return fingerprintOf(t.ring[i-want : i])
	}
	b, ok, err := readMark(t.src, end, t.markBuf[:0])
	if err != nil || !ok {
		return fingerprint{}
	}
	return fingerprintOf(b)
}

// checkSize notices truncation between reads: a file shorter than the read
// position, or shorter than at the last look.
func (t *tailer) checkSize() error {
	fi, err := t.f.Stat()
	if err != nil {
		return fmt.Errorf("file: stat %s: %w", t.currentPath(), err)
	}
	size := uint64(fi.Size())
	t.mu.Lock()
	t.size = size
	t.mu.Unlock()
	last := t.lastSize
	t.lastSize = size
	if size < t.fr.off || size < last {
		return &changeError{identTruncated}
	}
	return nil
}

// emitter is what the framer hands each line to: converted and counted,
// the line is one record, or goes to the multiline assembler.
func (t *tailer) emitter(ctx context.Context) emitFunc {
	if t.asm == nil {
		return func(line []byte, end uint64, flags record.Flags) error {
			line, flags = t.convert(line, flags)
			return t.add(ctx, line, end, flags)
		}
	}
	entry := t.entryEmitter(ctx)
	return func(line []byte, end uint64, flags record.Flags) error {
		line, flags = t.convert(line, flags)
		return t.asm.Add(line, end, flags, t.now, entry)
	}
}

// entryEmitter is what the multiline assembler hands each entry to.
func (t *tailer) entryEmitter(ctx context.Context) multiline.EmitFunc {
	return func(entry []byte, end uint64, flags record.Flags) error {
		t.nEntries++
		if flags&record.FlagPartial != 0 {
			t.nEntPart++
		}
		return t.add(ctx, entry, end, flags)
	}
}

// convert applies the encoding and UTF-8 policy to one framed line and
// counts it; the result is valid until the next call.
func (t *tailer) convert(line []byte, flags record.Flags) ([]byte, record.Flags) {
	line, res := t.conv.convert(line, flags)
	flags |= res.flags
	t.nLines++
	if flags&record.FlagTruncated != 0 {
		t.nTrunc++
	}
	if flags&record.FlagPartial != 0 {
		t.nPartial++
	}
	if flags&record.FlagEscaped != 0 {
		t.nEscaped++
	}
	if res.transcoded {
		t.nTransc++
	}
	t.nCut += res.cut
	return line, flags
}

// add puts one record (a line, or a multiline entry) into the current
// payload, appending the payload first when the record would take it past
// MaxEntryBytes.
func (t *tailer) add(ctx context.Context, line []byte, end uint64, flags record.Flags) error {
	if t.id == "" {
		t.mintID()
	}
	if t.b == nil {
		t.b = t.s.builders.Get().(*record.Builder)
		t.b.Reset()
	}
	rec := len(line) + recordOverhead
	if t.b.Len() > 0 && t.b.Size()+rec+t.hdr > t.s.cfg.MaxEntryBytes {
		// line may alias the converter's buffer, which appendBatch does not touch.
		if err := t.appendBatch(ctx); err != nil {
			return err
		}
	}
	if err := t.reserve(ctx, rec); err != nil {
		return err
	}
	t.b.Add(t.id, t.labels, end, t.ts, flags, nil, line)
	t.bEnd = end
	return nil
}

// reserve makes the budget held for the payload being built cover it with
// one more record of rec bytes (the payload's size is estimated from above:
// Builder.Size, t.hdr and recordOverhead bound what AppendTo writes). It
// grows the reservation without waiting; when the budget has no room or
// others wait for it, the payload built so far is appended (handing its
// reservation to the WAL ack) and the file waits in line holding nothing.
func (t *tailer) reserve(ctx context.Context, rec int) error {
	need := int64(t.b.Size() + rec + t.hdr)
	if need <= t.resv {
		return nil
	}
	s := t.s
	if t.resv > 0 {
		want := need - t.resv
		more := max(want, min(s.step, int64(s.cfg.MaxEntryBytes)-t.resv))
		if more > want && s.budget.tryAcquire(more) {
			t.resv += more
			return nil
		}
		if s.budget.tryAcquire(want) {
			t.resv += want
			return nil
		}
		if t.b.Len() > 0 {
			if err := t.appendBatch(ctx); err != nil {
				return err
			}
		}
		t.releaseResv()
		need = int64(t.b.Size() + rec + t.hdr)
	}
	n := max(need, min(s.step, int64(s.cfg.MaxEntryBytes), s.budget.max))
	if err := s.budget.acquire(ctx, n); err != nil {
		return err
	}
	t.resv = n
	return nil
}

func (t *tailer) flushCounters() {
	c := t.s.cnt
	add := func(dst *atomic.Uint64, n *uint64) {
		if *n > 0 {
			dst.Add(*n)
			*n = 0
		}
	}
	if t.asm != nil {
		mc := t.asm.TakeCounts()
		t.nSplit += mc.Split
		t.nFlushed += mc.Flushed
	}
	if sk := t.fr.takeSkipped(); sk > 0 {
		c.skippedBytes.Add(sk)
	}
	add(&c.truncatedLines, &t.nTrunc)
	add(&c.partialLines, &t.nPartial)
	add(&c.escapedLines, &t.nEscaped)
	add(&c.transcodedLines, &t.nTransc)
	add(&c.skippedBytes, &t.nCut)
	add(&c.mlSplit, &t.nSplit)
	add(&c.mlFlushed, &t.nFlushed)
	add(&c.mlPartial, &t.nEntPart)
	// Lines and entries last: a reader that sees them sees the rest.
	add(&c.mlEntries, &t.nEntries)
	add(&c.lines, &t.nLines)
}

// releaseResv gives back the budget held for a payload not appended.
func (t *tailer) releaseResv() {
	if t.resv > 0 {
		t.s.budget.release(t.resv)
		t.resv = 0
	}
}

func (t *tailer) releaseBuilder() {
	t.releaseResv()
	if t.b != nil {
		t.b.Reset()
		t.s.builders.Put(t.b)
		t.b = nil
	}
}

// dropBatch forgets lines read but not yet appended: they are read again
// from the acknowledged position.
func (t *tailer) dropBatch() { t.releaseBuilder() }

// appendBatch hands the current payload to the WAL. Waiting for an in-flight
// slot and a blocked Append (WAL over budget) both stall reading; no lock a
// done callback needs is held meanwhile.
func (t *tailer) appendBatch(ctx context.Context) error {
	if t.hasFailed() {
		t.dropBatch()
		return errRewind
	}
	select {
	case t.slots <- struct{}{}:
	default:
		select {
		case t.slots <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	pp := t.s.payloads.get(t.b.Size() + t.hdr)
	*pp = t.b.AppendTo(*pp)
	e := &inflight{end: t.bEnd, mark: t.markFor(t.bEnd)}
	t.mu.Lock()
	t.queue = append(t.queue, e)
	t.mu.Unlock()
	t.b.Reset()
	// The reservation becomes the payload's exact size, held until its ack.
	charge := int64(len(*pp))
	if charge > t.resv {
		t.s.budget.force(charge - t.resv) // not expected: the estimate bounds it
	} else {
		t.s.budget.release(t.resv - charge)
	}
	t.resv = 0
	settle := func(idx uint64, err error) {
		t.settled(e, idx, err)
		t.s.payloads.put(pp)
		t.s.budget.release(charge)
	}

	start := time.Now()
	err := t.s.app.Append(ctx, *pp, settle)
	t.s.cnt.addWait(time.Since(start))
	if err != nil {
		settle(0, err)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return errRewind
	}
	return nil
}

// settled is the done callback of one payload (also called directly when
// Append refuses it). The acknowledged offset moves over the longest prefix
// of payloads, in append order, that all succeeded; after a failure it stops
// until the tailer rewinds.
func (t *tailer) settled(e *inflight, idx uint64, err error) {
	t.mu.Lock()
	if len(t.queue) > 0 && t.queue[0] != e {
		t.s.cnt.acksOutOfOrder.Add(1)
	}
	if err != nil {
		e.state = ackFailed
		if t.failErr == nil {
			t.failErr = err
		}
		if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
			t.s.cnt.appendErrors.Add(1)
		}
	} else {
		e.state, e.idx = ackOK, idx
	}
	advanced := false
	for len(t.queue) > 0 && t.queue[0].state != ackPending {
		h := t.queue[0]
		t.queue[0] = nil
		t.queue = t.queue[1:]
		if h.state == ackFailed {
			t.failed = true
		}
		if t.failed || h.end <= t.acked {
			continue
		}
		t.acked, t.ackIdx, t.ackMark, advanced = h.end, h.idx, h.mark, true
	}
	if advanced {
		t.s.cp.SetPosition(t.id, t.acked, t.ackIdx, t.metaLocked(t.ackMark, t.acked))
	}
	failed := t.failed
	t.mu.Unlock()
	<-t.slots
	if failed {
		t.poke()
	}
}

// settle waits until no payload is in flight, or ctx ends.
func (t *tailer) settle(ctx context.Context) bool { return t.fillSlots(ctx.Done(), nil) }

// fillSlots takes every in-flight slot (so every payload has settled), then
// gives them back.
func (t *tailer) fillSlots(done <-chan struct{}, timeout <-chan time.Time) bool {
	n := 0
	defer func() {
		for ; n > 0; n-- {
			<-t.slots
		}
	}()
	for n < cap(t.slots) {
		select {
		case t.slots <- struct{}{}:
			n++
		case <-done:
			return false
		case <-timeout:
			return false
		}
	}
	return true
}

// stop ends reading at shutdown: unappended lines are dropped (they are read
// again at the next start) and in-flight acks are awaited for StopTimeout.
func (t *tailer) stop() {
	t.dropBatch()
	timer := time.NewTimer(t.s.cfg.StopTimeout)
	defer timer.Stop()
	if !t.fillSlots(nil, timer.C) {
		t.s.log.Warn().Str("path", t.currentPath()).Msg("file: stopping with WAL acks still pending; their lines are read again at the next start")
	}
}

// rewind recovers from a failed append: wait for every payload in flight,
// then read again from the last acknowledged line after a backoff.
func (t *tailer) rewind(ctx context.Context) bool {
	t.dropBatch()
	if !t.settle(ctx) {
		return false
	}
	t.mu.Lock()
	off, err := t.acked, t.failErr
	t.failed, t.failErr = false, nil
	t.mu.Unlock()
	switch {
	case off > t.rewindAt || t.backoff == 0:
		t.backoff = minBackoff
	default:
		t.backoff = min(2*t.backoff, maxBackoff)
	}
	t.rewindAt = off
	t.s.log.Warn().Err(err).Str("path", t.currentPath()).Uint64("offset", off).Dur("retry_in", t.backoff).
		Msg("file: WAL append failed; reading again from the last captured line")
	timer := time.NewTimer(t.backoff)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
	}
	t.fr.reset(off)
	if off == t.startOff && t.startMid {
		t.fr.startMidLine()
	}
	if t.asm != nil {
		t.asm.Reset(off)
	}
	t.loadRing(off)
	t.readOff.Store(off)
	return true
}

// truncated handles a file that no longer holds what was read: truncated in
// place or by copytruncate, maybe regrown already. The lines read are kept.
// The rotated copy, when there is one (same directory, same head, the same
// bytes before the read position), is read from the read position to its
// end, so that what the writer added between our last read and the
// truncation is not lost; copies shorter than the read position are marked
// read. The incomplete last line is emitted with FlagPartial, and the file
// is read again from 0 under a new generation.
func (t *tailer) truncated(ctx context.Context, why identVerdict) error {
	t.mu.Lock()
	fp, path, oldID := t.fp, t.path, t.id
	m := meta{path: path, fp: fp, seen: t.seen}
	if t.stream != path {
		m.stream = t.stream
	}
	t.mu.Unlock()
	if t.b != nil && t.b.Len() > 0 {
		if err := t.appendBatch(ctx); err != nil && !errors.Is(err, errRewind) {
			return err
		}
	}
	off := t.fr.off
	var claimed []copyPos
	var recovered uint64
	copyFound := false
	if fp.n > 0 && off > 0 && t.ringEnd == off {
		tail := t.ring
		mark := t.markFor(off)
		for _, c := range t.s.findCopies(filepath.Dir(path), t.key, fp, off, mark, off, tail) {
			r, ok := t.s.reserveCopy(c, m)
			if !ok {
				continue
			}
			claimed = append(claimed, r)
			if c.read {
				copyFound = true
				n, err := t.readCopy(ctx, c)
				recovered += n
				if err != nil {
					if ctx.Err() != nil {
						return ctx.Err()
					}
					t.s.log.Warn().Err(err).Str("copy", c.path).Msg("file: reading the rotated copy failed")
				}
			}
		}
	}
	t.now = time.Now()
	t.ts = t.now.UnixNano()
	err := t.fr.flush(t.emitter(ctx))
	if err == nil && t.asm != nil {
		// The old content ends here: its last entry is complete.
		err = t.asm.FlushAll(t.entryEmitter(ctx))
	}
	if err == nil && t.b != nil && t.b.Len() > 0 {
		err = t.appendBatch(ctx)
	}
	t.releaseBuilder()
	t.flushCounters()
	if err != nil && !errors.Is(err, errRewind) {
		return err
	}
	if !t.settle(ctx) {
		return ctx.Err()
	}
	if copyFound {
		t.s.cnt.rotCopytruncate.Add(1)
		t.s.cnt.bytesRecovered.Add(recovered)
		t.s.log.Info().Str("path", path).Uint64("offset", off).Uint64("recovered", recovered).
			Msg("file: copytruncate; read the rest from the rotated copy")
	} else {
		t.s.cnt.truncations.Add(1)
		t.s.log.Warn().Str("path", path).Uint64("offset", off).Stringer("change", why).
			Msg("file: truncated; reading it again from the start")
	}
	for _, c := range claimed {
		t.s.cp.SetPosition(c.id, c.offset, 0, c.meta)
	}
	// The new generation's id is minted with its first bytes (see mintID).
	t.mu.Lock()
	if t.failed {
		t.s.log.Warn().Err(t.failErr).Str("id", oldID).Msg("file: lines before a truncation could not be captured")
	}
	t.id, t.acked, t.ackIdx, t.ackMark = "", 0, 0, fingerprint{}
	t.fp = fingerprint{}
	t.failed, t.failErr = false, nil
	t.mu.Unlock()
	t.s.deletePosition(oldID)
	t.hdr -= len(oldID)
	t.fr.reset(0)
	if t.asm != nil {
		t.asm.Reset(0)
	}
	t.startOff, t.startMid, t.rewindAt, t.fpDone, t.lastSize = 0, false, 0, false, 0
	t.ring, t.ringEnd = t.ring[:0], 0
	t.readOff.Store(0)
	return nil
}

// readCopy reads a rotated copy from the read position to its end.
func (t *tailer) readCopy(ctx context.Context, c copyMatch) (uint64, error) {
	f, err := os.Open(c.path)
	if err != nil {
		return 0, fmt.Errorf("file: open copy: %w", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil {
		return 0, fmt.Errorf("file: stat copy: %w", err)
	} else if k, ok := keyOf(fi); !ok || k != c.key {
		return 0, errors.New("file: copy replaced before it was read")
	}
	return t.readFrom(ctx, f)
}

// mintID gives the file's generation its id, once its first bytes are
// read: the id carries the fingerprint of its head as far as it exists.
func (t *tailer) mintID() {
	fp, err := computeFingerprint(t.f, t.s.cfg.FingerprintBytes)
	if err != nil {
		fp = fingerprint{}
	}
	id := formatID(t.key, t.s.nextGen(), fp)
	t.mu.Lock()
	t.id = id
	if fp.n > t.fp.n {
		t.fp = fp
	}
	t.mu.Unlock()
	t.fpDone = int(t.fp.n) >= t.s.cfg.FingerprintBytes
	t.hdr += len(id)
}

// refreshFingerprint takes the head fingerprint at open and extends it while
// the file is shorter than FingerprintBytes, so that a file that grew is
// recognised by its full head later.
func (t *tailer) refreshFingerprint() {
	if t.fpDone {
		return
	}
	fp, err := computeFingerprint(t.f, t.s.cfg.FingerprintBytes)
	if err != nil || fp.n <= t.fp.n {
		return
	}
	t.mu.Lock()
	t.fp = fp
	t.mu.Unlock()
	t.fpDone = int(fp.n) >= t.s.cfg.FingerprintBytes
}
