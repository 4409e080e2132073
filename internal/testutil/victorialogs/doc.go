// Package victorialogs runs a real VictoriaLogs for tests: a receiver that
// speaks the Loki push protocol and can be queried back, so a test checks
// what really arrived instead of what a mock saw.
//
// Contract:
//
//   - Binary finds victoria-logs ($VICTORIA_LOGS_BIN, then $PATH, then
//     $(go env GOPATH)/bin). When it is missing the test is skipped, or
//     fails if $CI is set, naming InstallCommand.
//   - Start runs it on a free 127.0.0.1 port with its data in t.TempDir
//     (or WithDataDir), output in a file whose tail is logged when the test
//     fails, and waits for /health. t.Cleanup stops it. Stop, Kill and
//     Restart (same data dir, same port) let tests stage receiver outages.
//   - Query and Count flush first, then run LogsQL over all time.
//   - The process is killed if the test binary dies (Linux Pdeathsig).
//
// The server owns goroutines (the process waiter, pooled connections) until
// its cleanup runs, so check leaks with goleak.VerifyTestMain, not a
// deferred goleak.VerifyNone inside the test, which runs before cleanups.
//
// This package must not import ship/loki: that package's tests import this
// one. Its own test pushes with the Loki JSON API.
//
// VictoriaLogs pitfalls (v1.52.1, checked by hand or by this package's tests):
//
//   - A JSON-looking line ({...}) is parsed into fields and leaves no _msg
//     of ours, unless disable_message_parsing=1 is set. PushURL sets it.
//   - X-Scope-OrgID must be numeric ("12" or "12:34"); "team-a" gives 400.
//     A tenant's rows are only visible to queries sent with the AccountID
//     and ProjectID headers, which Query does not send: it reads tenant 0.
//   - Freshly ingested rows are invisible for about a second. Query and
//     Count call /internal/force_flush first.
//   - force_flush does NOT make rows durable. SIGKILL (Kill) loses what was
//     ingested in the last several seconds (-inmemoryDataFlushInterval, 5s
//     by default; rows 2s old were lost even with it set to 1s). An outage
//     test that must not lose acknowledged rows uses Stop (SIGTERM), which
//     persists everything; one that uses Kill must expect that loss on the
//     receiver side and not blame the sender for it.
//   - Rows outside retention (older than now-7d, rounded down to midnight,
//     or later than now+2d) are dropped while the push still answers 204.
//     Only the process output says so ("skipping log entry with too small
//     timestamp"). Use timestamps near now.
//   - Exact duplicates are stored, not merged: counts are honest, so a
//     sender's retries show up as extra rows.
//   - An empty line is stored with _msg set to a "missing _msg field"
//     placeholder. Structured metadata or labels with an empty value are
//     dropped (empty equals missing).
//   - Query rows carry _stream (labels sorted, no space after commas, e.g.
//     {app="a",env="b"}), _stream_id, _time (RFC 3339, trailing zeros
//     trimmed, as time.RFC3339Nano) and _msg; every value is a string. Rows
//     are unordered unless the query sorts them. A count over no rows is one
//     row with c=0, not an empty result.
//   - The data directory is locked: a second process on it exits with
//     "cannot acquire lock".
//   - Protobuf bodies must be snappy block format; raw protobuf and the
//     framed snappy format give 400.
package victorialogs
