package file

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/logcapturer/log_capturer_go/wal/record"
)

// errRewind says an append failed: the tailer must wait for its in-flight
// payloads, then read again from the last acknowledged line.
var errRewind = errors.New("file: append failed")

// recordOverhead bounds the per-line framing a Builder adds.
const recordOverhead = 48

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
	end   uint64 // end offset of its last line
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
	labels *record.LabelSet
	hdr    int           // payload header estimate: source id and labels
	wake   chan struct{} // hints: data written, ack failed, file left
	slots  chan struct{} // one token per payload in flight

	fr       framer
	b        *record.Builder
	bEnd     uint64
	ts       int64
	startOff uint64
	startMid bool
	lastData time.Time
	backoff  time.Duration
	rewindAt uint64
	fpDone   bool
	nLines   uint64
	nTrunc   uint64
	nPartial uint64

	readOff atomic.Uint64

	mu       sync.Mutex
	id       string
	path     string
	fp       fingerprint
	metaEnc  []byte // never modified once set: the checkpointer may keep it
	acked    uint64
	ackIdx   uint64
	queue    []*inflight
	failed   bool
	failErr  error
	orphaned bool
	leftAt   time.Time
	size     uint64
}

func newTailer(s *Source, f *os.File, key fileKey, path string, size uint64, st startPoint) *tailer {
	t := &tailer{
		s:        s,
		f:        f,
		key:      key,
		labels:   s.labelsFor(path),
		wake:     make(chan struct{}, 1),
		slots:    make(chan struct{}, s.cfg.MaxInflight),
		fr:       newFramer(s.cfg.MaxLineBytes, st.offset),
		startOff: st.offset,
		startMid: st.midLine,
		lastData: time.Now(),
		rewindAt: st.offset,
		id:       st.id,
		path:     path,
		fp:       st.fp,
		acked:    st.offset,
		size:     size,
	}
	if st.midLine {
		t.fr.startMidLine()
	}
	t.fpDone = int(st.fp.n) >= s.cfg.FingerprintBytes
	t.metaEnc = meta{path: path, fp: st.fp}.encode()
	t.hdr = len(st.id) + 32
	for _, l := range t.labels.Labels() {
		t.hdr += len(l.Name) + len(l.Value) + 2*4
	}
	t.readOff.Store(st.offset)
	return t
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
// path. A file that had left its path and came back is followed again.
func (t *tailer) seenAt(path string) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.path
	if path != old {
		t.path = path
		t.metaEnc = meta{path: path, fp: t.fp}.encode()
	}
	t.orphaned = false
	return old
}

// leave marks the file as no longer at any matched path. It reports the
// path and whether this is news.
func (t *tailer) leave() (string, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.orphaned {
		return t.path, false
	}
	t.orphaned, t.leftAt = true, time.Now()
	t.poke()
	return t.path, true
}

func (t *tailer) info() PositionInfo {
	t.mu.Lock()
	defer t.mu.Unlock()
	return PositionInfo{
		ID:          t.id,
		Path:        t.path,
		ReadOffset:  t.readOff.Load(),
		AckedOffset: t.acked,
		Size:        t.size,
		InFlight:    len(t.queue),
		Draining:    t.orphaned,
	}
}

func (t *tailer) hasFailed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.failed
}

func (t *tailer) run(ctx context.Context) {
	hb := t.loop(ctx)
	t.flushCounters()
	_ = t.f.Close()
	t.s.tailerExited(t, hb)
}

