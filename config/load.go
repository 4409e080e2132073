package config

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"

	"github.com/go-viper/mapstructure/v2"
	"github.com/knadh/koanf/v2"

	"github.com/logcapturer/log_capturer_go/configs"
)

// Environment variables read by Load.
const (
	EnvConfigFile     = "SSW_CONFIG_FILE"
	EnvPipelinesFile  = "SSW_PIPELINES_FILE"
	EnvFileConfigFile = "SSW_FILE_CONFIG"
	EnvLokiURL        = "LOKI_URL"
	EnvLogLevel       = "LOG_LEVEL"
	EnvLogFormat      = "LOG_FORMAT"
)

// EmbeddedSource names the embedded default config in errors.
const EmbeddedSource = "embedded:configs/" + configs.ConfigName

// LoadOptions selects the files and the environment Load reads.
type LoadOptions struct {
	// ConfigFile is the main config. Empty: $SSW_CONFIG_FILE; empty too: the
	// embedded configs/config.yaml.
	ConfigFile string
	// PipelinesFile and FileConfigFile are the pipelines and file-routing
	// files. Empty: $SSW_PIPELINES_FILE / $SSW_FILE_CONFIG; empty too: the
	// file of the default name next to the main config when it exists;
	// otherwise the embedded copy. A file named explicitly must exist.
	PipelinesFile  string
	FileConfigFile string
	// Env looks up environment variables; nil means os.LookupEnv. A variable
	// set to the empty string counts as unset.
	Env func(string) (string, bool)
}

// Load builds the configuration: built-in defaults, then the main config
// file, then the environment (LOKI_URL, LOG_LEVEL, LOG_FORMAT). It derives
// the defaults that depend on other values, validates the result, and reads
// file-backed secrets of enabled sinks. Every problem found is reported at
// once (errors.Join); unknown keys and type errors name the key and file.
func Load(opts LoadOptions) (*Config, error) {
	getenv := envGetter(opts.Env)

	cfgPath := firstNonEmpty(opts.ConfigFile, getenv(EnvConfigFile))
	source, data := EmbeddedSource, configs.ConfigYAML()
	if cfgPath != "" {
		b, err := os.ReadFile(cfgPath)
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		source, data = cfgPath, b
	}

	fileLayer, err := decodeFile(source, data)
	if err != nil {
		return nil, err
	}

	k := koanf.New(".")
	for _, layer := range []map[string]any{defaultLayer(), fileLayer, envLayer(getenv)} {
		if err := k.Load(mapProvider(layer), nil); err != nil {
			return nil, fmt.Errorf("config: merge: %w", err)
		}
	}

	cfg := &Config{}
	if err := unmarshal(k, cfg); err != nil {
		return nil, fmt.Errorf("config: %s: %w", source, err)
	}
	derive(k, cfg)

	var errs []error
	cfg.Origin.ConfigFile = cfgPath
	cfg.Origin.PipelinesFile, cfg.Origin.PipelinesYAML, err = auxFile("pipelines",
		firstNonEmpty(opts.PipelinesFile, getenv(EnvPipelinesFile)), cfgPath, configs.PipelinesName, configs.PipelinesYAML)
	errs = append(errs, err)
	cfg.Origin.FileConfigFile, cfg.Origin.FileConfigYAML, err = auxFile("file config",
		firstNonEmpty(opts.FileConfigFile, getenv(EnvFileConfigFile)), cfgPath, configs.FilePipelineName, configs.FilePipelineYAML)
	errs = append(errs, err)
	if err == nil {
		errs = append(errs, cfg.loadFilePipeline()...)
	}

	if err := cfg.Validate(); err != nil {
		for _, e := range unjoin(err) {
			errs = append(errs, fmt.Errorf("config: %s: %w", blame(e, source, getenv), e))
		}
	}
	errs = append(errs, readSecretFiles(cfg)...)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return cfg, nil
}

