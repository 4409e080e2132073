package api

import (
	"context"
	"errors"
	"time"
)

// HealthReporter reports component health. Health is called on every
// GET /health (container HEALTHCHECKs poll it), so it must be cheap and must
// not block.
//
// Every reporter in this file returns a snapshot: the value (and any map or
// slice inside it) is serialised after the call returns, concurrently with
// the component's work, so it must not be shared with code that mutates it.
type HealthReporter interface {
	Health() Health
}

// StatsReporter returns a JSON-serialisable snapshot of runtime statistics.
type StatsReporter interface {
	Stats() any
}

// ConfigReporter returns the effective configuration with every secret
// (tokens, passwords, credentials inside URLs) already redacted. The api
// serialises what it gets; it cannot know which fields are secret.
type ConfigReporter interface {
	RedactedConfig() any
}

// PositionsReporter returns a JSON-serialisable snapshot of source positions.
type PositionsReporter interface {
	Positions() any
}

// Reloader reloads the configuration. It must validate the new configuration
// before applying it and keep the old one running on error. Wrap ErrInvalid
// for a configuration the operator must fix (400), ErrConflict when a reload
// cannot run now (409); any other error answers 500.
type Reloader interface {
	Reload(ctx context.Context) error
}

// DLQStatsReporter returns a JSON-serialisable snapshot of the dead-letter queue.
type DLQStatsReporter interface {
	DLQStats() any
}

// DLQReprocessor re-queues dead-lettered entries. It must be idempotent: a
// retried request must not ship an entry twice. Error mapping as for Reloader.
type DLQReprocessor interface {
	Reprocess(ctx context.Context, req ReprocessRequest) (any, error)
}

// ReprocessRequest is the JSON body of POST /dlq/reprocess. Without a range
// field it selects dead letters (zero fields match all); with any of
// FromIndex, ToIndex, Since, Until it replays that WAL range (delivered or
// not) instead. Unknown fields are rejected so a typo cannot widen the
// selection silently.
type ReprocessRequest struct {
	// ID makes the request idempotent: repeating it returns the first
	// outcome and sends nothing. The reprocessor requires it unless DryRun.
	ID string `json:"id,omitempty"`
	// Sink restricts to entries dead-lettered by this sink (a replay: sends
	// to this sink only); empty means all.
	Sink string `json:"sink,omitempty"`
	// Reason restricts to dead letters of this reason.
	Reason string `json:"reason,omitempty"`
	// IDs restricts to these DLQ letter IDs; empty means all.
	IDs []uint64 `json:"ids,omitempty"`
	// FromIndex and ToIndex bound a WAL range to replay (inclusive; 0 is an
	// open end).
	FromIndex uint64 `json:"from_index,omitempty"`
	ToIndex   uint64 `json:"to_index,omitempty"`
	// Since and Until (RFC 3339) select the replayed lines by timestamp,
	// Since inclusive, Until exclusive.
	Since time.Time `json:"since,omitzero"`
	Until time.Time `json:"until,omitzero"`
	// Limit caps how many letters (or, in a replay, WAL entries) are
	// handled; 0 means no cap.
	Limit int `json:"limit,omitempty"`
	// DryRun reports what would be re-queued without doing it.
	DryRun bool `json:"dry_run,omitempty"`
}

// Deps holds what the server reads. Any field may be nil: its endpoint then
// answers 501. Beware a typed nil pointer stored in an interface: it is not
// nil and its method will be called.
type Deps struct {
	Health         HealthReporter
	Stats          StatsReporter
	Config         ConfigReporter
	Positions      PositionsReporter
	Reloader       Reloader
	DLQStats       DLQStatsReporter
	DLQReprocessor DLQReprocessor
}

// Errors that Reloader and DLQReprocessor wrap to choose the HTTP status, and
// that the server returns for misuse of its lifecycle.
var (
	// ErrInvalid marks a request or configuration the caller must fix (400).
	ErrInvalid = errors.New("invalid")
	// ErrConflict marks an operation that cannot run now, e.g. one already in progress (409).
	ErrConflict = errors.New("conflict")

	// ErrNotListening is returned by Serve before a successful Listen.
	ErrNotListening = errors.New("api: not listening")
	// ErrServerUsed is returned when Listen or Serve is called a second time,
	// or after Close.
	ErrServerUsed = errors.New("api: server already used")
)