// loop reads until ctx ends, the file is drained after leaving its path, or a
// read error; it returns the position to hand back (nil at shutdown).
func (t *tailer) loop(ctx context.Context) *resumeEntry {
	timer := time.NewTimer(t.s.cfg.PollInterval)
	defer timer.Stop()
	for {
		if ctx.Err() != nil {
			t.stop()
			return nil
		}
		if t.hasFailed() {
			if !t.rewind(ctx) {
				t.stop()
				return nil
			}
			continue
		}
		n, err := t.readToEOF(ctx)
		t.flushCounters()
		switch {
		case ctx.Err() != nil:
			t.stop()
			return nil
		case errors.Is(err, errRewind):
			continue
		case err != nil:
			return t.failRead(ctx, err)
		}
		if n > 0 {
			t.lastData = time.Now()
		}
		truncated, err := t.checkSize(ctx)
		switch {
		case ctx.Err() != nil:
			t.stop()
			return nil
		case err != nil:
			return t.failRead(ctx, err)
		case truncated, n > 0:
			// Read again before sleeping: more may have arrived meanwhile.
			continue
		}
		if t.drained() {
			if hb, ok := t.finish(ctx); ok {
				return hb
			}
			continue
		}
		timer.Reset(t.s.cfg.PollInterval)
		select {
		case <-ctx.Done():
		case <-t.wake:
		case <-timer.C:
		}
	}
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
	_, gen, _ := parseID(t.id)
	return &resumeEntry{key: t.key, id: t.id, gen: gen, offset: t.acked, meta: meta{path: t.path, fp: t.fp}, hasMeta: true}
}

// drained reports whether the file left its path and has not grown for
// RotateWait: its writer has moved on.
func (t *tailer) drained() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.orphaned {
		return false
	}
	since := t.leftAt
	if t.lastData.After(since) {
		since = t.lastData
	}
	return time.Since(since) >= t.s.cfg.RotateWait
}

// readToEOF reads and frames everything up to the end of the file, appending
// full payloads as it goes and the last one at EOF.
func (t *tailer) readToEOF(ctx context.Context) (uint64, error) {
	bp := t.s.readBufs.Get().(*[]byte)
	defer t.s.readBufs.Put(bp)
	buf := *bp
	emit := t.emitter(ctx)
	var total uint64
	for {
		n, err := t.f.ReadAt(buf, int64(t.fr.off))
		if n > 0 {
			t.ts = time.Now().UnixNano()
			if ferr := t.fr.feed(buf[:n], emit); ferr != nil {
				return total, ferr
			}
			total += uint64(n)
			t.readOff.Store(t.fr.off)
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return total, fmt.Errorf("file: read %s: %w", t.currentPath(), err)
		}
		if ctx.Err() != nil {
			return total, ctx.Err()
		}
	}
	if total > 0 {
		t.s.cnt.bytes.Add(total)
		t.refreshFingerprint()
	}
	if t.b != nil && t.b.Len() > 0 {
		if err := t.appendBatch(ctx); err != nil {
			return total, err
		}
	}
	t.releaseBuilder()
	return total, nil
}

func (t *tailer) emitter(ctx context.Context) emitFunc {
	return func(line []byte, end uint64, flags record.Flags) error {
		return t.add(ctx, line, end, flags)
	}
}

// add puts one line into the current payload, appending the payload first
// when the line would take it past MaxEntryBytes.
func (t *tailer) add(ctx context.Context, line []byte, end uint64, flags record.Flags) error {
	if t.b == nil {
		t.b = t.s.builders.Get().(*record.Builder)
		t.b.Reset()
	}
	if t.b.Len() > 0 && t.b.Size()+len(line)+recordOverhead+t.hdr > t.s.cfg.MaxEntryBytes {
		if err := t.appendBatch(ctx); err != nil {
			return err
		}
	}
	t.b.Add(t.id, t.labels, end, t.ts, flags, nil, line)
	t.bEnd = end
	t.nLines++
	if flags&record.FlagTruncated != 0 {
		t.nTrunc++
	}
	if flags&record.FlagPartial != 0 {
		t.nPartial++
	}
	return nil
}

func (t *tailer) flushCounters() {
	c := t.s.cnt
	if t.nLines > 0 {
		c.lines.Add(t.nLines)
		t.nLines = 0
	}
	if t.nTrunc > 0 {
		c.truncatedLines.Add(t.nTrunc)
		t.nTrunc = 0
	}
	if t.nPartial > 0 {
		c.partialLines.Add(t.nPartial)
		t.nPartial = 0
	}
	if sk := t.fr.takeSkipped(); sk > 0 {
		c.skippedBytes.Add(sk)
	}
}

