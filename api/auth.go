package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
)

// requireToken guards a mutating endpoint with the bearer token.
// Order matters: with no token configured the answer is 403 whatever the
// client sends, since no credential can succeed (401 would invite retrying).
func (s *Server) requireToken(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.tokenHash == nil {
			s.writeError(w, http.StatusForbidden, "mutating endpoints are disabled: server.api_token must be set")
			return
		}
		token, ok := bearerToken(r.Header.Get("Authorization"))
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="logcapturer"`)
			s.writeError(w, http.StatusUnauthorized, "missing bearer token: send Authorization: Bearer <server.api_token>")
			return
		}
		got := sha256.Sum256([]byte(token))
		if subtle.ConstantTimeCompare(got[:], s.tokenHash[:]) != 1 {
			s.logger.Warn().Str("remote", r.RemoteAddr).Str("path", r.URL.Path).Msg("rejected request with a wrong API token")
			s.writeError(w, http.StatusForbidden, "invalid API token")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// bearerToken extracts the credentials of an RFC 6750 "Bearer" header; the
// scheme is case-insensitive.
func bearerToken(header string) (string, bool) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}
