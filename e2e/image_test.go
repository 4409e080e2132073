package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// docker runs the docker CLI with a bounded time and returns its output.
func docker(t *testing.T, timeout time.Duration, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", args...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestImageRunsHardened builds the FROM-scratch image from a static binary,
// runs it the way configs/docker-compose.yml does (read-only root, non-root
// user, no capabilities, no-new-privileges, /var/log read-only), and checks
// that its HEALTHCHECK turns healthy, that it captures a mounted log file,
// and that docker stop shuts it down cleanly.
func TestImageRunsHardened(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a container")
	}
	if _, err := docker(t, 20*time.Second, "version"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("docker engine not reachable in CI: %v", err)
		}
		t.Skipf("no docker engine: %v", err)
	}
	ctxDir := t.TempDir()
	bin := filepath.Join(ctxDir, "bin", "logcapturer")
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", "-s -w -X main.version=e2e-image", "-o", bin, "./cmd/logcapturer")
	build.Dir = ".."
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("static build: %v\n%s", err, out)
	}
	copyFile(t, "../Dockerfile", filepath.Join(ctxDir, "Dockerfile"))
	copyFile(t, "../configs/config.yaml", filepath.Join(ctxDir, "configs", "config.yaml"))
	copyFile(t, "/etc/ssl/certs/ca-certificates.crt", filepath.Join(ctxDir, "docker", "ca-certificates.crt"))

	tag := fmt.Sprintf("logcapturer-e2e:%d", time.Now().UnixNano())
	if out, err := docker(t, 3*time.Minute, "build", "-q", "-t", tag, ctxDir); err != nil {
		t.Fatalf("docker build: %v\n%s", err, out)
	}
	t.Cleanup(func() { _, _ = docker(t, time.Minute, "rmi", "-f", tag) })

	logs := t.TempDir()
	data := t.TempDir()
	for _, d := range []string{logs, data} {
		if err := os.Chmod(d, 0o777); err != nil {
			t.Fatal(err)
		}
	}
	var sb strings.Builder
	const n = 500
	for i := 0; i < n; i++ {
		fmt.Fprintf(&sb, "image-line %04d\n", i)
	}
	if err := os.WriteFile(filepath.Join(logs, "app.log"), []byte(sb.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	name := strings.ReplaceAll(strings.ReplaceAll(tag, ":", "-"), ".", "-")
	out, err := docker(t, time.Minute, "run", "-d", "--name", name,
		"--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges:true",
		"--user", "65534:65534", "--network", "none",
		"--health-interval", "1s", "--health-start-period", "1s",
		"-v", logs+":/var/log:ro", "-v", data+":/var/lib/logcapturer",
		tag)
	if err != nil {
		t.Fatalf("docker run: %v\n%s", err, out)
	}
	t.Cleanup(func() { _, _ = docker(t, time.Minute, "rm", "-f", name) })
	dumpLogs := func() {
		l, _ := docker(t, 30*time.Second, "logs", "--tail", "50", name)
		t.Logf("container log:\n%s", l)
	}

	deadline := time.Now().Add(60 * time.Second)
	for {
		st, _ := docker(t, 10*time.Second, "inspect", "--format", "{{.State.Health.Status}}", name)
		if st == "healthy" {
			break
		}
		if time.Now().After(deadline) {
			dumpLogs()
			t.Fatalf("container health %q after 60s", st)
		}
		time.Sleep(500 * time.Millisecond)
	}

	sink := filepath.Join(data, "data", "sink", "logs.jsonl")
	got := map[string]bool{}
	deadline = time.Now().Add(30 * time.Second)
	for len(got) < n && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
		f, err := os.Open(sink)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var v struct {
				Line   string            `json:"line"`
				Labels map[string]string `json:"labels"`
			}
			if json.Unmarshal(sc.Bytes(), &v) == nil && strings.HasPrefix(v.Line, "image-line ") && v.Labels["filename"] == "/var/log/app.log" {
				got[v.Line] = true
			}
		}
		f.Close()
	}
	if len(got) != n {
		dumpLogs()
		t.Fatalf("file sink holds %d of %d lines", len(got), n)
	}

	if out, err := docker(t, time.Minute, "stop", "-t", "15", name); err != nil {
		t.Fatalf("docker stop: %v\n%s", err, out)
	}
	code, _ := docker(t, 10*time.Second, "inspect", "--format", "{{.State.ExitCode}}", name)
	if code != "0" {
		dumpLogs()
		t.Fatalf("exit code after SIGTERM %q, want 0", code)
	}
}
