package multiline

import "bytes"

// Preset names.
const (
	PresetSIP        = "sip"
	PresetJava       = "java"
	PresetPython     = "python"
	PresetGo         = "go"
	PresetMySQLSlow  = "mysql_slow"
	PresetMySQLError = "mysql_error"
)

// preset is a Mode and Pattern plus, for formats a regexp cannot describe
// alone, a hook that refines the pattern's decision with a little state.
type preset struct {
	mode, pattern string
	hook          func() hook
}

// hook refines, line by line, whether a line begins a new entry. It sees
// every line in order, including those that complete an entry.
type hook interface {
	begins(line []byte, begins bool) bool
	reset()
}

var presets = map[string]preset{
	// OpenSIPS writes one event per log call; a SIP message printed with
	// xlog("...$mb") (or a multi-line LM_* message such as LM_BUG's)
	// continues on lines of its own (request or status line, headers, the
	// blank line, the SDP body) with no prefix, when OpenSIPS logs to stderr
	// (log_stderror=yes, redirected to a file or a container log) or when
	// rsyslog writes control characters unescaped. (rsyslog's default
	// escapes them as "#015#012": one line, nothing to group. Where journald
	// captured stderr, every line has its own syslog prefix and cannot be
	// regrouped by a start pattern.)
	// An event starts with:
	//   - the stderr prefix, ctime without weekday and year:
	//     "Nov 26 20:11:40 [2412] INFO:..."  (day space-padded: "Nov  6")
	//   - a traditional syslog file line: "Nov 26 20:11:40 host opensips[2412]: ..."
	//   - an RFC 3339 syslog file line:   "2026-11-26T20:11:40.123456+00:00 host ..."
	//   - a bare "[pid] " prefix (stderr with the time stripped by a wrapper)
	//   - a JSON event ('{"'), the OpenSIPS 3.4+ json log formats.
	PresetSIP: {
		mode: ModeStart,
		pattern: `^(?:(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [ 0-3][0-9] [0-9]{2}:[0-9]{2}:[0-9]{2}` +
			`|[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}` +
			`|\[[0-9]+\] ` +
			`|\{")`,
	},
	// A stack trace printed by Throwable.printStackTrace (and logback/log4j
	// after the message line): the exception line ("java.lang.X: msg"),
	// "\tat" frames, "Caused by:", "\tSuppressed:", "\t... N more" and
	// logback's "... N common frames omitted" continue the line before them.
	// "Exception in thread ..." (an uncaught exception) begins an entry.
	PresetJava: {
		mode: ModeContinue,
		pattern: `^(?:\s+at ` +
			`|\s+\.\.\. [0-9]+ (?:more|common frames omitted)` +
			`|\s*Caused by: ` +
			`|\s+Suppressed: ` +
			`|[\w$]+(?:\.[\w$]+)+(?:Exception|Error|Throwable)[\w$]*(?:: |$)` +
			`|\s*$)`,
	},
	// A traceback continues the line before it (logging.exception's message):
	// "Traceback (most recent call last):", indented frames and source lines,
	// blank lines and the chained-exception sentences. The exception line
	// ("ValueError: bad", "QuotaExceeded: ...") is not indented; the hook
	// keeps it: inside a traceback, the first unindented line after an
	// indented one ends the traceback and belongs to it.
	PresetPython: {
		mode: ModeContinue,
		pattern: `^(?:\s|$` +
			`|Traceback \(most recent call last\):` +
			`|During handling of the above exception, another exception occurred:` +
			`|The above exception was the direct cause of the following exception:)`,
		hook: func() hook { return &pythonHook{} },
	},
	// A Go panic or fatal error: "panic: ..." / "fatal error: ..." begins the
	// entry; "[signal ...]", blank lines, "goroutine N [state]:", function
	// lines ("main.(*T).m(...)", "panic({0x4c53a0?, ...})"), tab-indented
	// file lines, "created by ...", register dumps (GOTRACEBACK=crash) and
	// "...additional frames elided..." continue it.
	PresetGo: {
		mode: ModeContinue,
		pattern: `^(?:\s|$` +
			`|goroutine [0-9]+ (?:gp=\S+ m=\S+ (?:mp=\S+ )?)?\[` +
			`|\[signal ` +
			`|\[originating from goroutine ` +
			`|created by ` +
			`|runtime stack:$` +
			`|\.\.\.additional frames elided\.\.\.$` +
			`|[a-z0-9]{2,6} +0x[0-9a-f]+$` +
			`|\S+\(.*\)$)`,
	},
	// MySQL/MariaDB slow query log. An entry is
	//   [# Time: 231126 20:11:40 | # Time: 2026-11-26T20:11:40.123456Z]
	//   # User@Host: ...
	//   # Query_time: ... (and other "# ..." lines: Thread_id, Rows_affected, explain)
	//   [use db;] SET timestamp=...;
	//   the statement, possibly over several lines
	// "# Time:" is written only when the second changed (MariaDB, MySQL
	// 5.x), so "# User@Host:" also begins an entry, except right after a
	// "# Time:" line (the hook). The three lines mysqld writes when it opens
	// the file ("<path>, Version: ... started with:", "Tcp port: ...",
	// "Time Id Command Argument") each begin an entry of their own, so they
	// are never glued to the statement before or the entry after them.
	PresetMySQLSlow: {
		mode: ModeStart,
		pattern: `^(?:# Time: |# User@Host: ` +
			`|[^,\s]+, Version: .* started with:$` +
			`|Tcp port: [0-9]+` +
			`|Time\s+Id\s+Command\s+Argument$)`,
		hook: func() hook { return &mysqlSlowHook{} },
	},
	// MySQL/MariaDB error log: a line starting with a timestamp begins an
	// entry ("2026-11-26 20:27:56 0 [Note] ..." MariaDB 10+, "2026-11-26T20:27:56.123456Z 0
	// [ERROR] ..." MySQL 5.7+, "231126 20:27:56 [Note] ..." / "231126  9:27:56"
	// MySQL 5.5 and mysqld_safe); anything else (the "Version: ..." line after
	// "ready for connections", crash reports, backtraces) continues it.
	PresetMySQLError: {
		mode: ModeStart,
		pattern: `^(?:[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}` +
			`|[0-9]{6}\s+[0-9]{1,2}:[0-9]{2}:[0-9]{2})`,
	},
}

