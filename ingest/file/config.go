package file

import (
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/logcapturer/log_capturer_go/ingest/multiline"
)

// Start positions for files found at the very first start.
const (
	StartBeginning = "beginning"
	StartEnd       = "end"
)

// Policies for bytes that are not valid UTF-8 (Config.InvalidUTF8).
const (
	// InvalidUTF8Escape writes each invalid byte as \xNN and each backslash
	// as \\ in the lines that have any: reversible, given FlagEscaped.
	InvalidUTF8Escape = "escape"
	// InvalidUTF8Replace writes U+FFFD for each invalid byte.
	InvalidUTF8Replace = "replace"
	// InvalidUTF8Keep stores the bytes as read (sinks replace them).
	InvalidUTF8Keep = "keep"
)

// Encodings of the files read (Config.Encoding).
const (
	EncodingUTF8   = "utf-8"
	EncodingLatin1 = "latin1"
)

// Config is the file source's configuration (files_config).
type Config struct {
	// Include lists glob patterns of files to follow: filepath.Match syntax per
	// path element, plus "**" as a whole element for zero or more directories.
	Include []string
	// Exclude drops a matched file when a pattern matches its full path or its
	// base name.
	Exclude []string
	// MaxLineBytes caps one line; longer lines are cut and flagged truncated.
	MaxLineBytes int
	// MaxEntryBytes caps one WAL payload.
	MaxEntryBytes int
	// MaxInflight caps the payloads of one file appended but not yet acked.
	MaxInflight int
	// MaxInflightBytes bounds the payload bytes of all files together:
	// being built, or appended and not yet acked. Files wait for it in
	// turn; a payload larger than the whole budget is built alone.
	MaxInflightBytes int
	// PollInterval is how long a file at EOF waits for a hint before it
	// checks again.
	PollInterval time.Duration
	// ScanInterval is the period of the discovery scan (the truth; file
	// system events only make it come early).
	ScanInterval time.Duration
	// RotateWait is how long a file that left its path (renamed away or
	// deleted) is still followed after its last growth, for writers that keep
	// the old descriptor until they reopen. A renamed file that grows after
	// it was closed is found again by the scan and read.
	RotateWait time.Duration
	// MaxOpenFiles bounds the files held open. Files beyond it wait for a
	// slot; files at EOF give theirs up while others wait.
	MaxOpenFiles int
	// IdleTimeout closes a file that has not grown for this long; the scan
	// reopens it, by identity and at its position, when it changes.
	IdleTimeout time.Duration
	// InvalidUTF8 is what happens to bytes that are not valid UTF-8:
	// "escape", "replace" or "keep".
	InvalidUTF8 string
	// Encoding is the files' character set: "utf-8", or "latin1"
	// (ISO-8859-1, transcoded to UTF-8).
	Encoding string
	// StartAt is where files found at the first start (no saved positions at
	// all) are read from: "beginning" or "end". Files found later, and every
	// file once positions exist, are read from the beginning.
	StartAt string
	// FingerprintBytes is how many head bytes identify a file's content.
	FingerprintBytes int
	// ReadBufferBytes is the size of one read.
	ReadBufferBytes int
	// StopTimeout bounds the wait for in-flight acks when Run's ctx ends.
	StopTimeout time.Duration
	// DisableNotify turns off file system event hints (polling only).
	DisableNotify bool
	// Labels are static labels added to every line.
	Labels map[string]string
	// Hostname, when set, is added as the "host" label.
	Hostname string
	// Routes give the files they match their own labels and multiline
	// assembly (configs/file_pipeline.yml). The first route whose Match
	// matches a file's stream path (its filename label) wins; a file no
	// route matches keeps Labels and one record per line.
	Routes []Route
}

// Route is one entry of Config.Routes.
type Route struct {
	// Name identifies the route in logs and errors.
	Name string
	// Match lists glob patterns (Include's syntax). Files they match are
	// followed in addition to Include's; Exclude applies to them too.
	Match []string
	// Labels are merged over Config.Labels for the route's files.
	Labels map[string]string
	// Multiline groups the route's lines into entries, one WAL record per
	// entry. The zero value keeps one record per line.
	Multiline multiline.Config
}

// Label names the source sets itself.
const (
	LabelFilename = "filename"
	LabelHost     = "host"
)

