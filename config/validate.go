package config

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Limits enforced by Validate.
const (
	MinSegmentSize     = 1 * MiB
	MaxSegmentSize     = 1 * GiB
	MaxSyncInterval    = 10 * time.Second
	MinLineBytes       = 1 * KiB
	MaxLineBytes       = 64 * MiB
	MaxRequestBytes    = 64 * MiB
	MaxConcurrency     = 64
	MaxSegmentCache    = 64
	MaxDedupKeys       = 100_000_000
	maxTenantIDLen     = 150
	entryOverheadBytes = 16 * KiB // room for a line's source identity and labels in one WAL entry
)

// Validate checks every value and reports every problem at once
// (errors.Join), each naming its key. It does no I/O: the files a config
// refers to are read by Load.
func (c *Config) Validate() error {
	var p problems

	if c.DataDir == "" {
		p.add("data_dir must not be empty")
	}
	p.oneOf("log.level", c.Log.Level, "trace", "debug", "info", "warn", "error")
	p.oneOf("log.format", c.Log.Format, "json", "console")

	p.listenAddr("server.listen", c.Server.Listen)
	p.listenAddr("server.metrics_listen", c.Server.MetricsListen)
	if c.Server.Listen == c.Server.MetricsListen && !strings.HasSuffix(c.Server.Listen, ":0") {
		p.add("server.metrics_listen must differ from server.listen (both %q)", c.Server.Listen)
	}

	c.WAL.validate(&p, c.Files.MaxLineBytes)
	c.Files.validate(&p)
	c.Containers.validate(&p)
	c.Sinks.Loki.validate(&p)
	c.Sinks.File.validate(&p)
	if !c.Sinks.Loki.Enabled && !c.Sinks.File.Enabled {
		p.add("sinks: no sink is enabled (set sinks.loki.url or enable sinks.file)")
	}

	if c.Dedup.Window < 0 {
		p.add("dedup.window must be >= 0 (0 turns dedup off), got %s", c.Dedup.Window)
	}
	p.intRange("dedup.max_keys", c.Dedup.MaxKeys, 0, MaxDedupKeys)
	p.durationRange("dedup.flush_interval", c.Dedup.FlushInterval, 10*time.Millisecond, time.Minute)
	if v := c.Sinks.Loki.Verify; c.Sinks.Loki.Enabled && v.Kind != "off" && v.Kind != "" && (c.Dedup.Window <= 0 || c.Dedup.MaxKeys <= 0) {
		p.add("sinks.loki.verify.kind %q needs dedup on (dedup.window and dedup.max_keys > 0): the lines it finds are dropped through the dedup window", v.Kind)
	}
	if c.DLQ.Retention <= 0 {
		p.add("dlq.retention must be > 0, got %s", c.DLQ.Retention)
	}
	p.minSize("dlq.max_bytes", c.DLQ.MaxBytes, 1*MiB)

	return errors.Join(p...)
}

func (w *WALConfig) validate(p *problems, maxLine ByteSize) {
	okSeg := p.sizeRange("wal.segment_size", w.SegmentSize, MinSegmentSize, MaxSegmentSize)
	if okSeg && w.SegmentSize > w.MaxSize/4 {
		p.add("wal.segment_size (%s) must be at most a quarter of wal.max_size (%s)", w.SegmentSize, w.MaxSize)
	}
	p.durationRange("wal.sync_interval", w.SyncInterval, 0, MaxSyncInterval)
	if w.SyncBytes < 0 || (okSeg && w.SyncBytes > w.SegmentSize) {
		p.add("wal.sync_bytes must be between 0 and wal.segment_size (%s), got %s", w.SegmentSize, w.SyncBytes)
	}
	if w.Retention < 0 {
		p.add("wal.retention must be >= 0, got %s", w.Retention)
	}
	if okSeg && w.MaxEntryBytes > w.SegmentSize {
		p.add("wal.max_entry_bytes (%s) must not exceed wal.segment_size (%s)", w.MaxEntryBytes, w.SegmentSize)
	}
	if need := addClamped(maxLine, entryOverheadBytes); w.MaxEntryBytes < need {
		p.add("wal.max_entry_bytes (%s) must be at least files_config.max_line_bytes + %s (%s) so a maximal line fits in one entry",
			w.MaxEntryBytes, entryOverheadBytes, need)
	}
	p.intRange("wal.segment_cache", w.SegmentCache, 1, MaxSegmentCache)
}

