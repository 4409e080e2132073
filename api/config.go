package api

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
)

// Defaults for Config. MetricsListen has a default for DefaultConfig, but an
// empty MetricsListen in a Config handed to New means "no second listener".
const (
	DefaultListen          = "127.0.0.1:8401"
	DefaultMetricsListen   = "127.0.0.1:8001"
	DefaultShutdownTimeout = 10 * time.Second
)

// Config configures the HTTP servers.
type Config struct {
	// Listen is the address of the API server (host:port). Required.
	Listen string
	// MetricsListen is the address of the metrics-only server; empty disables it.
	MetricsListen string
	// APIToken guards the mutating endpoints. Empty disables them (403).
	APIToken string
	// ShutdownTimeout bounds the graceful shutdown; zero means DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
}

// DefaultConfig returns the documented defaults (no token: mutating endpoints off).
func DefaultConfig() Config {
	return Config{
		Listen:          DefaultListen,
		MetricsListen:   DefaultMetricsListen,
		ShutdownTimeout: DefaultShutdownTimeout,
	}
}

// Validate reports the first problem in c.
func (c Config) Validate() error {
	if c.Listen == "" {
		return errors.New("api: config: server.listen must be set")
	}
	if c.ShutdownTimeout < 0 {
		return fmt.Errorf("api: config: server shutdown timeout %v is negative", c.ShutdownTimeout)
	}
	// A token a client cannot send verbatim in a header would lock everyone
	// out with a confusing 403; reject it here instead. The token itself is
	// never echoed.
	if strings.ContainsFunc(c.APIToken, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) {
		return errors.New("api: config: server.api_token must not contain whitespace or control characters")
	}
	return nil
}

func (c Config) shutdownTimeout() time.Duration {
	if c.ShutdownTimeout == 0 {
		return DefaultShutdownTimeout
	}
	return c.ShutdownTimeout
}
