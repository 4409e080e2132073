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

	// segs lists the segment files, oldest first; the last is the tail. The
	// slice is replaced, never modified in place, under segMu held for
	// writing (by Run: new segment, compaction, recovery); readers hold it
	// for reading while they look a segment up and open it, so that a file
	// is never removed between the two.
	segMu sync.RWMutex
	segs  []segment

	tail   tailWriter                  // Run only
	commit atomic.Pointer[commitPoint] // last fsynced entry and where it ends

	diskBytes atomic.Int64 // bytes of all segments on disk

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

// open finishes a truncation left half done, repairs the tail and opens the
// tail segment for appending. Used at start-up and after a write error.
func (l *Log) open() error {
	if err := resolveTransient(l.dir); err != nil {
		return err
	}
	rep, tailEntries, err := repairTail(l.dir)
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
	files, err := listSegments(l.dir)
	if err != nil {
		return err
	}
	if len(files) == 0 {
		// A new log: its first segment starts at index 1.
		seg := newSegment(l.dir, 1)
		f, err := os.OpenFile(seg.path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o640)
		if err != nil {
			return fmt.Errorf("wal: create %s: %w", seg.path, err)
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("wal: create %s: %w", seg.path, err)
		}
		if err := syncDir(l.dir); err != nil {
			return err
		}
		files = []segmentFile{{First: 1, Name: seg.name, Path: seg.path}}
	}
	segs := make([]segment, len(files))
	var total int64
	for i, s := range files {
		segs[i] = segment{first: s.First, name: s.Name, path: s.Path}
		total += s.Size
	}
	tailFile := files[len(files)-1]
	f, err := os.OpenFile(tailFile.Path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("wal: open %s: %w", tailFile.Path, err)
	}
	// What is on disk counts as captured from now on, so make it durable:
	// after a failed fsync, entries written before it are still in the
	// file, and a segment created just before may not be in the directory.
	if !l.cfg.NoSync {
		err := f.Sync()
		if err == nil {
			err = syncDir(l.dir)
		}
		if err != nil {
			f.Close()
			return fmt.Errorf("wal: sync %s: %w", tailFile.Path, err)
		}
	}
	last := tailFile.First + uint64(tailEntries) - 1
	l.tail = tailWriter{f: f, seg: segs[len(segs)-1], size: tailFile.Size, last: last, buf: l.tail.buf[:0]}
	l.segMu.Lock()
	l.segs = segs
	l.segMu.Unlock()
	l.commit.Store(&commitPoint{index: last, tailFirst: tailFile.First, tailEnd: tailFile.Size})
	l.diskBytes.Store(total)
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
func (l *Log) CommittedIndex() uint64 { return l.commit.Load().index }

// FirstIndex is the index of the oldest entry still on disk (the next index
// to be written when the log holds none).
func (l *Log) FirstIndex() (uint64, error) {
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	return l.segs[0].first, nil
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
		timer        = time.NewTimer(time.Hour)
		timerArmed   bool
		compactTick  = time.NewTicker(l.cfg.CompactInterval)
		lastRecovery time.Time
		lastSync     time.Time
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
			err = l.tail.sync(l.dir)
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
			first := l.tail.last - uint64(len(pending)) + 1
			l.commit.Store(&commitPoint{index: l.tail.last, tailFirst: l.tail.seg.first, tailEnd: l.tail.size})
			l.m.committed.Set(float64(l.tail.last))
			l.broadcast()
			for i, r := range pending {
				r.done(first+uint64(i), nil)
			}
		}
		clear(pending)
		pending = pending[:0]
		unsynced = 0
		if timerArmed {
			timer.Stop()
			timerArmed = false
		}
	}

	write := func(reqs []appendReq) {
		var n int64
		err := func() error {
			for _, r := range reqs {
				if l.tail.size >= l.cfg.SegmentSize {
					if err := l.cycle(); err != nil {
						return err
					}
				}
				if err := l.tail.appendEntry(r.payload, r.crc); err != nil {
					return err
				}
				n += diskSize(len(r.payload) + entryHeaderSize)
			}
			return l.tail.flush()
		}()
		if err != nil {
			l.fail(fmt.Errorf("wal: write: %w", err), append(pending, reqs...))
			clear(pending)
			pending = pending[:0]
			unsynced = 0
			return
		}
		l.m.diskBytes.Set(float64(l.diskBytes.Load()))
		l.m.lastIndex.Set(float64(l.tail.last))
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

// cycle seals the tail segment and starts the next one (Run only).
func (l *Log) cycle() error {
	if err := l.tail.cycle(l.dir, l.cfg.NoSync); err != nil {
		return err
	}
	l.segMu.Lock()
	l.segs = append(l.segs[:len(l.segs):len(l.segs)], l.tail.seg)
	n := len(l.segs)
	l.segMu.Unlock()
	l.m.segments.Set(float64(n))
	return nil
}

// recover closes the tail and reopens the log from disk, repairing the tail.
func (l *Log) recover() error {
	if l.tail.f != nil {
		_ = l.tail.f.Close() // the error that brought us here was reported
		l.tail.f = nil
	}
	l.tail.buf = l.tail.buf[:0]
	if err := l.open(); err != nil {
		// Leave a closed log in place; the next attempt reopens it.
		return err
	}
	l.failed.Store(nil)
	if !l.blocked.Load() {
		l.m.blocked.Set(0)
	}
	l.logger.Info().Uint64("last_index", l.CommittedIndex()).Msg("wal: recovered after write error")
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
			if err := l.tail.close(l.cfg.NoSync); err != nil {
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
