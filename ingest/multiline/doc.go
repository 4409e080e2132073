// Package multiline groups the framed lines of one stream into multi-line
// entries: stack traces, SIP messages logged by OpenSIPS, MySQL/MariaDB
// slow-log entries and error-log continuations.
//
// # Modes
//
// Config.Pattern (RE2) is matched against every line; Negate inverts it.
//
//	start     a matching line begins a new entry; other lines continue it
//	continue  a matching line continues the pending entry; others begin one
//	end       a matching line completes the pending entry, emitted at once
//
// In start and continue modes an entry is complete only when the next one
// begins, so the last entry waits: Flush emits it once its first line is
// FlushTimeout old, FlushAll at once (shutdown, rotation, end of a drained
// file). Presets (Config.Preset: sip, java, python, go, mysql_slow,
// mysql_error) fill Mode and Pattern; presets.go documents the formats
// they recognise. mysql_slow and python refine the pattern with a line of
// state (a "# User@Host:" right after "# Time:" stays with it; a Python
// traceback keeps its unindented exception line).
//
// # Limits: split, never drop
//
// An entry never holds more than MaxLines lines nor more than MaxBytes
// bytes, except that one line longer than MaxBytes is an entry by itself (the
// framer bounds a line). When the next line would pass a limit, the pending
// entry is emitted as it is and the line starts the next piece; no line is
// dropped or truncated here. Every piece of a cut entry carries
// record.FlagPartial, which marks any entry that is not a whole logical
// entry:
//   - a piece of an entry cut at MaxLines or MaxBytes;
//   - in start and continue modes, an entry whose first line does not begin
//     an entry (the stream started inside one, or its head was flushed by
//     the timeout before these lines came);
//   - in end mode, an entry flushed (Flush, FlushAll) before its end line,
//     and the lines that follow it up to that end line.
//
// An entry's flags are also the union of its lines' flags (FlagTruncated,
// FlagEscaped, FlagPartial from the framer).
//
// # Offsets and positions
//
// Each entry is emitted with the end offset of its last line. Pending
// reports the pending entry's start (the end offset of the line before it,
// set initially by Reset) and end. The caller advances the source's saved
// position over emitted entries only, never past Pending's start: after a
// crash with an entry pending, the source is read again from that start and
// the entry is assembled again whole (not lost, not half-shipped). Lines must
// be fed in stream order with contiguous offsets; Reset(offset) starts over
// after a seek, truncation or reopen.
//
// TakeCounts reports the entries emitted, the pieces cut at a limit and the
// entries emitted by Flush since its last call, for the caller's counters.
//
// # Cost
//
// The pending entry lives in one reused buffer (dropped after an entry larger
// than 64 KiB so idle files hold little memory); Add allocates nothing in
// steady state. emit's entry slice is valid only during the call.
package multiline
