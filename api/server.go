package api

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// Server timeouts. Slowloris-style clients are cut off by ReadHeaderTimeout;
// WriteTimeout is generous because a reload or a DLQ reprocess may take a
// while and a large /metrics page goes out on a slow scrape link.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 30 * time.Second
	writeTimeout      = 2 * time.Minute
	idleTimeout       = 2 * time.Minute
	maxHeaderBytes    = 64 << 10
	// maxBodyBytes bounds every request body (only /dlq/reprocess reads one).
	maxBodyBytes = 1 << 20
	// maxScrapesInFlight is shared by both listeners: a scrape storm answers
	// 503 instead of piling up gathers beside the services we share a host with.
	maxScrapesInFlight = 8
)

type lifecycle int

const (
	stateNew lifecycle = iota
	stateListening
	stateServing
	stateDone
)

// Server is the HTTP control surface. Build it with New, then Run (or
// Listen and Serve).
type Server struct {
	cfg    Config
	logger zerolog.Logger

	// tokenHash is the SHA-256 of the API token, nil when none is configured.
	// Comparing fixed-size digests keeps the comparison constant-time even
	// in the token's length.
	tokenHash *[sha256.Size]byte

	apiSrv     *http.Server
	metricsSrv *http.Server // nil when cfg.MetricsListen is empty

	// One reload and one reprocess at a time; a second caller gets 409
	// instead of queueing behind the first.
	reloadMu    sync.Mutex
	reprocessMu sync.Mutex

	mu        sync.Mutex
	state     lifecycle
	apiLn     net.Listener
	metricsLn net.Listener
}

// New builds a Server. It validates cfg and starts nothing. gatherer is the
// registry both /metrics endpoints serve; it is required.
func New(cfg Config, deps Deps, gatherer prometheus.Gatherer, logger zerolog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if gatherer == nil {
		return nil, errors.New("api: new: nil prometheus gatherer")
	}
	s := &Server{
		cfg:    cfg,
		logger: logger.With().Str("component", "api").Logger(),
	}
	if cfg.APIToken != "" {
		h := sha256.Sum256([]byte(cfg.APIToken))
		s.tokenHash = &h
	} else {
		s.logger.Warn().Msg("server.api_token is not set: POST /config/reload and POST /dlq/reprocess answer 403")
	}

	metrics := metricsHandler(gatherer, s.logger)
	s.apiSrv = s.newHTTPServer(s.apiRoutes(deps, metrics))
	if cfg.MetricsListen != "" {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", metrics)
		s.metricsSrv = s.newHTTPServer(jsonFallback(mux))
	}
	return s, nil
}

func (s *Server) newHTTPServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          log.New(serverErrorLog{s.logger}, "", 0),
	}
}

// Listen binds both addresses. A busy port fails here, at once, with an
// error naming the address (errors.Is(err, syscall.EADDRINUSE) holds).
func (s *Server) Listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != stateNew {
		return ErrServerUsed
	}
	apiLn, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("api: listen %s: %w", s.cfg.Listen, err)
	}
	var metricsLn net.Listener
	if s.metricsSrv != nil {
		metricsLn, err = net.Listen("tcp", s.cfg.MetricsListen)
		if err != nil {
			_ = apiLn.Close()
			return fmt.Errorf("api: listen metrics %s: %w", s.cfg.MetricsListen, err)
		}
	}
	s.apiLn, s.metricsLn = apiLn, metricsLn
	s.state = stateListening
	s.logger.Info().Str("listen", apiLn.Addr().String()).Str("metrics_listen", addrOf(metricsLn)).Msg("listening")
	return nil
}

// Addr is the bound API address, "" before Listen.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return addrOf(s.apiLn)
}

// MetricsAddr is the bound metrics address, "" before Listen or when the
// metrics listener is disabled.
func (s *Server) MetricsAddr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return addrOf(s.metricsLn)
}

func addrOf(ln net.Listener) string {
	if ln == nil {
		return ""
	}
	return ln.Addr().String()
}

// Run is Listen followed by Serve.
func (s *Server) Run(ctx context.Context) error {
	if err := s.Listen(); err != nil {
		return err
	}
	return s.Serve(ctx)
}

// Serve serves on the listeners bound by Listen until ctx ends or a server
// fails, then shuts both down within Config.ShutdownTimeout (forcing the
// connections closed after it) and returns once both have stopped. A normal
// stop through ctx returns nil. Requests in flight see ctx's cancellation, so
// a long reload or reprocess stops with the process instead of holding it.
func (s *Server) Serve(ctx context.Context) error {
	s.mu.Lock()
	switch s.state {
	case stateNew:
		s.mu.Unlock()
		return ErrNotListening
	case stateListening:
		s.state = stateServing
	default:
		s.mu.Unlock()
		return ErrServerUsed
	}
	s.mu.Unlock()

	type served struct {
		addr string
		err  error
	}
	servers := []*http.Server{s.apiSrv}
	listeners := []net.Listener{s.apiLn}
	if s.metricsSrv != nil {
		servers = append(servers, s.metricsSrv)
		listeners = append(listeners, s.metricsLn)
	}
	done := make(chan served, len(servers))
	for i, srv := range servers {
		ln := listeners[i]
		srv.BaseContext = func(net.Listener) context.Context { return ctx }
		go func() { done <- served{addr: ln.Addr().String(), err: srv.Serve(ln)} }()
	}

	var errs []error
	collect := func(r served) {
		if !errors.Is(r.err, http.ErrServerClosed) {
			errs = append(errs, fmt.Errorf("api: serve %s: %w", r.addr, r.err))
		}
	}
	pending := len(servers)
	select {
	case <-ctx.Done():
	case r := <-done:
		pending--
		collect(r)
	}
	errs = append(errs, s.shutdown(ctx, servers))
	for ; pending > 0; pending-- {
		collect(<-done)
	}

	s.mu.Lock()
	s.state = stateDone
	s.mu.Unlock()
	s.logger.Info().Msg("stopped")
	return errors.Join(errs...)
}

// shutdown stops all servers in parallel so the total wait is bounded by one
// ShutdownTimeout, not one per server.
func (s *Server) shutdown(ctx context.Context, servers []*http.Server) error {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.shutdownTimeout())
	defer cancel()
	errs := make([]error, len(servers))
	var wg sync.WaitGroup
	for i, srv := range servers {
		wg.Go(func() {
			if err := srv.Shutdown(sctx); err != nil {
				_ = srv.Close()
				errs[i] = fmt.Errorf("api: shutdown: %w", err)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Close releases the listeners of a Server that was Listened but will not be
// Served (start-up aborted elsewhere). A serving Server is stopped by
// cancelling Serve's context; Close is then a no-op.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != stateListening && s.state != stateNew {
		return nil
	}
	var errs []error
	for _, ln := range []net.Listener{s.apiLn, s.metricsLn} {
		if ln != nil {
			if err := ln.Close(); err != nil {
				errs = append(errs, fmt.Errorf("api: close %s: %w", ln.Addr(), err))
			}
		}
	}
	s.state = stateDone
	return errors.Join(errs...)
}

// serverErrorLog routes net/http's own error log (TLS, header and accept
// errors) into zerolog.
type serverErrorLog struct{ logger zerolog.Logger }

func (l serverErrorLog) Write(p []byte) (int, error) {
	l.logger.Warn().Msg(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
