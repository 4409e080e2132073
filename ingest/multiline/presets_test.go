package multiline

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// Each fixture is a real or realistic log; its golden file shows the entries
// the preset makes of it (reviewed by hand). The structural checks say what
// must hold whatever the golden file says.
func TestPresetFixtures(t *testing.T) {
	tests := []struct {
		file    string
		preset  string
		entries int
		check   func(t *testing.T, es []entry)
	}{
		{"opensips.log", PresetSIP, 15, checkSIP},
		{"opensips_syslog.log", PresetSIP, 6, checkSIP},
		{"java.log", PresetJava, 6, func(t *testing.T, es []entry) {
			firstLines(t, es, `^(2026-11-26 |Exception in thread )`)
			for _, e := range es {
				if strings.Contains(e.text, "\tat ") && !regexp.MustCompile(`(\n|" )[\w.]+(Exception|Error): `).MatchString(e.text) {
					t.Errorf("stack trace without its exception line: %q", e.text)
				}
			}
			mustContain(t, es, 5, "Caused by: java.io.FileNotFoundException", "\t... 4 more")
			mustContain(t, es, 3, "request 19 failed", "\tSuppressed: java.io.IOException: close failed", "\t\t... 8 more")
		}},
		{"python.log", PresetPython, 7, func(t *testing.T, es []entry) {
			firstLines(t, es, `^2026-11-26 `)
			mustContain(t, es, 1, "charge failed\nTraceback", "KeyError: 'b'")
			mustContain(t, es, 2, "QuotaExceeded: account 42 over quota by 5\n\nThe above exception", "RuntimeError: retry budget exhausted")
			mustContain(t, es, 3, "During handling", "ValueError: invalid literal")
			// An uncaught traceback follows the last log line and stays with it.
			mustContain(t, es, 4, "worker stopped\nTraceback", "QuotaExceeded: account 42 over quota by 9")
			mustContain(t, es, 5, "sync batch 12 failed\n  + Exception Group", "    | TypeError: expected str\n    +------------------------------------")
		}},
		{"go_panic.log", PresetGo, 10, func(t *testing.T, es []entry) {
			firstLines(t, es, `^(2026/11/26 |panic: |fatal error: |exit status )`)
			mustContain(t, es, 2, "panic: runtime error: invalid memory", "goroutine 6 [runnable]:", "created by main.main in goroutine 1\n\t/tmp/gp/main.go:20 +0x128")
			mustContain(t, es, 4, "[recovered]\n\tpanic: job 7", "panic({0x4c53a0?, 0x37024db76078?})", "main.main()\n\t/tmp/gp2.go:23 +0xb0")
			mustContain(t, es, 8, "fatal error: all goroutines are asleep", "goroutine 1 [chan receive]:")
		}},
		{"mariadb_slow.log", PresetMySQLSlow, 29, checkSlow},
		{"mysql8_slow.log", PresetMySQLSlow, 7, checkSlow},
		{"mysql56_slow.log", PresetMySQLSlow, 6, checkSlow},
		{"mariadb_error.log", PresetMySQLError, 19, func(t *testing.T, es []entry) {
			firstLines(t, es, `^(2026-11-26 |261126 )`)
			mustContain(t, es, 17, "ready for connections.\nVersion: '10.11.19")
			mustContain(t, es, 18, "got signal 11 ;\nSorry", "Attempting backtrace", "mariadbd(_start+0x21)", "Core pattern: core", "Kernel version:")
		}},
		{"mysql8_error.log", PresetMySQLError, 8, func(t *testing.T, es []entry) {
			firstLines(t, es, `^(2026-11-26T|261126 )`)
			mustContain(t, es, 5, "could not be resolved", "InnoDB: Warning: a long semaphore wait:", "created in file dict0dict.cc")
			mustContain(t, es, 7, "261126  9:13:02 mysqld_safe mysqld restarted")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			lines := frame(data)
			es := assemble(t, Config{Preset: tt.preset}, lines)
			checkLossless(t, lines, es)
			for i, e := range es {
				if e.flags != 0 {
					t.Errorf("entry %d flagged %v", i, e.flags)
				}
			}
			golden(t, filepath.Join("testdata", tt.file+".golden"), render(es))
			if len(es) != tt.entries {
				t.Fatalf("%d entries, want %d", len(es), tt.entries)
			}
			tt.check(t, es)
		})
	}
}

var sipStart = regexp.MustCompile(presets[PresetSIP].pattern)

