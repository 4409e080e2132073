package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/logcapturer/log_capturer_go/internal/testutil/mariadb"
	"github.com/logcapturer/log_capturer_go/internal/testutil/victorialogs"
)

// TestMariaDBSlowLogMultiline is must-show 5: a real MariaDB writes its slow
// log (every statement, long_query_time=0) while the real agent follows it
// through a file_pipeline.yml route with the mysql_slow preset; the agent is
// stopped and started again mid-run (the workload goes on meanwhile). The
// slow log on disk, split into entries here without the multiline package,
// must be in VictoriaLogs one row per entry, each exactly once, whole, with
// the route's labels. An OpenSIPS-style log (multi-line SIP messages, sip
// preset) and a file no route matches (one row per line, files_config's
// labels) ride along.
func TestMariaDBSlowLogMultiline(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e: starts MariaDB, the agent and VictoriaLogs; skipped with -short")
	}
	bin := agentBinary(t)
	vl := victorialogs.Start(t)
	db := mariadb.Start(t)
	root := t.TempDir()
	plain := filepath.Join(root, "plain", "plain.log")
	sip := filepath.Join(root, "sip", "opensips.log")
	for _, p := range []string{plain, sip} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// The route's globs are followed in addition to files_config.include,
	// which names only the plain file's directory.
	routes := fmt.Sprintf(`routes:
  - name: mysql-slow
    match: [%q]
    labels: {job: mysql, log_type: slow}
    multiline: {preset: mysql_slow, flush_timeout: 5s}
  - name: opensips
    match: [%q]
    labels: {job: opensips}
    multiline: {preset: sip}
`, filepath.Join(filepath.Dir(db.SlowLog), "*slow*.log"), sip)
	// Found next to config.yaml, as configs/file_pipeline.yml is.
	if err := os.WriteFile(filepath.Join(root, "file_pipeline.yml"), []byte(routes), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := baseConfig(t, root, filepath.Join(root, "plain", "*.log"), vl.PushURL())
	cfg.MaxEntryBytes = 512 << 10 // room for the preset's default max_bytes (256KiB)
	ag := newAgent(t, bin, root, cfg)
	ag.start()

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	sql, statements := mariadb.Workload(20)
	if out, err := db.Exec(ctx, sql); err != nil {
		t.Fatalf("e2e: workload: %v\n%s", err, out)
	}
	sipWant := writeSIP(t, sip, 0, 12)
	writePlain(t, plain, 0, 5)
	// Stopped with the workload's last entry read and pending (nothing
	// follows it; its flush timeout is 5s): the position is at its start,
	// and the next run reads it again whole.
	pending := waitSlowRead(t, ag, db.SlowLog)
	if err := ag.stop(); err != nil {
		t.Fatalf("e2e: graceful stop: %v", err)
	}
	more := "USE shop;\n" + mariadb.MultiLineQuery + "\nSELECT 'after the restart';\n"
	if out, err := db.Exec(ctx, more); err != nil {
		t.Fatalf("e2e: second workload: %v\n%s", err, out)
	}
	sipWant = append(sipWant, writeSIP(t, sip, 12, 8)...)
	writePlain(t, plain, 5, 5)
	ag.start()
	db.Stop() // every slow-log entry is on disk
	if t.Failed() {
		return
	}

	slow, err := os.ReadFile(db.SlowLog)
	if err != nil {
		t.Fatal(err)
	}
	sizes := map[string]int64{db.SlowLog: int64(len(slow)), sip: fileSizeOf(t, sip), plain: fileSizeOf(t, plain)}
	ag.waitShipped(sizes, 90*time.Second)
	st := multilineStats(t, ag)
	if err := ag.stop(); err != nil {
		t.Errorf("e2e: graceful stop: %v", err)
	}
	if out, err := ag.walVerify(); err != nil {
		t.Errorf("e2e: logcapturer wal verify: %v\n%s", err, out)
	}
	if hits := ag.grepLogs("panic"); len(hits) > 0 {
		t.Errorf("e2e: agent logs mention a panic:\n%s", strings.Join(hits, "\n"))
	}

	slowWant := slowLogEntries(string(slow))
	host, _ := os.Hostname()
	rows, err := vl.Query(ctx, "*")
	if err != nil {
		t.Fatalf("e2e: query: %v", err)
	}
	got := map[string][]map[string]string{} // filename -> rows
	for _, r := range rows {
		got[r["filename"]] = append(got[r["filename"]], r)
	}
	checkRows(t, "slow log", got[db.SlowLog], slowWant, map[string]string{"job": "mysql", "log_type": "slow", "host": host})
	checkRows(t, "opensips", got[sip], sipWant, map[string]string{"job": "opensips", "log_type": "", "host": host})
	var plainWant []string
	for i := range 10 {
		plainWant = append(plainWant, plainLine(i))
	}
	checkRows(t, "plain", got[plain], plainWant, map[string]string{"job": "e2e", "log_type": "", "host": host})
	if n := len(rows) - len(got[db.SlowLog]) - len(got[sip]) - len(got[plain]); n != 0 {
		t.Errorf("e2e: %d rows under other filenames", n)
	}

	// The workload's shapes really are there, each in one entry.
	var multi, qt, timeHeads int
	for _, e := range slowWant {
		if strings.Contains(e, "\n"+mariadb.MultiLineQuery) {
			multi++
		}
		if strings.Contains(e, "\n# Query_time: ") {
			qt++
		}
		if strings.HasPrefix(e, "# Time: ") {
			timeHeads++
		}
	}
	if multi != 2 || qt < statements || timeHeads < 2 {
		t.Errorf("e2e: slow log has %d entries with the multi-line query (want 2), %d statements (want >= %d), %d \"# Time:\" heads (want >= 2)",
			multi, qt, statements, timeHeads)
	}
	t.Logf("e2e: stopped with %d slow-log bytes read and not yet captured (the pending entry); slow log %d bytes, %d lines -> %d entries; opensips %d entries; plain %d lines; stats of the last run: %+v",
		pending, len(slow), strings.Count(string(slow), "\n"), len(slowWant), len(sipWant), len(plainWant), st)
}

