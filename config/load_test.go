package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/logcapturer/log_capturer_go/configs"
)

func withoutOrigin(c *Config) *Config {
	c = c.Clone()
	c.Origin = Origin{}
	return c
}

func TestDefaultValidates(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Fatalf("Default().Validate(): %v", err)
	}
}

func TestLoadEmptyFileGivesDefaults(t *testing.T) {
	for name, content := range map[string]string{
		"empty":         "",
		"comments only": "# nothing here\n\n# at all\n",
		"null document": "~\n",
		"empty mapping": "{}\n",
		"empty section": "wal:\ncontainers:\n",
	} {
		t.Run(name, func(t *testing.T) {
			got := mustLoadYAML(t, content)
			if want := Default(); !reflect.DeepEqual(withoutOrigin(got), want) {
				t.Fatalf("defaults differ:\n got %+v\nwant %+v", got.Map(), want.Map())
			}
		})
	}
}

func TestEmbeddedDefaultLoadsAndValidates(t *testing.T) {
	got, err := Load(LoadOptions{Env: envMap()})
	if err != nil {
		t.Fatalf("Load(embedded): %v", err)
	}
	want := Default()
	want.DataDir = "./data"
	want.Sinks.File.Path = filepath.Join("data", "sink", "logs.jsonl")
	if !reflect.DeepEqual(withoutOrigin(got), want) {
		t.Fatalf("embedded config differs from Default() beyond data_dir:\n got %v\nwant %v", got.Map(), want.Map())
	}
	if got.Origin.ConfigFile != "" || got.Origin.PipelinesFile != "" || got.Origin.FileConfigFile != "" {
		t.Errorf("origin should name no file for the embedded defaults: %+v", got.Origin)
	}
	if len(got.Origin.PipelinesYAML) == 0 || len(got.Origin.FileConfigYAML) == 0 {
		t.Errorf("embedded side files not kept")
	}
	if !got.Sinks.File.Enabled || got.Sinks.Loki.Enabled {
		t.Errorf("out of the box: want the file sink only, got loki=%v file=%v", got.Sinks.Loki.Enabled, got.Sinks.File.Enabled)
	}
}

// The shipped config documents every key: a key added to Config but not to
// configs/config.yaml fails here.
func TestEmbeddedConfigListsEveryKey(t *testing.T) {
	layer, err := decodeFile("embedded", configs.ConfigYAML())
	if err != nil {
		t.Fatal(err)
	}
	got := flatKeys(layer, "")
	want := flatKeys(defaultLayer(), "")
	if !slices.Equal(got, want) {
		t.Fatalf("configs/config.yaml keys differ from the schema\n file: %v\nschema: %v", got, want)
	}
}

func flatKeys(m map[string]any, prefix string) []string {
	var out []string
	for k, v := range m {
		if sub, ok := v.(map[string]any); ok {
			out = append(out, flatKeys(sub, join(prefix, k))...)
			continue
		}
		out = append(out, join(prefix, k))
	}
	slices.Sort(out)
	return out
}

