// Package ship delivers captured lines from the WAL to sinks.
//
// Contract:
//
//   - One Shipper per sink, each an independent reader of the WAL with its own
//     persisted cursor. A slow or dead sink never holds another back, except
//     through the shared WAL disk budget.
//   - A batch is a contiguous range of WAL entries. Batches are sent by up to
//     Concurrency workers and may complete out of order; the cursor is the
//     first entry of the lowest unacknowledged batch, so after a crash only
//     the batches that were in flight are sent again (at-least-once).
//   - Transient failures (network errors, timeouts, 429, 5xx) are retried
//     with exponential backoff and full jitter for as long as it takes: the
//     data waits in the WAL, not in memory. A permanent rejection is counted
//     by reason and logged with the WAL range, never dropped silently.
//   - The Shipper knows nothing of files or containers: it reads records.
package ship
