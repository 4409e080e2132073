package config

import (
	"testing"
	"time"
)

func TestVerifyKeys(t *testing.T) {
	c := mustLoadYAML(t, `
sinks:
  loki:
    url: http://127.0.0.1:9428/insert/loki/api/v1/push?disable_message_parsing=1
    tenant_id: "12"
    verify: {kind: victorialogs, delay: 250ms, timeout: 5s}
`)
	v := c.Sinks.Loki.Verify
	if v.Kind != "victorialogs" || v.URL != "" || v.Delay != 250*time.Millisecond || v.Timeout != 5*time.Second {
		t.Fatalf("verify = %+v", v)
	}
	if d := Default().Sinks.Loki.Verify; d.Kind != "off" || d.Delay != time.Second || d.Timeout != 30*time.Second {
		t.Fatalf("defaults = %+v", d)
	}
	// A base URL derives the Loki query URL; an explicit URL needs no push path.
	mustLoadYAML(t, "sinks: {loki: {url: 'http://loki:3100', verify: {kind: loki}}}\n")
	mustLoadYAML(t, "sinks: {loki: {url: 'http://gw/custom', verify: {kind: loki, url: 'http://loki:3100'}}}\n")
	mustLoadYAML(t, "sinks: {loki: {url: 'http://gw/custom', verify: {kind: \"off\"}}}\n")
}

func TestVerifyValidation(t *testing.T) {
	tests := map[string]struct {
		yaml string
		want string
	}{
		"unknown kind": {
			"sinks: {loki: {url: 'http://loki:3100', verify: {kind: elastic}}}\n",
			`sinks.loki.verify.kind must be one of off|loki|victorialogs, got "elastic"`},
		"not derivable": {
			"sinks: {loki: {url: 'http://gw/custom/push', verify: {kind: loki}}}\n",
			"sinks.loki.verify.url must be set: it cannot be derived from sinks.loki.url, whose path does not end in /loki/api/v1/push"},
		"vl from a Loki path": {
			"sinks: {loki: {url: 'http://vl:9428/loki/api/v1/push', verify: {kind: victorialogs}}}\n",
			"whose path does not end in /insert/loki/api/v1/push"},
		"bad url": {
			"sinks: {loki: {url: 'http://loki:3100', verify: {kind: loki, url: 'ftp://x'}}}\n",
			"sinks.loki.verify.url: invalid URL: scheme must be http or https"},
		"credentials in url": {
			"sinks: {loki: {url: 'http://loki:3100', verify: {kind: loki, url: 'http://u:p@loki:3100'}}}\n",
			"sinks.loki.verify.url must not carry credentials"},
		"vl tenant": {
			"sinks: {loki: {url: 'http://vl:9428/insert/loki/api/v1/push', tenant_id: team-a, verify: {kind: victorialogs}}}\n",
			`sinks.loki.tenant_id "team-a": VictoriaLogs needs a number or number:number`},
		"vl project": {
			"sinks: {loki: {url: 'http://vl:9428/insert/loki/api/v1/push', tenant_id: '1:x', verify: {kind: victorialogs}}}\n",
			`sinks.loki.tenant_id "1:x": VictoriaLogs needs`},
		"delay": {
			"sinks: {loki: {url: 'http://loki:3100', verify: {kind: loki, delay: 2m}}}\n",
			"sinks.loki.verify.delay must be between 0s and 1m0s, got 2m0s"},
		"timeout": {
			"sinks: {loki: {url: 'http://loki:3100', verify: {kind: loki, timeout: 10ms}}}\n",
			"sinks.loki.verify.timeout must be between 1s and 10m0s, got 10ms"},
		"delay over timeout": {
			"sinks: {loki: {url: 'http://loki:3100', verify: {kind: loki, delay: 30s, timeout: 20s}}}\n",
			"sinks.loki.verify.timeout (20s) must exceed sinks.loki.verify.delay (30s)"},
		"needs dedup": {
			"sinks: {loki: {url: 'http://loki:3100', verify: {kind: loki}}}\ndedup: {window: 0}\n",
			`sinks.loki.verify.kind "loki" needs dedup on`},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			_, _, err := loadYAML(t, tt.yaml)
			wantErr(t, err, tt.want)
		})
	}
}
