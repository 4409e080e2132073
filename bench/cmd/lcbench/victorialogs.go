package main

import (
	"bytes"
	"context"
	"debug/buildinfo"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

const vlInstall = "go install github.com/VictoriaMetrics/VictoriaLogs/app/victoria-logs@v1.52.1"

// findVictoriaLogs returns the victoria-logs binary: the flag, else
// $VICTORIA_LOGS_BIN, else PATH, else $(go env GOPATH)/bin.
func findVictoriaLogs(flagPath string) (string, error) {
	for _, p := range []string{flagPath, os.Getenv("VICTORIA_LOGS_BIN")} {
		if p != "" {
			if isExecutable(p) {
				return p, nil
			}
			return "", fmt.Errorf("victoria-logs: %s is not an executable file", p)
		}
	}
	if p, err := exec.LookPath("victoria-logs"); err == nil {
		return p, nil
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		for _, gp := range filepath.SplitList(strings.TrimSpace(string(out))) {
			if p := filepath.Join(gp, "bin", "victoria-logs"); gp != "" && isExecutable(p) {
				return p, nil
			}
		}
	}
	return "", fmt.Errorf("victoria-logs not found (flag -vl-bin, $VICTORIA_LOGS_BIN, PATH, GOPATH/bin); install it with: %s", vlInstall)
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// victoriaLogs is one victoria-logs process on a loopback port.
type victoriaLogs struct {
	proc *child
	addr string
	http *http.Client
}

// startVictoriaLogs starts victoria-logs on a fresh data dir and waits (at
// most 30 s) until /health answers OK.
func startVictoriaLogs(ctx context.Context, r *reaper, bin, dir string) (*victoriaLogs, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("victoria-logs: %w", err)
	}
	var lastErr error
	for range 3 { // the free port may be taken before victoria-logs binds it
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		p, err := r.start("victoria-logs", filepath.Join(dir, "victoria-logs.log"), os.Environ(), bin,
			"-storageDataPath="+filepath.Join(dir, "data"), "-httpListenAddr="+addr, "-loggerLevel=WARN")
		if err != nil {
			return nil, err
		}
		v := &victoriaLogs{proc: p, addr: addr, http: &http.Client{Timeout: 120 * time.Second}}
		if lastErr = waitHTTPOK(ctx, p, "http://"+addr+"/health", 30*time.Second); lastErr == nil {
			return v, nil
		}
		_, _ = p.stop(5 * time.Second)
	}
	return nil, fmt.Errorf("victoria-logs: %w (log: %s)", lastErr, filepath.Join(dir, "victoria-logs.log"))
}

// PushURL disables message parsing so lines are stored verbatim.
func (v *victoriaLogs) PushURL() string {
	return "http://" + v.addr + "/insert/loki/api/v1/push?disable_message_parsing=1"
}

// Count flushes and returns how many rows arrived and how many distinct
// sequence numbers they carry.
func (v *victoriaLogs) Count(ctx context.Context) (rows, unique uint64, err error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := v.post(ctx, "/internal/force_flush", nil, nil); err != nil {
		return 0, 0, fmt.Errorf("victoria-logs: force flush: %w", err)
	}
	form := url.Values{"query": {`* | extract "seq=<seq> " | stats count() c, count_uniq(seq) u`}}
	var body bytes.Buffer
	if err := v.post(ctx, "/select/logsql/query", form, &body); err != nil {
		return 0, 0, fmt.Errorf("victoria-logs: count: %w", err)
	}
	var row map[string]string
	if err := json.Unmarshal(bytes.TrimSpace(body.Bytes()), &row); err != nil {
		return 0, 0, fmt.Errorf("victoria-logs: count: %q: %w", body.String(), err)
	}
	rows, err1 := strconv.ParseUint(row["c"], 10, 64)
	unique, err2 := strconv.ParseUint(row["u"], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, 0, fmt.Errorf("victoria-logs: count: %q: %w", body.String(), err)
	}
	return rows, unique, nil
}

func (v *victoriaLogs) post(ctx context.Context, path string, form url.Values, out io.Writer) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+v.addr+path, strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := v.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(b))
	}
	if out != nil {
		_, err = io.Copy(out, io.LimitReader(resp.Body, 1<<20))
	}
	return err
}

// victoriaLogsVersion reads the module version from the binary's build
// info (a `go install` build leaves -version empty).
func victoriaLogsVersion(bin string) string {
	bi, err := buildinfo.ReadFile(bin)
	if err != nil {
		return "unknown"
	}
	return fmt.Sprintf("%s %s (%s)", bi.Main.Path, bi.Main.Version, bi.GoVersion)
}

// waitHTTPOK polls url until it answers 200, p exits, ctx ends or limit
// passes.
func waitHTTPOK(ctx context.Context, p *child, url string, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		if resp, err := client.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited before answering %s: %v", p.name, url, p.err)
		case <-ctx.Done():
			return fmt.Errorf("%s: no 200 from %s within %v: %w", p.name, url, limit, ctx.Err())
		case <-tick.C:
		}
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
