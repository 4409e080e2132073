package file

import (
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/logcapturer/log_capturer_go/wal/record"
)

// unescapeLine reverses InvalidUTF8Escape for a line flagged FlagEscaped.
func unescapeLine(s []byte) ([]byte, bool) {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			out = append(out, s[i])
			continue
		}
		switch {
		case i+1 < len(s) && s[i+1] == '\\':
			out = append(out, '\\')
			i++
		case i+3 < len(s) && s[i+1] == 'x':
			v, err := strconv.ParseUint(string(s[i+2:i+4]), 16, 8)
			if err != nil {
				return nil, false
			}
			out = append(out, byte(v))
			i += 3
		default:
			return nil, false
		}
	}
	return out, true
}

func TestConvert(t *testing.T) {
	tests := map[string]struct {
		policy, enc string
		max         int
		in          string
		inFlags     record.Flags
		out         string
		flags       record.Flags
		transcoded  bool
		cut         uint64
	}{
		"valid kept":              {policy: InvalidUTF8Escape, in: "héllo \\ ok", out: "héllo \\ ok"},
		"escape":                  {policy: InvalidUTF8Escape, in: "a\xffb\\c", out: `a\xffb\\c`, flags: record.FlagEscaped},
		"escape NUL stays":        {policy: InvalidUTF8Escape, in: "a\x00b", out: "a\x00b"},
		"replace":                 {policy: InvalidUTF8Replace, in: "a\xff\xfeb\\", out: "a\uFFFD\uFFFDb\\", flags: record.FlagEscaped},
		"keep":                    {policy: InvalidUTF8Keep, in: "a\xffb", out: "a\xffb"},
		"escape capped":           {policy: InvalidUTF8Escape, max: 6, in: "\xff\xffab", out: `\xff`, flags: record.FlagEscaped | record.FlagTruncated, cut: 3},
		"our cut is not invalid":  {policy: InvalidUTF8Escape, in: "abc\xc3", inFlags: record.FlagTruncated, out: "abc"},
		"their cut is invalid":    {policy: InvalidUTF8Escape, in: "abc\xc3", out: `abc\xc3`, flags: record.FlagEscaped},
		"latin1":                  {enc: EncodingLatin1, in: "caf\xe9 \xff", out: "café ÿ", transcoded: true},
		"latin1 ascii":            {enc: EncodingLatin1, in: "plain", out: "plain"},
		"latin1 capped":           {enc: EncodingLatin1, max: 5, in: "ab\xe9\xe9", out: "abé", flags: record.FlagTruncated, transcoded: true, cut: 1},
		"latin1 ignores policy":   {enc: EncodingLatin1, policy: InvalidUTF8Keep, in: "\xe9", out: "é", transcoded: true},
		"replace capped mid-rune": {policy: InvalidUTF8Replace, max: 4, in: "a\xff\xff", out: "a\uFFFD", flags: record.FlagEscaped | record.FlagTruncated, cut: 1},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			cfg := Config{InvalidUTF8: tc.policy, Encoding: tc.enc, MaxLineBytes: tc.max}
			if cfg.InvalidUTF8 == "" {
				cfg.InvalidUTF8 = InvalidUTF8Escape
			}
			if cfg.Encoding == "" {
				cfg.Encoding = EncodingUTF8
			}
			if cfg.MaxLineBytes == 0 {
				cfg.MaxLineBytes = 1 << 10
			}
			c := newConverter(cfg)
			out, res := c.convert([]byte(tc.in), tc.inFlags)
			if string(out) != tc.out || res.flags != tc.flags || res.transcoded != tc.transcoded || res.cut != tc.cut {
				t.Fatalf("convert(%q) = %q %+v; want %q flags %v transcoded %v cut %d", tc.in, out, res, tc.out, tc.flags, tc.transcoded, tc.cut)
			}
		})
	}
}

// FuzzConvert: whatever the input, the output is valid UTF-8 (unless kept),
// within max bytes, and an escaped line that was not cut reverses exactly.
func FuzzConvert(f *testing.F) {
	f.Add([]byte("a\xffb\\x41"), uint8(0), uint16(64))
	f.Add([]byte("caf\xe9"), uint8(2), uint16(3))
	f.Add([]byte(strings.Repeat("\xfe", 40)), uint8(1), uint16(10))
	f.Fuzz(func(t *testing.T, in []byte, mode uint8, max uint16) {
		cfg := Config{InvalidUTF8: InvalidUTF8Escape, Encoding: EncodingUTF8, MaxLineBytes: int(max)%4096 + 4}
		switch mode % 3 {
		case 1:
			cfg.InvalidUTF8 = InvalidUTF8Replace
		case 2:
			cfg.Encoding = EncodingLatin1
		}
		c := newConverter(cfg)
		out, res := c.convert(in, 0)
		if !utf8.Valid(out) {
			t.Fatalf("convert(%q) = %q: invalid UTF-8", in, out)
		}
		if len(out) > cfg.MaxLineBytes && len(out) != len(in) {
			t.Fatalf("convert(%q) = %d bytes, max %d", in, len(out), cfg.MaxLineBytes)
		}
		if cfg.InvalidUTF8 == InvalidUTF8Escape && cfg.Encoding == EncodingUTF8 && res.flags&record.FlagEscaped != 0 && res.cut == 0 {
			back, ok := unescapeLine(out)
			if !ok || string(back) != string(in) {
				t.Fatalf("%q -> %q -> %q", in, out, back)
			}
		}
	})
}
