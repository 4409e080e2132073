// Package dlq is the dead-letter queue: entries a sink rejected for good,
// kept so that an operator can send them again, and the replay of any WAL
// range (delivered or not) after a receiver lost data.
//
// Contract:
//
//   - Store implements ship.DeadLetterer. DeadLetter copies the entries
//     into letter files in Config.Dir (one file per letter, encoded as a
//     wal/record payload with a header and CRC32C, see file.go; written to
//     a temporary name, fsynced, renamed, directory fsynced) and indexes
//     them in the state file (state.DLQLetter), so a DLQ never pins WAL
//     segments. A letter whose entries carry different reasons is stored
//     as one letter per reason. When DeadLetter returns nil the letters are
//     durable; on error nothing was kept.
//   - Letter ids come from a persisted sequence: they grow with time and
//     are never reused.
//   - Expiry (Run, Expire): a pending letter older than Retention, or the
//     oldest ones while the files exceed MaxBytes, are removed and counted
//     (logcapturer_dlq_expired_lines_total) and logged as loss. MaxBytes is
//     also enforced at each DeadLetter.
//   - Open reconciles files and index after a crash: a temporary file is
//     removed; a letter file without index record is indexed again from its
//     header; an index record without its file is dropped and its lines
//     counted lost; an undecodable file is moved to corrupt/. Each repair is
//     counted (logcapturer_dlq_repairs_total) and listed by Repairs.
//   - Reprocess carries out a Request once per id: a repeated id returns the
//     stored Result (Repeated) and sends nothing; an interrupted one (crash,
//     cancelled ctx) resumes where it stopped. Letters are sent from their
//     files to the sink that rejected them, and released (file removed,
//     record kept as reprocessed until Retention) once every batch was
//     accepted; failures keep the letter with its attempts and error. A
//     replay reads the WAL (WALSource: a running wal.Log or a stopped
//     WAL directory); entries the WAL no longer holds are reported as
//     unavailable, never silently skipped. Sends retry retryable errors up
//     to MaxAttempts with backoff; a permanent error fails at once.
//   - Store starts nothing on Open; Run is its only goroutine-owning method.
package dlq