// DefaultConfig returns the defaults. Include is empty: no file is followed
// until the configuration names some.
func DefaultConfig() Config {
	return Config{
		MaxLineBytes:     256 << 10,
		MaxEntryBytes:    1 << 20,
		MaxInflight:      4,
		MaxInflightBytes: DefaultMaxInflightBytes,
		PollInterval:     250 * time.Millisecond,
		ScanInterval:     10 * time.Second,
		RotateWait:       5 * time.Second,
		MaxOpenFiles:     1024,
		IdleTimeout:      5 * time.Minute,
		InvalidUTF8:      InvalidUTF8Escape,
		Encoding:         EncodingUTF8,
		StartAt:          StartBeginning,
		FingerprintBytes: 1024,
		ReadBufferBytes:  128 << 10,
		StopTimeout:      5 * time.Second,
	}
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	d := DefaultConfig()
	if c.MaxLineBytes == 0 {
		c.MaxLineBytes = d.MaxLineBytes
	}
	if c.MaxInflight == 0 {
		c.MaxInflight = d.MaxInflight
	}
	if c.MaxInflightBytes == 0 {
		c.MaxInflightBytes = d.MaxInflightBytes
	}
	if c.PollInterval == 0 {
		c.PollInterval = d.PollInterval
	}
	if c.ScanInterval == 0 {
		c.ScanInterval = d.ScanInterval
	}
	if c.RotateWait == 0 {
		c.RotateWait = d.RotateWait
	}
	if c.StartAt == "" {
		c.StartAt = d.StartAt
	}
	if c.MaxOpenFiles == 0 {
		c.MaxOpenFiles = d.MaxOpenFiles
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = d.IdleTimeout
	}
	if c.InvalidUTF8 == "" {
		c.InvalidUTF8 = d.InvalidUTF8
	}
	if c.Encoding == "" {
		c.Encoding = d.Encoding
	}
	if c.FingerprintBytes == 0 {
		c.FingerprintBytes = d.FingerprintBytes
	}
	if c.ReadBufferBytes == 0 {
		c.ReadBufferBytes = d.ReadBufferBytes
	}
	if c.StopTimeout == 0 {
		c.StopTimeout = d.StopTimeout
	}
	if len(c.Routes) > 0 {
		routes := make([]Route, len(c.Routes))
		for i, r := range c.Routes {
			if r.Multiline.Enabled() {
				r.Multiline = r.Multiline.WithDefaults()
			}
			routes[i] = r
		}
		c.Routes = routes
	}
	if c.MaxEntryBytes == 0 {
		c.MaxEntryBytes = max(d.MaxEntryBytes, c.MaxLineBytes+entrySlack)
		for _, r := range c.Routes {
			if r.Multiline.Enabled() {
				c.MaxEntryBytes = max(c.MaxEntryBytes, r.Multiline.MaxBytes+entrySlack)
			}
		}
	}
	return c
}

// DefaultMaxInflightBytes is the default of Config.MaxInflightBytes: room
// for a WAL group commit's worth of payloads while the whole agent stays
// within tens of MiB, however many files are open.
const DefaultMaxInflightBytes = 8 << 20

const (
	minInflightBytes = 4 << 10
	maxInflightBytes = 1 << 30
)

// entrySlack is the room a payload needs beyond its longest line: header,
// source table, label set and per-record framing.
const entrySlack = 4 << 10

