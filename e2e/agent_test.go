package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	readyTimeout = 60 * time.Second
	killTimeout  = 10 * time.Second
	// stopTimeout covers the shipper's 5 s drain plus the final commits.
	stopTimeout  = 60 * time.Second
	logTailLines = 40
)

// agentConfig is the part of the agent's configuration the tests vary. It
// is rendered as YAML; every other key keeps its default.
type agentConfig struct {
	DataDir       string
	Listen        string
	MetricsListen string
	Include       string // one glob
	LokiURL       string

	PollInterval time.Duration
	ScanInterval time.Duration

	SegmentSize   int // bytes
	MaxEntryBytes int
	MaxLineBytes  int

	BatchBytes      int
	MaxRequestBytes int
	BatchWait       time.Duration
	Concurrency     int
	MinBackoff      time.Duration
	MaxBackoff      time.Duration
	// Verify is sinks.loki.verify.kind: the recovery probe after a crash
	// ("" leaves the default, off).
	Verify string
}

// baseConfig is the configuration both tests start from: fast polling,
// short batches and short backoffs, so recovery takes seconds, not minutes.
func baseConfig(t *testing.T, root, include, lokiURL string) agentConfig {
	t.Helper()
	return agentConfig{
		DataDir:         filepath.Join(root, "data"),
		Listen:          freeAddr(t),
		MetricsListen:   freeAddr(t),
		Include:         include,
		LokiURL:         lokiURL,
		PollInterval:    50 * time.Millisecond,
		ScanInterval:    200 * time.Millisecond,
		SegmentSize:     2 << 20,
		MaxEntryBytes:   256 << 10,
		MaxLineBytes:    64 << 10,
		BatchBytes:      256 << 10,
		MaxRequestBytes: 1 << 20,
		BatchWait:       200 * time.Millisecond,
		Concurrency:     2,
		MinBackoff:      50 * time.Millisecond,
		MaxBackoff:      time.Second,
	}
}

// yaml renders the configuration. Strings are Go-quoted, which is valid
// YAML for the ASCII paths and URLs used here.
func (c agentConfig) yaml() string {
	y := c.baseYAML()
	if c.Verify != "" {
		y = strings.Replace(y, "  file:\n    enabled: false\n", fmt.Sprintf("    verify:\n      kind: %s\n  file:\n    enabled: false\n", c.Verify), 1)
	}
	return y
}

func (c agentConfig) baseYAML() string {
	return fmt.Sprintf(`data_dir: %q
log:
  level: info
  format: json
server:
  listen: %q
  metrics_listen: %q
wal:
  segment_size: %d
  max_entry_bytes: %d
files_config:
  include: [%q]
  exclude: []
  max_line_bytes: %d
  poll_interval: %s
  scan_interval: %s
  start_at: beginning
  labels:
    job: e2e
sinks:
  loki:
    url: %q
    batch_bytes: %d
    max_request_bytes: %d
    batch_wait: %s
    concurrency: %d
    min_backoff: %s
    max_backoff: %s
  file:
    enabled: false
`, c.DataDir, c.Listen, c.MetricsListen, c.SegmentSize, c.MaxEntryBytes, c.Include, c.MaxLineBytes,
		c.PollInterval, c.ScanInterval, c.LokiURL, c.BatchBytes, c.MaxRequestBytes, c.BatchWait,
		c.Concurrency, c.MinBackoff, c.MaxBackoff)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("e2e: free port: %v", err)
	}
	defer l.Close()
	return l.Addr().String()
}

// agent runs the logcapturer binary, one process at a time, restarted on
// the same configuration. Each run logs to its own file. Its methods must be
// called from the test goroutine.
type agent struct {
	t       *testing.T
	bin     string
	cfg     agentConfig
	cfgPath string
	logDir  string
	http    *http.Client

	proc *agentProc
	logs []string // one per run, in order
}

type agentProc struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	err  error         // cmd.Wait's result, valid after done
}