var (
	slowTimeHead  = []byte("# Time: ")
	tracebackHead = []byte("Traceback (most recent call last):")
)

// mysqlSlowHook keeps "# User@Host:" with the "# Time:" line just before it.
type mysqlSlowHook struct{ afterTime bool }

func (h *mysqlSlowHook) begins(line []byte, begins bool) bool {
	if h.afterTime {
		begins = false
	}
	h.afterTime = bytes.HasPrefix(line, slowTimeHead)
	return begins
}

func (h *mysqlSlowHook) reset() { h.afterTime = false }

// pythonHook keeps a traceback's final exception line with the traceback.
type pythonHook struct {
	inTrace      bool // a traceback began in the current entry and has not ended
	prevIndented bool
}

func (h *pythonHook) begins(line []byte, begins bool) bool {
	indented := len(line) > 0 && (line[0] == ' ' || line[0] == '\t')
	if begins && h.inTrace && h.prevIndented {
		begins = false // the exception line
		h.inTrace = false
	}
	if begins {
		h.inTrace = false
	}
	// Only a top-level traceback: an exception group's is indented to its
	// last line ("  | ValueError: x", "  +----"), the pattern keeps it whole.
	if bytes.HasPrefix(line, tracebackHead) {
		h.inTrace = true
	}
	h.prevIndented = indented
	return begins
}

func (h *pythonHook) reset() { *h = pythonHook{} }