func envGetter(lookup func(string) (string, bool)) func(string) string {
	if lookup == nil {
		lookup = os.LookupEnv
	}
	return func(name string) string {
		v, ok := lookup(name)
		if !ok {
			return ""
		}
		return strings.TrimSpace(v)
	}
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// envKeys maps each key an environment variable overrides to the variable.
var envKeys = map[string]string{
	"sinks.loki.url": EnvLokiURL,
	"log.level":      EnvLogLevel,
	"log.format":     EnvLogFormat,
}

// blame names where a validation problem's value came from: the variable
// that overrode the key, else the config file.
func blame(problem error, source string, getenv func(string) string) string {
	msg := problem.Error()
	for key, name := range envKeys {
		if getenv(name) != "" && strings.HasPrefix(msg, key) && !strings.HasPrefix(msg, key+" must be set") {
			return "$" + name
		}
	}
	return source
}

// mapProvider hands an already parsed layer to koanf.
type mapProvider map[string]any

func (m mapProvider) ReadBytes() ([]byte, error) {
	return nil, errors.New("config: mapProvider has no bytes")
}

func (m mapProvider) Read() (map[string]any, error) { return m, nil }

// defaultLayer is Default() as a koanf layer, without the derived keys: their
// absence from every layer is what tells derive to compute them.
func defaultLayer() map[string]any {
	m := structToMap(reflect.ValueOf(*Default()))
	for _, key := range []string{keyLokiEnabled, keyFileEnabled, keyFilePath} {
		deletePath(m, strings.Split(key, "."))
	}
	return m
}

func deletePath(m map[string]any, path []string) {
	for len(path) > 1 {
		next, ok := m[path[0]].(map[string]any)
		if !ok {
			return
		}
		m, path = next, path[1:]
	}
	delete(m, path[0])
}

// envLayer maps the override variables onto keys. Log level and format are
// lower-cased: LOG_LEVEL=INFO is common in container setups.
func envLayer(getenv func(string) string) map[string]any {
	m := map[string]any{}
	if v := getenv(EnvLokiURL); v != "" {
		m["sinks"] = map[string]any{"loki": map[string]any{"url": v, "enabled": true}}
	}
	logm := map[string]any{}
	if v := getenv(EnvLogLevel); v != "" {
		logm["level"] = strings.ToLower(v)
	}
	if v := getenv(EnvLogFormat); v != "" {
		logm["format"] = strings.ToLower(v)
	}
	if len(logm) > 0 {
		m["log"] = logm
	}
	return m
}

// unmarshal copies the merged layers into cfg. The layers already hold the
// exact Go types, so no weak conversion is allowed, and a key without a
// field is a bug worth failing on.
func unmarshal(k *koanf.Koanf, cfg *Config) error {
	return k.UnmarshalWithConf("", cfg, koanf.UnmarshalConf{
		Tag: "yaml",
		DecoderConfig: &mapstructure.DecoderConfig{
			ErrorUnused:      true,
			WeaklyTypedInput: false,
		},
	})
}

// derive fills the defaults that depend on other values, when no layer set
// them.
func derive(k *koanf.Koanf, cfg *Config) {
	if !k.Exists(keyLokiEnabled) {
		cfg.Sinks.Loki.Enabled = cfg.Sinks.Loki.URL != ""
	}
	if !k.Exists(keyFileEnabled) {
		cfg.Sinks.File.Enabled = !cfg.Sinks.Loki.Enabled
	}
	if !k.Exists(keyFilePath) {
		cfg.Sinks.File.Path = defaultFileSinkPath(cfg.DataDir)
	}
}

// auxFile picks and checks one of the side files (pipelines, file routing):
// the file must be one valid YAML document and its bytes are kept (the
// file-routing schema is then applied by loadFilePipeline). The returned
// path is empty for the embedded copy.
func auxFile(what, explicit, cfgPath, name string, embedded func() []byte) (string, []byte, error) {
	path := explicit
	if path == "" && cfgPath != "" {
		sibling := filepath.Join(filepath.Dir(cfgPath), name)
		switch _, err := os.Stat(sibling); {
		case err == nil:
			path = sibling
		case !errors.Is(err, fs.ErrNotExist):
			return "", nil, fmt.Errorf("config: %s file: %w", what, err)
		}
	}
	source, data := "embedded:configs/"+name, embedded()
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return "", nil, fmt.Errorf("config: %s file: %w", what, err)
		}
		source, data = path, b
	}
	if _, err := parseSingleDocument(source, data); err != nil {
		return "", nil, err
	}
	return path, data, nil
}

// readSecretFiles loads password_file and bearer_token_file into their
// secrets, and checks the CA file. A secret given both inline and as a file
// is refused; the files are read for an enabled Loki sink only, since a
// disabled sink's secrets need not be mounted.
func readSecretFiles(cfg *Config) []error {
	l := &cfg.Sinks.Loki
	var errs []error
	if l.BasicAuth.Password != "" && l.BasicAuth.PasswordFile != "" {
		errs = append(errs, errors.New("config: sinks.loki.basic_auth: set password or password_file, not both"))
	}
	if l.BearerToken != "" && l.BearerTokenFile != "" {
		errs = append(errs, errors.New("config: sinks.loki: set bearer_token or bearer_token_file, not both"))
	}
	if !l.Enabled || len(errs) > 0 {
		return errs
	}
	read := func(key, path string, dst *string) {
		if path == "" {
			return
		}
		b, err := os.ReadFile(path)
		if err != nil {
			errs = append(errs, fmt.Errorf("config: %s: %w", key, err))
			return
		}
		// Files written by `echo` or editors end in a newline that is not
		// part of the secret.
		s := strings.TrimRight(string(b), "\r\n")
		if strings.TrimSpace(s) == "" {
			errs = append(errs, fmt.Errorf("config: %s: %s is empty", key, path))
			return
		}
		*dst = s
	}
	read("sinks.loki.basic_auth.password_file", l.BasicAuth.PasswordFile, &l.BasicAuth.Password)
	read("sinks.loki.bearer_token_file", l.BearerTokenFile, &l.BearerToken)
	if l.TLS.CAFile != "" {
		b, err := os.ReadFile(l.TLS.CAFile)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("config: sinks.loki.tls.ca_file: %w", err))
		case !x509.NewCertPool().AppendCertsFromPEM(b):
			errs = append(errs, fmt.Errorf("config: sinks.loki.tls.ca_file: %s holds no PEM certificate", l.TLS.CAFile))
		}
	}
	return errs
}
