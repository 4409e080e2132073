// Command logcapturer captures logs from files into a durable WAL and ships
// them to Grafana Loki (or a local file).
package main

import (
	"fmt"
	"io"
	"os"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `logcapturer: capture logs into a durable WAL and ship them to Loki.

Usage:
  logcapturer run [--config FILE]             run the agent
  logcapturer wal ls|dump|verify|stats --data-dir DIR [--json]
                                              inspect the WAL offline
  logcapturer dlq ls|show|reprocess [--config FILE]
                                              inspect and reprocess the DLQ offline
  logcapturer config check [FILE]             load and validate a configuration
  logcapturer health [--addr HOST:PORT]       query /health (for container HEALTHCHECK)
  logcapturer version                         print the version

Environment: SSW_CONFIG_FILE, SSW_PIPELINES_FILE, SSW_FILE_CONFIG, LOKI_URL,
LOG_LEVEL, LOG_FORMAT (see README.md).
`

func main() {
	os.Exit(runMain(os.Args[1:], os.Stdout, os.Stderr))
}

func runMain(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "run":
		return cmdRun(args[1:], stdout, stderr)
	case "wal":
		return cmdWAL(args[1:], stdout, stderr)
	case "dlq":
		return cmdDLQ(args[1:], stdout, stderr)
	case "config":
		return cmdConfig(args[1:], stdout, stderr)
	case "health":
		return cmdHealth(args[1:], stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintf(stdout, "logcapturer %s\n", version)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "logcapturer: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}
