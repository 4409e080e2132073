package api

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

func TestConfigValidate(t *testing.T) {
	tests := map[string]struct {
		mutate  func(*Config)
		wantErr string
	}{
		"defaults":            {func(*Config) {}, ""},
		"with token":          {func(c *Config) { c.APIToken = "abc.DEF-123_~+/=" }, ""},
		"no metrics listener": {func(c *Config) { c.MetricsListen = "" }, ""},
		"zero timeout":        {func(c *Config) { c.ShutdownTimeout = 0 }, ""},
		"no listen":           {func(c *Config) { c.Listen = "" }, "server.listen"},
		"negative timeout":    {func(c *Config) { c.ShutdownTimeout = -time.Second }, "negative"},
		"token with space":    {func(c *Config) { c.APIToken = "abc def" }, "server.api_token"},
		"token with newline":  {func(c *Config) { c.APIToken = "abc\n" }, "server.api_token"},
		"token with control":  {func(c *Config) { c.APIToken = "a\x00b" }, "server.api_token"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c := DefaultConfig()
			tc.mutate(&c)
			err := c.Validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Validate = %v, want error containing %q", err, tc.wantErr)
			}
			if strings.Contains(err.Error(), c.APIToken) && c.APIToken != "" {
				t.Fatalf("error %q echoes the token", err)
			}
			if _, err := New(c, Deps{}, prometheus.NewRegistry(), zerolog.Nop()); err == nil {
				t.Fatal("New accepted an invalid config")
			}
		})
	}
}

func TestNewRejectsNilGatherer(t *testing.T) {
	if _, err := New(DefaultConfig(), Deps{}, nil, zerolog.Nop()); err == nil {
		t.Fatal("New accepted a nil gatherer")
	}
}

func TestDefaultConfig(t *testing.T) {
	c := DefaultConfig()
	if c.Listen != "127.0.0.1:8401" || c.MetricsListen != "127.0.0.1:8001" || c.APIToken != "" {
		t.Fatalf("DefaultConfig = %+v", c)
	}
	if c.shutdownTimeout() != DefaultShutdownTimeout {
		t.Fatalf("shutdown timeout = %v", c.shutdownTimeout())
	}
}
