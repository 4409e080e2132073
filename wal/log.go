package wal

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	tidwall "github.com/tidwall/wal"
)

// ErrClosed is returned by Append after the log stopped.
var ErrClosed = errors.New("wal: closed")

// ErrTooLarge is returned for a payload above MaxEntryBytes.
var ErrTooLarge = errors.New("wal: payload larger than max_entry_bytes")

// appendReq is one queued payload waiting for its index and fsync.
type appendReq struct {
	payload []byte // owned by the caller until done; never modified here
	crc     uint32 // computed on the caller's goroutine, off the commit path
	done    func(index uint64, err error)
}

// Log is the segmented write-ahead log. Open it, start Run in one goroutine,
// then Append from any goroutine and read with NewReader.
type Log struct {
	dir    string
	cfg    Config
	logger zerolog.Logger
	m      *metrics

	reqs chan appendReq

	// tw is replaced only by the Run goroutine (on recovery) while holding
	// twMu for writing; readers and compaction hold it for reading.
	twMu sync.RWMutex
	tw   *tidwall.Log

	committed atomic.Uint64 // last fsynced index
	diskBytes atomic.Int64  // bytes of all segments on disk
	curSeg    int64         // bytes in the tail segment, as tidwall counts them (Run only)

	notifyMu sync.Mutex
	notify   chan struct{} // closed and replaced at every commit

	budgetMu   sync.Mutex
	budgetCond chan struct{} // closed and replaced whenever budget may have freed
	blocked    atomic.Bool
	failed     atomic.Pointer[error] // the error that put the log into recovery
	stopped    atomic.Bool
	running    atomic.Bool
	stop       chan struct{}
	runDone    chan struct{}

	cursorsMu sync.Mutex
	cursors   map[string]*Cursor

	repairs []Repair
}

// Open opens or creates the log in dir, repairing a torn tail first.
// It starts no goroutine: call Run.
func Open(dir string, cfg Config, logger zerolog.Logger, reg prometheus.Registerer) (*Log, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("wal: create %s: %w", dir, err)
	}
	l := &Log{
		dir:        dir,
		cfg:        cfg,
		logger:     logger.With().Str("component", "wal").Logger(),
		m:          m,
		reqs:       make(chan appendReq, 256),
		notify:     make(chan struct{}),
		budgetCond: make(chan struct{}),
		stop:       make(chan struct{}),
		runDone:    make(chan struct{}),
		cursors:    map[string]*Cursor{},
	}
	if err := l.open(); err != nil {
		return nil, err
	}
	return l, nil
}

// open repairs the tail and opens tidwall/wal on dir. Used at start-up and
// after a write error.
func (l *Log) open() error {
	rep, err := repairTail(l.dir)
	if err != nil {
		return err
	}
	if rep != nil {
		l.repairs = append(l.repairs, *rep)
		l.m.repairs.Inc()
		l.m.repairedBytes.Add(float64(rep.BadBytes))
		l.logger.Warn().Str("segment", rep.Segment).Int64("offset", rep.Offset).
			Int64("bad_bytes", rep.BadBytes).Uint64("first_bad_index", rep.Index).
			Int("kept_entries", rep.KeptEntries).Str("reason", rep.Reason).Str("saved_as", rep.SavedAs).
			Msg("wal: cut a torn or corrupt tail at open")
	}
	tw, err := tidwall.Open(l.dir, &tidwall.Options{
		NoSync:           true, // we fsync ourselves, once per group
		SegmentSize:      int(l.cfg.SegmentSize),
		LogFormat:        tidwall.Binary,
		SegmentCacheSize: l.cfg.SegmentCache,
		// Readers get slices of the segment buffers, not copies: segment
		// bytes are never modified once written, and nobody writes to what
		// Read returns (see Reader.Read).
		NoCopy:     true,
		AllowEmpty: true,
		DirPerms:   0o750,
		FilePerms:  0o640,
	})
	if err != nil {
		return fmt.Errorf("wal: open %s: %w", l.dir, err)
	}
	last, err := tw.LastIndex()
	if err != nil {
		tw.Close()
		return fmt.Errorf("wal: open %s: %w", l.dir, err)
	}
	segs, err := listSegments(l.dir)
	if err != nil {
		tw.Close()
		return err
	}
	var total int64
	for _, s := range segs {
		total += s.Size
	}
	if len(segs) > 0 {
		l.curSeg = segs[len(segs)-1].Size
	}
	l.twMu.Lock()
	l.tw = tw
	l.twMu.Unlock()
	l.diskBytes.Store(total)
	l.committed.Store(last) // everything on disk after repair was fsynced or is now
	l.m.segments.Set(float64(len(segs)))
	l.m.diskBytes.Set(float64(total))
	l.m.lastIndex.Set(float64(last))
	l.m.committed.Set(float64(last))
	return nil
}