func TestFileOverrides(t *testing.T) {
	c := mustLoadYAML(t, `
data_dir: /tmp/lc
log: {level: debug, format: console}
server:
  listen: 127.0.0.1:9401
  metrics_listen: "[::1]:9001"
  api_token: s3cret
wal:
  segment_size: 16MiB
  max_size: 2GiB
  sync_interval: 0
  sync_bytes: 524288
  retention: 30m
  max_entry_bytes: 2MiB
  segment_cache: 4
files_config:
  include: [/srv/*.log, /opt/app/**/*.log]
  max_line_bytes: 64KiB
  start_at: end
  labels: {env: prod}
containers:
  enabled: true
  include_labels: [logging=on]
sinks:
  loki:
    url: http://127.0.0.1:3100
    tenant_id: "42"
    concurrency: 8
    labels: {host: h1}
dedup: {window: 0, max_keys: 0}
dlq: {retention: 24h, max_bytes: 4MB}
`)
	checks := []struct {
		name      string
		got, want any
	}{
		{"data_dir", c.DataDir, "/tmp/lc"},
		{"log.level", c.Log.Level, "debug"},
		{"log.format", c.Log.Format, "console"},
		{"server.metrics_listen", c.Server.MetricsListen, "[::1]:9001"},
		{"server.api_token", c.Server.APIToken, "s3cret"},
		{"wal.segment_size", c.WAL.SegmentSize, 16 * MiB},
		{"wal.max_size", c.WAL.MaxSize, 2 * GiB},
		{"wal.sync_interval", c.WAL.SyncInterval, time.Duration(0)},
		{"wal.sync_bytes", c.WAL.SyncBytes, 512 * KiB},
		{"wal.retention", c.WAL.Retention, 30 * time.Minute},
		{"wal.segment_cache", c.WAL.SegmentCache, 4},
		{"files_config.include", c.Files.Include, []string{"/srv/*.log", "/opt/app/**/*.log"}},
		{"files_config.exclude (absent: default)", c.Files.Exclude, []string{"*.gz"}},
		{"files_config.max_line_bytes", c.Files.MaxLineBytes, 64 * KiB},
		{"files_config.poll_interval (absent: default)", c.Files.PollInterval, 250 * time.Millisecond},
		{"files_config.start_at", c.Files.StartAt, "end"},
		{"files_config.labels (replaced, not merged)", c.Files.Labels, map[string]string{"env": "prod"}},
		{"containers.enabled", c.Containers.Enabled, true},
		{"containers.include_labels", c.Containers.IncludeLabels, []string{"logging=on"}},
		{"containers.socket (absent: default)", c.Containers.Socket, "unix:///var/run/docker.sock"},
		{"sinks.loki.enabled (derived from url)", c.Sinks.Loki.Enabled, true},
		{"sinks.loki.tenant_id (numeric kept as text)", c.Sinks.Loki.TenantID, "42"},
		{"sinks.loki.concurrency", c.Sinks.Loki.Concurrency, 8},
		{"sinks.loki.labels", c.Sinks.Loki.Labels, map[string]string{"host": "h1"}},
		{"sinks.file.enabled (derived: loki on)", c.Sinks.File.Enabled, false},
		{"sinks.file.path (derived from data_dir)", c.Sinks.File.Path, "/tmp/lc/sink/logs.jsonl"},
		{"dedup.window", c.Dedup.Window, time.Duration(0)},
		{"dedup.max_keys", c.Dedup.MaxKeys, 0},
		{"dlq.retention", c.DLQ.Retention, 24 * time.Hour},
		{"dlq.max_bytes", c.DLQ.MaxBytes, 4 * MB},
	}
	for _, tc := range checks {
		t.Run(tc.name, func(t *testing.T) {
			if !reflect.DeepEqual(tc.got, tc.want) {
				t.Fatalf("got %#v, want %#v", tc.got, tc.want)
			}
		})
	}
}

func TestEnvOverrides(t *testing.T) {
	const file = `
log: {level: debug, format: console}
sinks:
  loki:
    url: http://127.0.0.1:1/from-file
`
	tests := map[string]struct {
		content string
		env     []string
		check   func(t *testing.T, c *Config)
	}{
		"env beats file": {
			content: file,
			env:     []string{EnvLokiURL, "http://127.0.0.1:3100/loki/api/v1/push", EnvLogLevel, "WARN", EnvLogFormat, "json"},
			check: func(t *testing.T, c *Config) {
				if c.Sinks.Loki.URL != "http://127.0.0.1:3100/loki/api/v1/push" {
					t.Errorf("url = %q", c.Sinks.Loki.URL)
				}
				if c.Log.Level != "warn" || c.Log.Format != "json" {
					t.Errorf("log = %+v", c.Log)
				}
			},
		},
		"LOKI_URL enables loki and the file sink steps back": {
			content: "",
			env:     []string{EnvLokiURL, "http://127.0.0.1:3100"},
			check: func(t *testing.T, c *Config) {
				if !c.Sinks.Loki.Enabled || c.Sinks.File.Enabled {
					t.Errorf("loki=%v file=%v", c.Sinks.Loki.Enabled, c.Sinks.File.Enabled)
				}
			},
		},
		"LOKI_URL wins over enabled: false in the file": {
			content: "sinks: {loki: {enabled: false}}\n",
			env:     []string{EnvLokiURL, "http://127.0.0.1:3100"},
			check: func(t *testing.T, c *Config) {
				if !c.Sinks.Loki.Enabled {
					t.Error("loki not enabled")
				}
			},
		},
		"file sink kept when asked for explicitly": {
			content: "sinks: {file: {enabled: true}}\n",
			env:     []string{EnvLokiURL, "http://127.0.0.1:3100"},
			check: func(t *testing.T, c *Config) {
				if !c.Sinks.Loki.Enabled || !c.Sinks.File.Enabled {
					t.Errorf("loki=%v file=%v", c.Sinks.Loki.Enabled, c.Sinks.File.Enabled)
				}
			},
		},
		"empty variables count as unset": {
			content: file,
			env:     []string{EnvLokiURL, "", EnvLogLevel, "  ", EnvLogFormat, ""},
			check: func(t *testing.T, c *Config) {
				if c.Sinks.Loki.URL != "http://127.0.0.1:1/from-file" || c.Log.Level != "debug" || c.Log.Format != "console" {
					t.Errorf("file values lost: url=%q log=%+v", c.Sinks.Loki.URL, c.Log)
				}
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			tc.check(t, mustLoadYAML(t, tc.content, tc.env...))
		})
	}
}

