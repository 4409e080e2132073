package mariadb

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestStartExecStop(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a MariaDB server")
	}
	s := Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sql, statements := Workload(2)
	if out, err := s.Exec(ctx, sql); err != nil {
		t.Fatalf("workload: %v\n%s", err, out)
	}
	out, err := s.Exec(ctx, "SELECT 6*7 AS answer;")
	if err != nil || !strings.Contains(string(out), "42") {
		t.Fatalf("SELECT: %v: %s", err, out)
	}
	// A failing statement is an error that carries the client's message.
	if _, err := s.Exec(ctx, "SELECT * FROM no_such_db.t;"); err == nil || !strings.Contains(err.Error(), "no_such_db") {
		t.Errorf("bad statement: err %v", err)
	}
	s.Stop()
	s.Stop() // stopping twice does nothing
	if _, err := s.Exec(ctx, "SELECT 1;"); err == nil {
		t.Errorf("Exec after Stop succeeded")
	}
	slow, err := os.ReadFile(s.SlowLog)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(slow), "\n# Query_time: "); n < statements {
		t.Errorf("slow log holds %d statements, want at least %d", n, statements)
	}
	if !strings.Contains(string(slow), MultiLineQuery) || !strings.Contains(string(slow), CommentedQuery) {
		t.Errorf("slow log lacks the workload's multi-line or commented statement")
	}
}
