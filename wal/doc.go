// Package wal is the durable queue at the heart of the agent: a segmented
// write-ahead log on top of github.com/tidwall/wal.
//
// Contract:
//
//   - Entries are opaque payloads (package wal/record gives them meaning).
//     Each is framed with a version byte and a CRC32C of the payload; see
//     FORMAT.md for the bytes on disk.
//   - One goroutine (Run) owns appends and therefore indexes, as tidwall/wal
//     requires each index to be LastIndex()+1. Append queues a payload and
//     returns; its done callback runs once the fsync that covers it has
//     completed (group commit: one fsync per sync_interval or sync_bytes,
//     whichever comes first). Only then is the entry "captured".
//   - Readers see committed (fsynced) entries only, follow the log from any
//     index, and wait for new entries.
//   - Cursors name how far each consumer has got. A segment is removed only
//     when every cursor has passed it and its retention has expired; the disk
//     budget (max_size) may remove delivered segments early, never
//     undelivered ones. When the budget is reached and nothing can be freed,
//     Append blocks: backpressure, never loss.
//   - Open repairs a torn or corrupt tail: the bad bytes are moved aside into
//     the corrupt/ sub-directory, the segment is truncated at the last good
//     entry, file and directory are fsynced, and the repair is counted.
//   - After a write or fsync error the log refuses to pretend: pending
//     appends fail, new appends wait, and the log reopens itself (with tail
//     repair) before accepting more.
package wal
