package api

import (
	"context"
	"errors"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// Both listeners serve the one registry handed to New: a counter bumped in
// process shows up, with the same value, on both.
func TestMetricsSameRegistryOnBothListeners(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "logcapturer_test_events_total", Help: "test"})
	reg.MustRegister(c)
	rs := start(t, testConfig(), Deps{}, reg)

	c.Add(3)
	a := do(t, "GET", "http://"+rs.srv.Addr()+"/metrics", nil, "")
	m := do(t, "GET", "http://"+rs.srv.MetricsAddr()+"/metrics", nil, "")
	for name, r := range map[string]response{"api": a, "metrics": m} {
		if r.status != 200 || !strings.Contains(r.body, "logcapturer_test_events_total 3\n") {
			t.Fatalf("%s listener: status %d body %q", name, r.status, r.body)
		}
	}
	if a.body != m.body {
		t.Fatalf("listeners differ:\napi:\n%s\nmetrics:\n%s", a.body, m.body)
	}

	c.Inc()
	for _, addr := range []string{rs.srv.Addr(), rs.srv.MetricsAddr()} {
		if r := do(t, "GET", "http://"+addr+"/metrics", nil, ""); !strings.Contains(r.body, "logcapturer_test_events_total 4\n") {
			t.Fatalf("%s: counter not updated: %q", addr, r.body)
		}
	}
}

// failingCollector makes Gather return an error alongside good metrics.
type failingCollector struct{ desc *prometheus.Desc }

func (f failingCollector) Describe(ch chan<- *prometheus.Desc) { ch <- f.desc }
func (f failingCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.NewInvalidMetric(f.desc, errBoom)
}

// One broken collector must not blank the page for every other metric.
func TestMetricsSurviveBrokenCollector(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "logcapturer_good_total", Help: "test"})
	reg.MustRegister(c, failingCollector{prometheus.NewDesc("logcapturer_broken", "test", nil, nil)})
	rs := start(t, testConfig(), Deps{}, reg)
	r := do(t, "GET", "http://"+rs.srv.Addr()+"/metrics", nil, "")
	if r.status != 200 || !strings.Contains(r.body, "logcapturer_good_total 0") {
		t.Fatalf("status %d body %q", r.status, r.body)
	}
	if !strings.Contains(rs.logs.String(), "boom") {
		t.Fatalf("gather error not logged: %s", rs.logs.String())
	}
}

func TestNoMetricsListenerWhenEmpty(t *testing.T) {
	cfg := testConfig()
	cfg.MetricsListen = ""
	rs := start(t, cfg, Deps{}, nil)
	if got := rs.srv.MetricsAddr(); got != "" {
		t.Fatalf("MetricsAddr = %q, want empty", got)
	}
	if r := do(t, "GET", "http://"+rs.srv.Addr()+"/metrics", nil, ""); r.status != 200 {
		t.Fatalf("/metrics on the API listener: %d", r.status)
	}
	if err := rs.stop(); err != nil {
		t.Fatalf("Serve: %v", err)
	}
}

// freeAddr returns a loopback address that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

func TestPortConflict(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyAddr := busy.Addr().String()

	tests := map[string]struct {
		listen, metrics string
		wantInErr       string
	}{
		"api port busy":     {listen: busyAddr, metrics: "127.0.0.1:0", wantInErr: "api: listen " + busyAddr},
		"metrics port busy": {listen: freeAddr(t), metrics: busyAddr, wantInErr: "api: listen metrics " + busyAddr},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			cfg := testConfig()
			cfg.Listen, cfg.MetricsListen = tc.listen, tc.metrics
			srv, err := New(cfg, Deps{}, prometheus.NewRegistry(), zerolog.Nop())
			if err != nil {
				t.Fatal(err)
			}
			err = srv.Run(context.Background())
			if err == nil {
				t.Fatal("Run succeeded on a busy port")
			}
			if !strings.Contains(err.Error(), tc.wantInErr) || !errors.Is(err, syscall.EADDRINUSE) {
				t.Fatalf("err = %v, want %q and EADDRINUSE", err, tc.wantInErr)
			}
			if srv.Addr() != "" || srv.MetricsAddr() != "" {
				t.Fatalf("addresses reported after a failed Listen: %q %q", srv.Addr(), srv.MetricsAddr())
			}
			// The API listener bound before the metrics one failed is released.
			if tc.listen != busyAddr {
				ln, err := net.Listen("tcp", tc.listen)
				if err != nil {
					t.Fatalf("API address still held after failed Listen: %v", err)
				}
				ln.Close()
			}
			// A failed Listen leaves the server usable for another attempt.
			if err := srv.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
		})
	}
}