// Repairs returns the tail repairs done since Open.
func (l *Log) Repairs() []Repair { return append([]Repair(nil), l.repairs...) }

// Dir returns the log's directory.
func (l *Log) Dir() string { return l.dir }

// CommittedIndex is the index of the last fsynced entry (0 for none).
func (l *Log) CommittedIndex() uint64 { return l.committed.Load() }

// FirstIndex is the index of the oldest entry still on disk.
func (l *Log) FirstIndex() (uint64, error) {
	l.twMu.RLock()
	defer l.twMu.RUnlock()
	return l.tw.FirstIndex()
}

// DiskBytes is the size of all segments.
func (l *Log) DiskBytes() int64 { return l.diskBytes.Load() }

// Backpressure reports whether appends are waiting for disk budget or for
// recovery from a write error, and why.
func (l *Log) Backpressure() (bool, string) {
	if p := l.failed.Load(); p != nil {
		return true, "recovering from write error: " + (*p).Error()
	}
	if l.blocked.Load() {
		return true, fmt.Sprintf("disk budget reached (%d of %d bytes)", l.diskBytes.Load(), l.cfg.MaxSize)
	}
	return false, ""
}

// Append queues payload for the log. done is called exactly once, from the
// log's goroutine, with the entry's index after the fsync that covers it, or
// with an error; it must not block. The log reads payload until it calls
// done, so the caller must not modify it before then; when Append returns an
// error, done is not called and payload is not kept. Append blocks while the disk budget is
// exhausted or the log is recovering, until ctx ends.
func (l *Log) Append(ctx context.Context, payload []byte, done func(index uint64, err error)) error {
	if len(payload) > l.cfg.MaxEntryBytes {
		return fmt.Errorf("%w: %d > %d", ErrTooLarge, len(payload), l.cfg.MaxEntryBytes)
	}
	if err := l.waitForRoom(ctx); err != nil {
		return err
	}
	req := appendReq{payload: payload, crc: checksum(payload), done: done}
	// Reserve the bytes now, so that queued entries count against the budget.
	sz := diskSize(len(payload) + entryHeaderSize)
	l.diskBytes.Add(sz)
	select {
	case l.reqs <- req:
		return nil
	case <-l.stop:
		l.diskBytes.Add(-sz)
		return ErrClosed
	case <-ctx.Done():
		l.diskBytes.Add(-sz)
		return ctx.Err()
	}
}

// waitForRoom blocks while the budget is exhausted or the log is failed.
func (l *Log) waitForRoom(ctx context.Context) error {
	var start time.Time
	for {
		if l.stopped.Load() {
			return ErrClosed
		}
		l.budgetMu.Lock()
		ch := l.budgetCond
		l.budgetMu.Unlock()
		over := l.diskBytes.Load() >= l.cfg.MaxSize
		if !over && l.failed.Load() == nil {
			if !start.IsZero() {
				l.m.blockedSecs.Add(time.Since(start).Seconds())
			}
			return nil
		}
		if start.IsZero() {
			start = time.Now()
			if over && l.blocked.CompareAndSwap(false, true) {
				l.m.blocked.Set(1)
				l.logger.Warn().Int64("disk_bytes", l.diskBytes.Load()).Int64("max_size", l.cfg.MaxSize).
					Msg("wal: disk budget reached, sources wait (backpressure)")
			}
		}
		select {
		case <-ch:
		case <-time.After(time.Second):
		case <-l.stop:
			return ErrClosed
		case <-ctx.Done():
			l.m.blockedSecs.Add(time.Since(start).Seconds())
			return ctx.Err()
		}
	}
}

