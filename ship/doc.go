// Package ship delivers captured lines from the WAL to sinks.
//
// Contract:
//
//   - One Shipper per sink, each an independent reader of the WAL with its own
//     persisted cursor. A slow or dead sink never holds another back, except
//     through the shared WAL disk budget.
//   - Lines are sharded by stream (a hash of the label set) over Concurrency
//     shards. A shard sends its batches one at a time, in WAL order, retrying
//     a batch before the next: every stream keeps its order, and a backlog
//     drains oldest first. Batches close on BatchBytes or BatchWait and never
//     exceed MaxRequestBytes of estimated encoded size (lines, labels,
//     metadata and protobuf framing; only a single larger entry goes alone).
//   - A WAL entry is done when every batch holding one of its lines is
//     acknowledged or dead-lettered; the cursor is the lowest entry not done
//     (tracker.go), so after a crash only what was in flight, or acknowledged
//     beyond a slower shard, is read again (at-least-once).
//   - Network errors, timeouts, 429 and 5xx are retried with exponential
//     backoff and full jitter, Retry-After honoured (capped at MaxBackoff),
//     for as long as it takes (the data waits in the WAL, whose budget pauses
//     the sources) or until MaxElapsed, after which the batch goes to the DLQ
//     as retry_exhausted.
//   - A batch is never re-sent after a permanent answer. A 400 (or a
//     stream-limit 429) stores part of a request: the entries the body names
//     go to the DLQ with Loki's reason, the entries whose fate it leaves
//     unknown go to the DLQ marked partially accepted, the rest counts as
//     delivered. Other 4xx send the whole batch to the DLQ as http_<code>.
//     Entries that break the receiver's known limits (Checker; LokiLimits)
//     go to the DLQ before sending. Without a DeadLetterer they are counted
//     and logged with their WAL range; a failing DeadLetterer is retried.
//   - A circuit breaker per sink (breaker.go) stops all shards after
//     CircuitFailures consecutive failures and lets one probe through after
//     the cool-down; its state is in Status and a gauge.
//   - Dedup at shipping (dedup.go) drops entries whose key the sink
//     acknowledged within the window; keys are recorded on acknowledgement
//     and checkpointed to a DedupStore in batches.
//   - With WithRecovery (mark.go, probe.go), no request leaves before a
//     durable dispatch mark covers its highest WAL index (raised a lease
//     ahead, in the background, so steady state never waits; a failed
//     commit is counted and the request goes out anyway). At start, the
//     entries between cursor and mark whose keys are unknown are looked up
//     in the receiver (Prober); those it stores are recorded in the dedup
//     window as delivered and not sent again. A failed probe replays
//     everything: duplicates possible, never loss. It needs dedup.
//   - At shutdown, requests under way get DrainTimeout to finish; batches
//     waiting for a retry or not started are left for the next run; the
//     cursor and the dedup keys are persisted.
//   - The Shipper knows nothing of files or containers: it reads records.
package ship