// newAgent writes the configuration under root and registers the cleanup
// that kills a leftover process and, if the test failed, prints the tail of
// every run's log. It starts nothing.
func newAgent(t *testing.T, bin, root string, cfg agentConfig) *agent {
	t.Helper()
	a := &agent{
		t:       t,
		bin:     bin,
		cfg:     cfg,
		cfgPath: filepath.Join(root, "config.yaml"),
		logDir:  filepath.Join(root, "agent-logs"),
		// No keep-alive: no idle connection outlives a poll (goleak).
		http: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}},
	}
	if err := os.MkdirAll(a.logDir, 0o755); err != nil {
		t.Fatalf("e2e: %v", err)
	}
	if err := os.WriteFile(a.cfgPath, []byte(cfg.yaml()), 0o644); err != nil {
		t.Fatalf("e2e: write config: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("agent config %s:\n%s", a.cfgPath, cfg.yaml())
			for _, p := range a.logs {
				t.Logf("agent log (last %d lines of %s):\n%s", logTailLines, p, tail(p, logTailLines))
			}
		}
	})
	t.Cleanup(func() { a.kill() })
	return a
}

// agentEnv is the test's environment without the variables the agent reads
// as configuration overrides.
func agentEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case name == "LOKI_URL", name == "LOG_LEVEL", name == "LOG_FORMAT", strings.HasPrefix(name, "SSW_"):
			continue
		}
		env = append(env, kv)
	}
	return env
}

// start launches a new run and waits until its API answers.
func (a *agent) start() {
	a.t.Helper()
	if a.running() {
		a.t.Fatalf("e2e: agent already running")
	}
	logPath := filepath.Join(a.logDir, fmt.Sprintf("agent-%02d.log", len(a.logs)+1))
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		a.t.Fatalf("e2e: agent log: %v", err)
	}
	a.logs = append(a.logs, logPath)
	cmd := exec.Command(a.bin, "run", "--config", a.cfgPath)
	cmd.Env = agentEnv()
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		_ = f.Close()
		a.t.Fatalf("e2e: start agent: %v", err)
	}
	p := &agentProc{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		_ = f.Close()
		close(p.done)
	}()
	a.proc = p
	a.waitReady(p)
}

// waitReady polls /stats until it answers 200. The process exiting first
// fails the test with its log.
func (a *agent) waitReady(p *agentProc) {
	a.t.Helper()
	deadline := time.Now().Add(readyTimeout)
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			a.t.Fatalf("e2e: agent run %d exited before becoming ready: %v\n%s",
				len(a.logs), p.err, tail(a.logs[len(a.logs)-1], logTailLines))
		case <-time.After(20 * time.Millisecond):
		}
		if _, err := a.get("/stats"); err == nil {
			return
		}
	}
	a.t.Fatalf("e2e: agent run %d not ready after %v", len(a.logs), readyTimeout)
}

func (a *agent) running() bool {
	if a.proc == nil {
		return false
	}
	select {
	case <-a.proc.done:
		return false
	default:
		return true
	}
}

// kill sends SIGKILL and waits for the exit. Killing no process does nothing.
func (a *agent) kill() {
	p := a.proc
	a.proc = nil
	if p == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(killTimeout):
		a.t.Errorf("e2e: agent pid %d did not exit %v after SIGKILL", p.cmd.Process.Pid, killTimeout)
	}
}

// stop sends SIGTERM and waits for the exit. It returns the exit error
// (nil for status 0); a process still running after stopTimeout is killed
// and reported as an error.
func (a *agent) stop() error {
	p := a.proc
	if p == nil {
		return errors.New("agent not running")
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		a.proc = nil
		return p.err
	case <-time.After(stopTimeout):
		a.kill()
		return fmt.Errorf("agent did not exit within %v of SIGTERM; killed", stopTimeout)
	}
}

func (a *agent) get(path string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+a.cfg.Listen+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return body, fmt.Errorf("GET %s: HTTP %d: %s", path, resp.StatusCode, bytes.TrimSpace(body))
	}
	return body, nil
}

// statsDoc is the part of GET /stats the tests read (cmd/logcapturer/views.go).
type statsDoc struct {
	WAL struct {
		CommittedIndex uint64 `json:"committed_index"`
		FirstIndex     uint64 `json:"first_index"`
		DiskBytes      int64  `json:"disk_bytes"`
		Backpressure   bool   `json:"backpressure"`
	} `json:"wal"`
	Sinks []sinkDoc `json:"sinks"`
	Files struct {
		LinesRead      uint64 `json:"lines_read"`
		LinesTruncated uint64 `json:"lines_truncated"`
		PartialLines   uint64 `json:"partial_lines"`
		AppendErrors   uint64 `json:"append_errors"`
		ReadErrors     uint64 `json:"read_errors"`
	} `json:"files"`
}