func TestEnvValuesAreValidated(t *testing.T) {
	_, _, err := loadYAML(t, "", EnvLogLevel, "loud", EnvLokiURL, "ftp://127.0.0.1/x")
	wantErr(t, err, `config: $LOG_LEVEL: log.level must be one of`, `"loud"`, `config: $LOKI_URL: sinks.loki.url: invalid URL`)
}

func TestAbsentVersusEmptyLists(t *testing.T) {
	tests := map[string]struct {
		content     string
		include     []string
		exclude     []string
		labels      map[string]string
		lokiLabels  map[string]string
		ctrExcludes []string
	}{
		"absent keys keep the defaults": {
			content: "files_config: {enabled: true}\n",
			include: []string{"/var/log/*.log"}, exclude: []string{"*.gz"},
			labels: map[string]string{"job": "logcapturer"}, lokiLabels: map[string]string{}, ctrExcludes: []string{},
		},
		"explicit empty means none": {
			content: "files_config: {include: [], exclude: [], labels: {}}\n",
			include: []string{}, exclude: []string{},
			labels: map[string]string{}, lokiLabels: map[string]string{}, ctrExcludes: []string{},
		},
		"block style empty list": {
			content: "files_config:\n  include: []\n",
			include: []string{}, exclude: []string{"*.gz"},
			labels: map[string]string{"job": "logcapturer"}, lokiLabels: map[string]string{}, ctrExcludes: []string{},
		},
		"a given list replaces the default whole": {
			content: "files_config: {exclude: ['*.old']}\ncontainers: {exclude_names: [tmp-*]}\n",
			include: []string{"/var/log/*.log"}, exclude: []string{"*.old"},
			labels: map[string]string{"job": "logcapturer"}, lokiLabels: map[string]string{}, ctrExcludes: []string{"tmp-*"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c := mustLoadYAML(t, tc.content)
			f := c.Files
			if !reflect.DeepEqual(f.Include, tc.include) || !reflect.DeepEqual(f.Exclude, tc.exclude) ||
				!reflect.DeepEqual(f.Labels, tc.labels) || !reflect.DeepEqual(c.Sinks.Loki.Labels, tc.lokiLabels) ||
				!reflect.DeepEqual(c.Containers.ExcludeNames, tc.ctrExcludes) {
				t.Fatalf("got include=%#v exclude=%#v labels=%#v loki.labels=%#v exclude_names=%#v",
					f.Include, f.Exclude, f.Labels, c.Sinks.Loki.Labels, c.Containers.ExcludeNames)
			}
			// "none" must be an empty, non-nil value so consumers cannot
			// mistake it for "unset".
			if tc.include != nil && f.Include == nil {
				t.Error("include is nil")
			}
		})
	}
}

func TestNullCollectionIsAmbiguous(t *testing.T) {
	for name, content := range map[string]string{
		"files_config.include": "files_config:\n  include:\n#   - /var/log/*.log\n",
		"files_config.labels":  "files_config:\n  labels: ~\n",
	} {
		t.Run(name, func(t *testing.T) {
			_, p, err := loadYAML(t, content)
			wantErr(t, err, p, name+": empty value is ambiguous")
		})
	}
}

