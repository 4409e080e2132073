package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// buildAgent compiles ./cmd/logcapturer of the module at root into dir.
func buildAgent(ctx context.Context, root, dir string) (string, error) {
	out := filepath.Join(dir, "logcapturer")
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/logcapturer")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build agent: %w\n%s", err, b)
	}
	return out, nil
}

// moduleRoot walks up from the working directory to the go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory; run from the repository or pass -agent-bin")
		}
		dir = parent
	}
}

// agentParams are the settings a bench run varies.
type agentParams struct {
	DataDir     string
	File        string // include pattern: one file or a glob
	PushURL     string
	Concurrency int
	BatchBytes  string
	BatchWait   time.Duration
	SegmentSize string
	DedupWindow string   // dedup.window; empty keeps the agent's default
	Routes      string   // file-routing YAML (file_pipeline.yml) handed over by $SSW_FILE_CONFIG; empty: the agent's default
	Env         []string // extra KEY=VALUE for the agent
}

// agentConfig renders the bench configuration: fsync on (the defaults of
// the WAL written out so RESULTS.md shows them), one file, the Loki sink
// only.
func agentConfig(p agentParams, listen, metricsListen string) string {
	return fmt.Sprintf(`# written by lcbench
data_dir: %q
log:
  level: warn
  format: json
server:
  listen: %q
  metrics_listen: %q
wal:
  sync_interval: 10ms
  sync_bytes: 1MiB
  segment_size: %s
  max_size: 4GiB
files_config:
  enabled: true
  include: [%q]
  exclude: []
  start_at: beginning
  labels:
    job: lcbench
sinks:
  loki:
    url: %q
    batch_bytes: %s
    batch_wait: %s
    concurrency: %d
  file:
    enabled: false
`, p.DataDir, listen, metricsListen, p.SegmentSize, p.File, p.PushURL, p.BatchBytes, p.BatchWait, p.Concurrency) + dedupYAML(p.DedupWindow)
}

func dedupYAML(window string) string {
	if window == "" {
		return ""
	}
	return fmt.Sprintf("dedup:\n  window: %s\n", window)
}

// agent is one running logcapturer.
type agent struct {
	proc    *child
	api     string
	cfgPath string
	started time.Time
	http    *http.Client
}

// startAgent writes the configuration and starts the agent. It returns once
// the process is started; waitReady waits for its API.
func startAgent(r *reaper, bin string, p agentParams) (*agent, error) {
	if err := os.MkdirAll(p.DataDir, 0o750); err != nil {
		return nil, err
	}
	ports := make([]int, 2)
	for i := range ports {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		ports[i] = port
	}
	listen := net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
	metrics := net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[1]))
	cfgPath := filepath.Join(p.DataDir, "..", filepath.Base(p.DataDir)+".yaml")
	if err := os.WriteFile(cfgPath, []byte(agentConfig(p, listen, metrics)), 0o644); err != nil {
		return nil, err
	}
	env := append(agentEnv(), p.Env...)
	if p.Routes != "" {
		routesPath := strings.TrimSuffix(cfgPath, ".yaml") + "-routes.yml"
		if err := os.WriteFile(routesPath, []byte(p.Routes), 0o644); err != nil {
			return nil, err
		}
		env = append(env, "SSW_FILE_CONFIG="+routesPath)
	}
	a := &agent{api: "http://" + listen, cfgPath: cfgPath, http: &http.Client{Timeout: 5 * time.Second}}
	a.started = time.Now()
	proc, err := r.start("logcapturer", cfgPath+".log", env, bin, "run", "--config", cfgPath)
	if err != nil {
		return nil, err
	}
	a.proc = proc
	return a, nil
}

// agentEnv drops the variables that would override the bench config.
func agentEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case k == "LOKI_URL", k == "LOG_LEVEL", k == "LOG_FORMAT", strings.HasPrefix(k, "SSW_"):
			continue
		}
		env = append(env, kv)
	}
	return env
}