// waitSlowRead waits until the agent has read the slow log to its current
// end and returns how many bytes of it are read but not acknowledged: the
// pending entry (0 if its flush timeout passed meanwhile).
func waitSlowRead(t *testing.T, ag *agent, path string) uint64 {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		// mariadbd may write the last entry after the client returned.
		size := uint64(fileSizeOf(t, path))
		pos, err := ag.positions()
		if err != nil {
			t.Fatalf("e2e: %v", err)
		}
		for _, p := range pos {
			if p.Path == path && p.ReadOffset == size {
				return p.ReadOffset - p.AckedOffset
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("e2e: slow log not read to its end (%d bytes) after 30s: %+v", size, pos)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkRows compares the rows of one file with the entries wanted: each
// exactly once, whole, with the labels (an empty value: label absent).
func checkRows(t *testing.T, what string, rows []map[string]string, want []string, labels map[string]string) {
	t.Helper()
	count := map[string]int{}
	for _, r := range rows {
		count[r["_msg"]]++
		for name, v := range labels {
			if r[name] != v {
				t.Errorf("e2e: %s: row %.40q: label %s=%q, want %q", what, r["_msg"], name, r[name], v)
				break
			}
		}
	}
	missing, dup := 0, 0
	for _, e := range want {
		switch n := count[e]; {
		case n == 0:
			missing++
			if missing <= 3 {
				t.Errorf("e2e: %s: entry missing (or not whole):\n%s", what, e)
			}
		case n > 1:
			dup++
			t.Errorf("e2e: %s: entry arrived %d times:\n%s", what, n, e)
		}
		delete(count, e)
	}
	for msg, n := range count {
		t.Errorf("e2e: %s: %d row(s) that are no entry of the file:\n%s", what, n, msg)
	}
	if missing > 0 || len(rows) != len(want) {
		t.Errorf("e2e: %s: %d rows for %d entries, %d missing, %d duplicated", what, len(rows), len(want), missing, dup)
	}
}

// slowLogEntries splits a MariaDB slow log into its entries, without the
// multiline package: an entry starts at "# Time: ", at "# User@Host: "
// unless the line before is the "# Time: " line, and at each of the three
// lines the server writes when it opens the log; every other line (the
// "# Query_time:" block, "use", "SET timestamp", the statement, '#' lines
// inside it) continues the entry.
func slowLogEntries(data string) []string {
	var out []string
	var cur []string
	prevTime := false
	for _, l := range strings.Split(strings.TrimSuffix(data, "\n"), "\n") {
		head := strings.HasPrefix(l, "# Time: ") ||
			strings.HasPrefix(l, "# User@Host: ") && !prevTime ||
			strings.Contains(l, ", Version: ") && strings.HasSuffix(l, "started with:") ||
			strings.HasPrefix(l, "Tcp port: ") ||
			slices.Equal(strings.Fields(l), []string{"Time", "Id", "Command", "Argument"})
		prevTime = strings.HasPrefix(l, "# Time: ")
		if head && len(cur) > 0 {
			out = append(out, strings.Join(cur, "\n"))
			cur = nil
		}
		cur = append(cur, l)
	}
	if len(cur) > 0 {
		out = append(out, strings.Join(cur, "\n"))
	}
	return out
}

// writeSIP appends n OpenSIPS-style events (stderr format) to path, in
// several writes cut inside lines, and returns them: every other one is a
// SIP message printed with xlog("$mb"), over 13 lines with a blank line
// before its SDP body.
func writeSIP(t *testing.T, path string, from, n int) []string {
	t.Helper()
	var events []string
	var all strings.Builder
	for i := from; i < from+n; i++ {
		stamp := time.Now().Format(time.Stamp)
		var e string
		if i%2 == 0 {
			e = fmt.Sprintf("%s [2412] INFO:core:xlog: received INVITE %d\n"+
				"INVITE sip:100%d@sbc.example.com SIP/2.0\n"+
				"Via: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK-%d\n"+
				"Max-Forwards: 70\n"+
				"From: <sip:alice@example.com>;tag=%x\n"+
				"To: <sip:100%d@sbc.example.com>\n"+
				"Call-ID: %x@10.0.0.5\n"+
				"CSeq: 1 INVITE\n"+
				"Content-Type: application/sdp\n"+
				"Content-Length: 41\n"+
				"\n"+
				"v=0\n"+
				"o=- %d 1 IN IP4 10.0.0.5", stamp, i, i, i, i*7919, i, i*104729, i)
		} else {
			e = fmt.Sprintf("%s [2412] NOTICE:core:main: single-line event %d", stamp, i)
		}
		events = append(events, e)
		all.WriteString(e + "\n")
	}
	data, prev := all.String(), 0
	for _, cut := range []int{len(data) / 3, 2 * len(data) / 3, len(data)} {
		appendTo(t, path, data[prev:cut])
		prev = cut
	}
	return events
}

func plainLine(i int) string { return fmt.Sprintf("plain line %d E1 # Time: not a route", i) }

func writePlain(t *testing.T, path string, from, n int) {
	t.Helper()
	var b strings.Builder
	for i := from; i < from+n; i++ {
		b.WriteString(plainLine(i) + "\n")
	}
	appendTo(t, path, b.String())
}

func appendTo(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func fileSizeOf(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// mlStats is the part of /stats about lines and multiline entries.
type mlStats struct {
	LinesRead        uint64 `json:"lines_read"`
	LinesTruncated   uint64 `json:"lines_truncated"`
	MultilineEntries uint64 `json:"multiline_entries"`
	MultilinePartial uint64 `json:"multiline_entries_partial"`
	MultilineSplit   uint64 `json:"multiline_entries_split"`
	MultilineFlushed uint64 `json:"multiline_entries_flushed"`
}

func multilineStats(t *testing.T, ag *agent) mlStats {
	t.Helper()
	var doc struct {
		Files mlStats `json:"files"`
	}
	body, err := ag.get("/stats")
	if err == nil {
		err = json.Unmarshal(body, &doc)
	}
	if err != nil {
		t.Fatalf("e2e: /stats: %v", err)
	}
	if doc.Files.MultilinePartial != 0 || doc.Files.MultilineSplit != 0 || doc.Files.LinesTruncated != 0 {
		t.Errorf("e2e: entries cut or partial: %+v", doc.Files)
	}
	return doc.Files
}
