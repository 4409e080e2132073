package dlq

import (
	"context"
	"errors"
	"fmt"

	"github.com/logcapturer/log_capturer_go/wal"
)

// WALSource reads the entries a WAL still holds, for replays of a range.
type WALSource interface {
	// Bounds returns the first and last index held (first > last when the
	// WAL is empty).
	Bounds() (first, last uint64, err error)
	// Walk calls fn with each readable entry whose index is in [from, to],
	// in index order, until fn returns an error (which Walk returns).
	// Entries that were removed or cannot be read are skipped: the caller
	// sees the holes in the indexes.
	Walk(ctx context.Context, from, to uint64, fn func(index uint64, payload []byte) error) error
}

// LogSource reads a running log through its readers; retention may remove
// entries while a replay reads, which shows up as a hole.
func LogSource(l *wal.Log) WALSource { return logSource{l} }

type logSource struct{ l *wal.Log }

func (s logSource) Bounds() (uint64, uint64, error) {
	first, err := s.l.FirstIndex()
	if err != nil {
		return 0, 0, fmt.Errorf("dlq: wal bounds: %w", err)
	}
	return first, s.l.CommittedIndex(), nil
}

func (s logSource) Walk(ctx context.Context, from, to uint64, fn func(uint64, []byte) error) error {
	r := s.l.NewReader(from)
	for r.Next() <= to {
		if err := ctx.Err(); err != nil {
			return err
		}
		idx, payload, ok, err := r.TryRead()
		var behind *wal.ErrBehind
		var ce *wal.CorruptionErr
		switch {
		case errors.As(err, &behind):
			r.Seek(behind.First)
			continue
		case errors.As(err, &ce):
			r.Seek(max(ce.Next, r.Next()+1))
			continue
		case err != nil:
			return fmt.Errorf("dlq: read wal %d: %w", r.Next(), err)
		case !ok:
			return nil
		}
		if err := fn(idx, payload); err != nil {
			return err
		}
	}
	return nil
}

// DirSource reads a WAL directory directly (the daemon stopped). It never
// changes a byte.
func DirSource(dir string) WALSource { return dirSource{dir} }

type dirSource struct{ dir string }

func (s dirSource) Bounds() (uint64, uint64, error) {
	segs, err := wal.Segments(s.dir)
	if err != nil {
		return 0, 0, fmt.Errorf("dlq: wal bounds: %w", err)
	}
	if len(segs) == 0 {
		return 1, 0, nil
	}
	return segs[0].First, segs[len(segs)-1].Last, nil
}

func (s dirSource) Walk(ctx context.Context, from, to uint64, fn func(uint64, []byte) error) error {
	var ferr error
	err := wal.Walk(s.dir, from, func(idx uint64, payload []byte) bool {
		if idx > to {
			return false
		}
		if ferr = ctx.Err(); ferr != nil {
			return false
		}
		ferr = fn(idx, payload)
		return ferr == nil
	}, nil)
	if err != nil {
		return fmt.Errorf("dlq: read wal: %w", err)
	}
	return ferr
}
