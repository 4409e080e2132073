package ship

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/logcapturer/log_capturer_go/wal/record"
)

// Batch is a contiguous range of WAL entries and the lines they hold.
type Batch struct {
	Seq   uint64 // order of creation, per shipper
	First uint64 // first WAL index in the batch
	Last  uint64 // last WAL index in the batch
	// Streams groups the lines by stream (label set), in WAL order.
	Streams []*Stream
	Lines   int
	Bytes   int // sum of line lengths
	Created time.Time

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
}

func newBatch(seq, first uint64) *Batch {
	return &Batch{Seq: seq, First: first, Last: first - 1, Created: time.Now(), index: map[string]*Stream{}}
}

func (b *Batch) add(r *record.Record) {
	key := r.Labels.String()
	s, ok := b.index[key]
	if !ok {
		s = &Stream{Labels: r.Labels}
		b.index[key] = s
		b.Streams = append(b.Streams, s)
	}
	var meta []record.Label
	if len(r.Metadata) > 0 {
		meta = append([]record.Label(nil), r.Metadata...)
	}
	s.Entries = append(s.Entries, Entry{Time: r.Time, Line: r.Line, Metadata: meta, Flags: r.Flags, Source: r.Source, Offset: r.Offset})
	b.Lines++
	b.Bytes += len(r.Line)
}

// Sink delivers batches. Send returns nil once the receiver acknowledged the
// whole batch. Any error other than a *PermanentError is retried.
type Sink interface {
	Name() string
	Send(ctx context.Context, b *Batch) error
}

// PermanentError is a rejection that retrying cannot fix (a 4xx other than
// 429 from Loki): the batch is counted and not re-sent.
type PermanentError struct {
	Reason string // short, for a metric label: "bad_request", "unauthorized", ...
	Err    error
}

func (e *PermanentError) Error() string { return fmt.Sprintf("permanent (%s): %v", e.Reason, e.Err) }
func (e *PermanentError) Unwrap() error { return e.Err }

// RetryError is a transient failure, with the wait the receiver asked for.
type RetryError struct {
	Reason     string // for a metric label: "network", "timeout", "429", "5xx"
	RetryAfter time.Duration
	Err        error
}

func (e *RetryError) Error() string { return fmt.Sprintf("retryable (%s): %v", e.Reason, e.Err) }
func (e *RetryError) Unwrap() error { return e.Err }

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
