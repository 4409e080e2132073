// Package file is the file source: it follows the files matched by include
// globs and appends their lines to the WAL (ingest.Appender).
//
// # Identity
//
// A followed file is a generation of content in an inode. Its source id,
// written in every WAL record, is
//
//	file:<dev>:<inode>:<generation hex>:<n hex>-<hash>
//
// where generation is the time, in nanoseconds, the id was minted (kept above
// every generation already saved) and n-hash is the fingerprint of the
// generation's first n bytes (n <= FingerprintBytes) when it was minted. An id
// is minted when a generation's first bytes are read, so an empty file has
// none yet. The id is stable across restarts and renames. A new generation
// starts when a followed file is truncated or rewritten in place.
//
// The position's Meta (opaque to the state store) holds the path where the
// file was last seen, its stream (the filename label, when not the path),
// the head fingerprint (grown while the file is shorter than
// FingerprintBytes), the mark (a hash of the up to 128 bytes just before an
// offset, and that offset), when the file was last seen at its stream path,
// and whether it had been rotated away from it. A position is matched to a file by dev+inode, then checked: the head
// must hash the same, the file must not be shorter than the offset, and the
// bytes before the mark's offset must hash to the mark. A position recovered
// from the WAL tail alone (a crash before the generation's first checkpoint)
// has no meta: it takes its path and stream from an older meta of the same
// inode when there is one (else it is looked for by inode in every directory
// the patterns reach, and its stream guessed from the matched live name its
// name extends), and its head from its id; only the mark is missing, so a
// file rewritten while the agent was down with the same first
// FingerprintBytes bytes and regrown past that position is not told apart (a
// crash within a second of the file's first bytes is needed too). A position
// whose checkpoint is older than the WAL tail keeps its meta: the mark names
// its own offset. Positions loaded at start are persisted again (with a
// fresh mark) when their file is matched: a position that came from the WAL
// tail would otherwise fall back to the older checkpoint once the WAL is no
// longer replayed from that far. Generations superseded by a newer one of the same inode
// are not just forgotten at start: their rotated copies are looked for (a
// copytruncate handled just before a crash leaves a copy whose claim was not
// checkpointed yet), read where they hold unread bytes, and known either
// way.
//
// Verdicts: same (resume at the offset); truncated or rewritten past the
// offset (a live file: its rotated copy is looked for, then it starts again
// at 0 under a new generation, in the same stream); another file in the
// inode (another head, inode reuse; or any change to a rotated file): the
// position is forgotten, the copy looked for, and the file is treated as
// never seen.
//
// Files with identical heads are told apart by the mark: a new file in the
// directory of a known one is taken for its copy (and not read on its own)
// only while it holds the same head and the same bytes before the other's
// mark (or, shorter, the same bytes before its own end as the other has
// there, or, shorter than a head, the same beginning); an empty new file
// waits too (a copy about to be written), and so does one with its head,
// shorter than its mark, when the other is now shorter than it (truncated
// after it was read that far: its copytruncate copy, found before its
// reader saw the truncation). Such a file is claimed by its
// original when the truncation is seen; a file holding nothing but a common
// header, or nothing yet, waits until it has bytes of its own (a scan, or a
// write event, looks again), then is read whole.
//
// # Positions
//
// Lines are framed on '\n' ('\r' of CRLF stripped). An incomplete last line is
// held back until it completes, however long that takes (a file closed
// meanwhile keeps its position before the line and reads it whole when
// reopened). A line longer than MaxLineBytes is cut there and flagged
// record.FlagTruncated; the rest up to its '\n' is skipped and counted, with
// memory bounded by MaxLineBytes whatever the line's length (a 1 GiB line
// costs MaxLineBytes). Every record's Offset is the end offset of its line
// (after the '\n'), so positions always fall on line boundaries.
//
// Invalid UTF-8 follows InvalidUTF8: "escape" writes each invalid byte as
// \xNN and each backslash as \\ in the lines that have any (reversible given
// the flag), "replace" writes U+FFFD, "keep" stores the bytes; escaped and
// replaced lines are flagged record.FlagEscaped and counted. NUL is valid
// UTF-8 and kept. Encoding "latin1" transcodes every line (counted); a line
// cut by MaxLineBytes inside a UTF-8 sequence is not taken for invalid, and a
// line that grows past MaxLineBytes when converted is cut and flagged.
//
// # Routes and multi-line entries
//
// Config.Routes give the files their globs match (by stream path, so a
// rotated file keeps its route) their own labels, merged over Labels, and
// optionally a multiline.Config; the first matching route wins, a route's
// globs are followed in addition to Include, and a file no route matches is
// read line by line with Labels. Under multiline, each framed line, once
// converted, goes to the file's multiline.Assembler, and each assembled
// entry is one record whose Offset is the end offset of its last line, so
// the persisted position only ever lands on an entry boundary and never
// passes the pending entry's start: a stop, crash or failed append in the
// middle of an entry reads the entry again, whole. A pending entry is
// flushed when its flush timeout passes (the poll sleeps no longer than
// that), and at once when the file is drained after a rotation or deletion
// or truncated (its copy read first); a live file with an entry pending is
// not closed for idleness or to free a slot until the entry is flushed. At
// shutdown the pending entry is not flushed: the next start reads it again.
// Line counters count framed lines; the multiline counters count entries,
// pieces cut at max_lines/max_bytes, and entries flushed by the timeout.
//
// Records accumulate into one payload per file, appended at MaxEntryBytes or at
// EOF, with at most MaxInflight payloads of a file awaiting their ack, and
// at most MaxInflightBytes of payloads (being built, or appended and not yet
// acked) for all files together (see Memory). The read position runs ahead; the persisted position (Checkpointer.SetPosition)
// moves only when the WAL acknowledged every payload of the file up to it, in
// append order. After a failed append the file waits for its in-flight
// payloads, then reads again from the last acknowledged line (at-least-once:
// payloads acked after the failed one are written again).
//
// # Discovery
//
// A scan every ScanInterval is the truth about which files exist; file
// system events on the matched files' directories only make scans and reads
// come early. An event queue overflow triggers a rescan and a read of every
// open file. When inotify instances or watches run out, the source warns,
// counts it (notify_fallbacks, polling_dirs) and goes on polling: scans still
// find everything, files are still read every PollInterval. "**" matches any
// number of directories; a symbolic link is followed to its file, and a file
// matched by several patterns or paths is followed once (by dev+inode; a real
// path is preferred over a link). Compressed files (.gz, .zst, ...) are never
// read unless a pattern names that extension itself. Files found at the very
// first start (no saved position at all) start at StartAt; every other file
// is read from its beginning.
//
// # Rotation
//
// Rename (logrotate create): a file that leaves its stream path keeps its
// descriptor and its stream label; a file renamed to another matched name is
// just followed there. It is read until it has not grown for RotateWait,
// read to its end once more, its incomplete last line emitted with
// FlagPartial, and closed. Its position stays while the file exists: a scan
// that sees it grow again (a writer that kept the old descriptor for longer
// than RotateWait) opens it and reads the late lines; one that finds it gone
// (deleted, compressed) in two scans in a row forgets it (a directory listing
// races with the renames of a rotation). The remaining window: lines a
// writer adds to a rotated file after it was closed are lost if the file is
// deleted or compressed before a scan sees it grow. Several rotations between two scans lose
// nothing: the old descriptor is kept, and when a file leaves its stream path
// the directory is searched for files of its rotation (the stream's name plus
// a ".", "-" or "_" suffix) never seen, changed since the stream was last
// seen, not copies of known files: they are read from 0 under the stream's
// name.
//
// Copytruncate: a shrink, or a change of the bytes just before the read
// position (checked on every read: a file truncated and regrown past the
// position is caught too), is a truncation. The directory is searched for the
// rotated copy: same head, the same bytes before the read position (compared
// with the last 8 KiB read). Its bytes from the read position to its end are
// read under the file's id and stream, before the file is read again from 0.
// A copy shorter than the read position (lines written after the copy were
// read before the truncation) is taken as read. The copy gets a position at
// its end, so that it is never read again (also when its name is matched,
// e.g. app.log*). Lines written between logrotate's copy and its truncation
// are in neither file: that loss is logrotate's (copytruncate with
// delaycompress, and a writer with O_APPEND, keep it to that window).
//
// Deletion while open: drained with the descriptor kept, then closed after
// RotateWait without growth; lines written to it after that are lost, as
// they are to everyone.
//
// While the agent is stopped: a saved file no pattern matches any more is
// looked for by inode in its directory and drained under its stream; a saved
// file truncated (copytruncate) has its copy found by head and mark, read
// from the position; files of the stream's rotation never seen are found as
// above, also for a stream none of whose saved positions is of its live file
// (the stop came after the live file was seen leaving its path, before a
// line of its successor was captured; the successor, rotated while the
// agent was down, is found at its rotated name, changed since the stream
// was last seen). Their names are taken by the next rotation, so they are opened
// before any other waiting file. Not covered: a rotation that compresses (or
// deletes) a file before its unread bytes were read: compressed files are
// not read. The filename label is the stream path: the path at which the
// file was first followed, kept in the position's meta across renames and
// restarts.
//
// # Limits
//
// At most MaxOpenFiles files are open. Others wait in a queue (rotated files
// first); an open file at its end gives its slot up while others wait (one
// never at its end after a second), and any file is closed after IdleTimeout
// without growth. A closed file keeps its position and is reopened, by
// identity, when a scan or an event sees it change. Identity checks and copy
// searches open one more file at a time, briefly.
//
// # Memory
//
// What the source holds does not grow with the number of files. Payload
// bytes are bounded by MaxInflightBytes, one budget shared by all files: a
// file reserves budget before it adds a record to its payload (a step at a
// time), hands the reservation to the payload when it is appended (shrunk to
// the payload's size), and the WAL's ack gives it back. Files get budget in
// the order they asked for it; a file that cannot grow its reservation at
// once, or sees others waiting, appends what it has built and waits in line
// holding nothing but payloads in flight, so no file starves another and
// waiters never deadlock. A single record larger than the whole budget is
// let through alone, once nothing else is held. Read buffers
// (ReadBufferBytes) are shared too: 2 to 8 of them (MaxInflightBytes /
// (2 MaxEntryBytes)), lent for a turn; when files wait for one, a file that
// has read max(MaxEntryBytes, 4 ReadBufferBytes) in its turn appends its
// payload and lines up again. A file with nothing new to read does not wait
// for a buffer. Positions and acks are untouched: the budget only decides
// when a payload is built and appended. Stats: inflight_bytes (and peak,
// limit), inflight_budget_waits, read_buffer_waits.
//
// # Goroutines
//
// Run's goroutine scans, routes file system events and hands out slots; each
// open file has one goroutine that reads, frames and appends. WAL done
// callbacks take only the file's small mutex and call the Checkpointer; no
// lock they need is held while Append blocks.
package file
