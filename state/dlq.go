package state

import (
	"encoding/binary"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// The DLQ index. Package ship/dlq owns the letters' files and their meaning;
// this file only stores what it is told, durably: unlike positions and
// cursors, every DLQ write is its own synchronous transaction, because the
// caller acts on it at once (a shipper moves its cursor past dead-lettered
// entries, a reprocess request must not run twice).
//
// Letter value layout (integers are varints, strings are uvarint length and
// bytes):
//
//	format      byte   (dlqLetterFormatV1 = 1)
//	status      byte   (DLQStatus)
//	flags       byte   (bit 0: partially accepted)
//	sink, reason, detail, file, last_error   string
//	first, last uvarint (WAL range)
//	created, updated, min_time, max_time     varint (Unix nanoseconds)
//	attempts, lines, bytes                   uvarint
//
// Request value layout:
//
//	format      byte   (dlqRequestFormatV1 = 1)
//	status      byte   (DLQRequestStatus)
//	created, expires   varint (Unix nanoseconds)
//	result_len  uvarint ; result bytes (opaque, owned by the caller)
//
// In both, nothing may follow the last field.

const (
	dlqLetterFormatV1  byte = 1
	dlqRequestFormatV1 byte = 1

	dlqFlagPartiallyAccepted byte = 1 << 0
)

// MaxDLQStringBytes bounds each string of a DLQLetter (a receiver's error
// message can be long; the index is not the place for it).
const MaxDLQStringBytes = 4 << 10

// MaxDLQResultBytes bounds DLQRequest.Result.
const MaxDLQResultBytes = 1 << 20

// ErrDLQValue is returned for a value that cannot be stored (a zero id, an
// empty request id, a string or result over its bound): a caller bug.
var ErrDLQValue = errors.New("state: invalid DLQ value")

// DLQStatus is where a letter is in its life.
type DLQStatus uint8

const (
	// DLQPending: the entries are held in the DLQ store.
	DLQPending DLQStatus = 1
	// DLQReprocessed: the entries were sent again and their file removed; the
	// record stays until retention so operators can see what happened.
	DLQReprocessed DLQStatus = 2
)

func (s DLQStatus) String() string {
	switch s {
	case DLQPending:
		return "pending"
	case DLQReprocessed:
		return "reprocessed"
	}
	return fmt.Sprintf("status(%d)", uint8(s))
}

// DLQLetter is the index record of one dead letter: entries of one WAL range
// that one sink rejected for one reason.
type DLQLetter struct {
	ID     uint64
	Sink   string
	Reason string
	Detail string // the receiver's message, for humans
	// First and Last bound the WAL range (inclusive).
	First, Last       uint64
	CreatedUnixNano   int64
	UpdatedUnixNano   int64
	MinTime, MaxTime  int64 // entry timestamps, Unix nanoseconds
	Attempts          int
	Lines             int
	Bytes             int64 // size of the letter's file
	File              string
	PartiallyAccepted bool
	Status            DLQStatus
	LastError         string // of the last failed reprocess
}

// DLQRequestStatus is the state of a reprocess request.
type DLQRequestStatus uint8

const (
	// DLQRequestRunning: started, not finished (a crash leaves it so).
	DLQRequestRunning DLQRequestStatus = 1
	// DLQRequestDone: finished; Result is final.
	DLQRequestDone DLQRequestStatus = 2
)

// DLQRequest records one reprocess request so that repeating it returns the
// first outcome instead of sending again.
type DLQRequest struct {
	ID              string
	Status          DLQRequestStatus
	CreatedUnixNano int64
	ExpiresUnixNano int64
	Result          []byte // opaque; for a running request, its progress
}

// update runs fn in a write transaction, mapping a closed db to ErrClosed.
func (s *Store) update(what string, fn func(tx *bolt.Tx) error) error {
	if s.closed.Load() {
		return ErrClosed
	}
	err := s.db.Update(fn)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, berrors.ErrDatabaseNotOpen):
		return ErrClosed
	case errors.Is(err, ErrDLQValue):
		return err
	default:
		var ce *CorruptError
		if errors.As(err, &ce) {
			return err
		}
		return fmt.Errorf("state: %s: %w", what, err)
	}
}

// dlqBucket returns the nested DLQ bucket name, creating it when create is
// set; without create a missing bucket is nil (nothing stored yet).
func dlqBucket(tx *bolt.Tx, name string, create bool) (*bolt.Bucket, error) {
	parent, err := bucket(tx, bucketDLQ)
	if err != nil {
		return nil, err
	}
	if !create {
		return parent.Bucket([]byte(name)), nil
	}
	b, err := parent.CreateBucketIfNotExists([]byte(name))
	if err != nil {
		return nil, fmt.Errorf("create bucket %s/%s: %w", bucketDLQ, name, err)
	}
	return b, nil
}