func (f *FilesConfig) validate(p *problems) {
	p.sizeRange("files_config.max_line_bytes", f.MaxLineBytes, MinLineBytes, MaxLineBytes)
	p.durationRange("files_config.poll_interval", f.PollInterval, time.Millisecond, time.Minute)
	p.durationRange("files_config.scan_interval", f.ScanInterval, time.Millisecond, time.Hour)
	p.oneOf("files_config.start_at", f.StartAt, "beginning", "end")
	p.globs("files_config.include", f.Include)
	p.globs("files_config.exclude", f.Exclude)
	p.labels("files_config.labels", f.Labels)
	p.durationRange("files_config.rotate_wait", f.RotateWait, time.Millisecond, 24*time.Hour)
	p.intRange("files_config.max_open_files", f.MaxOpenFiles, 1, 1<<20)
	p.sizeRange("files_config.max_inflight_bytes", f.MaxInflightBytes, 64*KiB, 1*GiB)
	p.durationRange("files_config.idle_timeout", f.IdleTimeout, time.Millisecond, 24*time.Hour)
	p.oneOf("files_config.invalid_utf8", f.InvalidUTF8, "escape", "replace", "keep")
	p.oneOf("files_config.encoding", f.Encoding, "utf-8", "latin1")
}

func (c *ContainersConfig) validate(p *problems) {
	switch {
	case c.Socket == "" && c.Enabled:
		p.add("containers.socket must not be empty when containers.enabled is true")
	case c.Socket != "":
		if err := checkDockerSocket(c.Socket); err != nil {
			p.add("containers.socket: %v", err)
		}
	}
	for i, l := range c.IncludeLabels {
		name, _, _ := strings.Cut(l, "=")
		if strings.TrimSpace(name) == "" {
			p.add("containers.include_labels[%d]: want \"key\" or \"key=value\", got %q", i, l)
		}
	}
	p.globs("containers.exclude_names", c.ExcludeNames)
}

func checkDockerSocket(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("invalid URL %q: %w", s, err)
	}
	switch u.Scheme {
	case "unix":
		if u.Path == "" || u.Host != "" {
			return fmt.Errorf("want unix:///path/to/docker.sock, got %q", s)
		}
	case "tcp", "http", "https":
		if u.Host == "" {
			return fmt.Errorf("want %s://host:port, got %q", u.Scheme, s)
		}
	default:
		return fmt.Errorf("scheme must be unix, tcp, http or https, got %q", s)
	}
	return nil
}

