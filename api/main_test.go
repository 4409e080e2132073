package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// syncBuffer collects log output written from server goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Fakes of the interfaces this package declares; the real components live
// in packages api must not import.
type staticHealth Health

func (h staticHealth) Health() Health { return Health(h) }

type snapshots struct{ v any }

func (s snapshots) Stats() any          { return s.v }
func (s snapshots) RedactedConfig() any { return s.v }
func (s snapshots) Positions() any      { return s.v }
func (s snapshots) DLQStats() any       { return s.v }

type reloaderFunc func(ctx context.Context) error

func (f reloaderFunc) Reload(ctx context.Context) error { return f(ctx) }

type reprocessorFunc func(ctx context.Context, req ReprocessRequest) (any, error)

func (f reprocessorFunc) Reprocess(ctx context.Context, req ReprocessRequest) (any, error) {
	return f(ctx, req)
}

const testToken = "s3cret-token"

func fullDeps() Deps {
	snap := snapshots{v: map[string]int{"lines": 42}}
	return Deps{
		Health:    staticHealth{Components: map[string]ComponentHealth{"wal": {Status: StatusOK}}},
		Stats:     snap,
		Config:    snap,
		Positions: snap,
		Reloader:  reloaderFunc(func(context.Context) error { return nil }),
		DLQStats:  snap,
		DLQReprocessor: reprocessorFunc(func(_ context.Context, req ReprocessRequest) (any, error) {
			return map[string]any{"requeued": 3, "dry_run": req.DryRun}, nil
		}),
	}
}

func testConfig() Config {
	return Config{
		Listen:          "127.0.0.1:0",
		MetricsListen:   "127.0.0.1:0",
		APIToken:        testToken,
		ShutdownTimeout: 5 * time.Second,
	}
}

type running struct {
	srv  *Server
	logs *syncBuffer
	stop func() error // cancels Serve and returns its error; idempotent
}

// start listens on loopback port 0 and serves until the test ends.
func start(t *testing.T, cfg Config, deps Deps, g prometheus.Gatherer) *running {
	t.Helper()
	if g == nil {
		g = prometheus.NewRegistry()
	}
	logs := &syncBuffer{}
	srv, err := New(cfg, deps, g, zerolog.New(logs))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatalf("Listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ctx) }()
	var once sync.Once
	var serveErr error
	stopped := false // by the test itself, which then checks the error
	stop := func() error {
		once.Do(func() {
			cancel()
			serveErr = <-errc
		})
		return serveErr
	}
	t.Cleanup(func() {
		if err := stop(); err != nil && !stopped {
			t.Errorf("Serve: %v", err)
		}
	})
	return &running{srv: srv, logs: logs, stop: func() error {
		stopped = true
		return stop()
	}}
}

var client = &http.Client{
	Timeout:   10 * time.Second,
	Transport: &http.Transport{DisableKeepAlives: true},
}

type response struct {
	status int
	header http.Header
	body   string
}

func do(t *testing.T, method, url string, header map[string]string, body string) response {
	t.Helper()
	r, err := doE(method, url, header, body)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// doE is do for goroutines other than the test's, where t.Fatal is not allowed.
func doE(method, url string, header map[string]string, body string) (response, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return response{}, err
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		return response{}, fmt.Errorf("%s %s: %w", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, fmt.Errorf("%s %s: read body: %w", method, url, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: string(b)}, nil
}

// errorOf decodes a {"error": "..."} body and fails if it is not one.
func errorOf(t *testing.T, r response) string {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type = %q, want application/json (body %q)", ct, r.body)
	}
	var e struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal([]byte(r.body), &e); err != nil || e.Error == "" {
		t.Fatalf("body %q is not a JSON error: %v", r.body, err)
	}
	return e.Error
}

var errBoom = errors.New("boom")