func dlqKey(id uint64) []byte { return binary.BigEndian.AppendUint64(nil, id) }

// ReserveDLQIDs reserves n consecutive letter ids and returns the first.
// Ids come from a persisted sequence: they grow and are never reused, even
// after the letters that had them are gone.
func (s *Store) ReserveDLQIDs(n int) (uint64, error) {
	if n <= 0 {
		return 0, fmt.Errorf("%w: reserve %d ids", ErrDLQValue, n)
	}
	var first uint64
	err := s.update("reserve dlq ids", func(tx *bolt.Tx) error {
		b, err := dlqBucket(tx, bucketDLQLetters, true)
		if err != nil {
			return err
		}
		first = b.Sequence() + 1
		return b.SetSequence(b.Sequence() + uint64(n))
	})
	if err != nil {
		return 0, err
	}
	return first, nil
}

// PutDLQLetters stores the letters (insert or replace by ID) in one
// transaction: all of them or none.
func (s *Store) PutDLQLetters(letters ...DLQLetter) error {
	vals := make([][]byte, len(letters))
	for i, l := range letters {
		if l.ID == 0 {
			return fmt.Errorf("%w: letter id 0", ErrDLQValue)
		}
		v, err := appendDLQLetter(nil, l)
		if err != nil {
			return err
		}
		vals[i] = v
	}
	return s.update("put dlq letters", func(tx *bolt.Tx) error {
		b, err := dlqBucket(tx, bucketDLQLetters, true)
		if err != nil {
			return err
		}
		for i, l := range letters {
			if err := b.Put(dlqKey(l.ID), vals[i]); err != nil {
				return fmt.Errorf("put letter %d: %w", l.ID, err)
			}
			// A letter id handed in from outside the sequence (a rebuilt
			// index) must not be handed out again.
			if l.ID > b.Sequence() {
				if err := b.SetSequence(l.ID); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// DeleteDLQLetters removes the letters' index records; unknown ids are
// ignored.
func (s *Store) DeleteDLQLetters(ids ...uint64) error {
	if len(ids) == 0 {
		return nil
	}
	return s.update("delete dlq letters", func(tx *bolt.Tx) error {
		b, err := dlqBucket(tx, bucketDLQLetters, false)
		if err != nil || b == nil {
			return err
		}
		for _, id := range ids {
			if err := b.Delete(dlqKey(id)); err != nil {
				return fmt.Errorf("delete letter %d: %w", id, err)
			}
		}
		return nil
	})
}

// DLQLetter returns one letter; ok is false when there is none with id.
func (s *Store) DLQLetter(id uint64) (l DLQLetter, ok bool, err error) {
	err = s.view("read dlq letter", func(tx *bolt.Tx) error {
		b, err := dlqBucket(tx, bucketDLQLetters, false)
		if err != nil || b == nil {
			return err
		}
		v := b.Get(dlqKey(id))
		if v == nil {
			return nil
		}
		l, err = decodeDLQLetter(v)
		if err != nil {
			return &CorruptError{Bucket: bucketDLQ + "/" + bucketDLQLetters, Key: fmt.Sprint(id), Err: err}
		}
		l.ID, ok = id, true
		return nil
	})
	if err != nil {
		return DLQLetter{}, false, err
	}
	return l, ok, nil
}

// DLQLetters returns every letter in id order. Records that cannot be
// decoded are not returned but listed in corrupt (with their keys, so the
// caller can delete them); err is for failures of the whole read.
func (s *Store) DLQLetters() (letters []DLQLetter, corrupt []*CorruptError, err error) {
	err = s.view("read dlq letters", func(tx *bolt.Tx) error {
		b, err := dlqBucket(tx, bucketDLQLetters, false)
		if err != nil || b == nil {
			return err
		}
		return b.ForEach(func(k, v []byte) error {
			name := bucketDLQ + "/" + bucketDLQLetters
			if len(k) != 8 {
				corrupt = append(corrupt, &CorruptError{Bucket: name, Key: fmt.Sprintf("%x", k),
					Err: fmt.Errorf("%w: key of %d bytes, want 8", ErrCorrupt, len(k))})
				return nil
			}
			id := binary.BigEndian.Uint64(k)
			l, err := decodeDLQLetter(v)
			if err != nil {
				corrupt = append(corrupt, &CorruptError{Bucket: name, Key: fmt.Sprint(id), Err: err})
				return nil
			}
			l.ID = id
			letters = append(letters, l)
			return nil
		})
	})
	if err != nil {
		return nil, nil, err
	}
	return letters, corrupt, nil
}

// DeleteCorruptDLQLetters removes every letter record that cannot be
// decoded (those DLQLetters reports in corrupt) and returns how many.
func (s *Store) DeleteCorruptDLQLetters() (int, error) {
	n := 0
	err := s.update("delete corrupt dlq letters", func(tx *bolt.Tx) error {
		b, err := dlqBucket(tx, bucketDLQLetters, false)
		if err != nil || b == nil {
			return err
		}
		var dead [][]byte
		err = b.ForEach(func(k, v []byte) error {
			if _, err := decodeDLQLetter(v); err != nil || len(k) != 8 {
				dead = append(dead, append([]byte(nil), k...))
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range dead {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		n = len(dead)
		return nil
	})
	return n, err
}

// DLQRequest returns the stored request with id; ok is false when none.
func (s *Store) DLQRequest(id string) (r DLQRequest, ok bool, err error) {
	err = s.view("read dlq request", func(tx *bolt.Tx) error {
		b, err := dlqBucket(tx, bucketDLQRequests, false)
		if err != nil || b == nil {
			return err
		}
		v := b.Get([]byte(id))
		if v == nil {
			return nil
		}
		r, err = decodeDLQRequest(v)
		if err != nil {
			return &CorruptError{Bucket: bucketDLQ + "/" + bucketDLQRequests, Key: id, Err: err}
		}
		r.ID, ok = id, true
		return nil
	})
	if err != nil {
		return DLQRequest{}, false, err
	}
	return r, ok, nil
}

// PutDLQRequest stores r (insert or replace by ID).
func (s *Store) PutDLQRequest(r DLQRequest) error {
	if !validKey(r.ID) {
		return fmt.Errorf("%w: request id of %d bytes", ErrDLQValue, len(r.ID))
	}
	if len(r.Result) > MaxDLQResultBytes {
		return fmt.Errorf("%w: request result of %d bytes, max %d", ErrDLQValue, len(r.Result), MaxDLQResultBytes)
	}
	v := appendDLQRequest(make([]byte, 0, 32+len(r.Result)), r)
	return s.update("put dlq request", func(tx *bolt.Tx) error {
		b, err := dlqBucket(tx, bucketDLQRequests, true)
		if err != nil {
			return err
		}
		return b.Put([]byte(r.ID), v)
	})
}

// DeleteExpiredDLQRequests removes requests that expired at or before
// nowUnixNano, and any that cannot be decoded, and returns how many.
func (s *Store) DeleteExpiredDLQRequests(nowUnixNano int64) (int, error) {
	n := 0
	err := s.update("expire dlq requests", func(tx *bolt.Tx) error {
		b, err := dlqBucket(tx, bucketDLQRequests, false)
		if err != nil || b == nil {
			return err
		}
		var dead [][]byte
		err = b.ForEach(func(k, v []byte) error {
			r, err := decodeDLQRequest(v)
			if err != nil || r.ExpiresUnixNano <= nowUnixNano {
				dead = append(dead, append([]byte(nil), k...))
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range dead {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		n = len(dead)
		return nil
	})
	return n, err
}

func appendDLQLetter(dst []byte, l DLQLetter) ([]byte, error) {
	for _, s := range []string{l.Sink, l.Reason, l.Detail, l.File, l.LastError} {
		if len(s) > MaxDLQStringBytes {
			return nil, fmt.Errorf("%w: letter %d: string of %d bytes, max %d", ErrDLQValue, l.ID, len(s), MaxDLQStringBytes)
		}
	}
	if l.Attempts < 0 || l.Lines < 0 || l.Bytes < 0 {
		return nil, fmt.Errorf("%w: letter %d: negative count", ErrDLQValue, l.ID)
	}
	var flags byte
	if l.PartiallyAccepted {
		flags |= dlqFlagPartiallyAccepted
	}
	dst = append(dst, dlqLetterFormatV1, byte(l.Status), flags)
	for _, s := range []string{l.Sink, l.Reason, l.Detail, l.File, l.LastError} {
		dst = binary.AppendUvarint(dst, uint64(len(s)))
		dst = append(dst, s...)
	}
	dst = binary.AppendUvarint(dst, l.First)
	dst = binary.AppendUvarint(dst, l.Last)
	dst = binary.AppendVarint(dst, l.CreatedUnixNano)
	dst = binary.AppendVarint(dst, l.UpdatedUnixNano)
	dst = binary.AppendVarint(dst, l.MinTime)
	dst = binary.AppendVarint(dst, l.MaxTime)
	dst = binary.AppendUvarint(dst, uint64(l.Attempts))
	dst = binary.AppendUvarint(dst, uint64(l.Lines))
	dst = binary.AppendUvarint(dst, uint64(l.Bytes))
	return dst, nil
}

// byteReader decodes varints and strings with bounds checks; the first
// failure sticks.
type byteReader struct {
	b   []byte
	pos int
	err error
}

func (r *byteReader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, args...)...)
	}
}

func (r *byteReader) byte1(what string) byte {
	if r.err != nil {
		return 0
	}
	if r.pos >= len(r.b) {
		r.fail("missing %s", what)
		return 0
	}
	c := r.b[r.pos]
	r.pos++
	return c
}

func (r *byteReader) uvarint(what string) uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b[r.pos:])
	if n <= 0 {
		r.fail("bad %s varint at byte %d", what, r.pos)
		return 0
	}
	r.pos += n
	return v
}

func (r *byteReader) varint(what string) int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b[r.pos:])
	if n <= 0 {
		r.fail("bad %s varint at byte %d", what, r.pos)
		return 0
	}
	r.pos += n
	return v
}

// int reads a uvarint that must fit a non-negative int64.
func (r *byteReader) int(what string) int64 {
	v := r.uvarint(what)
	if v > 1<<62 {
		r.fail("%s %d out of range", what, v)
		return 0
	}
	return int64(v)
}

func (r *byteReader) bytes(what string, max uint64) []byte {
	n := r.uvarint(what + " length")
	if r.err != nil {
		return nil
	}
	if n > max {
		r.fail("%s of %d bytes, max %d", what, n, max)
		return nil
	}
	if n > uint64(len(r.b)-r.pos) {
		r.fail("%s of %d bytes, only %d left", what, n, len(r.b)-r.pos)
		return nil
	}
	out := r.b[r.pos : r.pos+int(n)]
	r.pos += int(n)
	return out
}

func (r *byteReader) end() {
	if r.err == nil && r.pos != len(r.b) {
		r.fail("%d trailing bytes", len(r.b)-r.pos)
	}
}

// decodeDLQLetter decodes a letter value (without its ID, which is the
// key). Strings are copied, so v may be transaction memory. Errors wrap
// ErrCorrupt.
func decodeDLQLetter(v []byte) (DLQLetter, error) {
	r := &byteReader{b: v}
	var l DLQLetter
	if f := r.byte1("format"); r.err == nil && f != dlqLetterFormatV1 {
		return l, fmt.Errorf("%w: unknown letter format %d", ErrCorrupt, f)
	}
	l.Status = DLQStatus(r.byte1("status"))
	flags := r.byte1("flags")
	if r.err == nil && (l.Status != DLQPending && l.Status != DLQReprocessed) {
		r.fail("unknown status %d", l.Status)
	}
	if r.err == nil && flags&^dlqFlagPartiallyAccepted != 0 {
		r.fail("unknown flags %#x", flags)
	}
	l.PartiallyAccepted = flags&dlqFlagPartiallyAccepted != 0
	str := func(what string) string { return string(r.bytes(what, MaxDLQStringBytes)) }
	l.Sink = str("sink")
	l.Reason = str("reason")
	l.Detail = str("detail")
	l.File = str("file")
	l.LastError = str("last_error")
	l.First = r.uvarint("first")
	l.Last = r.uvarint("last")
	l.CreatedUnixNano = r.varint("created")
	l.UpdatedUnixNano = r.varint("updated")
	l.MinTime = r.varint("min_time")
	l.MaxTime = r.varint("max_time")
	l.Attempts = int(r.int("attempts"))
	l.Lines = int(r.int("lines"))
	l.Bytes = r.int("bytes")
	r.end()
	if r.err != nil {
		return DLQLetter{}, r.err
	}
	return l, nil
}

func appendDLQRequest(dst []byte, q DLQRequest) []byte {
	dst = append(dst, dlqRequestFormatV1, byte(q.Status))
	dst = binary.AppendVarint(dst, q.CreatedUnixNano)
	dst = binary.AppendVarint(dst, q.ExpiresUnixNano)
	dst = binary.AppendUvarint(dst, uint64(len(q.Result)))
	return append(dst, q.Result...)
}

// decodeDLQRequest decodes a request value (without its ID). Result is
// copied. Errors wrap ErrCorrupt.
func decodeDLQRequest(v []byte) (DLQRequest, error) {
	r := &byteReader{b: v}
	var q DLQRequest
	if f := r.byte1("format"); r.err == nil && f != dlqRequestFormatV1 {
		return q, fmt.Errorf("%w: unknown request format %d", ErrCorrupt, f)
	}
	q.Status = DLQRequestStatus(r.byte1("status"))
	if r.err == nil && q.Status != DLQRequestRunning && q.Status != DLQRequestDone {
		r.fail("unknown request status %d", q.Status)
	}
	q.CreatedUnixNano = r.varint("created")
	q.ExpiresUnixNano = r.varint("expires")
	res := r.bytes("result", MaxDLQResultBytes)
	r.end()
	if r.err != nil {
		return DLQRequest{}, r.err
	}
	if len(res) > 0 {
		q.Result = append([]byte(nil), res...)
	}
	return q, nil
}
