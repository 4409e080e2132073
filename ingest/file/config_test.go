package file

import (
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	base := DefaultConfig()
	base.Include = []string{"/var/log/*.log", "/var/log/**/x.log"}
	tests := map[string]struct {
		mod  func(*Config)
		want string // substring of the error; "" for valid
	}{
		"defaults":              {func(*Config) {}, ""},
		"no include is valid":   {func(c *Config) { c.Include = nil }, ""},
		"bad include":           {func(c *Config) { c.Include = []string{"/var/[a-"} }, "include"},
		"empty include":         {func(c *Config) { c.Include = []string{" "} }, "empty pattern"},
		"bad exclude":           {func(c *Config) { c.Exclude = []string{"[x"} }, "exclude"},
		"zero max line":         {func(c *Config) { c.MaxLineBytes = 0 }, "max_line_bytes"},
		"entry below line":      {func(c *Config) { c.MaxEntryBytes = c.MaxLineBytes }, "max_entry_bytes"},
		"zero inflight":         {func(c *Config) { c.MaxInflight = 0 }, "max_inflight"},
		"tiny poll":             {func(c *Config) { c.PollInterval = time.Microsecond }, "poll_interval"},
		"zero scan":             {func(c *Config) { c.ScanInterval = 0 }, "scan_interval"},
		"negative rotate wait":  {func(c *Config) { c.RotateWait = -time.Second }, "rotate_wait"},
		"bad start_at":          {func(c *Config) { c.StartAt = "middle" }, "start_at"},
		"tiny fingerprint":      {func(c *Config) { c.FingerprintBytes = 8 }, "fingerprint_bytes"},
		"tiny read buffer":      {func(c *Config) { c.ReadBufferBytes = 10 }, "read_buffer_bytes"},
		"bad label name":        {func(c *Config) { c.Labels = map[string]string{"1x": "v"} }, "invalid name"},
		"reserved filename":     {func(c *Config) { c.Labels = map[string]string{"filename": "v"} }, "set by the source"},
		"host with hostname":    {func(c *Config) { c.Labels = map[string]string{"host": "v"}; c.Hostname = "h" }, "hostname"},
		"host without hostname": {func(c *Config) { c.Labels = map[string]string{"host": "v"} }, ""},
		"several errors":        {func(c *Config) { c.MaxInflight = 0; c.StartAt = "x" }, "start_at"},
		"zero open files":       {func(c *Config) { c.MaxOpenFiles = 0 }, "max_open_files"},
		"tiny idle timeout":     {func(c *Config) { c.IdleTimeout = time.Microsecond }, "idle_timeout"},
		"bad utf8 policy":       {func(c *Config) { c.InvalidUTF8 = "drop" }, "invalid_utf8"},
		"bad encoding":          {func(c *Config) { c.Encoding = "utf-16" }, "encoding"},
		"replace and latin1":    {func(c *Config) { c.InvalidUTF8 = InvalidUTF8Replace; c.Encoding = EncodingLatin1 }, ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c := base
			tc.mod(&c)
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error = %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

func TestWithDefaultsFillsZeroOnly(t *testing.T) {
	c := Config{MaxLineBytes: 2 << 20, PollInterval: time.Second}.WithDefaults()
	if c.MaxLineBytes != 2<<20 || c.PollInterval != time.Second {
		t.Fatalf("set fields changed: %+v", c)
	}
	if c.MaxEntryBytes < c.MaxLineBytes+entrySlack {
		t.Fatalf("default entry size %d does not fit a %d-byte line", c.MaxEntryBytes, c.MaxLineBytes)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}
