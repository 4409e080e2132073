package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/logcapturer/log_capturer_go/api"
	"github.com/logcapturer/log_capturer_go/config"
	"github.com/logcapturer/log_capturer_go/internal/testutil/victorialogs"
	"github.com/logcapturer/log_capturer_go/ship"
	"github.com/logcapturer/log_capturer_go/ship/dlq"
	"github.com/logcapturer/log_capturer_go/ship/loki"
	"github.com/logcapturer/log_capturer_go/state"
	"github.com/logcapturer/log_capturer_go/wal/record"
)

var dlqTestLabels = record.NewLabelSet([]record.Label{{Name: "app", Value: "dlqcmd"}})

// seedDLQ stores letters of sink, n lines each ("<tag><letter> <i>"), in
// dataDir's DLQ and closes the state again, as a stopped agent leaves it.
func seedDLQ(t *testing.T, dataDir string, letters, n int, tag, sink string) {
	t.Helper()
	st, err := state.Open(filepath.Join(dataDir, state.DefaultFileName), state.Options{}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s, err := dlq.Open(dlq.Config{Dir: filepath.Join(dataDir, dlqDirName)}, st, zerolog.Nop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().Add(-time.Minute)
	for k := range letters {
		l := ship.Letter{Sink: sink, Reason: "line_too_long", First: uint64(k*n + 1), Last: uint64(k*n + n), Attempts: 1}
		if k%2 == 1 {
			l.Reason = "too_old"
		}
		for i := range n {
			l.Entries = append(l.Entries, ship.DeadEntry{Labels: dlqTestLabels, Time: now.Add(time.Duration(k*n+i) * time.Millisecond).UnixNano(),
				Line: fmt.Appendf(nil, "%s%d %d", tag, k, i), Source: "src", Index: uint64(k*n + i + 1)})
		}
		if err := s.DeadLetter(context.Background(), l); err != nil {
			t.Fatal(err)
		}
	}
}

// fileSinkConfig writes a configuration whose only sink is a file.
func fileSinkConfig(t *testing.T, dataDir string) (cfgPath, outPath string) {
	t.Helper()
	t.Setenv("LOKI_URL", "")
	outPath = filepath.Join(dataDir, "out.jsonl")
	cfgPath = filepath.Join(dataDir, "config.yaml")
	yaml := fmt.Sprintf("data_dir: %s\nsinks:\n  loki:\n    enabled: false\n  file:\n    enabled: true\n    path: %s\n", dataDir, outPath)
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfgPath, outPath
}

func countLines(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	for sc := bufio.NewScanner(f); sc.Scan(); {
		n++
	}
	return n
}

func TestDLQCommandsOffline(t *testing.T) {
	dir := t.TempDir()
	cfgPath, out := fileSinkConfig(t, dir)
	seedDLQ(t, dir, 3, 4, "cli", "file")

	code, stdout, stderr := run("dlq", "ls", "--config", cfgPath, "--json")
	if code != 0 {
		t.Fatalf("ls: %d %s", code, stderr)
	}
	var ls struct {
		Letters []struct {
			ID     uint64 `json:"id"`
			Reason string `json:"reason"`
			Lines  int    `json:"lines"`
		} `json:"letters"`
		Stats dlq.Stats `json:"stats"`
	}
	if err := json.Unmarshal([]byte(stdout), &ls); err != nil {
		t.Fatalf("ls json: %v\n%s", err, stdout)
	}
	if len(ls.Letters) != 3 || ls.Stats.Pending.Lines != 12 || ls.Stats.ByReason["too_old"].Letters != 1 {
		t.Fatalf("ls = %+v", ls)
	}
	if code, stdout, _ := run("dlq", "ls", "--config", cfgPath, "--reason", "too_old"); code != 0 ||
		!strings.Contains(stdout, "too_old") || strings.Contains(stdout, "line_too_long") {
		t.Fatalf("ls --reason: %d\n%s", code, stdout)
	}
	if code, stdout, _ := run("dlq", "show", "2", "--lines", "--config", cfgPath); code != 0 || !strings.Contains(stdout, "cli1 3") {
		t.Fatalf("show: %d\n%s", code, stdout)
	}
	if code, _, stderr := run("dlq", "show", "99", "--config", cfgPath); code != 1 || !strings.Contains(stderr, "no letter 99") {
		t.Fatalf("show missing: %d %s", code, stderr)
	}

	// Without an id, nothing is sent.
	if code, _, stderr := run("dlq", "reprocess", "--config", cfgPath); code != 2 || !strings.Contains(stderr, "id is required") {
		t.Fatalf("reprocess without id: %d %s", code, stderr)
	}
	if code, stdout, _ := run("dlq", "reprocess", "--config", cfgPath, "--dry-run"); code != 0 || !strings.Contains(stdout, "would send 12 lines") {
		t.Fatalf("dry run: %d\n%s", code, stdout)
	}
	if code, stdout, stderr := run("dlq", "reprocess", "--id", "op-1", "--reason", "line_too_long", "--config", cfgPath); code != 0 ||
		!strings.Contains(stdout, "sent 8 lines") {
		t.Fatalf("reprocess: %d\n%s\n%s", code, stdout, stderr)
	}
	if n := countLines(t, out); n != 8 {
		t.Fatalf("file sink got %d lines, want 8", n)
	}
	code, stdout, _ = run("dlq", "reprocess", "--id", "op-1", "--reason", "line_too_long", "--config", cfgPath)
	if code != 0 || !strings.Contains(stdout, "already carried out") {
		t.Fatalf("repeat: %d\n%s", code, stdout)
	}
	if n := countLines(t, out); n != 8 {
		t.Fatalf("repeat sent again: %d lines", n)
	}
	if code, _, stderr := run("dlq", "reprocess", "--id", "op-1", "--letter", "2", "--config", cfgPath); code != 2 || !strings.Contains(stderr, "already used") {
		t.Fatalf("reused id: %d %s", code, stderr)
	}
}

func TestDLQReplayOffline(t *testing.T) {
	dir := t.TempDir()
	cfgPath, out := fileSinkConfig(t, dir)
	writeWAL(t, dir, 20, 5)
	args := []string{"dlq", "reprocess", "--id", "replay-1", "--from-index", "3", "--to-index", "8", "--config", cfgPath}
	if code, stdout, stderr := run(args...); code != 0 || !strings.Contains(stdout, "replay: sent 30 lines") {
		t.Fatalf("replay: %d\n%s\n%s", code, stdout, stderr)
	}
	if code, _, _ := run(args...); code != 0 {
		t.Fatal("repeat failed")
	}
	if n := countLines(t, out); n != 30 {
		t.Fatalf("file sink got %d lines, want 30 (once)", n)
	}
	// A relative time is resolved once per id: the repeat is the same request.
	rel := []string{"dlq", "reprocess", "--id", "replay-rel", "--since", "1h", "--config", cfgPath}
	if code, stdout, stderr := run(rel...); code != 0 || !strings.Contains(stdout, "sent 100 lines") {
		t.Fatalf("relative replay: %d\n%s\n%s", code, stdout, stderr)
	}
	time.Sleep(10 * time.Millisecond)
	if code, stdout, stderr := run(rel...); code != 0 || !strings.Contains(stdout, "already carried out") {
		t.Fatalf("repeat of a relative replay: %d\n%s\n%s", code, stdout, stderr)
	}
	if n := countLines(t, out); n != 130 {
		t.Fatalf("file sink got %d lines, want 130", n)
	}
	if code, _, stderr := run("dlq", "reprocess", "--id", "x", "--since", "yesterday", "--config", cfgPath); code != 2 || !strings.Contains(stderr, "--since") {
		t.Fatalf("bad --since: %d %s", code, stderr)
	}
}

func TestDLQCommandRefusesWhileAgentRuns(t *testing.T) {
	dir := t.TempDir()
	cfgPath, _ := fileSinkConfig(t, dir)
	st, err := state.Open(filepath.Join(dir, state.DefaultFileName), state.Options{}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	code, _, stderr := run("dlq", "ls", "--config", cfgPath)
	if code != 1 || !strings.Contains(stderr, "agent is running") || !strings.Contains(stderr, "POST /dlq/reprocess") {
		t.Fatalf("locked: %d %s", code, stderr)
	}
}

// TestDLQThroughAPI drives /dlq/stats and POST /dlq/reprocess on the real
// API server with the real adapter, store and a LokiSink pushing to
// VictoriaLogs.
func TestDLQThroughAPI(t *testing.T) {
	vl := victorialogs.Start(t)
	dir := t.TempDir()
	seedDLQ(t, dir, 2, 25, "api", "loki")
	st, err := state.Open(filepath.Join(dir, state.DefaultFileName), state.Options{}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	store, err := dlq.Open(dlq.Config{Dir: filepath.Join(dir, dlqDirName)}, st, zerolog.Nop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	client, err := loki.NewClient(loki.ClientConfig{URL: vl.PushURL()})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	view := dlqView{store: store, sinks: []ship.Sink{ship.NewLokiSink(client, ship.LokiSinkConfig{})}}
	srv, err := api.New(api.Config{Listen: "127.0.0.1:0", APIToken: "s3cret"},
		api.Deps{DLQStats: view, DLQReprocessor: view}, prometheus.NewRegistry(), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	base := "http://" + srv.Addr()
	post := func(token, body string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, base+"/dlq/reprocess", strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	resp, err := http.Get(base + "/dlq/stats")
	if err != nil {
		t.Fatal(err)
	}
	var stats dlq.Stats
	if err := json.NewDecoder(resp.Body).Decode(&stats); err != nil || resp.StatusCode != 200 || stats.Pending.Lines != 50 {
		t.Fatalf("stats: %d %+v %v", resp.StatusCode, stats, err)
	}
	resp.Body.Close()

	tests := []struct {
		name, token, body string
		status            int
		want              string
	}{
		{"no token", "", `{"id":"a1"}`, 401, ""},
		{"wrong token", "nope", `{"id":"a1"}`, 403, ""},
		{"no id", "s3cret", `{}`, 400, "id is required"},
		{"bad range", "s3cret", `{"id":"a0","from_index":9,"to_index":2}`, 400, "from_index"},
		{"first", "s3cret", `{"id":"a1","reason":"line_too_long"}`, 200, `"reprocessed_letters":1`},
		{"repeat", "s3cret", `{"id":"a1","reason":"line_too_long"}`, 200, `"repeated":true`},
		{"id reused", "s3cret", `{"id":"a1"}`, 409, "already used"},
		{"replay without a WAL", "s3cret", `{"id":"a2","since":"2024-01-01T00:00:00Z"}`, 400, "not available"},
	}
	for _, tc := range tests {
		status, body := post(tc.token, tc.body)
		if status != tc.status || !strings.Contains(body, tc.want) {
			t.Fatalf("%s: %d %s; want %d with %q", tc.name, status, body, tc.status, tc.want)
		}
	}
	n, err := vl.Count(context.Background(), "app:dlqcmd")
	if err != nil || n != 25 {
		t.Fatalf("VictoriaLogs holds %d rows (%v), want 25: the letter once, no request without a token", n, err)
	}
}

// TestAgentDeadLettersAndReprocesses runs the wired agent: a receiver that
// refuses the agent's credentials (401, permanent) makes the shipper hand
// the lines to the DLQ; once the receiver is fixed, POST /dlq/reprocess
// delivers them, once however often it is sent.
func TestAgentDeadLettersAndReprocesses(t *testing.T) {
	vl := victorialogs.Start(t)
	target, err := url.Parse(vl.URL())
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	var fixed atomic.Bool
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !fixed.Load() {
			http.Error(w, "invalid credentials", http.StatusUnauthorized)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	defer front.Close()

	dir := t.TempDir()
	logs := filepath.Join(dir, "logs")
	if err := os.MkdirAll(logs, 0o750); err != nil {
		t.Fatal(err)
	}
	var lines strings.Builder
	for i := range 20 {
		fmt.Fprintf(&lines, "agent dlq line %d\n", i)
	}
	if err := os.WriteFile(filepath.Join(logs, "app.log"), []byte(lines.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.Files.Include = []string{filepath.Join(logs, "*.log")}
	cfg.Files.Labels = map[string]string{"job": "dlqagent"}
	cfg.Sinks.Loki.Enabled = true
	cfg.Sinks.Loki.URL = front.URL + "/insert/loki/api/v1/push?disable_message_parsing=1"
	cfg.Sinks.Loki.BatchWait = 50 * time.Millisecond
	cfg.Sinks.File.Enabled = false
	cfg.Server.Listen, cfg.Server.MetricsListen, cfg.Server.APIToken = "127.0.0.1:0", "", "tok"
	a, err := newAgent(cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()

	var base string
	deadline := time.Now().Add(30 * time.Second)
	for {
		if addr := a.server.Addr(); addr != "" {
			base = "http://" + addr
			var st dlq.Stats
			if resp, err := http.Get(base + "/dlq/stats"); err == nil {
				_ = json.NewDecoder(resp.Body).Decode(&st)
				resp.Body.Close()
			}
			if st.Pending.Lines == 20 {
				if st.ByReason["http_401"].Lines != 20 {
					t.Logf("dead-lettered by reason: %+v", st.ByReason)
				}
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the 20 refused lines never reached the DLQ")
		}
		time.Sleep(50 * time.Millisecond)
	}

	fixed.Store(true)
	for i := range 3 {
		req, _ := http.NewRequest(http.MethodPost, base+"/dlq/reprocess", strings.NewReader(`{"id":"after-fix"}`))
		req.Header.Set("Authorization", "Bearer tok")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		want := `"lines_sent":20`
		if i > 0 {
			want = `"repeated":true`
		}
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Fatalf("reprocess %d: %d %s", i, resp.StatusCode, body)
		}
	}
	if n, err := vl.Count(context.Background(), "job:dlqagent"); err != nil || n != 20 {
		t.Fatalf("VictoriaLogs holds %d rows (%v), want the 20 lines once", n, err)
	}
}
