// Package file is the file source: it follows the files matched by include
// globs and appends their lines to the WAL (ingest.Appender).
//
// # Identity
//
// A followed file is an incarnation of content in an inode. Its source id,
// written in every WAL record, is
//
//	file:<dev>:<inode>:<generation>
//
// where generation (hex) is the time, in nanoseconds, the agent first saw that
// content, kept above every generation already saved. The id is stable across
// restarts and renames. A new generation starts when the inode is found with
// other content (inode reuse) or shorter than its position (truncation).
//
// The position's Meta (opaque to the state store) holds the path where the
// file was last seen and a fingerprint: a hash of its first fp_len bytes,
// fp_len = min(size, FingerprintBytes), extended as a short file grows. At
// start a saved position is matched to a discovered file by dev+inode; the
// first fp_len bytes are hashed again, and a mismatch means inode reuse (new
// generation, read from 0). Positions known only from the WAL tail have no
// Meta and are matched by dev+inode alone. When several saved ids share an
// inode, the highest generation wins and the others are deleted.
//
// # Positions
//
// Lines are framed on '\n' ('\r' of CRLF stripped). An incomplete last line is
// held back until it completes. A line longer than MaxLineBytes is cut there
// and flagged record.FlagTruncated; the rest up to its '\n' is skipped and
// counted, with memory bounded by MaxLineBytes whatever the line's length.
// Every record's Offset is the end offset of its line (after the '\n'), so
// positions always fall on line boundaries.
//
// Lines accumulate into one payload per file, appended at MaxEntryBytes or
// at EOF, with at most MaxInflight payloads of a file awaiting their ack. The
// read position runs ahead; the persisted position (Checkpointer.SetPosition)
// moves only when the WAL acknowledged every payload of the file up to it, in
// append order. After a failed append the file waits for its in-flight
// payloads, then reads again from the last acknowledged line (at-least-once:
// payloads acked after the failed one are written again).
//
// # Discovery, rotation, truncation
//
// A scan every ScanInterval is the truth about which files exist; file system
// events on the matched files' directories only make scans and reads come
// early (without them, e.g. at the inotify limit, polling goes on). A file
// matched by several patterns is followed once (dedup by dev+inode). A file
// that leaves every matched path (renamed away or deleted) keeps its
// descriptor and is drained until it has not grown for RotateWait; its
// incomplete last line is then emitted with FlagPartial, and its position is
// deleted once acknowledged and the next scan no longer finds it. A file
// renamed to another matched path (app.log -> app.log.1 with app.log*) is just
// followed there. At start, a saved file no pattern matches any more is looked
// for in the directory it was last seen in and drained (rotated while the
// agent was stopped). A file found shorter than the read position was
// truncated: the lines read are kept, and it is read again from 0 under a new
// generation.
//
// The filename label is the path at which this process opened the file; it
// does not follow renames, so the last lines of a rotated file stay in the
// stream they were written to.
//
// Not yet handled (later work): the window lost when a file is copied and
// truncated faster than it is polled, identity of files with identical heads
// in depth, multiline, closing idle files.
//
// # Goroutines
//
// Run's goroutine scans and routes events; each followed file has one
// goroutine that reads, frames and appends. WAL done callbacks take only the
// file's small mutex and call the Checkpointer; no lock they need is held
// while Append blocks.
package file