// wakeBudget wakes appenders waiting for room.
func (l *Log) wakeBudget() {
	l.budgetMu.Lock()
	close(l.budgetCond)
	l.budgetCond = make(chan struct{})
	l.budgetMu.Unlock()
	if l.diskBytes.Load() < l.cfg.MaxSize && l.blocked.CompareAndSwap(true, false) {
		l.m.blocked.Set(0)
		l.logger.Info().Msg("wal: disk budget available again")
	}
}

// Run owns appends: it writes queued payloads, fsyncs once per group and
// acknowledges them, and compacts delivered segments. It returns when ctx
// ends, after committing what was queued, and closes the log.
func (l *Log) Run(ctx context.Context) error {
	if !l.running.CompareAndSwap(false, true) {
		return errors.New("wal: Run called twice")
	}
	defer close(l.runDone)
	var (
		pending      []appendReq
		unsynced     int64
		batch        tidwall.Batch
		timer        = time.NewTimer(time.Hour)
		timerArmed   bool
		compactTick  = time.NewTicker(l.cfg.CompactInterval)
		newSegment   bool
		lastRecovery time.Time
		lastSync     time.Time
		scratch      []byte
	)
	timer.Stop()
	defer compactTick.Stop()

	commit := func() {
		if len(pending) == 0 {
			return
		}
		start := time.Now()
		var err error
		if !l.cfg.NoSync {
			l.twMu.RLock()
			err = l.tw.Sync()
			l.twMu.RUnlock()
			if err == nil && newSegment {
				err = syncDir(l.dir)
			}
		}
		if err != nil {
			l.fail(fmt.Errorf("wal: fsync: %w", err), pending)
		} else {
			lastSync = time.Now()
			l.m.fsyncs.Inc()
			l.m.fsyncSeconds.Observe(time.Since(start).Seconds())
			l.m.batchEntries.Observe(float64(len(pending)))
			l.m.entries.Add(float64(len(pending)))
			l.m.bytes.Add(float64(unsynced))
			first := l.committed.Load() + 1
			l.committed.Add(uint64(len(pending)))
			l.m.committed.Set(float64(l.committed.Load()))
			l.broadcast()
			for i, r := range pending {
				r.done(first+uint64(i), nil)
			}
		}
		clear(pending)
		pending = pending[:0]
		unsynced = 0
		newSegment = false
		if timerArmed {
			timer.Stop()
			timerArmed = false
		}
	}

	write := func(reqs []appendReq) {
		idx := l.committed.Load() + uint64(len(pending))
		batch.Clear()
		var n int64
		for i, r := range reqs {
			// tidwall copies the data into its batch, so one scratch buffer
			// serves every entry: no allocation per append.
			scratch = frameWithCRC(scratch[:0], r.payload, r.crc)
			batch.Write(idx+uint64(i)+1, scratch)
			// Mirror tidwall's segment cycling so the directory is fsynced
			// whenever a new segment file appeared.
			if l.curSeg > l.cfg.SegmentSize {
				l.curSeg = 0
				newSegment = true
			}
			sz := diskSize(len(r.payload) + entryHeaderSize)
			l.curSeg += sz
			n += sz
			if l.curSeg >= l.cfg.SegmentSize {
				l.curSeg = 0
				newSegment = true
			}
		}
		l.twMu.RLock()
		err := l.tw.WriteBatch(&batch)
		l.twMu.RUnlock()
		if err != nil {
			l.fail(fmt.Errorf("wal: write: %w", err), append(pending, reqs...))
			clear(pending)
			pending = pending[:0]
			unsynced = 0
			return
		}
		l.m.diskBytes.Set(float64(l.diskBytes.Load()))
		l.m.lastIndex.Set(float64(idx + uint64(len(reqs))))
		pending = append(pending, reqs...)
		unsynced += n
	}

	var drained []appendReq
	for {
		if l.failed.Load() != nil {
			// Recover: reopen (with tail repair), at most once a second.
			wait := time.Until(lastRecovery.Add(time.Second))
			select {
			case <-ctx.Done():
				return l.shutdown(nil)
			case <-time.After(wait):
			}
			lastRecovery = time.Now()
			if err := l.recover(); err != nil {
				l.logger.Error().Err(err).Msg("wal: recovery failed, retrying")
				continue
			}
		}
		select {
		case <-ctx.Done():
			// Commit what is written, then what is still queued.
			commit()
			return l.shutdown(func() {
				for {
					select {
					case r := <-l.reqs:
						write([]appendReq{r})
						commit()
					default:
						return
					}
				}
			})
		case r := <-l.reqs:
			drained = append(drained[:0], r)
		drain:
			for len(drained) < 1024 {
				select {
				case r := <-l.reqs:
					drained = append(drained, r)
				default:
					break drain
				}
			}
			write(drained)
			clear(drained)
			if l.failed.Load() != nil {
				continue
			}
			if l.cfg.SyncInterval == 0 || unsynced >= l.cfg.SyncBytes || l.cfg.NoSync {
				if len(l.reqs) == 0 || unsynced >= l.cfg.SyncBytes {
					commit()
				}
			} else if !timerArmed && len(pending) > 0 {
				// The interval caps the fsync rate; it is not a delay: an
				// entry arriving after a quiet spell is synced at once.
				wait := time.Until(lastSync.Add(l.cfg.SyncInterval))
				if wait <= 0 && len(l.reqs) == 0 {
					commit()
				} else {
					timer.Reset(max(wait, 0))
					timerArmed = true
				}
			}
		case <-timer.C:
			timerArmed = false
			commit()
		case <-compactTick.C:
			commit()
			if err := l.compact(false); err != nil {
				l.logger.Error().Err(err).Msg("wal: compaction failed")
			}
		}
		if l.blocked.Load() && len(pending) == 0 {
			// Under budget pressure, look for delivered segments at once.
			if err := l.compact(true); err != nil {
				l.logger.Error().Err(err).Msg("wal: compaction failed")
			}
		}
	}
}

