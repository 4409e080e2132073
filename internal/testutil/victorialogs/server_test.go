package victorialogs

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// pushJSON sends lines to one stream through the Loki JSON API. It cannot
// use ship/loki: that package's tests import this one.
func pushJSON(t *testing.T, pushURL string, labels map[string]string, lines ...string) error {
	t.Helper()
	type stream struct {
		Stream map[string]string `json:"stream"`
		Values [][]string        `json:"values"`
	}
	base := time.Now().UnixNano()
	s := stream{Stream: labels}
	for i, l := range lines {
		s.Values = append(s.Values, []string{strconv.FormatInt(base+int64(i), 10), l})
	}
	body, err := json.Marshal(map[string]any{"streams": []stream{s}})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, pushURL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("push: HTTP %d", resp.StatusCode)
	}
	return nil
}

func TestStartPushQuery(t *testing.T) {
	t.Parallel()
	s := Start(t)
	ctx := t.Context()

	if n, err := s.Count(ctx, ""); err != nil || n != 0 {
		t.Fatalf("empty server: Count = %d, %v; want 0", n, err)
	}
	// A JSON-looking line must come back verbatim in _msg: PushURL disables
	// VictoriaLogs' message parsing.
	line := `{"level":"info","msg":"hello"}`
	if err := pushJSON(t, s.PushURL(), map[string]string{"job": "helper"}, line); err != nil {
		t.Fatal(err)
	}
	n, err := s.Count(ctx, `{job="helper"}`)
	if err != nil || n != 1 {
		t.Fatalf("Count = %d, %v; want 1", n, err)
	}
	rows, err := s.Query(ctx, `{job="helper"}`)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0]["_msg"] != line || rows[0]["job"] != "helper" {
		t.Fatalf("rows = %v; want one row with _msg %q and job=helper", rows, line)
	}
	if _, ok := rows[0]["level"]; ok {
		t.Fatalf("line was parsed into fields: %v", rows[0])
	}
	if n, err := s.Count(ctx, `{job="other"}`); err != nil || n != 0 {
		t.Fatalf("other stream: Count = %d, %v; want 0", n, err)
	}
}

func TestMessageParsingWithoutFlag(t *testing.T) {
	t.Parallel()
	// Documents the pitfall PushURL avoids: the plain endpoint splits a
	// JSON line into fields and leaves no _msg of ours.
	s := Start(t)
	if err := pushJSON(t, s.URL()+"/insert/loki/api/v1/push", map[string]string{"job": "p"}, `{"level":"warn"}`); err != nil {
		t.Fatal(err)
	}
	rows, err := s.Query(t.Context(), `{job="p"}`)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0]["level"] != "warn" || rows[0]["_msg"] == `{"level":"warn"}` {
		t.Fatalf("rows = %v; want the line parsed into field level=warn", rows)
	}
}

func TestStopRestartKeepsDataAndPort(t *testing.T) {
	t.Parallel()
	s := Start(t)
	addr := s.Addr()
	if err := pushJSON(t, s.PushURL(), map[string]string{"job": "r"}, "before"); err != nil {
		t.Fatal(err)
	}
	s.Stop()
	if s.Running() {
		t.Fatal("Running after Stop")
	}
	if err := pushJSON(t, s.PushURL(), map[string]string{"job": "r"}, "during"); err == nil {
		t.Fatal("push to a stopped server succeeded")
	}
	s.Stop() // idempotent
	s.Restart()
	if s.Addr() != addr {
		t.Fatalf("Addr after Restart = %s; want %s", s.Addr(), addr)
	}
	if err := pushJSON(t, s.PushURL(), map[string]string{"job": "r"}, "after"); err != nil {
		t.Fatal(err)
	}
	rows, err := s.Query(t.Context(), `{job="r"} | sort by (_time)`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rows {
		got = append(got, r["_msg"])
	}
	if strings.Join(got, ",") != "before,after" {
		t.Fatalf("messages = %v; want [before after]", got)
	}
}

func TestKillAndRestart(t *testing.T) {
	t.Parallel()
	s := Start(t)
	s.Kill()
	if s.Running() {
		t.Fatal("Running after Kill")
	}
	s.Kill() // idempotent
	s.Restart()
	if !s.Running() {
		t.Fatal("not Running after Restart")
	}
	if err := pushJSON(t, s.PushURL(), map[string]string{"job": "k"}, "x"); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Count(t.Context(), `{job="k"}`); err != nil || n != 1 {
		t.Fatalf("Count = %d, %v; want 1", n, err)
	}
}

func TestWithDataDirReopensData(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a := Start(t, WithDataDir(dir))
	if err := pushJSON(t, a.PushURL(), map[string]string{"job": "d"}, "one", "two"); err != nil {
		t.Fatal(err)
	}
	a.Stop()
	b := Start(t, WithDataDir(dir))
	if b.DataDir() != dir {
		t.Fatalf("DataDir = %s; want %s", b.DataDir(), dir)
	}
	if n, err := b.Count(t.Context(), `{job="d"}`); err != nil || n != 2 {
		t.Fatalf("Count = %d, %v; want 2", n, err)
	}
}

func TestQueryErrors(t *testing.T) {
	t.Parallel()
	s := Start(t)
	tests := map[string]string{
		"syntax error":   `{job=`,
		"unknown pipe":   `* | frobnicate`,
		"bad stats pipe": `* | stats nosuchfunc() x`,
	}
	for name, q := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := s.Query(t.Context(), q); err == nil {
				t.Fatalf("Query(%q) succeeded", q)
			}
			if _, err := s.Count(t.Context(), q); err == nil {
				t.Fatalf("Count(%q) succeeded", q)
			}
		})
	}
	t.Run("stopped server", func(t *testing.T) {
		s.Stop()
		if _, err := s.Query(t.Context(), "*"); err == nil {
			t.Fatal("Query on a stopped server succeeded")
		}
	})
	t.Run("canceled context", func(t *testing.T) {
		s.Restart()
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if _, err := s.Count(ctx, "*"); err == nil {
			t.Fatal("Count with a canceled context succeeded")
		}
	})
}