func TestUnknownKeyNamesKeyAndFile(t *testing.T) {
	tests := map[string]struct {
		content string
		keys    []string
	}{
		"top level":   {"data_dri: /x\n", []string{`unknown key "data_dri" (line 1)`}},
		"nested":      {"wal:\n  segmnt_size: 8MiB\n", []string{`unknown key "wal.segmnt_size" (line 2)`}},
		"deep nested": {"sinks:\n  loki:\n    basic_auth:\n      pasword: x\n", []string{`unknown key "sinks.loki.basic_auth.pasword" (line 4)`}},
		"every unknown key at once": {
			"wal: {segmnt_size: 1}\nfiles_config: {includes: []}\nsinks: {lokii: {}}\n",
			[]string{`"wal.segmnt_size"`, `"files_config.includes"`, `"sinks.lokii"`},
		},
		"merge key": {"base: &b {level: info}\nlog:\n  <<: *b\n", []string{`unknown key "base"`, `log.<<: YAML merge keys are not supported`}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, p, err := loadYAML(t, tc.content)
			wantErr(t, err, append([]string{"config: " + p + ": "}, tc.keys...)...)
			if len(tc.keys) > 1 && countErrors(err) < len(tc.keys) {
				t.Errorf("want %d separate errors, got %d", len(tc.keys), countErrors(err))
			}
		})
	}
	t.Run("typed", func(t *testing.T) {
		_, p, err := loadYAML(t, "wal:\n  segmnt_size: 8MiB\n")
		if !errors.Is(err, ErrUnknownKey) {
			t.Fatalf("errors.Is(err, ErrUnknownKey) = false: %v", err)
		}
		var ke *KeyError
		if !errors.As(err, &ke) || ke.Source != p || ke.Key != "wal.segmnt_size" || ke.Line != 2 {
			t.Fatalf("KeyError = %+v", ke)
		}
		if want := `config: ` + p + `: unknown key "wal.segmnt_size" (line 2)`; err.Error() != want {
			t.Fatalf("message\n got %s\nwant %s", err, want)
		}
	})
}

func TestWrongTypeNamesKeyAndFile(t *testing.T) {
	tests := map[string]struct {
		content string
		want    string
	}{
		"bad duration":            {"wal:\n  sync_interval: abc\n", `wal.sync_interval: invalid duration "abc" (line 2)`},
		"duration without unit":   {"wal: {retention: 10}\n", `wal.retention: invalid duration "10": a duration needs a unit`},
		"duration as list":        {"dedup: {window: [1s]}\n", `dedup.window: want a duration`},
		"bad size unit":           {"wal: {max_size: 64M}\n", `wal.max_size: invalid size "64M": unknown unit "M"`},
		"negative size":           {"wal: {max_size: -1}\n", `wal.max_size: invalid size "-1": must not be negative`},
		"fractional bytes":        {"wal: {sync_bytes: 1.5}\n", `wal.sync_bytes: invalid size "1.5"`},
		"int as string":           {"wal: {segment_cache: \"2\"}\n", `wal.segment_cache: want an integer, got "2"`},
		"int as float":            {"sinks: {loki: {concurrency: 2.5}}\n", `sinks.loki.concurrency: want an integer, got 2.5`},
		"int overflow":            {"dedup: {max_keys: 99999999999999999999}\n", `dedup.max_keys: integer 99999999999999999999 out of range`},
		"bool as string":          {"files_config: {enabled: \"yes\"}\n", `files_config.enabled: want true or false, got "yes"`},
		"list as scalar":          {"files_config: {include: /var/log/x.log}\n", `files_config.include: want a list of strings, got "/var/log/x.log"`},
		"list of mappings":        {"files_config: {include: [{a: b}]}\n", `files_config.include: item 0: want a string, got a mapping`},
		"list with null item":     {"files_config: {exclude: [~]}\n", `files_config.exclude: item 0: want a string, got an empty value`},
		"map as list":             {"files_config: {labels: [a]}\n", `files_config.labels: want a mapping of strings, got a list`},
		"map with nested value":   {"sinks: {loki: {labels: {a: {b: c}}}}\n", `sinks.loki.labels: a: want a string, got a mapping`},
		"duplicate label":         {"files_config:\n  labels:\n    a: x\n    a: y\n", `files_config.labels: duplicate key "a"`},
		"string as mapping":       {"server: {listen: {host: x}}\n", `server.listen: want a string, got a mapping`},
		"section as scalar":       {"wal: 5\n", `wal: want a mapping of keys, got 5`},
		"duplicate key":           {"log: {level: info}\nlog: {level: debug}\n", `log: duplicate key (line 2)`},
		"top level not a mapping": {"- a\n- b\n", `the top level must be a mapping`},
		"yaml syntax":             {"wal: [\n", `yaml: line`},
		"two documents":           {"log: {level: info}\n---\nlog: {level: debug}\n", `more than one YAML document (second starts at line 2)`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, p, err := loadYAML(t, tc.content)
			wantErr(t, err, "config: "+p+": ", tc.want)
		})
	}
}

