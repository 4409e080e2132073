package config

import (
	"strings"
	"testing"
	"time"
)

func TestValidateRules(t *testing.T) {
	tests := map[string]struct {
		mutate func(c *Config)
		want   string // empty: must pass
	}{
		"defaults":               {func(c *Config) {}, ""},
		"empty data_dir":         {func(c *Config) { c.DataDir = "" }, "data_dir must not be empty"},
		"log level":              {func(c *Config) { c.Log.Level = "verbose" }, `log.level must be one of trace|debug|info|warn|error, got "verbose"`},
		"log format":             {func(c *Config) { c.Log.Format = "text" }, `log.format must be one of json|console`},
		"listen not host:port":   {func(c *Config) { c.Server.Listen = "8401" }, `server.listen: invalid address "8401"`},
		"listen named port":      {func(c *Config) { c.Server.Listen = "127.0.0.1:http" }, `server.listen: invalid port "http"`},
		"listen port too big":    {func(c *Config) { c.Server.MetricsListen = "127.0.0.1:70000" }, `server.metrics_listen: invalid port "70000"`},
		"listen all interfaces":  {func(c *Config) { c.Server.Listen = ":8401" }, ""},
		"same listen addresses":  {func(c *Config) { c.Server.MetricsListen = c.Server.Listen }, "server.metrics_listen must differ from server.listen"},
		"both port 0 is fine":    {func(c *Config) { c.Server.Listen, c.Server.MetricsListen = "127.0.0.1:0", "127.0.0.1:0" }, ""},
		"segment too small":      {func(c *Config) { c.WAL.SegmentSize = 512 * KiB }, "wal.segment_size must be between 1MiB and 1GiB, got 512KiB"},
		"segment vs budget":      {func(c *Config) { c.WAL.SegmentSize = 8 * MiB; c.WAL.MaxSize = 16 * MiB }, "wal.segment_size (8MiB) must be at most a quarter of wal.max_size (16MiB)"},
		"segment exactly 1/4":    {func(c *Config) { c.WAL.SegmentSize = 8 * MiB; c.WAL.MaxSize = 32 * MiB }, ""},
		"sync interval negative": {func(c *Config) { c.WAL.SyncInterval = -time.Millisecond }, "wal.sync_interval must be between 0s and 10s"},
		"sync interval too long": {func(c *Config) { c.WAL.SyncInterval = 11 * time.Second }, "wal.sync_interval must be between 0s and 10s, got 11s"},
		"sync interval 0":        {func(c *Config) { c.WAL.SyncInterval = 0 }, ""},
		"sync bytes > segment":   {func(c *Config) { c.WAL.SegmentSize = 8 * MiB; c.WAL.SyncBytes = 9 * MiB }, "wal.sync_bytes must be between 0 and wal.segment_size (8MiB), got 9MiB"},
		"retention negative":     {func(c *Config) { c.WAL.Retention = -time.Second }, "wal.retention must be >= 0"},
		"entry > segment":        {func(c *Config) { c.WAL.SegmentSize = 8 * MiB; c.WAL.MaxEntryBytes = 16 * MiB }, "wal.max_entry_bytes (16MiB) must not exceed wal.segment_size (8MiB)"},
		"entry < line":           {func(c *Config) { c.WAL.MaxEntryBytes = 256 * KiB }, "wal.max_entry_bytes (256KiB) must be at least files_config.max_line_bytes + 16KiB (272KiB)"},
		"segment cache 0":        {func(c *Config) { c.WAL.SegmentCache = 0 }, "wal.segment_cache must be between 1 and 64, got 0"},
		"line too small":         {func(c *Config) { c.Files.MaxLineBytes = 100 }, "files_config.max_line_bytes must be between 1KiB and 64MiB, got 100B"},
		"line too big":           {func(c *Config) { c.Files.MaxLineBytes = 65 * MiB }, "files_config.max_line_bytes must be between 1KiB and 64MiB"},
		"poll 0":                 {func(c *Config) { c.Files.PollInterval = 0 }, "files_config.poll_interval must be between 1ms and 1m0s"},
		"scan 0":                 {func(c *Config) { c.Files.ScanInterval = 0 }, "files_config.scan_interval must be between"},
		"start_at":               {func(c *Config) { c.Files.StartAt = "middle" }, `files_config.start_at must be one of beginning|end, got "middle"`},
		"open files 0":           {func(c *Config) { c.Files.MaxOpenFiles = 0 }, "files_config.max_open_files must be between 1 and"},
		"inflight bytes small":   {func(c *Config) { c.Files.MaxInflightBytes = 4 * KiB }, "files_config.max_inflight_bytes must be between 64KiB and 1GiB, got 4KiB"},
		"idle timeout 0":         {func(c *Config) { c.Files.IdleTimeout = 0 }, "files_config.idle_timeout must be between"},
		"rotate wait 0":          {func(c *Config) { c.Files.RotateWait = 0 }, "files_config.rotate_wait must be between"},
		"invalid_utf8":           {func(c *Config) { c.Files.InvalidUTF8 = "drop" }, `files_config.invalid_utf8 must be one of escape|replace|keep, got "drop"`},
		"encoding":               {func(c *Config) { c.Files.Encoding = "utf-16" }, `files_config.encoding must be one of utf-8|latin1, got "utf-16"`},
		"bad glob":               {func(c *Config) { c.Files.Include = []string{"/var/log/[.log"} }, `files_config.include[0]: invalid pattern "/var/log/[.log"`},
		"bad glob after star":    {func(c *Config) { c.Files.Exclude = []string{"*.gz", "x*[z"} }, `files_config.exclude[1]: invalid pattern "x*[z"`},
		"empty glob":             {func(c *Config) { c.Files.Include = []string{" "} }, "files_config.include[0]: empty pattern"},
		"double star is fine":    {func(c *Config) { c.Files.Include = []string{"/srv/**/*.log"} }, ""},
		"empty include is fine":  {func(c *Config) { c.Files.Include = []string{} }, ""},
		"label name syntax":      {func(c *Config) { c.Files.Labels = map[string]string{"1job": "x"} }, `files_config.labels: invalid label name "1job"`},
		"label name dash":        {func(c *Config) { c.Sinks.Loki.Labels = map[string]string{"my-app": "x"} }, `sinks.loki.labels: invalid label name "my-app"`},
		"label reserved":         {func(c *Config) { c.Files.Labels = map[string]string{"__name__": "x"} }, `files_config.labels: label name "__name__" is reserved`},
		"label empty value":      {func(c *Config) { c.Files.Labels = map[string]string{"job": ""} }, "files_config.labels.job: label value must be non-empty UTF-8"},
		"label bad utf8":         {func(c *Config) { c.Files.Labels = map[string]string{"job": "\xff"} }, "files_config.labels.job: label value must be non-empty UTF-8"},
		"socket scheme":          {func(c *Config) { c.Containers.Socket = "/var/run/docker.sock" }, `containers.socket: scheme must be unix, tcp, http or https`},
		"socket tcp ok":          {func(c *Config) { c.Containers.Socket = "tcp://127.0.0.1:2375" }, ""},
		"socket required":        {func(c *Config) { c.Containers.Enabled, c.Containers.Socket = true, "" }, "containers.socket must not be empty when containers.enabled is true"},
		"include label empty":    {func(c *Config) { c.Containers.IncludeLabels = []string{"=x"} }, `containers.include_labels[0]: want "key" or "key=value", got "=x"`},
		"exclude name glob":      {func(c *Config) { c.Containers.ExcludeNames = []string{"["} }, `containers.exclude_names[0]: invalid pattern "["`},
		"loki enabled no url":    {func(c *Config) { c.Sinks.Loki.Enabled = true }, "sinks.loki.url must be set when sinks.loki.enabled is true"},
		"loki url scheme":        {func(c *Config) { c.Sinks.Loki.URL = "127.0.0.1:3100" }, "sinks.loki.url: invalid URL"},
		"loki url no host":       {func(c *Config) { c.Sinks.Loki.URL = "http:///push" }, "sinks.loki.url: invalid URL: no host"},
		"loki url unparsable":    {func(c *Config) { c.Sinks.Loki.URL = "http://u:p@[::1" }, "sinks.loki.url: invalid URL: missing ']' in host"},
		"tenant chars":           {func(c *Config) { c.Sinks.Loki.TenantID = "a|b" }, `sinks.loki.tenant_id: character '|' not allowed`},
		"tenant dotdot":          {func(c *Config) { c.Sinks.Loki.TenantID = ".." }, `sinks.loki.tenant_id: ".." is not allowed`},
		"tenant too long":        {func(c *Config) { c.Sinks.Loki.TenantID = strings.Repeat("a", 151) }, "sinks.loki.tenant_id: longer than 150 characters"},
		"batch > request":        {func(c *Config) { c.Sinks.Loki.BatchBytes = 8 * MiB }, "sinks.loki.batch_bytes (8MiB) must not exceed sinks.loki.max_request_bytes (4MiB)"},
		"request > 64MiB":        {func(c *Config) { c.Sinks.Loki.MaxRequestBytes = 65 * MiB }, "sinks.loki.max_request_bytes must be between 1KiB and 64MiB, got 65MiB"},
		"batch tiny":             {func(c *Config) { c.Sinks.Loki.BatchBytes = 10 }, "sinks.loki.batch_bytes must be >= 1KiB, got 10B"},
		"concurrency 0":          {func(c *Config) { c.Sinks.Loki.Concurrency = 0 }, "sinks.loki.concurrency must be between 1 and 64, got 0"},
		"concurrency 65":         {func(c *Config) { c.Sinks.Loki.Concurrency = 65 }, "sinks.loki.concurrency must be between 1 and 64, got 65"},
		"batch wait 0":           {func(c *Config) { c.Sinks.Loki.BatchWait = 0 }, "sinks.loki.batch_wait must be between 1ms and 1m0s"},
		"timeout 0":              {func(c *Config) { c.Sinks.Loki.Timeout = 0 }, "sinks.loki.timeout must be between"},
		"backoff order":          {func(c *Config) { c.Sinks.Loki.MaxBackoff = 100 * time.Millisecond }, "sinks.loki.max_backoff (100ms) must be >= sinks.loki.min_backoff (500ms)"},
		"user without password":  {func(c *Config) { c.Sinks.Loki.BasicAuth.Username = "u" }, "sinks.loki.basic_auth: username and password (or password_file) must be set together"},
		"password without user":  {func(c *Config) { c.Sinks.Loki.BasicAuth.PasswordFile = "/p" }, "sinks.loki.basic_auth: username and password"},
		"basic and bearer": {func(c *Config) {
			c.Sinks.Loki.BasicAuth = BasicAuthConfig{Username: "u", Password: "p"}
			c.Sinks.Loki.BearerToken = "t"
		}, "sinks.loki: basic_auth and bearer_token are mutually exclusive"},
		"file sink no path":   {func(c *Config) { c.Sinks.File.Path = "" }, "sinks.file.path must not be empty when sinks.file.enabled is true"},
		"file sink max_files": {func(c *Config) { c.Sinks.File.MaxFiles = 0 }, "sinks.file.max_files must be between 1 and 1000, got 0"},
		"file sink max_bytes": {func(c *Config) { c.Sinks.File.MaxBytes = KiB }, "sinks.file.max_bytes must be >= 1MiB, got 1KiB"},
		"no sink":             {func(c *Config) { c.Sinks.File.Enabled = false }, "sinks: no sink is enabled"},
		"dedup window":        {func(c *Config) { c.Dedup.Window = -time.Second }, "dedup.window must be >= 0"},
		"dedup keys":          {func(c *Config) { c.Dedup.MaxKeys = -1 }, "dedup.max_keys must be between 0 and 100000000, got -1"},
		"dlq retention":       {func(c *Config) { c.DLQ.Retention = 0 }, "dlq.retention must be > 0"},
		"dlq max bytes":       {func(c *Config) { c.DLQ.MaxBytes = 0 }, "dlq.max_bytes must be >= 1MiB, got 0B"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c := Default()
			tc.mutate(c)
			err := c.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				return
			}
			wantErr(t, err, tc.want)
		})
	}
}

func TestValidateCollectsEveryProblem(t *testing.T) {
	c := Default()
	c.Log.Level = "loud"
	c.WAL.SegmentSize = 1
	c.Sinks.Loki.Concurrency = 0
	c.Files.StartAt = "middle"
	c.Files.Labels = map[string]string{"__x": "y", "a-b": "c"}
	err := c.Validate()
	wantErr(t, err, "log.level", "wal.segment_size", "sinks.loki.concurrency", "files_config.start_at",
		`"__x"`, `"a-b"`)
	if n := countErrors(err); n != 6 {
		t.Errorf("want 6 joined problems, got %d:\n%v", n, err)
	}
}

func TestLoadReportsValidationWithSource(t *testing.T) {
	_, p, err := loadYAML(t, "wal: {segment_size: 1KiB}\nsinks: {loki: {concurrency: 100}}\n")
	wantErr(t, err,
		"config: "+p+": wal.segment_size must be between 1MiB and 1GiB, got 1KiB",
		"config: "+p+": sinks.loki.concurrency must be between 1 and 64, got 100")
	if n := countErrors(err); n != 2 {
		t.Errorf("want 2 problems, got %d: %v", n, err)
	}
}
