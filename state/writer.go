package state

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// posChange is the latest pending change of one source: a new position or a
// deletion.
type posChange struct {
	pos     Position
	deleted bool
}

// pending holds the latest value per key recorded since the last successful
// commit. Maps are created on first use.
type pending struct {
	positions   map[string]posChange
	cursors     map[string]uint64
	walIndex    uint64
	walIndexSet bool
}

func (p *pending) len() int {
	n := len(p.positions) + len(p.cursors)
	if p.walIndexSet {
		n++
	}
	return n
}

// mergeOlder puts back the changes of a failed commit (old) wherever no newer
// change for the same key was recorded meanwhile.
func (p *pending) mergeOlder(old pending) {
	for k, c := range old.positions {
		if _, newer := p.positions[k]; !newer {
			if p.positions == nil {
				p.positions = make(map[string]posChange, len(old.positions))
			}
			p.positions[k] = c
		}
	}
	for k, v := range old.cursors {
		if _, newer := p.cursors[k]; !newer {
			if p.cursors == nil {
				p.cursors = make(map[string]uint64, len(old.cursors))
			}
			p.cursors[k] = v
		}
	}
	if old.walIndexSet && !p.walIndexSet {
		p.walIndex, p.walIndexSet = old.walIndex, true
	}
}

// validKey reports whether bbolt can store k; an invalid key would fail
// every commit that carries it, so it is rejected when recorded.
func validKey(k string) bool { return len(k) > 0 && len(k) <= bolt.MaxKeySize }

func (s *Store) reject(what, key string, reason string) {
	s.metrics.rejected.Inc()
	s.log.Error().Str("op", what).Int("key_len", len(key)).Str("reason", reason).
		Msg("state: change rejected")
}

// SetPosition records p as the latest position of source id. p.Meta is
// copied. An empty or over-long id, or Meta over MaxMetaBytes, is a caller
// bug: the change is dropped, logged and counted.
func (s *Store) SetPosition(id string, p Position) {
	if !validKey(id) {
		s.reject("set_position", id, "invalid source id")
		return
	}
	if len(p.Meta) > MaxMetaBytes {
		s.reject("set_position", id, "meta over MaxMetaBytes")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pend.positions == nil {
		s.pend.positions = make(map[string]posChange)
	}
	prev := s.pend.positions[id]
	// Reuse the buffer of the change this one replaces: it belongs to this
	// pending set only (a commit swaps the whole set out before reading it).
	meta := append(prev.pos.Meta[:0], p.Meta...)
	if len(meta) == 0 {
		meta = nil
	}
	p.Meta = meta
	s.pend.positions[id] = posChange{pos: p}
}

// DeletePosition records that source id has no position any more.
func (s *Store) DeletePosition(id string) {
	if !validKey(id) {
		s.reject("delete_position", id, "invalid source id")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pend.positions == nil {
		s.pend.positions = make(map[string]posChange)
	}
	s.pend.positions[id] = posChange{deleted: true}
}

// SetPositionsWALIndex records the WAL index the positions checkpoint
// covers. The caller sets it together with the positions it describes; both
// land in the same commit.
func (s *Store) SetPositionsWALIndex(idx uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pend.walIndex, s.pend.walIndexSet = idx, true
}

// SetCursor records idx as the latest cursor of the named shipper.
func (s *Store) SetCursor(name string, idx uint64) {
	if !validKey(name) {
		s.reject("set_cursor", name, "invalid shipper name")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pend.cursors == nil {
		s.pend.cursors = make(map[string]uint64)
	}
	s.pend.cursors[name] = idx
}

// CommitCursor records idx as the cursor of the named shipper and returns
// once a commit holding it (or a later value) is durable: the waitable
// variant of SetCursor, for values that must be on disk before the caller
// acts (a shipper's dispatch mark). It commits whatever else is pending
// too. ctx bounds only the wait for a commit already in progress. On
// error the value stays pending, as with a failed periodic commit.
func (s *Store) CommitCursor(ctx context.Context, name string, idx uint64) error {
	if !validKey(name) {
		s.reject("commit_cursor", name, "invalid shipper name")
		return fmt.Errorf("state: commit cursor: invalid name (%d bytes)", len(name))
	}
	s.SetCursor(name, idx)
	return s.Flush(ctx)
}

func (s *Store) pendingLen() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pend.len()
}

// commitLocked writes everything pending in one transaction. The caller
// holds commitSem. Setters keep running meanwhile: they write into a fresh
// pending set, which wins over the snapshot if the commit fails.
func (s *Store) commitLocked() error {
	s.mu.Lock()
	snap := s.pend
	s.pend = pending{}
	s.mu.Unlock()

	n := snap.len()
	if n == 0 {
		return nil
	}
	if s.closed.Load() {
		s.restore(snap)
		return ErrClosed
	}
	start := time.Now()
	err := s.db.Update(func(tx *bolt.Tx) error { return applyPending(tx, &snap) })
	s.metrics.commitDuration.Observe(time.Since(start).Seconds())
	if err != nil {
		s.metrics.commitErrors.Inc()
		s.restore(snap)
		return fmt.Errorf("state: commit %d changes: %w", n, err)
	}
	s.metrics.commits.Inc()
	return nil
}

func (s *Store) restore(old pending) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pend.mergeOlder(old)
}

func applyPending(tx *bolt.Tx, p *pending) error {
	if len(p.positions) > 0 {
		b, err := bucket(tx, bucketPositions)
		if err != nil {
			return err
		}
		for id, c := range p.positions {
			if c.deleted {
				if err := b.Delete([]byte(id)); err != nil {
					return fmt.Errorf("delete position %q: %w", id, err)
				}
				continue
			}
			// bbolt keeps a reference to the value until the tx ends, so each
			// value needs its own buffer.
			v := appendPosition(make([]byte, 0, 16+len(c.pos.Meta)), c.pos)
			if err := b.Put([]byte(id), v); err != nil {
				return fmt.Errorf("put position %q: %w", id, err)
			}
		}
	}
	if len(p.cursors) > 0 {
		b, err := bucket(tx, bucketCursors)
		if err != nil {
			return err
		}
		for name, idx := range p.cursors {
			if err := b.Put([]byte(name), binary.BigEndian.AppendUint64(nil, idx)); err != nil {
				return fmt.Errorf("put cursor %q: %w", name, err)
			}
		}
	}
	if p.walIndexSet {
		b, err := bucket(tx, bucketMeta)
		if err != nil {
			return err
		}
		if err := b.Put([]byte(keyPositionsWALIndex), binary.BigEndian.AppendUint64(nil, p.walIndex)); err != nil {
			return fmt.Errorf("put %s: %w", keyPositionsWALIndex, err)
		}
	}
	return nil
}