// checkSIP: every entry opens with a prefixed line and every SIP message
// (request/status line through the last header) is inside one entry, with
// the log line that introduced it.
func checkSIP(t *testing.T, es []entry) {
	t.Helper()
	for i, e := range es {
		first, _, _ := strings.Cut(e.text, "\n")
		if !sipStart.MatchString(first) {
			t.Errorf("entry %d starts without a prefix: %q", i, first)
		}
		if n := strings.Count(e.text, "\nCall-ID: "); n > 1 {
			t.Errorf("entry %d holds %d SIP messages", i, n)
		}
		if strings.Contains(e.text, "\nCall-ID: ") {
			if !strings.Contains(first, "INFO:script:") || !strings.Contains(e.text, "\nContent-Length: ") {
				t.Errorf("entry %d: SIP message not whole with its log line: %q", i, e.text)
			}
		}
	}
}

// checkSlow: every slow-log entry is exactly one assembled entry, with its
// header block and statement; the file header lines stand alone.
func checkSlow(t *testing.T, es []entry) {
	t.Helper()
	for i, e := range es {
		n := strings.Count("\n"+e.text, "\n# Query_time: ")
		switch {
		case n == 1:
			if !strings.HasPrefix(e.text, "# Time: ") && !strings.HasPrefix(e.text, "# User@Host: ") {
				t.Errorf("entry %d does not start at # Time/# User@Host: %q", i, e.text)
			}
			if strings.Count("\n"+e.text, "\n# User@Host: ") != 1 || !strings.Contains(e.text, "\nSET timestamp=") {
				t.Errorf("entry %d incomplete: %q", i, e.text)
			}
			if _, stmt, _ := strings.Cut(e.text, "\nSET timestamp="); !strings.Contains(stmt, "\n") {
				t.Errorf("entry %d has no statement after SET timestamp: %q", i, e.text)
			}
		case n > 1:
			t.Errorf("entry %d holds %d slow-log entries: %q", i, n, e.text)
		default:
			if strings.Contains(e.text, "\n") || !regexp.MustCompile(`(started with:|^Tcp port: |^Time\s+Id\s+Command)`).MatchString(e.text) {
				t.Errorf("entry %d is neither a slow-log entry nor a header line: %q", i, e.text)
			}
		}
	}
}

func firstLines(t *testing.T, es []entry, pattern string) {
	t.Helper()
	re := regexp.MustCompile(pattern)
	for i, e := range es {
		if !re.MatchString(e.text) {
			t.Errorf("entry %d starts with %q, want %s", i, strings.SplitN(e.text, "\n", 2)[0], pattern)
		}
	}
}

func mustContain(t *testing.T, es []entry, i int, subs ...string) {
	t.Helper()
	if i >= len(es) {
		t.Errorf("no entry %d", i)
		return
	}
	for _, s := range subs {
		if !strings.Contains(es[i].text, s) {
			t.Errorf("entry %d lacks %q:\n%s", i, s, es[i].text)
		}
	}
}

// checkLossless: the entries' lines, in order, are the input lines, and
// each entry's end offset is its last line's.
func checkLossless(t testing.TB, lines []fline, es []entry) {
	t.Helper()
	k := 0
	for i, e := range es {
		for _, l := range strings.Split(e.text, "\n") {
			if k >= len(lines) {
				t.Fatalf("entry %d: more lines out than in", i)
			}
			if l != string(lines[k].text) {
				t.Fatalf("entry %d: line %d is %q, want %q", i, k, l, lines[k].text)
			}
			k++
		}
		if e.end != lines[k-1].end {
			t.Fatalf("entry %d: end %d, want %d (its last line's)", i, e.end, lines[k-1].end)
		}
	}
	if k != len(lines) {
		t.Fatalf("%d lines in, %d out", len(lines), k)
	}
}

func render(es []entry) []byte {
	var b bytes.Buffer
	for i, e := range es {
		fmt.Fprintf(&b, "=== entry %d end=%d flags=%v\n%s\n", i, e.end, e.flags, e.text)
	}
	return b.Bytes()
}

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s (run with -update and review the diff)\n got:\n%s", path, got)
	}
}

