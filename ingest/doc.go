// Package ingest holds the contract between log sources and the WAL.
//
// A source (files, Docker) turns what it reads into record payloads (package
// wal/record) and hands each payload to an Appender. A line is captured once
// the WAL fsync covering its payload has completed; only then may the source
// advance its persisted position, through a Checkpointer. The source's read
// position may run ahead of the persisted one, never the other way round.
//
// Every record carries its source identity and the end offset of its entry (a
// line, or the last line of a multiline entry), so
// that after a crash the wiring can merge the last checkpoint with the WAL tail
// (the later of the two per source id) and hand the result back to the source
// as SavedPosition values: no re-read, no gap.
//
// When the WAL is over its disk budget, Append blocks: a source then stops
// reading (backpressure, not loss). Sources never hold a lock that a done
// callback needs while they call Append.
//
// Invalid UTF-8 is handled by the source's policy (files_config.invalid_utf8:
// escape, the default, writes a reversible \xNN; replace writes U+FFFD; keep
// stores the bytes as read) and the record is flagged and counted; control
// bytes reach the WAL unchanged.
package ingest