func (a *agent) waitReady(ctx context.Context) error {
	if err := waitHTTPOK(ctx, a.proc, a.api+"/health", 30*time.Second); err != nil {
		return fmt.Errorf("%w (log: %s.log)", err, a.cfgPath)
	}
	return nil
}

// agentStats is the part of /stats the bench reads.
type agentStats struct {
	WAL struct {
		CommittedIndex uint64 `json:"committed_index"`
		Backpressure   bool   `json:"backpressure"`
	} `json:"wal"`
	Sinks []struct {
		Sink              string `json:"sink"`
		LagEntries        uint64 `json:"lag_entries"`
		InFlight          int    `json:"in_flight"`
		ConsecutiveErrors int    `json:"consecutive_errors"`
		LastError         string `json:"last_error"`
		LinesShipped      uint64 `json:"lines_shipped"`
		LinesRejected     uint64 `json:"lines_rejected"`
	} `json:"sinks"`
	Files struct {
		FilesOpen      int64  `json:"files_open"`
		FilesPeak      int64  `json:"files_open_peak"`
		LinesRead      uint64 `json:"lines_read"`
		LinesTruncated uint64 `json:"lines_truncated"`
		PartialLines   uint64 `json:"partial_lines"`
		AppendErrors   uint64 `json:"append_errors"`
		ReadErrors     uint64 `json:"read_errors"`
	} `json:"files"`
}

func (a *agent) stats(ctx context.Context) (agentStats, error) {
	var s agentStats
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.api+"/stats", nil)
	if err != nil {
		return s, err
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return s, fmt.Errorf("agent /stats: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return s, fmt.Errorf("agent /stats: HTTP %d", resp.StatusCode)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&s); err != nil {
		return s, fmt.Errorf("agent /stats: %w", err)
	}
	return s, nil
}

// shipped is the number of lines the Loki sink had acknowledged, and
// whether nothing is left to send.
func (s agentStats) shipped() (uint64, bool) {
	for _, k := range s.Sinks {
		if k.Sink == "loki" {
			return k.LinesShipped, k.LagEntries == 0 && k.InFlight == 0
		}
	}
	return 0, false
}

// progress is one /stats reading: lines acknowledged by then.
type progress struct {
	at      time.Time
	shipped uint64
}

// sustained is the shipping rate between the first readings at or past lo
// and hi of want lines: the steady state, without start-up and without the
// final partial batch, which waits batch_wait once the backlog is read.
func sustained(ps []progress, want uint64, lo, hi float64) float64 {
	var a, b *progress
	for i := range ps {
		p := &ps[i]
		if a == nil && float64(p.shipped) >= lo*float64(want) {
			a = p
		}
		if b == nil && float64(p.shipped) >= hi*float64(want) {
			b = p
		}
	}
	if a == nil || b == nil || !b.at.After(a.at) {
		return 0
	}
	return float64(b.shipped-a.shipped) / b.at.Sub(a.at).Seconds()
}

// waitShipped polls /stats every interval until the Loki sink acknowledged
// want lines and has nothing in flight. It returns the time it saw that and
// every reading on the way.
func (a *agent) waitShipped(ctx context.Context, want uint64, interval, limit time.Duration) (time.Time, agentStats, []progress, error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var (
		last agentStats
		ps   []progress
	)
	for {
		s, err := a.stats(ctx)
		if err == nil {
			last = s
			n, idle := s.shipped()
			now := time.Now()
			ps = append(ps, progress{at: now, shipped: n})
			if n >= want && idle {
				return now, s, ps, nil
			}
		}
		select {
		case <-a.proc.done:
			return time.Time{}, last, ps, fmt.Errorf("agent exited early: %v (log: %s.log)", a.proc.err, a.cfgPath)
		case <-ctx.Done():
			n, _ := last.shipped()
			return time.Time{}, last, ps, fmt.Errorf("agent shipped %d of %d lines within %v (read %d): %w",
				n, want, limit, last.Files.LinesRead, ctx.Err())
		case <-tick.C:
		}
	}
}