// Cases the fixtures do not show.
func TestPresetEdgeCases(t *testing.T) {
	tests := []struct {
		name   string
		preset string
		lines  []string
		want   []string // entries, lines joined with "|"
	}{
		{
			name:   "slow log read from the middle of an entry",
			preset: PresetMySQLSlow,
			lines: []string{"  FROM a", " WHERE id = 1;", "# User@Host: [root] @ localhost []",
				"# Query_time: 0.1  Lock_time: 0.0  Rows_sent: 1  Rows_examined: 1", "SET timestamp=1;", "select 1;"},
			want: []string{"  FROM a| WHERE id = 1;", "# User@Host: [root] @ localhost []|# Query_time: 0.1  Lock_time: 0.0  Rows_sent: 1  Rows_examined: 1|SET timestamp=1;|select 1;"},
		},
		{
			name:   "slow log statement lines that look like headers but are not",
			preset: PresetMySQLSlow,
			lines: []string{"# Time: 2026-11-26T20:11:40.123456Z", "# User@Host: a[a] @ h []  Id: 1", "# Query_time: 1",
				"SET timestamp=1;", "SELECT '# Time: no' AS x,", "# Query_time is a comment here", "  Time AS t FROM log;"},
			want: []string{"# Time: 2026-11-26T20:11:40.123456Z|# User@Host: a[a] @ h []  Id: 1|# Query_time: 1|SET timestamp=1;|SELECT '# Time: no' AS x,|# Query_time is a comment here|  Time AS t FROM log;"},
		},
		{
			name:   "java logback common frames and a message without exception",
			preset: PresetJava,
			lines: []string{"12:00:01.123 ERROR c.e.Api - call failed", "org.springframework.web.client.ResourceAccessException: I/O error",
				"\tat org.springframework.web.client.RestTemplate.doExecute(RestTemplate.java:785)", "Caused by: java.net.SocketTimeoutException: Read timed out",
				"\tat java.base/sun.nio.ch.NioSocketImpl.timedRead(NioSocketImpl.java:288)", "\t... 42 common frames omitted",
				"12:00:02.000 INFO c.e.Api - retrying"},
			want: []string{"12:00:01.123 ERROR c.e.Api - call failed|org.springframework.web.client.ResourceAccessException: I/O error|\tat org.springframework.web.client.RestTemplate.doExecute(RestTemplate.java:785)|Caused by: java.net.SocketTimeoutException: Read timed out|\tat java.base/sun.nio.ch.NioSocketImpl.timedRead(NioSocketImpl.java:288)|\t... 42 common frames omitted",
				"12:00:02.000 INFO c.e.Api - retrying"},
		},
		{
			name:   "python exception line only right after the frames",
			preset: PresetPython,
			lines: []string{"ERROR boom", "Traceback (most recent call last):", `  File "a.py", line 1, in <module>`,
				"KeyError: 'x'", "INFO next", "    indented detail", "INFO after"},
			want: []string{"ERROR boom|Traceback (most recent call last):|  File \"a.py\", line 1, in <module>|KeyError: 'x'", "INFO next|    indented detail", "INFO after"},
		},
		{
			name:   "go register dump and elided frames",
			preset: PresetGo,
			lines: []string{"fatal error: unexpected signal during runtime execution", "[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x0]",
				"", "runtime stack:", "runtime.throw({0x4b5e2d?, 0x0?})", "\t/usr/local/go/src/runtime/panic.go:1101 +0x48",
				"...additional frames elided...", "rax    0x0", "rflags 0x10246", "2026/11/26 20:30:19 restarted"},
			want: []string{"fatal error: unexpected signal during runtime execution|[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x0]||runtime stack:|runtime.throw({0x4b5e2d?, 0x0?})|\t/usr/local/go/src/runtime/panic.go:1101 +0x48|...additional frames elided...|rax    0x0|rflags 0x10246",
				"2026/11/26 20:30:19 restarted"},
		},
		{
			name:   "sip space-padded day and an untimed tail",
			preset: PresetSIP,
			lines:  []string{"Jan  5 01:02:03 [77] INFO:script: msg:", "OPTIONS sip:a SIP/2.0", "Jan 15 01:02:04 [77] INFO:script: done", "[78] DBG:core:x: y"},
			want:   []string{"Jan  5 01:02:03 [77] INFO:script: msg:|OPTIONS sip:a SIP/2.0", "Jan 15 01:02:04 [77] INFO:script: done", "[78] DBG:core:x: y"},
		},
		{
			name:   "mysql error log 5.5 style and continuation",
			preset: PresetMySQLError,
			lines:  []string{"231126  9:01:02 [Note] Plugin 'FEDERATED' is disabled.", "InnoDB: The InnoDB memory heap is disabled", "231126 09:01:02 [Note] ready"},
			want:   []string{"231126  9:01:02 [Note] Plugin 'FEDERATED' is disabled.|InnoDB: The InnoDB memory heap is disabled", "231126 09:01:02 [Note] ready"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := assemble(t, Config{Preset: tt.preset}, frameStrings(tt.lines...))
			var gs []string
			for _, e := range got {
				gs = append(gs, strings.ReplaceAll(e.text, "\n", "|"))
			}
			if strings.Join(gs, "\n") != strings.Join(tt.want, "\n") {
				t.Fatalf("entries\n got %q\nwant %q", gs, tt.want)
			}
		})
	}
}