// fatalTB records a Fatal instead of failing the real test, so Start's
// failure paths can be checked.
type fatalTB struct {
	*testing.T
	mu  sync.Mutex
	msg string
}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.mu.Lock()
	f.msg = fmt.Sprintf(format, args...)
	f.mu.Unlock()
	runtime.Goexit()
}

func (f *fatalTB) Fatal(args ...any) { f.Fatalf("%s", fmt.Sprint(args...)) }
func (f *fatalTB) Skip(args ...any)  { f.Fatalf("SKIP %s", fmt.Sprint(args...)) }

func runFatal(t *testing.T, fn func(tb testing.TB)) string {
	t.Helper()
	f := &fatalTB{T: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(f)
	}()
	<-done
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.msg
}

func TestStartFailures(t *testing.T) {
	// Not parallel: t.Setenv.
	t.Run("process exits at once", func(t *testing.T) {
		msg := runFatal(t, func(tb testing.TB) { Start(tb, WithArgs("-no.such.flag=1")) })
		if !strings.Contains(msg, "exited before becoming healthy") || !strings.Contains(msg, "no.such.flag") {
			t.Fatalf("Fatal message = %q; want the exit and the process output", msg)
		}
	})
	t.Run("data dir locked by a running server", func(t *testing.T) {
		dir := t.TempDir()
		Start(t, WithDataDir(dir))
		msg := runFatal(t, func(tb testing.TB) { Start(tb, WithDataDir(dir)) })
		if !strings.Contains(msg, "exited before becoming healthy") || !strings.Contains(msg, "cannot acquire lock") {
			t.Fatalf("Fatal message = %q", msg)
		}
	})
	t.Run("binary missing outside CI skips", func(t *testing.T) {
		t.Setenv(BinaryEnv, filepath.Join(t.TempDir(), "nope"))
		t.Setenv("CI", "")
		msg := runFatal(t, func(tb testing.TB) { Binary(tb) })
		if !strings.HasPrefix(msg, "SKIP ") || !strings.Contains(msg, InstallCommand) {
			t.Fatalf("message = %q; want a skip naming the install command", msg)
		}
	})
	t.Run("binary missing in CI fails", func(t *testing.T) {
		t.Setenv(BinaryEnv, filepath.Join(t.TempDir(), "nope"))
		t.Setenv("CI", "true")
		msg := runFatal(t, func(tb testing.TB) { Binary(tb) })
		if strings.HasPrefix(msg, "SKIP ") || !strings.Contains(msg, InstallCommand) {
			t.Fatalf("message = %q; want a failure naming the install command", msg)
		}
	})
	t.Run("env path not executable", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "victoria-logs")
		if err := os.WriteFile(p, []byte("not a binary"), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Setenv(BinaryEnv, p)
		if got, _ := findBinary(); got != "" {
			t.Fatalf("findBinary = %q; want none for a non-executable file", got)
		}
	})
}

func TestFindBinaryOrder(t *testing.T) {
	dir := t.TempDir()
	fake := filepath.Join(dir, "victoria-logs")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Run("env wins", func(t *testing.T) {
		t.Setenv(BinaryEnv, fake)
		if got, _ := findBinary(); got != fake {
			t.Fatalf("findBinary = %q; want %q", got, fake)
		}
	})
	t.Run("PATH next", func(t *testing.T) {
		t.Setenv(BinaryEnv, "")
		t.Setenv("PATH", dir)
		if got, _ := findBinary(); got != fake {
			t.Fatalf("findBinary = %q; want %q", got, fake)
		}
	})
	t.Run("GOPATH fallback when go is not runnable", func(t *testing.T) {
		gp := t.TempDir()
		if err := os.MkdirAll(filepath.Join(gp, "bin"), 0o755); err != nil {
			t.Fatal(err)
		}
		want := filepath.Join(gp, "bin", "victoria-logs")
		if err := os.WriteFile(want, []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		t.Setenv(BinaryEnv, "")
		t.Setenv("PATH", t.TempDir()) // neither victoria-logs nor go
		t.Setenv("GOPATH", gp+string(os.PathListSeparator)+"/elsewhere")
		if got, _ := findBinary(); got != want {
			t.Fatalf("findBinary = %q; want %q", got, want)
		}
	})
	t.Run("HOME fallback", func(t *testing.T) {
		home := t.TempDir()
		t.Setenv(BinaryEnv, "")
		t.Setenv("PATH", t.TempDir())
		t.Setenv("GOPATH", "")
		t.Setenv("HOME", home)
		got, tried := findBinary()
		want := filepath.Join(home, "go", "bin", "victoria-logs")
		if got != "" || len(tried) == 0 || tried[len(tried)-1] != want {
			t.Fatalf("findBinary = %q, tried %v; want none, last tried %q", got, tried, want)
		}
	})
}