func TestConfigFileSelection(t *testing.T) {
	dir := t.TempDir()
	fromEnv := writeFile(t, dir, "env.yaml", "data_dir: /from/env\n")
	fromOpt := writeFile(t, dir, "opt.yaml", "data_dir: /from/opt\n")

	c, err := Load(LoadOptions{Env: envMap(EnvConfigFile, fromEnv)})
	if err != nil {
		t.Fatal(err)
	}
	if c.DataDir != "/from/env" || c.Origin.ConfigFile != fromEnv {
		t.Errorf("SSW_CONFIG_FILE not used: data_dir=%q origin=%q", c.DataDir, c.Origin.ConfigFile)
	}
	c, err = Load(LoadOptions{ConfigFile: fromOpt, Env: envMap(EnvConfigFile, fromEnv)})
	if err != nil {
		t.Fatal(err)
	}
	if c.DataDir != "/from/opt" {
		t.Errorf("LoadOptions.ConfigFile should beat SSW_CONFIG_FILE: data_dir=%q", c.DataDir)
	}

	missing := filepath.Join(dir, "nope.yaml")
	_, err = Load(LoadOptions{Env: envMap(EnvConfigFile, missing)})
	wantErr(t, err, "config: open "+missing)
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("want os.ErrNotExist in chain: %v", err)
	}
}

func TestSideFiles(t *testing.T) {
	t.Run("sibling files are picked up", func(t *testing.T) {
		dir := t.TempDir()
		cfg := writeFile(t, dir, "config.yaml", "")
		pl := writeFile(t, dir, configs.PipelinesName, "stages: []\n")
		fp := writeFile(t, dir, configs.FilePipelineName, "routes: []\n")
		c, err := Load(LoadOptions{ConfigFile: cfg, Env: envMap()})
		if err != nil {
			t.Fatal(err)
		}
		if c.Origin.PipelinesFile != pl || c.Origin.FileConfigFile != fp || string(c.Origin.PipelinesYAML) != "stages: []\n" {
			t.Fatalf("origin = %+v", c.Origin)
		}
	})
	t.Run("embedded when no sibling", func(t *testing.T) {
		c := mustLoadYAML(t, "")
		if c.Origin.PipelinesFile != "" || string(c.Origin.PipelinesYAML) != string(configs.PipelinesYAML()) {
			t.Fatalf("origin = %+v", c.Origin)
		}
	})
	t.Run("env names them", func(t *testing.T) {
		dir := t.TempDir()
		pl := writeFile(t, dir, "p.yaml", "a: 1\n")
		fp := writeFile(t, dir, "f.yml", "routes: []\n")
		c := mustLoadYAML(t, "", EnvPipelinesFile, pl, EnvFileConfigFile, fp)
		if c.Origin.PipelinesFile != pl || c.Origin.FileConfigFile != fp {
			t.Fatalf("origin = %+v", c.Origin)
		}
	})
	t.Run("options beat env", func(t *testing.T) {
		dir := t.TempDir()
		pl := writeFile(t, dir, "p.yaml", "a: 1\n")
		c, err := Load(LoadOptions{PipelinesFile: pl, Env: envMap(EnvPipelinesFile, filepath.Join(dir, "missing.yaml"))})
		if err != nil {
			t.Fatal(err)
		}
		if c.Origin.PipelinesFile != pl {
			t.Fatalf("origin = %+v", c.Origin)
		}
	})
	t.Run("a named file must exist", func(t *testing.T) {
		missing := filepath.Join(t.TempDir(), "p.yaml")
		_, _, err := loadYAML(t, "", EnvPipelinesFile, missing)
		wantErr(t, err, "config: pipelines file: open "+missing)
	})
	t.Run("invalid YAML names the file, errors collected", func(t *testing.T) {
		dir := t.TempDir()
		pl := writeFile(t, dir, "p.yaml", "a: [\n")
		fp := writeFile(t, dir, "f.yml", "a: 1\n---\nb: 2\n")
		_, _, err := loadYAML(t, "log: {level: nope}\n", EnvPipelinesFile, pl, EnvFileConfigFile, fp)
		wantErr(t, err, "config: "+pl+": yaml:", "config: "+fp+": more than one YAML document", "log.level")
	})
}

