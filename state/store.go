package state

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Options tune a Store. The zero value is valid: every zero field takes its
// default.
type Options struct {
	// OpenTimeout bounds the wait for the file lock. bbolt would wait forever
	// with 0, so 0 means the default (1s); a second instance fails with
	// ErrLocked after at most this long.
	OpenTimeout time.Duration
	// FlushInterval is Run's commit period (default 1s).
	FlushInterval time.Duration
	// NoSync skips fsync on commit. Only for tests and benchmarks: a crash
	// may then lose or corrupt the file.
	NoSync bool
	// Registerer receives the metrics; nil means they are not registered.
	Registerer prometheus.Registerer
}

const (
	defaultOpenTimeout   = time.Second
	defaultFlushInterval = time.Second
)

// Validate rejects negative durations.
func (o Options) Validate() error {
	if o.OpenTimeout < 0 {
		return fmt.Errorf("state: open_timeout %s is negative", o.OpenTimeout)
	}
	if o.FlushInterval < 0 {
		return fmt.Errorf("state: flush_interval %s is negative", o.FlushInterval)
	}
	return nil
}

func (o Options) withDefaults() Options {
	if o.OpenTimeout == 0 {
		o.OpenTimeout = defaultOpenTimeout
	}
	if o.FlushInterval == 0 {
		o.FlushInterval = defaultFlushInterval
	}
	return o
}

// Store is the open state file. Its methods are safe for concurrent use.
type Store struct {
	path    string
	opts    Options
	log     zerolog.Logger
	metrics *metrics
	db      *bolt.DB

	mu   sync.Mutex // guards pend
	pend pending

	// commitSem admits one commit (or Close) at a time; a channel rather
	// than a mutex so a Flush waiting for it can give up on its ctx.
	commitSem chan struct{}
	closed    atomic.Bool // set under commitSem
	running   atomic.Bool
}

// Open opens or creates the state file at path (creating its directory with
// mode 0750), creates missing buckets and checks the schema version. It
// starts nothing: run Run to get periodic commits.
func Open(path string, opts Options, logger zerolog.Logger) (*Store, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("state: open %s: %w", path, err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout: opts.OpenTimeout,
		NoSync:  opts.NoSync,
	})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("state: open %s: %w (%s; lock not acquired within %s)",
			path, ErrLocked, filepath.Dir(path), opts.OpenTimeout)
	}
	if err != nil {
		return nil, fmt.Errorf("state: open %s: %w", path, err)
	}
	if err := db.Update(initSchema); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("state: open %s: %w", path, err)
	}
	s := &Store{
		path:      path,
		opts:      opts,
		log:       logger.With().Str("component", "state").Logger(),
		metrics:   m,
		db:        db,
		commitSem: make(chan struct{}, 1),
	}
	s.log.Debug().Str("path", path).Uint32("schema_version", SchemaVersion).Msg("state opened")
	return s, nil
}

// Path returns the file's path.
func (s *Store) Path() string { return s.path }

// Close commits what is pending and closes the file. Changes recorded after
// Close are never stored. Calling Close again returns nil.
func (s *Store) Close() error {
	s.commitSem <- struct{}{}
	defer func() { <-s.commitSem }()
	if s.closed.Load() {
		return nil
	}
	flushErr := s.commitLocked()
	if flushErr != nil {
		s.log.Error().Err(flushErr).Int("lost_changes", s.pendingLen()).
			Msg("state: final commit failed; pending changes are lost")
	}
	s.closed.Store(true)
	var closeErr error
	if err := s.db.Close(); err != nil {
		closeErr = fmt.Errorf("state: close %s: %w", s.path, err)
	}
	return errors.Join(flushErr, closeErr)
}

// view runs fn in a read transaction, mapping a closed db to ErrClosed.
func (s *Store) view(what string, fn func(tx *bolt.Tx) error) error {
	if s.closed.Load() {
		return ErrClosed
	}
	err := s.db.View(fn)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, berrors.ErrDatabaseNotOpen):
		return ErrClosed
	default:
		var ce *CorruptError
		if errors.As(err, &ce) {
			return err // already names bucket and key
		}
		return fmt.Errorf("state: %s: %w", what, err)
	}
}

