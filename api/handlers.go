package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"
)

func (s *Server) apiRoutes(deps Deps, metrics http.Handler) http.Handler {
	var stats, cfg, positions, dlqStats func() any
	if deps.Stats != nil {
		stats = deps.Stats.Stats
	}
	if deps.Config != nil {
		cfg = deps.Config.RedactedConfig
	}
	if deps.Positions != nil {
		positions = deps.Positions.Positions
	}
	if deps.DLQStats != nil {
		dlqStats = deps.DLQStats.DLQStats
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", s.health(deps.Health))
	mux.HandleFunc("GET /stats", s.snapshot("/stats", stats))
	mux.HandleFunc("GET /config", s.snapshot("/config", cfg))
	mux.Handle("POST /config/reload", s.requireToken(s.reload(deps.Reloader)))
	mux.HandleFunc("GET /positions", s.snapshot("/positions", positions))
	mux.HandleFunc("GET /dlq/stats", s.snapshot("/dlq/stats", dlqStats))
	mux.Handle("POST /dlq/reprocess", s.requireToken(s.reprocess(deps.DLQReprocessor)))
	mux.Handle("GET /metrics", metrics)
	return limitBody(jsonFallback(mux))
}

// metricsHandler is shared by both listeners so they serve the same
// registry and share one in-flight limit. ContinueOnError serves what could
// be gathered: one broken collector must not blank every other metric.
func metricsHandler(g prometheus.Gatherer, logger zerolog.Logger) http.Handler {
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{
		ErrorLog:            promErrorLog{logger},
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: maxScrapesInFlight,
	})
}

type promErrorLog struct{ logger zerolog.Logger }

func (l promErrorLog) Println(v ...any) {
	l.logger.Warn().Str("source", "promhttp").Msg(strings.TrimSuffix(fmt.Sprintln(v...), "\n"))
}

// health always answers: with no reporter wired, the process is alive and
// serving HTTP, which is all a liveness check can say.
func (s *Server) health(r HealthReporter) http.HandlerFunc {
	return func(w http.ResponseWriter, req *http.Request) {
		var h Health
		if r != nil {
			h = r.Health()
		}
		h = h.normalize()
		s.writeJSON(w, httpStatus(h.Status), h)
	}
}

// snapshot serves a read-only JSON view, or 501 when nothing provides it.
func (s *Server) snapshot(path string, get func() any) http.HandlerFunc {
	if get == nil {
		return s.notImplemented(path)
	}
	return func(w http.ResponseWriter, _ *http.Request) {
		s.writeJSON(w, http.StatusOK, get())
	}
}

func (s *Server) notImplemented(path string) http.HandlerFunc {
	msg := path + " is not available: the component behind it is not enabled in this process"
	return func(w http.ResponseWriter, _ *http.Request) {
		s.writeError(w, http.StatusNotImplemented, msg)
	}
}

func (s *Server) reload(r Reloader) http.HandlerFunc {
	if r == nil {
		return s.notImplemented("/config/reload")
	}
	return func(w http.ResponseWriter, req *http.Request) {
		if !s.reloadMu.TryLock() {
			s.writeError(w, http.StatusConflict, "a configuration reload is already in progress")
			return
		}
		defer s.reloadMu.Unlock()
		if err := r.Reload(req.Context()); err != nil {
			s.logger.Warn().Err(err).Str("remote", req.RemoteAddr).Msg("configuration reload failed; previous configuration kept")
			s.writeOpError(w, "reload", err)
			return
		}
		s.logger.Info().Str("remote", req.RemoteAddr).Msg("configuration reloaded")
		s.writeJSON(w, http.StatusOK, map[string]string{"status": "reloaded"})
	}
}

func (s *Server) reprocess(p DLQReprocessor) http.HandlerFunc {
	if p == nil {
		return s.notImplemented("/dlq/reprocess")
	}
	return func(w http.ResponseWriter, req *http.Request) {
		rr, status, err := decodeReprocess(req.Body)
		if err != nil {
			s.writeError(w, status, err.Error())
			return
		}
		if !s.reprocessMu.TryLock() {
			s.writeError(w, http.StatusConflict, "a DLQ reprocess is already in progress")
			return
		}
		defer s.reprocessMu.Unlock()
		res, err := p.Reprocess(req.Context(), rr)
		if err != nil {
			s.logger.Warn().Err(err).Str("remote", req.RemoteAddr).Msg("DLQ reprocess failed")
			s.writeOpError(w, "reprocess", err)
			return
		}
		s.logger.Info().Str("remote", req.RemoteAddr).Str("sink", rr.Sink).Int("ids", len(rr.IDs)).
			Int("limit", rr.Limit).Bool("dry_run", rr.DryRun).Msg("DLQ reprocess requested")
		if res == nil {
			res = map[string]string{"status": "ok"}
		}
		s.writeJSON(w, http.StatusOK, res)
	}
}

// decodeReprocess reads one JSON object. An empty body is the zero request.
// Unknown fields and trailing data are errors, so a typo cannot silently
// widen what gets re-shipped.
func decodeReprocess(body io.Reader) (ReprocessRequest, int, error) {
	var rr ReprocessRequest
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rr); err != nil && !errors.Is(err, io.EOF) {
		if mbe, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return rr, http.StatusRequestEntityTooLarge, fmt.Errorf("request body larger than %d bytes", mbe.Limit)
		}
		return rr, http.StatusBadRequest, fmt.Errorf("decode request: %v", err)
	}
	if err := dec.Decode(new(json.RawMessage)); !errors.Is(err, io.EOF) {
		return rr, http.StatusBadRequest, errors.New("decode request: trailing data after the JSON object")
	}
	if rr.Limit < 0 {
		return rr, http.StatusBadRequest, fmt.Errorf("limit %d is negative", rr.Limit)
	}
	return rr, 0, nil
}

// writeOpError maps an operation's error to a status via the sentinels the
// dependency wraps. The message goes to an authenticated caller only.
func (s *Server) writeOpError(w http.ResponseWriter, op string, err error) {
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, ErrInvalid):
		status = http.StatusBadRequest
	case errors.Is(err, ErrConflict):
		status = http.StatusConflict
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		status = http.StatusServiceUnavailable
	}
	s.writeError(w, status, op+": "+err.Error())
}
