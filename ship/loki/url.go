package loki

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// PushPath is the Loki push endpoint appended to a base URL.
const PushPath = "/loki/api/v1/push"

// ErrBadURL is wrapped by every NormalizeURL error.
var ErrBadURL = errors.New("loki: bad url")

// NormalizeURL turns a configured Loki URL into the URL to POST to.
//
// A URL with an empty path or "/" is a base URL and gets PushPath appended.
// Any other path is taken as the full push URL, so both
// http://loki:3100/loki/api/v1/push and a receiver with a prefixed path
// (VictoriaLogs' /insert/loki/api/v1/push, a gateway's /tenant1/...) work.
// The query string is kept; a fragment is dropped. The scheme must be http
// or https and the host must not be empty.
//
// Errors never echo the URL, since it may carry credentials.
func NormalizeURL(raw string) (string, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return "", fmt.Errorf("%w: empty", ErrBadURL)
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error quotes the whole input, userinfo included; keep only the reason.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return "", fmt.Errorf("%w: %v", ErrBadURL, err)
	}
	switch u.Scheme {
	case "http", "https":
	case "":
		return "", fmt.Errorf("%w: missing scheme, want http:// or https://", ErrBadURL)
	default:
		return "", fmt.Errorf("%w: unsupported scheme %q, want http or https", ErrBadURL, u.Scheme)
	}
	if u.Opaque != "" || u.Host == "" || u.Hostname() == "" {
		return "", fmt.Errorf("%w: missing host", ErrBadURL)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path, u.RawPath = PushPath, ""
	}
	u.Fragment, u.RawFragment = "", ""
	return u.String(), nil
}

// redactURL renders u for logs and errors: scheme, host and path only, since
// userinfo and the query may hold secrets.
func redactURL(u *url.URL) string {
	r := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawPath: u.RawPath}
	return r.String()
}