// fail puts the log into recovery and fails the given requests.
func (l *Log) fail(err error, reqs []appendReq) {
	l.m.writeErrors.Inc()
	l.failed.Store(&err)
	l.m.blocked.Set(1)
	l.logger.Error().Err(err).Int("failed_appends", len(reqs)).
		Msg("wal: write error; failing pending appends and reopening the log")
	for _, r := range reqs {
		r.done(0, err)
	}
}

// recover closes tidwall and reopens it from disk, repairing the tail.
func (l *Log) recover() error {
	l.twMu.Lock()
	_ = l.tw.Close()
	l.twMu.Unlock()
	if err := l.open(); err != nil {
		// Leave a closed log in place; the next attempt reopens it.
		return err
	}
	l.failed.Store(nil)
	if !l.blocked.Load() {
		l.m.blocked.Set(0)
	}
	l.logger.Info().Uint64("last_index", l.committed.Load()).Msg("wal: recovered after write error")
	l.broadcast()
	l.wakeBudget()
	return nil
}

// shutdown stops accepting appends, runs flush, fails what is left and closes.
func (l *Log) shutdown(flush func()) error {
	l.stopped.Store(true)
	close(l.stop)
	if flush != nil {
		flush()
	}
	for {
		select {
		case r := <-l.reqs:
			r.done(0, ErrClosed)
		default:
			l.broadcast()
			l.wakeBudget()
			l.twMu.Lock()
			err := l.tw.Close()
			l.twMu.Unlock()
			if err != nil && !errors.Is(err, tidwall.ErrClosed) {
				return fmt.Errorf("wal: close: %w", err)
			}
			return nil
		}
	}
}

// Close releases the log's files when Run was never started; after Run it
// does nothing (Run closes the log when its ctx ends).
func (l *Log) Close() error {
	if !l.running.CompareAndSwap(false, true) {
		return nil
	}
	close(l.runDone)
	return l.shutdown(nil)
}

// Done is closed when Run has returned.
func (l *Log) Done() <-chan struct{} { return l.runDone }

// broadcast wakes readers waiting for new entries.
func (l *Log) broadcast() {
	l.notifyMu.Lock()
	close(l.notify)
	l.notify = make(chan struct{})
	l.notifyMu.Unlock()
}

func (l *Log) waitCh() <-chan struct{} {
	l.notifyMu.Lock()
	defer l.notifyMu.Unlock()
	return l.notify
}
