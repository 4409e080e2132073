package ship

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/logcapturer/log_capturer_go/wal/record"
)

// Batch is one request's worth of lines of one shard: every line of a
// stream goes to the same shard, so a stream's lines are in WAL order
// within a batch and across the batches of its shard.
type Batch struct {
	Seq   uint64 // order of creation within its shard
	First uint64 // lowest WAL index of a line in the batch
	Last  uint64 // highest WAL index of a line in the batch
	// Streams groups the lines by stream (label set), in WAL order.
	Streams []*Stream
	Lines   int
	Bytes   int // sum of line lengths
	Created time.Time

	shard int
	size  int      // estimated encoded size (see entrySizeEstimate)
	idx   []uint64 // distinct WAL indices with lines here, ascending
	index map[string]*Stream
}

// Stream is the lines of one label set within a batch.
type Stream struct {
	Labels  *record.LabelSet
	Entries []Entry
}

// Entry is one line. Line and Metadata alias the WAL payload held by the batch.
type Entry struct {
	Time     int64
	Line     []byte
	Metadata []record.Label
	Flags    record.Flags
	Source   string
	Offset   uint64
	Index    uint64 // WAL index of the entry that holds the line

	dkey uint64 // dedup key, once computed
}

func newBatch(shard int, seq uint64) *Batch {
	return &Batch{shard: shard, Seq: seq, Created: time.Now(), index: map[string]*Stream{}}
}

// Per-line and per-stream overhead of the protobuf encoding, an upper
// bound: entry tag and length (4), timestamp (14), line tag and length (4),
// plus 6 bytes a metadata pair; stream tag, length and labels tag (10).
const (
	entryOverhead  = 24
	pairOverhead   = 6
	streamOverhead = 10
)

// entrySizeEstimate bounds the encoded size of r in a push request, so
// that batches are capped on what goes over the wire, labels and metadata
// included, not on line bytes alone.
func entrySizeEstimate(r *record.Record) int {
	n := entryOverhead + len(r.Line)
	for _, m := range r.Metadata {
		n += pairOverhead + len(m.Name) + len(m.Value)
	}
	return n
}

// add appends r, read from WAL entry idx, under its label-set key.
func (b *Batch) add(key string, r *record.Record, idx uint64) {
	s, ok := b.index[key]
	if !ok {
		s = &Stream{Labels: r.Labels}
		b.index[key] = s
		b.Streams = append(b.Streams, s)
		b.size += streamOverhead + len(key)
	}
	var meta []record.Label
	if len(r.Metadata) > 0 {
		meta = append([]record.Label(nil), r.Metadata...)
	}
	s.Entries = append(s.Entries, Entry{Time: r.Time, Line: r.Line, Metadata: meta, Flags: r.Flags, Source: r.Source, Offset: r.Offset, Index: idx})
	if b.Lines == 0 {
		b.First = idx
	}
	b.Last = idx
	b.Lines++
	b.Bytes += len(r.Line)
	b.size += entrySizeEstimate(r)
	if n := len(b.idx); n == 0 || b.idx[n-1] != idx {
		b.idx = append(b.idx, idx)
	}
}

// compact drops streams left without entries.
func (b *Batch) compact() {
	kept := b.Streams[:0]
	for _, s := range b.Streams {
		if len(s.Entries) > 0 {
			kept = append(kept, s)
		}
	}
	clear(b.Streams[len(kept):])
	b.Streams = kept
}

// Sink delivers batches. Send returns nil once the receiver acknowledged the
// whole batch; a *RejectedError or *PermanentError when it refused some or
// all of it for good; anything else is retried.
type Sink interface {
	Name() string
	Send(ctx context.Context, b *Batch) error
}

// Checker is implemented by sinks that know the limits of their receiver.
// The shipper asks it about every entry before the first send; an entry it
// refuses goes to the DLQ with the reason instead of provoking a rejection
// of its request (Loki's 400 stores the rest, so a rejection costs a DLQ
// round trip for the whole request).
type Checker interface {
	// CheckStream returns "" for a label set the receiver accepts, else
	// the reason and a message for humans. It is asked once per stream of
	// a batch.
	CheckStream(labels *record.LabelSet) (reason, detail string)
	// CheckEntry does the same for one entry of an accepted stream.
	CheckEntry(e *Entry, now time.Time) (reason, detail string)
}

// PermanentError is a rejection of a whole request that retrying cannot
// fix (a 4xx other than 429 and 400): the batch goes to the DLQ.
type PermanentError struct {
	Reason string // short, for a metric label: "http_401", "too_large", ...
	Status int    // HTTP status, 0 if none
	Err    error
}

func (e *PermanentError) Error() string { return fmt.Sprintf("permanent (%s): %v", e.Reason, e.Err) }
func (e *PermanentError) Unwrap() error { return e.Err }

// RetryError is a transient failure, with the wait the receiver asked for.
type RetryError struct {
	Reason     string // for a metric label: "network", "timeout", "429", "5xx"
	Status     int    // HTTP status, 0 for a transport error
	RetryAfter time.Duration
	Err        error
}

func (e *RetryError) Error() string { return fmt.Sprintf("retryable (%s): %v", e.Reason, e.Err) }
func (e *RetryError) Unwrap() error { return e.Err }

// RejectedError is a response that stored part of a batch and rejected the
// rest for good (Loki's 400 after validation, a stream-limit 429). The
// batch must not be sent again: that would duplicate the stored part.
type RejectedError struct {
	Status   int
	Rejected []Rejection // the entries the response names
	// Uncertain lists the streams (indices into Batch.Streams) of which the
	// response says nothing reliable: their entries not in Rejected may or
	// may not be stored, and go to the DLQ marked partially accepted.
	Uncertain []int
	Err       error
}

// Rejection names one rejected entry: Batch.Streams[Stream].Entries[Entry].
type Rejection struct {
	Stream, Entry int
	Reason        string
}

func (e *RejectedError) Error() string {
	return fmt.Sprintf("rejected in part (%d entries named, %d streams uncertain): %v", len(e.Rejected), len(e.Uncertain), e.Err)
}
func (e *RejectedError) Unwrap() error { return e.Err }

func reasonOf(err error) string {
	var re *RetryError
	if errors.As(err, &re) {
		return re.Reason
	}
	var pe *PermanentError
	if errors.As(err, &pe) {
		return pe.Reason
	}
	return "other"
}

// statusClass is the request latency label: 2xx, 4xx, 5xx or network.
func statusClass(err error) string {
	if err == nil {
		return "2xx"
	}
	status := 0
	var (
		re  *RetryError
		pe  *PermanentError
		rje *RejectedError
	)
	switch {
	case errors.As(err, &re):
		status = re.Status
	case errors.As(err, &pe):
		status = pe.Status
	case errors.As(err, &rje):
		status = rje.Status
	}
	switch {
	case status >= 200 && status < 600:
		return fmt.Sprintf("%dxx", status/100)
	case status == 0:
		return "network"
	}
	return "other"
}
