package multiline

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/logcapturer/log_capturer_go/internal/testutil/mariadb"
)

// TestMariaDBSlowLog runs a private MariaDB (loopback, temp datadir) with the
// slow log on for every statement, runs a workload through the mariadb
// client, and checks that the mysql_slow preset makes exactly one entry of
// each slow-log entry.
func TestMariaDBSlowLog(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a MariaDB server")
	}
	db := mariadb.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	sql, statements := mariadb.Workload(20)
	if out, err := db.Exec(ctx, sql); err != nil {
		t.Fatalf("workload: %v\n%s", err, out)
	}
	db.Stop() // every entry is on disk once mysqld has exited
	if t.Failed() {
		return
	}
	data, err := os.ReadFile(db.SlowLog)
	if err != nil {
		t.Fatal(err)
	}
	lines := frame(data)
	if !bytes.HasSuffix(data, []byte("\n")) {
		t.Fatalf("slow log does not end with a newline")
	}
	es := assemble(t, Config{Preset: PresetMySQLSlow}, lines)
	checkLossless(t, lines, es)
	checkSlow(t, es)

	queryTimeLines := 0
	for _, l := range lines {
		if bytes.HasPrefix(l.text, []byte("# Query_time: ")) {
			queryTimeLines++
		}
	}
	var withQT, withTime, withUserHost int
	var multi, comment []string
	for _, e := range es {
		n := strings.Count("\n"+e.text, "\n# Query_time: ")
		if n == 0 {
			continue
		}
		withQT++
		if n != 1 {
			t.Errorf("entry with %d Query_time lines:\n%s", n, e.text)
		}
		switch {
		case strings.HasPrefix(e.text, "# Time: "):
			withTime++
		case strings.HasPrefix(e.text, "# User@Host: "):
			withUserHost++
		}
		if strings.Contains(e.text, mariadb.MultiLineMarker) {
			multi = append(multi, e.text)
		}
		if strings.Contains(e.text, mariadb.CommentMarker) {
			comment = append(comment, e.text)
		}
	}
	t.Logf("slow log: %d lines, %d Query_time lines, %d entries (%d with # Time:, %d from # User@Host:)",
		len(lines), queryTimeLines, len(es), withTime, withUserHost)
	if withQT != queryTimeLines {
		t.Errorf("%d entries hold a Query_time line, the log has %d", withQT, queryTimeLines)
	}
	if queryTimeLines < statements {
		t.Errorf("only %d slow-log entries for %d statements", queryTimeLines, statements)
	}
	if withTime == 0 || withUserHost == 0 {
		t.Errorf("workload did not exercise both entry heads: %d with # Time:, %d with # User@Host:", withTime, withUserHost)
	}
	if len(multi) != 1 || !strings.HasSuffix(multi[0], "\n"+mariadb.MultiLineQuery) {
		t.Errorf("multi-line statement not in exactly one entry ending with it: %q", multi)
	}
	if len(comment) != 1 || !strings.HasSuffix(comment[0], "\n"+mariadb.CommentedQuery) {
		t.Errorf("commented statement not in exactly one entry: %q", comment)
	}
	for _, e := range es {
		if strings.Contains(e.text, "'two") && !strings.Contains(e.text, "'two\nlines');") {
			t.Errorf("statement with a newline in a string split: %q", e.text)
		}
	}
	if err := ctx.Err(); err != nil {
		t.Errorf("test ran out of time: %v", err)
	}
}