// Positions returns every committed position, keyed by source id.
func (s *Store) Positions() (map[string]Position, error) {
	var out map[string]Position
	err := s.view("read positions", func(tx *bolt.Tx) error {
		b, err := bucket(tx, bucketPositions)
		if err != nil {
			return err
		}
		out = make(map[string]Position)
		return b.ForEach(func(k, v []byte) error {
			p, err := decodePosition(v)
			if err != nil {
				return &CorruptError{Bucket: bucketPositions, Key: string(k), Err: err}
			}
			out[string(k)] = p
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// PositionsWALIndex returns the committed WAL index the positions cover (0 if
// never set).
func (s *Store) PositionsWALIndex() (uint64, error) {
	var idx uint64
	err := s.view("read positions wal index", func(tx *bolt.Tx) error {
		b, err := bucket(tx, bucketMeta)
		if err != nil {
			return err
		}
		v := b.Get([]byte(keyPositionsWALIndex))
		if v == nil {
			return nil
		}
		idx, err = decodeUint64(bucketMeta, []byte(keyPositionsWALIndex), v)
		return err
	})
	return idx, err
}

// Cursor returns the committed cursor of the named shipper; ok is false when
// none was ever committed.
func (s *Store) Cursor(name string) (idx uint64, ok bool, err error) {
	err = s.view("read cursor", func(tx *bolt.Tx) error {
		b, err := bucket(tx, bucketCursors)
		if err != nil {
			return err
		}
		v := b.Get([]byte(name))
		if v == nil {
			return nil
		}
		idx, err = decodeUint64(bucketCursors, []byte(name), v)
		ok = err == nil
		return err
	})
	if err != nil {
		return 0, false, err
	}
	return idx, ok, nil
}

// Cursors returns every committed shipper cursor.
func (s *Store) Cursors() (map[string]uint64, error) {
	var out map[string]uint64
	err := s.view("read cursors", func(tx *bolt.Tx) error {
		b, err := bucket(tx, bucketCursors)
		if err != nil {
			return err
		}
		out = make(map[string]uint64)
		return b.ForEach(func(k, v []byte) error {
			idx, err := decodeUint64(bucketCursors, k, v)
			if err != nil {
				return err
			}
			out[string(k)] = idx
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Flush commits the pending changes now, in one transaction. ctx bounds only
// the wait for a commit already in progress; a started commit runs to its
// end. On error the changes stay pending. After Close, Flush returns
// ErrClosed if anything was recorded since.
func (s *Store) Flush(ctx context.Context) error {
	select {
	case s.commitSem <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("state: flush: %w", ctx.Err())
	}
	defer func() { <-s.commitSem }()
	return s.commitLocked()
}

// Run commits pending changes every FlushInterval until ctx ends, then makes
// a final commit and returns. A failed periodic commit is logged and counted
// and retried at the next tick; a failed final commit is returned.
func (s *Store) Run(ctx context.Context) error {
	if s.closed.Load() {
		return ErrClosed
	}
	if !s.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer s.running.Store(false)

	t := time.NewTicker(s.opts.FlushInterval)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			// The final commit must not be cut short by the ctx that ended.
			if err := s.Flush(context.WithoutCancel(ctx)); err != nil {
				s.log.Error().Err(err).Msg("state: final commit failed")
				return fmt.Errorf("state: final commit: %w", err)
			}
			return nil
		case <-t.C:
			err := s.Flush(ctx)
			switch {
			case err == nil:
				if failing {
					s.log.Info().Msg("state: commits recovered")
					failing = false
				}
			case errors.Is(err, ErrClosed):
				return err
			case ctx.Err() != nil:
				// Gave up waiting for a concurrent commit; the loop makes the final one.
			default:
				failing = true
				s.log.Error().Err(err).Int("pending_changes", s.pendingLen()).
					Msg("state: commit failed; will retry")
			}
		}
	}
}
