// Package e2e holds the end-to-end tests of the logcapturer binary: the real
// agent process (built once with go build), real files written while it runs,
// and a real VictoriaLogs as the Loki-protocol receiver, queried back to count
// every line that arrived.
//
// Contract:
//
//   - The tests run only without -short: they take from ten seconds to a few
//     minutes. TestMariaDBSlowLogMultiline also needs MariaDB
//     (internal/testutil/mariadb; `make deps` installs it). All need
//     victoria-logs (internal/testutil/victorialogs finds it, or skips; with
//     $CI set a missing binary fails the run).
//   - Every process a test starts is killed by t.Cleanup, even when the test
//     fails half-way; on Linux the agents also die with the test binary.
//   - Every wait is bounded. On failure the tail of each agent log and of the
//     VictoriaLogs log is printed.
//   - Chaos schedules come from a logged seed; E2E_SEED replays one.
//
// The package has no non-test code besides this file.
package e2e
