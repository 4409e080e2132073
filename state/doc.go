// Package state owns the agent's bbolt file (by convention DefaultFileName in
// data_dir): source positions, shipper cursors and the schema version, with
// buckets reserved for the DLQ index and dedup keys. It knows nothing of
// files, Docker, WAL segments or Loki: keys are caller-chosen names and
// Position.Meta is opaque bytes owned by the source.
//
// Contract:
//
//   - Positions are checkpoints, not the truth on their own. A checkpoint may
//     lag the WAL by up to one flush interval (or more while commits fail).
//     After a crash the caller recovers each source as the later of its
//     checkpoint and the last WAL record of that source; PositionsWALIndex
//     tells from which WAL index that scan has to start.
//   - Writes are batched. SetPosition, DeletePosition, SetPositionsWALIndex and
//     SetCursor only record the latest value in memory (latest wins). One
//     commit (Run's ticker, Flush or Close) writes everything pending in a
//     single bbolt transaction; commits never interleave. A failed commit keeps
//     its changes pending for the next try, except where a newer change for
//     the same key was recorded meanwhile.
//   - CommitCursor is the one synchronous writer: it records a cursor and
//     returns once a commit holding it is durable (a shipper's dispatch mark
//     must be on disk before the request it covers goes out).
//   - Reads see committed state only (call Flush first to read your own
//     writes). Every value is copied out of the transaction: callers may keep
//     and modify what they get. SetPosition copies Meta too.
//   - Only one process may hold the file: a second Open fails with ErrLocked
//     after Options.OpenTimeout.
//   - A value that cannot be decoded is reported as a *CorruptError naming
//     its bucket and key (errors.Is(err, ErrCorrupt)); decoding never panics.
//   - A file written by a newer schema is refused (ErrSchemaTooNew), never
//     rewritten.
//
// Position value layout (integers are varints, see encoding/binary):
//
//	format     byte    (positionFormatV1 = 1)
//	offset     uvarint
//	wal_index  uvarint
//	updated    varint  (zig-zag, Unix nanoseconds)
//	meta_len   uvarint (at most MaxMetaBytes) ; meta bytes
//
// Nothing may follow meta: trailing bytes are corruption, a new layout gets a
// new format byte.
package state
