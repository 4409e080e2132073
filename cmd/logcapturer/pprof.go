package main

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/rs/zerolog"
)

// pprofEnv names the address of an opt-in profiling listener. It is an
// environment variable, not a config key, because it is a diagnostic switch
// an operator flips for one run, and it must stay off by default: profiles
// expose internals. Bind it to loopback.
const pprofEnv = "LOGCAPTURER_PPROF"

// servePprof serves net/http/pprof on addr until ctx ends.
func servePprof(ctx context.Context, addr string, logger zerolog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	logger.Warn().Str("addr", ln.Addr().String()).Msg("pprof listener enabled (" + pprofEnv + ")")
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
