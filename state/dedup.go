package state

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Dedup checkpoints (bucket "dedup").
//
// Layout: bucket dedup → one sub-bucket per sink name → key
// [8-byte big-endian Unix ns of the save][4-byte big-endian chunk number] →
// value: the keys, 8 bytes little-endian each, at most dedupChunkKeys per
// value. Keys sort by save time, so expiry deletes a prefix.
//
// Unlike positions and cursors, a save is its own transaction, written
// when the shipper calls (once a second, not once a line): the keys are
// appended, never rewritten, and batching them with the other changes
// would only delay them.

const dedupChunkKeys = 32 << 10

// SaveDedup appends keys for sink as saved at at and deletes the batches of
// sink saved before expire, in one transaction.
func (s *Store) SaveDedup(sink string, at time.Time, keys []uint64, expire time.Time) error {
	if !validKey(sink) {
		return fmt.Errorf("state: save dedup: invalid sink name %q", sink)
	}
	s.commitSem <- struct{}{}
	defer func() { <-s.commitSem }()
	if s.closed.Load() {
		return ErrClosed
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		b, err := bucket(tx, bucketDedup)
		if err != nil {
			return err
		}
		sb, err := b.CreateBucketIfNotExists([]byte(sink))
		if err != nil {
			return err
		}
		// Expire first, so a save never deletes what it writes.
		c := sb.Cursor()
		limit := dedupKey(expire, 0)
		for k, _ := c.First(); k != nil && string(k) < string(limit); k, _ = c.First() {
			if err := c.Delete(); err != nil {
				return err
			}
		}
		for chunk := 0; len(keys) > 0; chunk++ {
			n := min(len(keys), dedupChunkKeys)
			v := make([]byte, 0, 8*n)
			for _, k := range keys[:n] {
				v = binary.LittleEndian.AppendUint64(v, k)
			}
			if err := sb.Put(dedupKey(at, uint32(chunk)), v); err != nil {
				return err
			}
			keys = keys[n:]
		}
		return nil
	})
	switch {
	case err == nil:
		return nil
	case errors.Is(err, berrors.ErrDatabaseNotOpen):
		return ErrClosed
	default:
		return fmt.Errorf("state: save dedup %q: %w", sink, err)
	}
}

// LoadDedup calls fn with every batch of keys of sink saved at or after
// since, oldest first. The keys are copied out of the transaction.
func (s *Store) LoadDedup(sink string, since time.Time, fn func(at time.Time, keys []uint64)) error {
	type chunk struct {
		at   time.Time
		keys []uint64
	}
	var out []chunk
	err := s.view("load dedup", func(tx *bolt.Tx) error {
		b, err := bucket(tx, bucketDedup)
		if err != nil {
			return err
		}
		sb := b.Bucket([]byte(sink))
		if sb == nil {
			return nil
		}
		c := sb.Cursor()
		for k, v := c.Seek(dedupKey(since, 0)); k != nil; k, v = c.Next() {
			if len(k) != 12 || len(v)%8 != 0 {
				return &CorruptError{Bucket: bucketDedup + "/" + sink, Key: fmt.Sprintf("%x", k),
					Err: fmt.Errorf("%w: key of %d bytes, value of %d bytes", ErrCorrupt, len(k), len(v))}
			}
			keys := make([]uint64, len(v)/8)
			for i := range keys {
				keys[i] = binary.LittleEndian.Uint64(v[8*i:])
			}
			out = append(out, chunk{at: time.Unix(0, int64(binary.BigEndian.Uint64(k))), keys: keys})
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, c := range out {
		fn(c.at, c.keys)
	}
	return nil
}

func dedupKey(at time.Time, chunk uint32) []byte {
	ns := at.UnixNano()
	if ns < 0 {
		ns = 0
	}
	k := binary.BigEndian.AppendUint64(make([]byte, 0, 12), uint64(ns))
	return binary.BigEndian.AppendUint32(k, chunk)
}