func TestSecretFiles(t *testing.T) {
	dir := t.TempDir()
	pw := writeFile(t, dir, "pw", "hunter2\n")
	tok := writeFile(t, dir, "tok", "tok-123\r\n")
	empty := writeFile(t, dir, "empty", "\n")
	missing := filepath.Join(dir, "missing")
	const loki = "sinks:\n  loki:\n    url: http://127.0.0.1:3100\n"

	t.Run("password_file is read", func(t *testing.T) {
		c := mustLoadYAML(t, loki+"    basic_auth: {username: u, password_file: "+pw+"}\n")
		if c.Sinks.Loki.BasicAuth.Password != "hunter2" {
			t.Fatalf("password = %q", c.Sinks.Loki.BasicAuth.Password)
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("a loaded config must stay valid: %v", err)
		}
	})
	t.Run("bearer_token_file is read", func(t *testing.T) {
		c := mustLoadYAML(t, loki+"    bearer_token_file: "+tok+"\n")
		if c.Sinks.Loki.BearerToken != "tok-123" {
			t.Fatalf("token = %q", c.Sinks.Loki.BearerToken)
		}
	})
	t.Run("missing password_file is a clear error", func(t *testing.T) {
		_, _, err := loadYAML(t, loki+"    basic_auth: {username: u, password_file: "+missing+"}\n")
		wantErr(t, err, "config: sinks.loki.basic_auth.password_file: open "+missing+": no such file")
	})
	t.Run("empty secret file", func(t *testing.T) {
		_, _, err := loadYAML(t, loki+"    bearer_token_file: "+empty+"\n")
		wantErr(t, err, "sinks.loki.bearer_token_file: "+empty+" is empty")
	})
	t.Run("inline and file together", func(t *testing.T) {
		_, _, err := loadYAML(t, loki+"    basic_auth: {username: u, password: x, password_file: "+pw+"}\n")
		wantErr(t, err, "set password or password_file, not both")
	})
	t.Run("disabled sink: files are not read", func(t *testing.T) {
		c := mustLoadYAML(t, "sinks:\n  loki:\n    bearer_token_file: "+missing+"\n")
		if c.Sinks.Loki.Enabled || c.Sinks.Loki.BearerToken != "" {
			t.Fatalf("loki=%v token=%q", c.Sinks.Loki.Enabled, c.Sinks.Loki.BearerToken)
		}
	})
	t.Run("ca_file must hold a certificate", func(t *testing.T) {
		_, _, err := loadYAML(t, loki+"    tls: {ca_file: "+pw+"}\n")
		wantErr(t, err, "sinks.loki.tls.ca_file: "+pw+" holds no PEM certificate")
		_, _, err = loadYAML(t, loki+"    tls: {ca_file: "+missing+"}\n")
		wantErr(t, err, "sinks.loki.tls.ca_file: open "+missing)
	})
}

// Every leaf type in Config must be one decodeLeaf handles; a new field of
// another type would otherwise only fail when someone sets it.
func TestSchemaLeafTypesAreSupported(t *testing.T) {
	supported := map[reflect.Type]bool{
		durationType: true, byteSizeType: true,
		reflect.TypeFor[string](): true, reflect.TypeFor[bool](): true, reflect.TypeFor[int](): true,
		reflect.TypeFor[[]string](): true, reflect.TypeFor[map[string]string](): true,
	}
	var walk func(t reflect.Type, path string)
	walk = func(rt reflect.Type, path string) {
		for i := range rt.NumField() {
			f := rt.Field(i)
			key := yamlKey(f)
			if key == "" {
				continue
			}
			if f.Type.Kind() == reflect.Struct && f.Type != durationType {
				walk(f.Type, join(path, key))
				continue
			}
			if !supported[f.Type] {
				t.Errorf("%s: unsupported type %s", join(path, key), f.Type)
			}
		}
	}
	walk(reflect.TypeFor[Config](), "")
	if keys := flatKeys(defaultLayer(), ""); len(keys) < 40 {
		t.Errorf("schema looks truncated: %d keys", len(keys))
	}
}
