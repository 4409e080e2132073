package victorialogs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	healthTimeout = 30 * time.Second
	stopTimeout   = 30 * time.Second
	startAttempts = 3
	logTailLines  = 60
)

var errPortInUse = errors.New("port in use")

// Option configures Start.
type Option func(*options)

type options struct {
	dataDir string
	args    []string
}

// WithDataDir stores data in dir instead of a fresh t.TempDir, e.g. to
// start a second server on the data of a first one that was stopped.
func WithDataDir(dir string) Option { return func(o *options) { o.dataDir = dir } }

// WithArgs adds command-line flags, e.g. "-retentionPeriod=30d". They come
// after the helper's own flags, so they override them.
func WithArgs(args ...string) Option {
	return func(o *options) { o.args = append(o.args, args...) }
}

// Server is a victoria-logs process owned by one test. Its methods may be
// called from any goroutine, except that the ones reporting through the test
// (Start, Restart, ForceFlush) must run on the test's goroutine.
type Server struct {
	t       testing.TB
	bin     string
	dataDir string
	logPath string
	args    []string
	port    int
	http    *http.Client
	tr      *http.Transport

	mu   sync.Mutex
	proc *process
}

type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	err  error         // cmd.Wait's result, valid after done
}

// Start runs victoria-logs on a free loopback port and waits until it is
// healthy. The process is stopped when the test ends; if the test failed,
// the tail of its output is logged.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	bin := Binary(t)
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if o.dataDir == "" {
		o.dataDir = t.TempDir()
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 8, IdleConnTimeout: 30 * time.Second}
	s := &Server{
		t:       t,
		bin:     bin,
		dataDir: o.dataDir,
		logPath: filepath.Join(t.TempDir(), "victoria-logs.log"),
		args:    o.args,
		http:    &http.Client{Transport: tr, Timeout: 60 * time.Second},
		tr:      tr,
	}
	// Cleanups run last-in first-out: stop first, then show the log.
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("victoria-logs output (last %d lines of %s):\n%s", logTailLines, s.logPath, s.logTail())
		}
	})
	t.Cleanup(func() {
		s.Stop()
		tr.CloseIdleConnections()
	})

	var err error
	for range startAttempts {
		// The port is free now but may be taken before victoria-logs binds
		// it; start reports that and we pick another.
		if s.port, err = freePort(); err != nil {
			t.Fatalf("victorialogs: %v", err)
		}
		if err = s.start(); !errors.Is(err, errPortInUse) {
			break
		}
	}
	if err != nil {
		t.Fatalf("victorialogs: start: %v\n%s", err, s.logTail())
	}
	return s
}

// Addr returns host:port of the HTTP listener.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// URL returns the base URL, http://127.0.0.1:PORT.
func (s *Server) URL() string { return "http://" + s.Addr() }

// PushURL returns the Loki push endpoint with message parsing disabled, so
// a line that looks like a JSON object is stored verbatim in _msg instead of
// being split into fields.
func (s *Server) PushURL() string {
	return s.URL() + "/insert/loki/api/v1/push?disable_message_parsing=1"
}

// DataDir returns the storage directory.
func (s *Server) DataDir() string { return s.dataDir }

// LogPath returns the file receiving the process output.
func (s *Server) LogPath() string { return s.logPath }

// Running reports whether the process is up (started and not yet exited).
func (s *Server) Running() bool {
	s.mu.Lock()
	p := s.proc
	s.mu.Unlock()
	if p == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Stop sends SIGTERM and waits for the exit (SIGKILL after 30s). A graceful
// stop persists everything acknowledged so far. Stopping a stopped server
// does nothing.
func (s *Server) Stop() { s.signal(syscall.SIGTERM, stopTimeout) }

// Kill sends SIGKILL and waits. Rows ingested in the last several seconds
// are LOST, even after ForceFlush (see the package doc).
func (s *Server) Kill() { s.signal(syscall.SIGKILL, stopTimeout) }

// Restart stops the server if it runs and starts it again on the same data
// directory and the same port, so clients configured with PushURL reach it
// again.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	if err := s.start(); err != nil {
		s.t.Fatalf("victorialogs: restart on %s: %v\n%s", s.Addr(), err, s.logTail())
	}
}

func (s *Server) signal(sig syscall.Signal, grace time.Duration) {
	s.mu.Lock()
	p := s.proc
	s.proc = nil
	s.mu.Unlock()
	if p == nil {
		return
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	// Pooled connections point at the dead process.
	s.tr.CloseIdleConnections()
}

func (s *Server) start() error {
	f, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open log: %w", err)
	}
	logStart, _ := f.Seek(0, io.SeekEnd)
	args := append([]string{
		"-storageDataPath=" + s.dataDir,
		"-httpListenAddr=" + s.Addr(),
		"-loggerLevel=WARN",
		// Tests read back every row (a million or more) in one query; on a
		// busy CI box that outlasts the 30s default and the response is cut
		// off mid-row.
		"-search.maxQueryDuration=10m",
	}, s.args...)
	fmt.Fprintf(f, "=== %s %v\n", s.bin, args)
	cmd := exec.Command(s.bin, args...)
	// An *os.File is handed to the child directly: no copying goroutines.
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		_ = f.Close()
		return fmt.Errorf("exec %s: %w", s.bin, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		_ = f.Close()
		close(p.done)
	}()
	s.mu.Lock()
	s.proc = p
	s.mu.Unlock()

	if err := s.waitHealthy(p); err != nil {
		s.Kill()
		if bytes.Contains(s.logSince(logStart), []byte("address already in use")) {
			return fmt.Errorf("%w: %s: %w", errPortInUse, s.Addr(), err)
		}
		return err
	}
	return nil
}

// waitHealthy polls /health and then checks through /flags that the server
// answering is ours, not another process that owns the port.
func (s *Server) waitHealthy(p *process) error {
	ctx, cancel := context.WithTimeout(context.Background(), healthTimeout)
	defer cancel()
	want := "-storageDataPath=" + strconv.Quote(s.dataDir)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-p.done:
			return fmt.Errorf("exited before becoming healthy: %v", p.err)
		case <-ctx.Done():
			return fmt.Errorf("not healthy after %v", healthTimeout)
		case <-tick.C:
		}
		body, status, err := s.get(ctx, "/health")
		if err != nil || status != http.StatusOK || string(bytes.TrimSpace(body)) != "OK" {
			continue
		}
		flags, status, err := s.get(ctx, "/flags")
		if err != nil || status != http.StatusOK {
			continue
		}
		if !bytes.Contains(flags, []byte(want)) {
			return fmt.Errorf("%w: %s answers for another data dir", errPortInUse, s.Addr())
		}
		return nil
	}
}

func (s *Server) get(ctx context.Context, path string) ([]byte, int, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL()+path, nil)
	if err != nil {
		return nil, 0, err
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return body, resp.StatusCode, err
}

// logTail returns the last lines of the process output.
func (s *Server) logTail() string {
	data, err := os.ReadFile(s.logPath)
	if err != nil {
		return "(no output: " + err.Error() + ")"
	}
	lines := bytes.Split(bytes.TrimRight(data, "\n"), []byte("\n"))
	if len(lines) > logTailLines {
		lines = lines[len(lines)-logTailLines:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

func (s *Server) logSince(off int64) []byte {
	data, _ := os.ReadFile(s.logPath)
	if off < 0 || off > int64(len(data)) {
		return data
	}
	return data[off:]
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
