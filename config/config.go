package config

import (
	"maps"
	"path/filepath"
	"slices"
	"time"
)

// Config is the agent's whole configuration. Load fills it (defaults, then the
// file, then the environment) and validates it; components receive the parts
// they need by value. The yaml tags are the configuration keys.
type Config struct {
	// DataDir holds the WAL, the state file and the default file sink. A
	// relative path is relative to the working directory of the process.
	DataDir    string           `yaml:"data_dir"`
	Log        LogConfig        `yaml:"log"`
	Server     ServerConfig     `yaml:"server"`
	WAL        WALConfig        `yaml:"wal"`
	Files      FilesConfig      `yaml:"files_config"`
	Containers ContainersConfig `yaml:"containers"`
	Sinks      SinksConfig      `yaml:"sinks"`
	Dedup      DedupConfig      `yaml:"dedup"`
	DLQ        DLQConfig        `yaml:"dlq"`

	// FilePipeline is the file-routing file (Origin.FileConfigFile), not a
	// key of the main file.
	FilePipeline FilePipeline `yaml:"-"`

	// Origin records where the configuration came from. It is not a key.
	Origin Origin `yaml:"-"`
}

// Origin names the files a Config was loaded from. An empty path means the
// embedded default (package configs) was used.
type Origin struct {
	ConfigFile     string
	PipelinesFile  string
	FileConfigFile string
	// PipelinesYAML and FileConfigYAML are the bytes that were checked, kept
	// so a later stage interprets exactly what was validated (no re-read race).
	PipelinesYAML  []byte
	FileConfigYAML []byte
}

// LogConfig configures the agent's own log.
type LogConfig struct {
	Level  string `yaml:"level"`  // trace|debug|info|warn|error
	Format string `yaml:"format"` // json|console
}

// ServerConfig configures the HTTP API and the metrics listener.
type ServerConfig struct {
	Listen        string `yaml:"listen"`
	MetricsListen string `yaml:"metrics_listen"`
	// APIToken guards mutating endpoints (Authorization: Bearer TOKEN). Secret.
	APIToken string `yaml:"api_token"`
}

// WALConfig configures the write-ahead log.
type WALConfig struct {
	SegmentSize ByteSize `yaml:"segment_size"`
	// MaxSize is the disk budget of the WAL; reaching it means backpressure.
	MaxSize ByteSize `yaml:"max_size"`
	// SyncInterval and SyncBytes bound a group commit: fsync when either is
	// reached. Zero means fsync after every append.
	SyncInterval time.Duration `yaml:"sync_interval"`
	SyncBytes    ByteSize      `yaml:"sync_bytes"`
	// Retention keeps delivered data replayable for this long.
	Retention     time.Duration `yaml:"retention"`
	MaxEntryBytes ByteSize      `yaml:"max_entry_bytes"`
	SegmentCache  int           `yaml:"segment_cache"`
}

// FilesConfig configures the file source. For the lists and the label map,
// an absent key means the defaults and an explicit empty value ([] or {})
// means none.
type FilesConfig struct {
	Enabled      bool              `yaml:"enabled"`
	Include      []string          `yaml:"include"`
	Exclude      []string          `yaml:"exclude"`
	MaxLineBytes ByteSize          `yaml:"max_line_bytes"`
	PollInterval time.Duration     `yaml:"poll_interval"`
	ScanInterval time.Duration     `yaml:"scan_interval"`
	StartAt      string            `yaml:"start_at"` // beginning|end
	Labels       map[string]string `yaml:"labels"`
	// RotateWait keeps a rotated file open this long after its last write.
	RotateWait time.Duration `yaml:"rotate_wait"`
	// MaxOpenFiles bounds the files held open; IdleTimeout closes a file
	// that stopped growing (reopened by identity when it changes).
	MaxOpenFiles int           `yaml:"max_open_files"`
	IdleTimeout  time.Duration `yaml:"idle_timeout"`
	// MaxInflightBytes bounds the memory of the file source: the payload
	// bytes of all files being built or appended to the WAL and not yet
	// acknowledged. Files wait for it in turn.
	MaxInflightBytes ByteSize `yaml:"max_inflight_bytes"`
	InvalidUTF8      string   `yaml:"invalid_utf8"` // escape|replace|keep
	Encoding         string   `yaml:"encoding"`     // utf-8|latin1
}

// ContainersConfig configures the Docker source (parsed and validated; the
// source itself arrives later).
type ContainersConfig struct {
	Enabled       bool     `yaml:"enabled"`
	Socket        string   `yaml:"socket"`
	IncludeLabels []string `yaml:"include_labels"`
	ExcludeNames  []string `yaml:"exclude_names"`
}

// SinksConfig holds one block per sink.
type SinksConfig struct {
	Loki LokiConfig     `yaml:"loki"`
	File FileSinkConfig `yaml:"file"`
}

