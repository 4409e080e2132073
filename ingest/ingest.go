package ingest

import "context"

// Appender is the WAL as a source sees it.
//
// Append hands over one encoded record payload. When Append returns nil, done
// is called exactly once, from another goroutine, after the fsync covering the
// payload (err == nil, index = the payload's WAL index) or with the error that
// prevented it. When Append returns an error, done is never called. done must
// be quick: it runs on the WAL's commit path.
//
// The Appender may use payload until it calls done (or until Append returns an
// error); the source reuses the buffer afterwards.
//
// Append blocks while the WAL is over its disk budget (backpressure) or until
// ctx ends, in which case it returns an error wrapping ctx.Err().
type Appender interface {
	Append(ctx context.Context, payload []byte, done func(index uint64, err error)) error
}

// Checkpointer persists source positions (the state store, batched).
//
// SetPosition records that every line of source id up to offset is captured,
// the last of them in WAL entry walIndex (0 when the position was set without
// data, e.g. a file started at its end). meta is opaque to the store; the
// source never modifies a meta slice after passing it. DeletePosition forgets a
// source that is gone. Both must be safe for concurrent use, quick, and must
// not call back into the source: they run inside WAL done callbacks, which
// may still arrive after the source's Run returned (acks that outlived its
// stop timeout), so the checkpointer must outlive the WAL.
type Checkpointer interface {
	SetPosition(id string, offset uint64, walIndex uint64, meta []byte)
	DeletePosition(id string)
}

// SavedPosition is a position recovered at start-up: the checkpoint merged by
// the wiring with the WAL tail. Meta is what the source last passed to
// SetPosition for ID, or nil when the ID is known only from the WAL.
type SavedPosition struct {
	ID       string
	Offset   uint64
	WALIndex uint64
	Meta     []byte
}
