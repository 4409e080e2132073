package multiline

import (
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestConfigDefaults(t *testing.T) {
	c := Config{Preset: PresetJava}.WithDefaults()
	if c.MaxLines != 500 || c.MaxBytes != 256<<10 || c.FlushTimeout != time.Second {
		t.Fatalf("defaults: %+v", c)
	}
	if c.Mode != ModeContinue || c.Pattern != presets[PresetJava].pattern {
		t.Fatalf("preset not filled in: %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("defaulted preset config invalid: %v", err)
	}
	// Explicit limits survive.
	c = Config{Mode: ModeStart, Pattern: "^x", MaxLines: 3, MaxBytes: 10, FlushTimeout: time.Minute}.WithDefaults()
	if c.MaxLines != 3 || c.MaxBytes != 10 || c.FlushTimeout != time.Minute {
		t.Fatalf("explicit limits lost: %+v", c)
	}
}

func TestConfigDisabled(t *testing.T) {
	if (Config{}).Enabled() {
		t.Fatal("zero Config enabled")
	}
	if err := (Config{}).WithDefaults().Validate(); err != nil {
		t.Fatalf("disabled config invalid: %v", err)
	}
	if _, err := New(Config{MaxLines: 3}); !errors.Is(err, ErrDisabled) {
		t.Fatalf("New(disabled) = %v, want ErrDisabled", err)
	}
}

func TestConfigValidate(t *testing.T) {
	ok := Config{Mode: ModeStart, Pattern: `^\d`}
	tests := []struct {
		name string
		cfg  Config
		want []string // substrings of the error; nil for valid
	}{
		{"valid custom", ok, nil},
		{"valid negate", Config{Mode: ModeContinue, Pattern: `^\S`, Negate: true}, nil},
		{"every preset", Config{Preset: PresetMySQLSlow}, nil},
		{"bad regexp", Config{Mode: ModeStart, Pattern: `^(\d`}, []string{"multiline.pattern: invalid regexp", "missing closing )"}},
		{"perl lookbehind", Config{Mode: ModeStart, Pattern: `(?<=x)y`}, []string{"multiline.pattern: invalid regexp"}},
		{"no pattern", Config{Mode: ModeStart}, []string{"multiline.pattern: required"}},
		{"no mode", Config{Pattern: "x"}, []string{"multiline.mode: required"}},
		{"bad mode", Config{Mode: "begin", Pattern: "x"}, []string{`multiline.mode: "begin"`}},
		{"unknown preset", Config{Preset: "cobol"}, []string{`multiline.preset: unknown preset "cobol"`, "mysql_slow"}},
		{"preset and pattern", Config{Preset: PresetSIP, Pattern: "^x"}, []string{"multiline.preset:", "leave multiline.mode and multiline.pattern empty"}},
		{"preset and mode", Config{Preset: PresetSIP, Mode: ModeEnd}, []string{"multiline.preset:"}},
		{"preset and negate", Config{Preset: PresetGo, Negate: true}, []string{"multiline.negate: not allowed"}},
		{"max_lines zero after defaults", Config{Mode: ModeStart, Pattern: "x", MaxLines: -1}, []string{"multiline.max_lines: -1"}},
		{"max_lines huge", Config{Mode: ModeStart, Pattern: "x", MaxLines: 1 << 30}, []string{"multiline.max_lines"}},
		{"max_bytes negative", Config{Mode: ModeStart, Pattern: "x", MaxBytes: -5}, []string{"multiline.max_bytes: -5"}},
		{"max_bytes huge", Config{Mode: ModeStart, Pattern: "x", MaxBytes: 1 << 30}, []string{"multiline.max_bytes"}},
		{"flush_timeout negative", Config{Mode: ModeStart, Pattern: "x", FlushTimeout: -time.Second}, []string{"multiline.flush_timeout: -1s"}},
		{"flush_timeout tiny", Config{Mode: ModeStart, Pattern: "x", FlushTimeout: time.Microsecond}, []string{"multiline.flush_timeout"}},
		{"several at once", Config{Mode: "x", Pattern: "(", MaxLines: -1}, []string{"multiline.mode", "multiline.pattern", "multiline.max_lines"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.WithDefaults().Validate()
			if tt.want == nil {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if _, err := New(tt.cfg); err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if _, nerr := New(tt.cfg); nerr == nil {
				t.Error("New accepted an invalid config")
			}
		})
	}
}

func TestPresetsCompile(t *testing.T) {
	names := Presets()
	if len(names) != 6 {
		t.Fatalf("presets: %v", names)
	}
	for _, n := range names {
		p := presets[n]
		if _, err := regexp.Compile(p.pattern); err != nil {
			t.Errorf("preset %s: %v", n, err)
		}
		if err := (Config{Preset: n}).WithDefaults().Validate(); err != nil {
			t.Errorf("preset %s: %v", n, err)
		}
	}
}