// LokiConfig configures the Loki push sink.
type LokiConfig struct {
	// Enabled defaults to true when URL is set (after the environment).
	Enabled bool `yaml:"enabled"`
	// URL is the full push URL or a base URL (ship/loki normalises it). It
	// may carry userinfo, which is a secret.
	URL             string          `yaml:"url"`
	TenantID        string          `yaml:"tenant_id"`
	BatchBytes      ByteSize        `yaml:"batch_bytes"`
	MaxRequestBytes ByteSize        `yaml:"max_request_bytes"`
	BatchWait       time.Duration   `yaml:"batch_wait"`
	Concurrency     int             `yaml:"concurrency"`
	Timeout         time.Duration   `yaml:"timeout"`
	MinBackoff      time.Duration   `yaml:"min_backoff"`
	MaxBackoff      time.Duration   `yaml:"max_backoff"`
	BasicAuth       BasicAuthConfig `yaml:"basic_auth"`
	// BearerToken is a secret. BearerTokenFile, when set, is read by Load
	// into BearerToken.
	BearerToken     string            `yaml:"bearer_token"`
	BearerTokenFile string            `yaml:"bearer_token_file"`
	TLS             TLSConfig         `yaml:"tls"`
	Labels          map[string]string `yaml:"labels"`
	// MaxElapsed ends the retries of a batch after this long: its entries
	// go to the DLQ as retry_exhausted. 0 retries for as long as the WAL
	// has room.
	MaxElapsed time.Duration    `yaml:"max_elapsed"`
	Circuit    CircuitConfig    `yaml:"circuit"`
	Limits     LokiLimitsConfig `yaml:"limits"`
	Verify     VerifyConfig     `yaml:"verify"`
}

// VerifyConfig configures the recovery probe: after a crash, the receiver
// is asked which of the lines possibly in flight it already stores, and
// those are not sent again (needs dedup). The push's tenant, auth and TLS
// settings apply.
type VerifyConfig struct {
	// Kind is the receiver's query API: off, loki or victorialogs.
	Kind string `yaml:"kind"`
	// URL is the base URL of the query API; empty derives it from
	// sinks.loki.url by cutting the push path off.
	URL string `yaml:"url"`
	// Delay is the wait before querying: receivers make fresh rows
	// searchable after a moment.
	Delay time.Duration `yaml:"delay"`
	// Timeout bounds the whole probe; past it the rest is sent again.
	Timeout time.Duration `yaml:"timeout"`
}

// CircuitConfig configures the Loki sink's circuit breaker.
type CircuitConfig struct {
	// Failures consecutive failures (transport errors, timeouts, 5xx) open
	// the circuit; 0 never opens it.
	Failures int `yaml:"failures"`
	// Cooldown is how long an open circuit waits before one probe; it
	// doubles while probes fail, up to max_backoff.
	Cooldown time.Duration `yaml:"cooldown"`
}

// LokiLimitsConfig mirrors the limits_config of the Loki in use. Entries
// that would break them go to the DLQ before sending instead of provoking a
// 400. 0 turns a check off.
type LokiLimitsConfig struct {
	MaxLineBytes                 ByteSize      `yaml:"max_line_bytes"`
	MaxLabelNames                int           `yaml:"max_label_names_per_series"`
	MaxLabelNameLength           int           `yaml:"max_label_name_length"`
	MaxLabelValueLength          int           `yaml:"max_label_value_length"`
	RejectOldSamplesMaxAge       time.Duration `yaml:"reject_old_samples_max_age"`
	CreationGracePeriod          time.Duration `yaml:"creation_grace_period"`
	MaxStructuredMetadataBytes   ByteSize      `yaml:"max_structured_metadata_bytes"`
	MaxStructuredMetadataEntries int           `yaml:"max_structured_metadata_entries"`
}

// BasicAuthConfig is HTTP basic authentication. Password is a secret;
// PasswordFile, when set, is read by Load into Password.
type BasicAuthConfig struct {
	Username     string `yaml:"username"`
	Password     string `yaml:"password"`
	PasswordFile string `yaml:"password_file"`
}