var labelName = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// Validate reports every problem in c.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	for _, p := range c.Include {
		if err := validPattern(p); err != nil {
			bad("file: include %q: %w", p, err)
		}
	}
	for _, p := range c.Exclude {
		if err := validPattern(p); err != nil {
			bad("file: exclude %q: %w", p, err)
		}
	}
	if c.MaxLineBytes < 1 {
		bad("file: max_line_bytes %d: must be at least 1", c.MaxLineBytes)
	}
	if c.MaxEntryBytes < c.MaxLineBytes+entrySlack {
		bad("file: max_entry_bytes %d: must be at least max_line_bytes + %d", c.MaxEntryBytes, entrySlack)
	}
	if c.MaxInflight < 1 || c.MaxInflight > 1024 {
		bad("file: max_inflight %d: must be in [1, 1024]", c.MaxInflight)
	}
	if c.MaxInflightBytes < minInflightBytes || c.MaxInflightBytes > maxInflightBytes {
		bad("file: max_inflight_bytes %d: must be in [%d, %d]", c.MaxInflightBytes, minInflightBytes, maxInflightBytes)
	}
	if c.PollInterval < time.Millisecond {
		bad("file: poll_interval %s: must be at least 1ms", c.PollInterval)
	}
	if c.ScanInterval < time.Millisecond {
		bad("file: scan_interval %s: must be at least 1ms", c.ScanInterval)
	}
	if c.RotateWait < 0 {
		bad("file: rotate_wait %s: must not be negative", c.RotateWait)
	}
	if c.MaxOpenFiles < 1 || c.MaxOpenFiles > 1<<20 {
		bad("file: max_open_files %d: must be in [1, 1048576]", c.MaxOpenFiles)
	}
	if c.IdleTimeout < time.Millisecond {
		bad("file: idle_timeout %s: must be at least 1ms", c.IdleTimeout)
	}
	switch c.InvalidUTF8 {
	case InvalidUTF8Escape, InvalidUTF8Replace, InvalidUTF8Keep:
	default:
		bad("file: invalid_utf8 %q: must be %q, %q or %q", c.InvalidUTF8, InvalidUTF8Escape, InvalidUTF8Replace, InvalidUTF8Keep)
	}
	switch c.Encoding {
	case EncodingUTF8, EncodingLatin1:
	default:
		bad("file: encoding %q: must be %q or %q", c.Encoding, EncodingUTF8, EncodingLatin1)
	}
	if c.StartAt != StartBeginning && c.StartAt != StartEnd {
		bad("file: start_at %q: must be %q or %q", c.StartAt, StartBeginning, StartEnd)
	}
	if c.FingerprintBytes < 16 || c.FingerprintBytes > 64<<10 {
		bad("file: fingerprint_bytes %d: must be in [16, 65536]", c.FingerprintBytes)
	}
	if c.ReadBufferBytes < 4<<10 || c.ReadBufferBytes > 16<<20 {
		bad("file: read_buffer_bytes %d: must be in [4096, 16777216]", c.ReadBufferBytes)
	}
	if c.StopTimeout < 0 {
		bad("file: stop_timeout %s: must not be negative", c.StopTimeout)
	}
	c.validLabels("file: ", c.Labels, bad)
	names := map[string]bool{}
	for i, r := range c.Routes {
		at := fmt.Sprintf("file: route %d (%q): ", i, r.Name)
		switch {
		case strings.TrimSpace(r.Name) == "":
			bad("file: route %d: name: required", i)
		case names[r.Name]:
			bad("%sname: used by an earlier route", at)
		}
		names[r.Name] = true
		if len(r.Match) == 0 {
			bad("%smatch: at least one pattern required", at)
		}
		for _, p := range r.Match {
			if err := validPattern(p); err != nil {
				bad("%smatch %q: %w", at, p, err)
			}
		}
		c.validLabels(at, r.Labels, bad)
		if !r.Multiline.Enabled() {
			continue
		}
		if err := r.Multiline.Validate(); err != nil {
			bad("%s%w", at, err)
			continue
		}
		// One entry is one record: the longest is MaxBytes, or one line.
		if need := max(r.Multiline.MaxBytes, c.MaxLineBytes) + entrySlack; c.MaxEntryBytes < need {
			bad("%smultiline.max_bytes %d: max_entry_bytes %d must be at least max(multiline.max_bytes, max_line_bytes) + %d",
				at, r.Multiline.MaxBytes, c.MaxEntryBytes, entrySlack)
		}
	}
	return errors.Join(errs...)
}

// validLabels reports bad static label names: invalid, or set by the source.
func (c Config) validLabels(at string, labels map[string]string, bad func(string, ...any)) {
	for name := range labels {
		switch {
		case !labelName.MatchString(name):
			bad("%slabel %q: invalid name", at, name)
		case name == LabelFilename:
			bad("%slabel %q: set by the source", at, name)
		case name == LabelHost && c.Hostname != "":
			bad("%slabel %q: set by the source from hostname", at, name)
		}
	}
}

func validPattern(p string) error {
	if strings.TrimSpace(p) == "" {
		return errors.New("empty pattern")
	}
	for _, el := range strings.Split(filepath.ToSlash(p), "/") {
		if _, err := filepath.Match(el, ""); err != nil {
			return err
		}
	}
	return nil
}