func TestLifecycleMisuse(t *testing.T) {
	newSrv := func(t *testing.T) *Server {
		srv, err := New(testConfig(), Deps{}, prometheus.NewRegistry(), zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		return srv
	}
	t.Run("serve before listen", func(t *testing.T) {
		if err := newSrv(t).Serve(context.Background()); !errors.Is(err, ErrNotListening) {
			t.Fatalf("Serve = %v, want ErrNotListening", err)
		}
	})
	t.Run("listen twice", func(t *testing.T) {
		srv := newSrv(t)
		if err := srv.Listen(); err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
		if err := srv.Listen(); !errors.Is(err, ErrServerUsed) {
			t.Fatalf("second Listen = %v, want ErrServerUsed", err)
		}
	})
	t.Run("close releases listeners", func(t *testing.T) {
		srv := newSrv(t)
		if err := srv.Listen(); err != nil {
			t.Fatal(err)
		}
		addr := srv.Addr()
		if err := srv.Close(); err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("address still held after Close: %v", err)
		}
		ln.Close()
		if err := srv.Serve(context.Background()); !errors.Is(err, ErrServerUsed) {
			t.Fatalf("Serve after Close = %v, want ErrServerUsed", err)
		}
	})
	t.Run("serve twice", func(t *testing.T) {
		srv := newSrv(t)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := srv.Run(ctx); err != nil {
			t.Fatalf("Run with a done context = %v, want nil", err)
		}
		if err := srv.Serve(context.Background()); !errors.Is(err, ErrServerUsed) {
			t.Fatalf("second Serve = %v, want ErrServerUsed", err)
		}
		if err := srv.Listen(); !errors.Is(err, ErrServerUsed) {
			t.Fatalf("Listen after Serve = %v, want ErrServerUsed", err)
		}
		if err := srv.Close(); err != nil {
			t.Fatalf("Close after Serve = %v", err)
		}
	})
}

// Cancelling Serve's context stops both servers; a request in flight sees
// the cancellation and still gets its answer before Serve returns.
func TestGracefulShutdown(t *testing.T) {
	entered := make(chan struct{})
	deps := Deps{Reloader: reloaderFunc(func(ctx context.Context) error {
		close(entered)
		<-ctx.Done()
		return ctx.Err()
	})}
	rs := start(t, testConfig(), deps, nil)
	addr, maddr := rs.srv.Addr(), rs.srv.MetricsAddr()

	type result struct {
		r   response
		err error
	}
	inflight := make(chan result, 1)
	go func() {
		r, err := doE("POST", "http://"+addr+"/config/reload", map[string]string{"Authorization": "Bearer " + testToken}, "")
		inflight <- result{r, err}
	}()
	<-entered
	if err := rs.stop(); err != nil {
		t.Fatalf("Serve = %v, want nil", err)
	}
	res := <-inflight
	if res.err != nil || res.r.status != 503 {
		t.Fatalf("in-flight reload: status %d err %v, want 503", res.r.status, res.err)
	}
	for _, a := range []string{addr, maddr} {
		if _, err := doE("GET", "http://"+a+"/metrics", nil, ""); err == nil {
			t.Fatalf("%s still serving after Serve returned", a)
		}
	}
}

// A handler that ignores cancellation cannot hold the process: after
// ShutdownTimeout the connections are closed and Serve reports it.
func TestShutdownTimeoutForcesClose(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	deps := Deps{Reloader: reloaderFunc(func(context.Context) error {
		close(entered)
		<-release
		return nil
	})}
	cfg := testConfig()
	cfg.ShutdownTimeout = 50 * time.Millisecond
	rs := start(t, cfg, deps, nil)
	defer close(release) // lets the stuck handler goroutine end before goleak checks

	inflight := make(chan error, 1)
	go func() {
		_, err := doE("POST", "http://"+rs.srv.Addr()+"/config/reload", map[string]string{"Authorization": "Bearer " + testToken}, "")
		inflight <- err
	}()
	<-entered
	err := rs.stop()
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "api: shutdown") {
		t.Fatalf("Serve = %v, want a shutdown deadline error", err)
	}
	if err := <-inflight; err == nil {
		t.Fatal("stuck request got a response; want its connection closed")
	}
}

func TestRegisterProcessMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	if err := RegisterProcessMetrics(reg); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	for _, want := range []string{
		"go_goroutines", "go_memstats_heap_alloc_bytes",
		"process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds", "process_max_fds",
	} {
		if !names[want] {
			t.Errorf("missing %s", want)
		}
	}

	t.Run("twice fails without panic", func(t *testing.T) {
		err := RegisterProcessMetrics(reg)
		if _, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); !ok {
			t.Fatalf("second call = %v, want AlreadyRegisteredError", err)
		}
	})
	t.Run("all or nothing", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		// Only the process collector is present: the Go one registers, then
		// the process one fails, and the Go one must be rolled back.
		reg.MustRegister(prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
		if err := RegisterProcessMetrics(reg); err == nil {
			t.Fatal("want an error")
		}
		if err := reg.Register(prometheus.NewGoCollector()); err != nil {
			t.Fatalf("Go collector left registered after failure: %v", err)
		}
	})
}
