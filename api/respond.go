package api

import (
	"encoding/json"
	"net/http"
)

// writeJSON marshals before writing so an encoding failure can still become
// a clean 500 instead of a half-written 200.
func (s *Server) writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		s.logger.Error().Err(err).Msg("encode response")
		status = http.StatusInternalServerError
		body, _ = json.Marshal(errorBody{Error: "encode response: " + err.Error()})
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

type errorBody struct {
	Error string `json:"error"`
}

func (s *Server) writeError(w http.ResponseWriter, status int, msg string) {
	s.writeJSON(w, status, errorBody{Error: msg})
}

// limitBody caps every request body; only /dlq/reprocess reads one today,
// the cap protects whatever reads one tomorrow.
func limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
		next.ServeHTTP(w, r)
	})
}

// jsonFallback turns the router's own plain-text 404 and 405 into JSON
// errors, keeping its Allow header. Requests that matched a route are
// served untouched.
func jsonFallback(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := mux.Handler(r); pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		rw := &errorRewriter{ResponseWriter: w}
		mux.ServeHTTP(rw, r)
		rw.finish()
	})
}

// errorRewriter swallows a plain-text 404 or 405 body and writes a JSON one
// instead; other responses (the router's path-cleaning redirects) pass.
type errorRewriter struct {
	http.ResponseWriter
	status int // 404 or 405 once captured
}

func (e *errorRewriter) WriteHeader(code int) {
	if code == http.StatusNotFound || code == http.StatusMethodNotAllowed {
		e.status = code
		return
	}
	e.ResponseWriter.WriteHeader(code)
}

func (e *errorRewriter) Write(p []byte) (int, error) {
	if e.status != 0 {
		return len(p), nil
	}
	return e.ResponseWriter.Write(p)
}

func (e *errorRewriter) finish() {
	if e.status == 0 {
		return
	}
	msg := "not found"
	if e.status == http.StatusMethodNotAllowed {
		msg = "method not allowed; allowed: " + e.Header().Get("Allow")
	}
	body, _ := json.Marshal(errorBody{Error: msg})
	h := e.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	e.ResponseWriter.WriteHeader(e.status)
	_, _ = e.ResponseWriter.Write(append(body, '\n'))
}
