package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/logcapturer/log_capturer_go/config"
	"github.com/logcapturer/log_capturer_go/ship"
	"github.com/logcapturer/log_capturer_go/state"
)

// lokiRecovery builds a probe for each kind from the push settings, none
// when off, and names the key when the query URL cannot be derived.
func TestLokiRecovery(t *testing.T) {
	store, err := state.Open(filepath.Join(t.TempDir(), state.DefaultFileName), state.Options{}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	sink := ship.NewLokiSink(nil, ship.LokiSinkConfig{})
	tests := map[string]struct {
		cfg     config.LokiConfig
		wantOpt bool
		wantErr string
	}{
		"off":                  {cfg: config.LokiConfig{URL: "http://loki:3100", Verify: config.VerifyConfig{Kind: "off"}}},
		"loki derived":         {cfg: config.LokiConfig{URL: "http://loki:3100/loki/api/v1/push", Verify: config.VerifyConfig{Kind: "loki"}}, wantOpt: true},
		"victorialogs derived": {cfg: config.LokiConfig{URL: "http://vl:9428/insert/loki/api/v1/push?disable_message_parsing=1", TenantID: "7", Verify: config.VerifyConfig{Kind: "victorialogs"}}, wantOpt: true},
		"explicit url":         {cfg: config.LokiConfig{URL: "http://gw/push", Verify: config.VerifyConfig{Kind: "loki", URL: "http://loki:3100"}}, wantOpt: true},
		"not derivable":        {cfg: config.LokiConfig{URL: "http://gw/push", Verify: config.VerifyConfig{Kind: "loki"}}, wantErr: "sinks.loki.verify"},
		"bad vl tenant":        {cfg: config.LokiConfig{URL: "http://vl:9428/insert/loki/api/v1/push", TenantID: "team", Verify: config.VerifyConfig{Kind: "victorialogs"}}, wantErr: "tenant"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			opt, closer, err := lokiRecovery(tt.cfg, sink, store)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one naming %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (opt != nil) != tt.wantOpt || (closer != nil) != tt.wantOpt {
				t.Fatalf("option %v, closer %v; want them: %v", opt != nil, closer != nil, tt.wantOpt)
			}
			if closer != nil {
				if err := closer(); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}
