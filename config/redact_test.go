package config

import (
	"encoding/json"
	"strings"
	"testing"
)

func secretConfig() *Config {
	c := Default()
	c.Server.APIToken = "api-SECRET-1"
	c.Sinks.Loki.Enabled = true
	c.Sinks.Loki.URL = "https://user-SECRET-2:pass-SECRET-3@loki.example:3100/loki/api/v1/push"
	c.Sinks.Loki.BasicAuth = BasicAuthConfig{Username: "grafana-user", Password: "pw-SECRET-4"}
	c.Sinks.Loki.BearerToken = "bearer-SECRET-5"
	return c
}

func TestRedactedHidesEverySecret(t *testing.T) {
	c := secretConfig()
	r := c.Redacted()

	b, err := json.Marshal(r.Map())
	if err != nil {
		t.Fatal(err)
	}
	direct, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{string(b), string(direct), r.Summary(), c.Summary()} {
		if strings.Contains(out, "SECRET") {
			t.Errorf("secret leaked:\n%s", out)
		}
	}
	for name, got := range map[string]string{
		"server.api_token":               r.Server.APIToken,
		"sinks.loki.basic_auth.password": r.Sinks.Loki.BasicAuth.Password,
		"sinks.loki.bearer_token":        r.Sinks.Loki.BearerToken,
	} {
		if got != RedactedValue {
			t.Errorf("%s = %q, want %q", name, got, RedactedValue)
		}
	}
	if want := "https://<redacted>@loki.example:3100/loki/api/v1/push"; r.Sinks.Loki.URL != want {
		t.Errorf("url = %q, want %q", r.Sinks.Loki.URL, want)
	}
	// Not secrets: kept so the operator can see them.
	if r.Sinks.Loki.BasicAuth.Username != "grafana-user" {
		t.Errorf("username = %q", r.Sinks.Loki.BasicAuth.Username)
	}
	// The original is untouched, and shares no maps with the copy.
	if c.Server.APIToken != "api-SECRET-1" || !strings.Contains(c.Sinks.Loki.URL, "pass-SECRET-3") {
		t.Error("Redacted modified its receiver")
	}
	r.Files.Labels["x"] = "y"
	r.Files.Include[0] = "changed"
	if _, ok := c.Files.Labels["x"]; ok || c.Files.Include[0] == "changed" {
		t.Error("Redacted shares slices or maps with its receiver")
	}
}

func TestRedactedKeepsUnsetEmpty(t *testing.T) {
	r := Default().Redacted()
	if r.Server.APIToken != "" || r.Sinks.Loki.BasicAuth.Password != "" || r.Sinks.Loki.BearerToken != "" || r.Sinks.Loki.URL != "" {
		t.Fatalf("unset secrets must stay empty: %+v", r.Map())
	}
}

func TestRedactURL(t *testing.T) {
	tests := map[string]string{
		"":                      "",
		"http://127.0.0.1:3100": "http://127.0.0.1:3100",
		"http://tok@h/p":        "http://<redacted>@h/p",
		"http://u:p@h:1/p?q=1":  "http://<redacted>@h:1/p?q=1",
		"http://u:p@[::1":       "<redacted>", // unparseable with userinfo
		"not a url":             "not a url",
	}
	for in, want := range tests {
		if got := redactURL(in); got != want {
			t.Errorf("redactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestMapRendersReadableValues(t *testing.T) {
	m := Default().Map()
	wal := m["wal"].(map[string]any)
	if wal["segment_size"] != "2MiB" || wal["sync_interval"] != "10ms" {
		t.Fatalf("wal = %v", wal)
	}
	files := m["files_config"].(map[string]any)
	if inc := files["include"].([]string); len(inc) != 1 || inc[0] != "/var/log/*.log" {
		t.Fatalf("include = %v", inc)
	}
	if _, ok := m["Origin"]; ok {
		t.Fatal("Origin is not a key")
	}
}

func TestMarshalJSONUsesYAMLKeys(t *testing.T) {
	for name, v := range map[string]any{"pointer": Default(), "value": *Default()} {
		t.Run(name, func(t *testing.T) {
			b, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			var back map[string]any
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatal(err)
			}
			wal, ok := back["wal"].(map[string]any)
			if !ok || wal["max_size"] != "1GiB" || wal["retention"] != "1h0m0s" {
				t.Fatalf("json = %s", b)
			}
			if _, ok := back["DataDir"]; ok {
				t.Fatalf("Go field names leaked: %s", b)
			}
		})
	}
}

func TestSummary(t *testing.T) {
	c := mustLoadYAML(t, "data_dir: /d\nsinks: {loki: {url: 'http://u:p@127.0.0.1:3100', tenant_id: '7'}, file: {enabled: true}}\n")
	s := c.Summary()
	for _, want := range []string{
		"data_dir=/d", "wal.max_size=1GiB", "sinks=loki(http://<redacted>@127.0.0.1:3100 tenant=7),file(/d/sink/logs.jsonl)",
		"files.include=1", "containers=off", "log=info/json",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("summary lacks %q: %s", want, s)
		}
	}
	if strings.Contains(s, "\n") || strings.Contains(s, ":p@") {
		t.Errorf("summary must be one line without secrets: %s", s)
	}
}

func TestMapShowsFileRoutes(t *testing.T) {
	c := Default()
	c.FilePipeline.Routes = []FileRoute{{
		Name:      "mysql-slow",
		Match:     []string{"/var/log/mysql/*slow*.log"},
		Labels:    map[string]string{"job": "mysql"},
		Multiline: MultilineConfig{Preset: "mysql_slow"},
	}}
	b, err := json.Marshal(c.Redacted())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"file_pipeline":{"routes":[{`, `"name":"mysql-slow"`, `"preset":"mysql_slow"`, `"match":["/var/log/mysql/*slow*.log"]`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("/config output lacks %s:\n%s", want, b)
		}
	}
}