// TLSConfig configures the client side of TLS.
type TLSConfig struct {
	CAFile             string `yaml:"ca_file"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
}

// FileSinkConfig configures the local JSON-lines sink.
type FileSinkConfig struct {
	// Enabled defaults to true when the Loki sink is not enabled.
	Enabled bool `yaml:"enabled"`
	// Path defaults to <data_dir>/sink/logs.jsonl. A relative path is
	// relative to the working directory, not to data_dir.
	Path     string   `yaml:"path"`
	MaxBytes ByteSize `yaml:"max_bytes"`
	MaxFiles int      `yaml:"max_files"`
}

// DedupConfig configures duplicate suppression. A zero Window or MaxKeys
// turns it off.
type DedupConfig struct {
	Window  time.Duration `yaml:"window"`
	MaxKeys int           `yaml:"max_keys"`
	// FlushInterval is how often new keys are checkpointed to the state file.
	FlushInterval time.Duration `yaml:"flush_interval"`
}

// DLQConfig configures the dead-letter store.
type DLQConfig struct {
	Retention time.Duration `yaml:"retention"`
	MaxBytes  ByteSize      `yaml:"max_bytes"`
}

// DefaultDataDir is the data directory when no configuration names one. The
// shipped configs/config.yaml overrides it with ./data so the agent runs
// unprivileged out of the box.
const DefaultDataDir = "/var/lib/logcapturer"

// Keys whose defaults depend on other values; Load derives them when they
// are absent from every layer.
const (
	keyLokiEnabled = "sinks.loki.enabled"
	keyFileEnabled = "sinks.file.enabled"
	keyFilePath    = "sinks.file.path"
)

// Default returns the built-in defaults, with the derived values resolved
// (no Loki URL, so the file sink is on).
func Default() *Config {
	c := &Config{
		DataDir: DefaultDataDir,
		Log:     LogConfig{Level: "info", Format: "json"},
		Server: ServerConfig{
			Listen:        "127.0.0.1:8401",
			MetricsListen: "127.0.0.1:8001",
		},
		WAL: WALConfig{
			SegmentSize:   2 * MiB,
			MaxSize:       1 * GiB,
			SyncInterval:  10 * time.Millisecond,
			SyncBytes:     1 * MiB,
			Retention:     time.Hour,
			MaxEntryBytes: 512 * KiB,
			SegmentCache:  2,
		},
		Files: FilesConfig{
			Enabled:          true,
			Include:          []string{"/var/log/*.log"},
			Exclude:          []string{"*.gz"},
			MaxLineBytes:     256 * KiB,
			PollInterval:     250 * time.Millisecond,
			ScanInterval:     2 * time.Second,
			StartAt:          "beginning",
			Labels:           map[string]string{"job": "logcapturer"},
			RotateWait:       5 * time.Second,
			MaxOpenFiles:     1024,
			IdleTimeout:      5 * time.Minute,
			MaxInflightBytes: 8 * MiB,
			InvalidUTF8:      "escape",
			Encoding:         "utf-8",
		},
		Containers: ContainersConfig{
			Socket:        "unix:///var/run/docker.sock",
			IncludeLabels: []string{},
			ExcludeNames:  []string{},
		},
		Sinks: SinksConfig{
			Loki: LokiConfig{
				BatchBytes:      1 * MiB,
				MaxRequestBytes: 4 * MiB,
				BatchWait:       time.Second,
				Concurrency:     2,
				Timeout:         10 * time.Second,
				MinBackoff:      500 * time.Millisecond,
				MaxBackoff:      5 * time.Minute,
				Labels:          map[string]string{},
				Circuit:         CircuitConfig{Failures: 5, Cooldown: 10 * time.Second},
				Verify:          VerifyConfig{Kind: "off", Delay: time.Second, Timeout: 30 * time.Second},
				Limits: LokiLimitsConfig{
					MaxLineBytes:                 256 * KiB,
					MaxLabelNames:                15,
					MaxLabelNameLength:           1024,
					MaxLabelValueLength:          2048,
					RejectOldSamplesMaxAge:       168 * time.Hour,
					CreationGracePeriod:          10 * time.Minute,
					MaxStructuredMetadataBytes:   64 * KiB,
					MaxStructuredMetadataEntries: 128,
				},
			},
			File: FileSinkConfig{
				MaxBytes: 100 * MiB,
				MaxFiles: 5,
			},
		},
		Dedup: DedupConfig{Window: 10 * time.Minute, MaxKeys: 250_000, FlushInterval: time.Second},
		DLQ:   DLQConfig{Retention: 168 * time.Hour, MaxBytes: 1 * GiB},
	}
	c.Sinks.File.Enabled = true
	c.Sinks.File.Path = defaultFileSinkPath(c.DataDir)
	return c
}

func defaultFileSinkPath(dataDir string) string {
	return filepath.Join(dataDir, "sink", "logs.jsonl")
}

// Clone returns a deep copy: no slice or map is shared with c.
func (c *Config) Clone() *Config {
	n := *c
	n.Files.Include = slices.Clone(c.Files.Include)
	n.Files.Exclude = slices.Clone(c.Files.Exclude)
	n.Files.Labels = maps.Clone(c.Files.Labels)
	n.Containers.IncludeLabels = slices.Clone(c.Containers.IncludeLabels)
	n.Containers.ExcludeNames = slices.Clone(c.Containers.ExcludeNames)
	n.Sinks.Loki.Labels = maps.Clone(c.Sinks.Loki.Labels)
	n.Origin.PipelinesYAML = slices.Clone(c.Origin.PipelinesYAML)
	n.Origin.FileConfigYAML = slices.Clone(c.Origin.FileConfigYAML)
	n.FilePipeline = c.FilePipeline.clone()
	return &n
}