func (l *LokiConfig) validate(p *problems) {
	switch {
	case l.URL == "" && l.Enabled:
		p.add("sinks.loki.url must be set when sinks.loki.enabled is true (or set LOKI_URL)")
	case l.URL != "":
		if err := checkHTTPURL(l.URL); err != nil {
			p.add("sinks.loki.url: %v", err)
		}
	}
	if l.TenantID != "" {
		if err := checkTenantID(l.TenantID); err != nil {
			p.add("sinks.loki.tenant_id: %v", err)
		}
	}
	p.minSize("sinks.loki.batch_bytes", l.BatchBytes, 1*KiB)
	if p.sizeRange("sinks.loki.max_request_bytes", l.MaxRequestBytes, 1*KiB, MaxRequestBytes) && l.BatchBytes > l.MaxRequestBytes {
		p.add("sinks.loki.batch_bytes (%s) must not exceed sinks.loki.max_request_bytes (%s)", l.BatchBytes, l.MaxRequestBytes)
	}
	p.durationRange("sinks.loki.batch_wait", l.BatchWait, time.Millisecond, time.Minute)
	p.intRange("sinks.loki.concurrency", l.Concurrency, 1, MaxConcurrency)
	p.durationRange("sinks.loki.timeout", l.Timeout, time.Millisecond, 10*time.Minute)
	if p.durationRange("sinks.loki.min_backoff", l.MinBackoff, time.Millisecond, time.Minute) &&
		p.durationRange("sinks.loki.max_backoff", l.MaxBackoff, time.Millisecond, time.Hour) &&
		l.MaxBackoff < l.MinBackoff {
		p.add("sinks.loki.max_backoff (%s) must be >= sinks.loki.min_backoff (%s)", l.MaxBackoff, l.MinBackoff)
	}
	ba := l.BasicAuth
	hasPassword := ba.Password != "" || ba.PasswordFile != ""
	if (ba.Username != "") != hasPassword {
		p.add("sinks.loki.basic_auth: username and password (or password_file) must be set together")
	}
	if hasPassword && (l.BearerToken != "" || l.BearerTokenFile != "") {
		p.add("sinks.loki: basic_auth and bearer_token are mutually exclusive")
	}
	p.labels("sinks.loki.labels", l.Labels)
	if l.MaxElapsed < 0 {
		p.add("sinks.loki.max_elapsed must be >= 0 (0 retries for as long as the WAL has room), got %s", l.MaxElapsed)
	}
	p.intRange("sinks.loki.circuit.failures", l.Circuit.Failures, 0, 1000)
	if l.Circuit.Failures > 0 {
		p.durationRange("sinks.loki.circuit.cooldown", l.Circuit.Cooldown, time.Millisecond, time.Hour)
	}
	l.Verify.validate(p, l.URL, l.TenantID)
	lim := l.Limits
	if lim.MaxLineBytes < 0 || lim.MaxStructuredMetadataBytes < 0 {
		p.add("sinks.loki.limits: byte sizes must be >= 0 (0 turns a check off)")
	}
	p.intRange("sinks.loki.limits.max_label_names_per_series", lim.MaxLabelNames, 0, 1<<20)
	p.intRange("sinks.loki.limits.max_label_name_length", lim.MaxLabelNameLength, 0, 1<<30)
	p.intRange("sinks.loki.limits.max_label_value_length", lim.MaxLabelValueLength, 0, 1<<30)
	p.intRange("sinks.loki.limits.max_structured_metadata_entries", lim.MaxStructuredMetadataEntries, 0, 1<<20)
	if lim.RejectOldSamplesMaxAge < 0 || lim.CreationGracePeriod < 0 {
		p.add("sinks.loki.limits: reject_old_samples_max_age and creation_grace_period must be >= 0 (0 turns a check off)")
	}
}

// Push paths the verify URL is derived from (see ship/loki.QueryBaseURL).
const (
	lokiPushPath = "/loki/api/v1/push"
	vlPushPath   = "/insert/loki/api/v1/push"
)

func (v *VerifyConfig) validate(p *problems, pushURL, tenant string) {
	p.oneOf("sinks.loki.verify.kind", v.Kind, "off", "loki", "victorialogs")
	if v.Kind != "loki" && v.Kind != "victorialogs" {
		return
	}
	switch {
	case v.URL != "":
		if err := checkHTTPURL(v.URL); err != nil {
			p.add("sinks.loki.verify.url: %v", err)
		} else if u, _ := url.Parse(v.URL); u.User != nil {
			p.add("sinks.loki.verify.url must not carry credentials: the push's basic_auth or bearer_token is used")
		}
	case pushURL != "":
		u, err := url.Parse(pushURL)
		if err != nil {
			break // sinks.loki.url reports it
		}
		path := strings.TrimSuffix(u.Path, "/")
		want := lokiPushPath
		if v.Kind == "victorialogs" {
			want = vlPushPath
		}
		if !strings.HasSuffix(path, want) && (v.Kind == "victorialogs" || path != "") {
			p.add("sinks.loki.verify.url must be set: it cannot be derived from sinks.loki.url, whose path does not end in %s", want)
		}
	}
	if v.Kind == "victorialogs" && tenant != "" {
		a, b, _ := strings.Cut(tenant, ":")
		if _, err := strconv.ParseUint(a, 10, 32); err != nil {
			p.add("sinks.loki.tenant_id %q: VictoriaLogs needs a number or number:number (AccountID:ProjectID)", tenant)
		} else if _, err := strconv.ParseUint(b, 10, 32); b != "" && err != nil {
			p.add("sinks.loki.tenant_id %q: VictoriaLogs needs a number or number:number (AccountID:ProjectID)", tenant)
		}
	}
	okDelay := p.durationRange("sinks.loki.verify.delay", v.Delay, 0, time.Minute)
	okTimeout := p.durationRange("sinks.loki.verify.timeout", v.Timeout, time.Second, 10*time.Minute)
	if okDelay && okTimeout && v.Delay >= v.Timeout {
		p.add("sinks.loki.verify.timeout (%s) must exceed sinks.loki.verify.delay (%s): it bounds the whole probe", v.Timeout, v.Delay)
	}
}

func checkHTTPURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		// url.Error repeats the whole URL, which may hold credentials.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("invalid URL: %v", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("invalid URL: scheme must be http or https, got %q", u.Scheme)
	}
	if u.Host == "" {
		return errors.New("invalid URL: no host")
	}
	if u.Fragment != "" {
		return errors.New("invalid URL: a fragment (#...) is not allowed")
	}
	return nil
}

// checkTenantID applies Loki's tenant ID rules (at most 150 characters of
// letters, digits and !-_.*'(), and not "." or "..").
func checkTenantID(s string) error {
	if len(s) > maxTenantIDLen {
		return fmt.Errorf("longer than %d characters", maxTenantIDLen)
	}
	if s == "." || s == ".." {
		return fmt.Errorf("%q is not allowed", s)
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("!-_.*'()", r)) {
			return fmt.Errorf("character %q not allowed (letters, digits and !-_.*'() only)", r)
		}
	}
	return nil
}

func (f *FileSinkConfig) validate(p *problems) {
	if f.Enabled && f.Path == "" {
		p.add("sinks.file.path must not be empty when sinks.file.enabled is true")
	}
	p.minSize("sinks.file.max_bytes", f.MaxBytes, 1*MiB)
	p.intRange("sinks.file.max_files", f.MaxFiles, 1, 1000)
}

// problems collects validation failures.
type problems []error

func (p *problems) add(format string, args ...any) {
	*p = append(*p, fmt.Errorf(format, args...))
}

func (p *problems) oneOf(key, v string, allowed ...string) {
	for _, a := range allowed {
		if v == a {
			return
		}
	}
	p.add("%s must be one of %s, got %q", key, strings.Join(allowed, "|"), v)
}

func (p *problems) intRange(key string, v, lo, hi int) bool {
	if v < lo || v > hi {
		p.add("%s must be between %d and %d, got %d", key, lo, hi, v)
		return false
	}
	return true
}

func (p *problems) minSize(key string, v, lo ByteSize) bool {
	if v < lo {
		p.add("%s must be >= %s, got %s", key, lo, v)
		return false
	}
	return true
}

func (p *problems) sizeRange(key string, v, lo, hi ByteSize) bool {
	if v < lo || v > hi {
		p.add("%s must be between %s and %s, got %s", key, lo, hi, v)
		return false
	}
	return true
}

func (p *problems) durationRange(key string, v, lo, hi time.Duration) bool {
	if v < lo || v > hi {
		p.add("%s must be between %s and %s, got %s", key, lo, hi, v)
		return false
	}
	return true
}

func (p *problems) listenAddr(key, addr string) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		p.add("%s: invalid address %q: want host:port, e.g. 127.0.0.1:8401", key, addr)
		return
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		p.add("%s: invalid port %q in %q: want a number 0-65535", key, port, addr)
	}
}

// globs checks filepath.Match syntax (see checkGlob).
func (p *problems) globs(key string, patterns []string) {
	for i, g := range patterns {
		if strings.TrimSpace(g) == "" {
			p.add("%s[%d]: empty pattern", key, i)
			continue
		}
		if err := checkGlob(g); err != nil {
			p.add("%s[%d]: invalid pattern %q: %v", key, i, g, err)
		}
	}
}

// labels checks Loki label names and values. Names starting with "__" are
// reserved for Loki's internal use.
func (p *problems) labels(key string, m map[string]string) {
	for _, name := range slices.Sorted(maps.Keys(m)) {
		if !validLabelName(name) {
			p.add("%s: invalid label name %q: want [a-zA-Z_][a-zA-Z0-9_]*", key, name)
			continue
		}
		if strings.HasPrefix(name, "__") {
			p.add("%s: label name %q is reserved (starts with \"__\")", key, name)
			continue
		}
		if v := m[name]; v == "" || !utf8.ValidString(v) {
			p.add("%s.%s: label value must be non-empty UTF-8", key, name)
		}
	}
}

func validLabelName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}
