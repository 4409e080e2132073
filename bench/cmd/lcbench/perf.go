package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// perfRecorder samples a running process with Linux perf, for the hot spots
// of the agent (it has no pprof endpoint).
type perfRecorder struct {
	proc *child
	data string
	dir  string
}

func startPerf(r *reaper, dir string, pid int) (*perfRecorder, error) {
	bin, err := exec.LookPath("perf")
	if err != nil {
		return nil, fmt.Errorf("perf: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "perf.data")
	p, err := r.start("perf", filepath.Join(dir, "perf-record.log"), os.Environ(), bin,
		"record", "-F", "1999", "-g", "-o", data, "-p", strconv.Itoa(pid))
	if err != nil {
		return nil, err
	}
	return &perfRecorder{proc: p, data: data, dir: dir}, nil
}

// stop ends the recording (SIGINT makes perf write its file) and returns
// the top of a flat report by symbol.
func (p *perfRecorder) stop(ctx context.Context) (string, error) {
	_ = p.proc.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-p.proc.done:
	case <-time.After(30 * time.Second):
		_ = p.proc.cmd.Process.Kill()
		return "", fmt.Errorf("perf record did not stop")
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "perf", "report", "-i", p.data, "--stdio", "--no-children",
		"--sort", "symbol", "--percent-limit", "0.7", "-g", "none").Output()
	if err != nil {
		return "", fmt.Errorf("perf report: %w", err)
	}
	_ = os.WriteFile(filepath.Join(p.dir, "perf-report.txt"), out, 0o644)
	var keep []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.TrimSpace(l) == "" || strings.HasPrefix(l, "#") && !strings.Contains(l, "Samples") {
			continue
		}
		keep = append(keep, l)
		if len(keep) >= 45 {
			break
		}
	}
	return strings.Join(keep, "\n") + "\n", nil
}
