package ship

import (
	"context"

	"github.com/logcapturer/log_capturer_go/wal/record"
)

// Dead-letter reasons of the shipper. They are metric label values and DLQ
// index keys, so they stay short and stable. Entries that Loki rejects, or
// that the agent's check of Loki's limits rejects before sending, carry
// Loki's own reason names instead (loki.Reason*: line_too_long,
// greater_than_max_sample_age, too_far_in_future, invalid_labels, ...), so
// they read like loki_discarded_samples_total.
const (
	// ReasonRetryExhausted: max_elapsed passed while retrying.
	ReasonRetryExhausted = "retry_exhausted"
	// ReasonPartiallyAccepted: the receiver rejected part of a request
	// without naming which entries; these entries may or may not be stored.
	ReasonPartiallyAccepted = "partially_accepted"
	// ReasonStreamLimit: Loki's max-streams limit (a 429 that retrying
	// cannot fix).
	ReasonStreamLimit = "stream_limit"
	// Other permanent statuses are "http_<code>" (http_401, http_413, ...).
)

// DeadLetterer takes the entries a sink rejected for good. The DLQ store
// (package ship/dlq) implements it. DeadLetter must be durable when it
// returns nil: the shipper moves its cursor past the entries afterwards. An
// error is retried by the shipper; entries are never dropped.
type DeadLetterer interface {
	DeadLetter(ctx context.Context, l Letter) error
}

// Letter is one hand-off to the DLQ: entries of one WAL range that one sink
// rejected for one reason.
type Letter struct {
	Sink   string
	Reason string
	// First and Last bound the WAL indices of Entries (inclusive). The
	// range may also hold lines of other streams that are not in the
	// letter: a batch carries the streams of one shard only.
	First, Last uint64
	// Entries are the rejected entries. Their byte slices are copies owned by
	// the Letter.
	Entries  []DeadEntry
	Attempts int // sends tried before giving up (0 when rejected before sending)
	// PartiallyAccepted marks a batch that the receiver rejected in part
	// without naming the entries: some of Entries may be stored already.
	PartiallyAccepted bool
	// Detail is the receiver's message or the validation failure, for humans.
	Detail string
}

// DeadEntry is one rejected entry with what is needed to send it again.
type DeadEntry struct {
	Labels   *record.LabelSet
	Time     int64 // unix nanoseconds
	Line     []byte
	Metadata []record.Label
	Flags    record.Flags
	Source   string
	Offset   uint64
	// Index is the WAL index of the entry holding the line (0 if unknown).
	Index uint64
	// Reason is this entry's own reason when it differs from Letter.Reason.
	Reason string
}
