// Package mariadb runs a private MariaDB server for tests: the real
// mysqld writing a real slow query log, so the multiline presets and the
// file source are tested against what MariaDB really writes.
//
// Contract:
//
//   - Start finds mariadbd (or mysqld), mariadb-install-db and the mariadb
//     client in $PATH, /usr/sbin, /usr/bin or /usr/local/mysql/bin. When one
//     is missing the test is skipped, or fails if $CI is set, naming
//     InstallCommand.
//   - The server is private: a fresh datadir under t.TempDir, a Unix socket
//     there, TCP on a free 127.0.0.1 port, no grant tables, no binlog, 16 MiB
//     of buffer pool. The slow query log is on for every statement
//     (slow_query_log=1, long_query_time=0) and written to SlowLog; the
//     error log to ErrorLog.
//   - Exec runs SQL through the mariadb client (--comments keeps comments
//     in the statements, so they reach the slow log as written).
//   - Stop sends SIGTERM and waits (SIGKILL after 30 s): once it returns,
//     every slow-log entry is on disk. t.Cleanup stops the server; on Linux
//     it also dies with the test binary. Every wait is bounded.
//   - Workload is a statement mix that exercises the slow log's entry
//     shapes: single-line, multi-line (with a '#' line inside), commented,
//     a newline inside a string, a "use" line, and a second "# Time:" head.
package mariadb
