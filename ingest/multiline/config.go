package multiline

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Modes: how Pattern's matches delimit entries.
const (
	// ModeStart: a matching line begins a new entry; other lines continue the
	// pending one.
	ModeStart = "start"
	// ModeContinue: a matching line continues the pending entry; any other
	// line begins a new one.
	ModeContinue = "continue"
	// ModeEnd: a matching line completes the pending entry (it is emitted at
	// once); other lines continue it.
	ModeEnd = "end"
)

// Config is one source's multiline configuration. The zero Config means
// multiline is off (see Enabled).
type Config struct {
	// Mode is ModeStart, ModeContinue or ModeEnd.
	Mode string
	// Pattern is a Go (RE2) regular expression matched against each line
	// (without its newline).
	Pattern string
	// Negate inverts the match: the mode applies to lines that do NOT match.
	Negate bool
	// MaxLines caps the lines of one entry; a longer entry is split.
	MaxLines int
	// MaxBytes caps the bytes of one entry (lines plus the "\n" between
	// them); a longer entry is split. A single line longer than MaxBytes is
	// an entry of its own.
	MaxBytes int
	// FlushTimeout is how long a pending entry waits for more lines, counted
	// from its first line, before Flush emits it.
	FlushTimeout time.Duration
	// Preset names a built-in Mode and Pattern (see Presets). Mode, Pattern
	// and Negate must then be left empty: WithDefaults fills them.
	Preset string
}

// DefaultConfig returns the limits used for zero fields. Mode, Pattern and
// Preset stay empty: multiline is off until configured.
func DefaultConfig() Config {
	return Config{
		MaxLines:     500,
		MaxBytes:     256 << 10,
		FlushTimeout: time.Second,
	}
}

// Bounds checked by Validate.
const (
	maxMaxLines     = 100_000
	maxMaxBytes     = 64 << 20
	minFlushTimeout = time.Millisecond
	maxFlushTimeout = time.Hour
)

// Enabled reports whether c asks for multiline assembly at all.
func (c Config) Enabled() bool { return c.Mode != "" || c.Pattern != "" || c.Preset != "" }

// WithDefaults returns c with zero limits set to their defaults and, when a
// preset is named and Mode and Pattern are empty, the preset's Mode and
// Pattern filled in. An unknown preset is left for Validate to report.
func (c Config) WithDefaults() Config {
	d := DefaultConfig()
	if c.MaxLines == 0 {
		c.MaxLines = d.MaxLines
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = d.MaxBytes
	}
	if c.FlushTimeout == 0 {
		c.FlushTimeout = d.FlushTimeout
	}
	if p, ok := presets[c.Preset]; ok && c.Mode == "" && c.Pattern == "" {
		c.Mode, c.Pattern = p.mode, p.pattern
	}
	return c
}

// Validate reports every problem in c, each naming its field. It expects
// defaults applied (WithDefaults). A disabled Config is valid.
func (c Config) Validate() error {
	if !c.Enabled() {
		return nil
	}
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if c.Preset != "" {
		p, ok := presets[c.Preset]
		switch {
		case !ok:
			bad("multiline.preset: unknown preset %q (known: %s)", c.Preset, strings.Join(Presets(), ", "))
		case c.Mode != "" && c.Mode != p.mode, c.Pattern != "" && c.Pattern != p.pattern:
			bad("multiline.preset: %q sets mode and pattern; leave multiline.mode and multiline.pattern empty", c.Preset)
		case c.Negate:
			bad("multiline.negate: not allowed with preset %q", c.Preset)
		}
	}
	switch c.Mode {
	case ModeStart, ModeContinue, ModeEnd:
	case "":
		if c.Preset == "" {
			bad("multiline.mode: required (%q, %q or %q)", ModeStart, ModeContinue, ModeEnd)
		}
	default:
		bad("multiline.mode: %q: must be %q, %q or %q", c.Mode, ModeStart, ModeContinue, ModeEnd)
	}
	if c.Pattern == "" {
		if c.Preset == "" {
			bad("multiline.pattern: required")
		}
	} else if _, err := regexp.Compile(c.Pattern); err != nil {
		bad("multiline.pattern: invalid regexp %q: %w", c.Pattern, err)
	}
	if c.MaxLines < 1 || c.MaxLines > maxMaxLines {
		bad("multiline.max_lines: %d: must be in [1, %d]", c.MaxLines, maxMaxLines)
	}
	if c.MaxBytes < 1 || c.MaxBytes > maxMaxBytes {
		bad("multiline.max_bytes: %d: must be in [1, %d]", c.MaxBytes, maxMaxBytes)
	}
	if c.FlushTimeout < minFlushTimeout || c.FlushTimeout > maxFlushTimeout {
		bad("multiline.flush_timeout: %s: must be in [%s, %s]", c.FlushTimeout, minFlushTimeout, maxFlushTimeout)
	}
	return errors.Join(errs...)
}

// ErrDisabled is returned by New for a Config that does not enable multiline.
var ErrDisabled = errors.New("multiline: not enabled (no mode, pattern or preset)")

// Presets lists the preset names, sorted.
func Presets() []string {
	names := make([]string, 0, len(presets))
	for n := range presets {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}