func (t *tailer) releaseBuilder() {
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
	pp := t.s.payloads.Get().(*[]byte)
	*pp = t.b.AppendTo((*pp)[:0])
	e := &inflight{end: t.bEnd}
	t.mu.Lock()
	t.queue = append(t.queue, e)
	t.mu.Unlock()
	t.b.Reset()

	start := time.Now()
	err := t.s.app.Append(ctx, *pp, func(idx uint64, err error) {
		t.settled(e, idx, err)
		t.s.payloads.Put(pp)
	})
	t.s.cnt.addWait(time.Since(start))
	if err != nil {
		t.settled(e, 0, err)
		t.s.payloads.Put(pp)
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
		t.acked, t.ackIdx, advanced = h.end, h.idx, true
	}
	if advanced {
		t.s.cp.SetPosition(t.id, t.acked, t.ackIdx, t.metaEnc)
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
	t.readOff.Store(off)
	return true
}

// checkSize notices truncation: a file shorter than what was read was cut
// (copytruncate or a writer that truncates). The lines read before are kept;
// the file is read again from 0 under a new generation id.
func (t *tailer) checkSize(ctx context.Context) (bool, error) {
	fi, err := t.f.Stat()
	if err != nil {
		return false, fmt.Errorf("file: stat %s: %w", t.currentPath(), err)
	}
	size := uint64(fi.Size())
	t.mu.Lock()
	t.size = size
	t.mu.Unlock()
	if size >= t.fr.off {
		return false, nil
	}
	t.s.cnt.truncations.Add(1)
	t.s.log.Warn().Str("path", t.currentPath()).Uint64("offset", t.fr.off).Uint64("size", size).
		Msg("file: truncated; reading it again from the start")
	emit := t.emitter(ctx)
	err = t.fr.flush(emit)
	if err == nil && t.b != nil && t.b.Len() > 0 {
		err = t.appendBatch(ctx)
	}
	t.releaseBuilder()
	t.flushCounters()
	if err != nil && !errors.Is(err, errRewind) {
		return false, err
	}
	if !t.settle(ctx) {
		return false, ctx.Err()
	}
	newID := formatID(t.key, t.s.nextGen())
	t.mu.Lock()
	oldID := t.id
	if t.failed {
		t.s.log.Warn().Err(t.failErr).Str("id", oldID).Msg("file: lines before a truncation could not be captured")
	}
	t.id, t.acked, t.ackIdx = newID, 0, 0
	t.fp = fingerprint{}
	t.metaEnc = meta{path: t.path, fp: t.fp}.encode()
	t.failed, t.failErr = false, nil
	metaEnc := t.metaEnc
	t.mu.Unlock()
	t.s.cp.SetPosition(newID, 0, 0, metaEnc)
	t.s.cp.DeletePosition(oldID)
	t.hdr += len(newID) - len(oldID)
	t.fr.reset(0)
	t.startOff, t.startMid, t.rewindAt, t.fpDone = 0, false, 0, false
	t.readOff.Store(0)
	return true, nil
}

// finish ends a file that left its path and stopped growing: the held-back
// incomplete line is emitted with FlagPartial, the last payload appended and
// acknowledged. ok is false when an append failed (the loop rewinds) or ctx
// ended.
func (t *tailer) finish(ctx context.Context) (hb *resumeEntry, ok bool) {
	t.ts = time.Now().UnixNano()
	err := t.fr.flush(t.emitter(ctx))
	if err == nil && t.b != nil && t.b.Len() > 0 {
		err = t.appendBatch(ctx)
	}
	t.releaseBuilder()
	t.flushCounters()
	if err != nil || !t.settle(ctx) || t.hasFailed() {
		return nil, false
	}
	t.s.log.Info().Str("path", t.currentPath()).Msg("file: drained and closed")
	return t.handBack(), true
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
	t.metaEnc = meta{path: t.path, fp: fp}.encode()
	t.mu.Unlock()
	t.fpDone = int(fp.n) >= t.s.cfg.FingerprintBytes
}