// sinkDoc is ship.Status as JSON.
type sinkDoc struct {
	Sink              string `json:"sink"`
	Cursor            uint64 `json:"cursor"`
	LagEntries        uint64 `json:"lag_entries"`
	InFlight          int    `json:"in_flight"`
	ConsecutiveErrors int    `json:"consecutive_errors"`
	LastError         string `json:"last_error"`
	LinesShipped      uint64 `json:"lines_shipped"`
	LinesRejected     uint64 `json:"lines_rejected"`
}

// positionDoc is file.PositionInfo as JSON (GET /positions).
type positionDoc struct {
	ID          string `json:"id"`
	Path        string `json:"path"`
	ReadOffset  uint64 `json:"read_offset"`
	AckedOffset uint64 `json:"acked_offset"`
	Size        uint64 `json:"size"`
	InFlight    int    `json:"in_flight"`
	Draining    bool   `json:"draining"`
}

func (a *agent) stats() (statsDoc, error) {
	var s statsDoc
	body, err := a.get("/stats")
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(body, &s); err != nil {
		return s, fmt.Errorf("/stats: %w: %s", err, body)
	}
	return s, nil
}

func (a *agent) positions() ([]positionDoc, error) {
	var p struct {
		Files []positionDoc `json:"files"`
	}
	body, err := a.get("/positions")
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, fmt.Errorf("/positions: %w: %s", err, body)
	}
	return p.Files, nil
}

func (s statsDoc) sink(name string) (sinkDoc, bool) {
	for _, k := range s.Sinks {
		if k.Sink == name {
			return k, true
		}
	}
	return sinkDoc{}, false
}

// waitShipped polls until the Loki sink has nothing left to send and every
// file's acknowledged offset equals its final size: then every line written
// is in the WAL and acknowledged by the receiver. It returns the last stats.
func (a *agent) waitShipped(sizes map[string]int64, timeout time.Duration) statsDoc {
	a.t.Helper()
	deadline := time.Now().Add(timeout)
	nextLog := time.Now().Add(10 * time.Second)
	var (
		st   statsDoc
		pos  []positionDoc
		err  error
		why  string
		poll = 200 * time.Millisecond
	)
	for {
		st, err = a.stats()
		if err == nil {
			pos, err = a.positions()
		}
		if err == nil {
			why = shippedGap(st, pos, sizes)
			if why == "" {
				return st
			}
		} else {
			why = err.Error()
		}
		if !a.running() {
			a.t.Fatalf("e2e: agent not running while draining (run %d)", len(a.logs))
		}
		if time.Now().After(deadline) {
			a.t.Fatalf("e2e: not everything shipped after %v: %s\nstats: %+v\npositions: %+v", timeout, why, st, pos)
		}
		if time.Now().After(nextLog) {
			a.t.Logf("e2e: draining: %s", why)
			nextLog = time.Now().Add(10 * time.Second)
		}
		time.Sleep(poll)
	}
}

// shippedGap says what is still missing, or "" when all is shipped.
func shippedGap(st statsDoc, pos []positionDoc, sizes map[string]int64) string {
	k, ok := st.sink("loki")
	if !ok {
		return "no loki sink in /stats"
	}
	if k.LagEntries != 0 || k.InFlight != 0 {
		return fmt.Sprintf("loki lag %d entries, %d batches in flight, last error %q", k.LagEntries, k.InFlight, k.LastError)
	}
	for path, size := range sizes {
		var found *positionDoc
		for i := range pos {
			if filepath.Base(pos[i].Path) == filepath.Base(path) {
				found = &pos[i]
			}
		}
		if found == nil {
			return "no position for " + path
		}
		if found.AckedOffset != uint64(size) {
			return fmt.Sprintf("%s acked %d of %d bytes (read %d)", filepath.Base(path), found.AckedOffset, size, found.ReadOffset)
		}
	}
	return ""
}

// walVerify runs `logcapturer wal verify` on the data dir of a stopped agent.
func (a *agent) walVerify() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, a.bin, "wal", "verify", "--data-dir", a.cfg.DataDir)
	cmd.Env = agentEnv()
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// grepLogs returns the lines of every run's log that contain s.
func (a *agent) grepLogs(s string) []string {
	var hits []string
	for _, p := range a.logs {
		data, err := os.ReadFile(p)
		if err != nil {
			hits = append(hits, fmt.Sprintf("%s: %v", p, err))
			continue
		}
		for line := range strings.SplitSeq(string(data), "\n") {
			if strings.Contains(line, s) {
				hits = append(hits, filepath.Base(p)+": "+line)
			}
		}
	}
	return hits
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
