package main

import (
	"fmt"

	"github.com/logcapturer/log_capturer_go/config"
	"github.com/logcapturer/log_capturer_go/ship"
	"github.com/logcapturer/log_capturer_go/ship/loki"
	"github.com/logcapturer/log_capturer_go/state"
)

// lokiRecovery builds the recovery probe of the Loki sink from
// sinks.loki.verify (nil when off): a prober of the configured kind, with
// the push's tenant, auth and TLS, and the state store as the keeper of
// the dispatch mark. The returned closer releases its connections.
func lokiRecovery(c config.LokiConfig, sink *ship.LokiSink, store *state.Store) (ship.Option, func() error, error) {
	v := c.Verify
	if v.Kind == "" || v.Kind == "off" {
		return nil, nil, nil
	}
	base := v.URL
	if base == "" {
		var err error
		if base, err = loki.QueryBaseURL(c.URL, v.Kind); err != nil {
			return nil, nil, fmt.Errorf("sinks.loki.verify: %w", err)
		}
	}
	pc := loki.ProberConfig{
		URL:                base,
		TenantID:           c.TenantID,
		BasicAuthUser:      c.BasicAuth.Username,
		BasicAuthPassword:  c.BasicAuth.Password,
		BearerToken:        c.BearerToken,
		CAFile:             c.TLS.CAFile,
		InsecureSkipVerify: c.TLS.InsecureSkipVerify,
		Timeout:            v.Timeout,
		UserAgent:          "logcapturer/" + version,
	}
	var (
		p       loki.Prober
		closeFn func()
	)
	switch v.Kind {
	case "loki":
		lp, err := loki.NewLokiProber(pc)
		if err != nil {
			return nil, nil, fmt.Errorf("sinks.loki.verify: %w", err)
		}
		p, closeFn = lp, lp.Close
	case "victorialogs":
		vp, err := loki.NewVictoriaLogsProber(pc)
		if err != nil {
			return nil, nil, fmt.Errorf("sinks.loki.verify: %w", err)
		}
		p, closeFn = vp, vp.Close
	default:
		return nil, nil, fmt.Errorf("sinks.loki.verify.kind %q unknown", v.Kind)
	}
	opt := ship.WithRecovery(sink.Prober(p), store, ship.RecoveryConfig{Delay: v.Delay, Timeout: v.Timeout})
	return opt, func() error { closeFn(); return nil }, nil
}
