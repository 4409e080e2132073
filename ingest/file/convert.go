package file

import (
	"unicode/utf8"

	"github.com/logcapturer/log_capturer_go/wal/record"
)

// converter turns a framed line into the text stored: latin1 transcoded to
// UTF-8, or invalid UTF-8 escaped or replaced. The output never exceeds max
// bytes (a longer one is cut at a character boundary and flagged truncated),
// so that a converted line still fits one WAL entry.
type converter struct {
	policy string
	latin1 bool
	max    int
	buf    []byte
}

func newConverter(cfg Config) converter {
	return converter{policy: cfg.InvalidUTF8, latin1: cfg.Encoding == EncodingLatin1, max: cfg.MaxLineBytes}
}

// convResult says what convert did to a line.
type convResult struct {
	flags      record.Flags // FlagEscaped and/or FlagTruncated to add
	transcoded bool         // latin1 bytes above 0x7f were transcoded
	cut        uint64       // input bytes dropped to stay within max
}

// convert returns the line to store; it aliases line or the converter's own
// buffer and is valid until the next call.
func (c *converter) convert(line []byte, flags record.Flags) ([]byte, convResult) {
	var res convResult
	if c.latin1 {
		if ascii(line) {
			return line, res
		}
		res.transcoded = true
		out := c.buf[:0]
		for i, b := range line {
			need := 1
			if b >= utf8.RuneSelf {
				need = 2
			}
			if len(out)+need > c.max {
				res.flags |= record.FlagTruncated
				res.cut = uint64(len(line) - i)
				break
			}
			if b < utf8.RuneSelf {
				out = append(out, b)
			} else {
				out = utf8.AppendRune(out, rune(b))
			}
		}
		c.buf = out
		return out, res
	}
	if c.policy == InvalidUTF8Keep {
		return line, res
	}
	if flags&record.FlagTruncated != 0 {
		// The framer cut the line at max bytes, maybe inside a character:
		// an incomplete last character is our cut, not bad input.
		line = trimPartialRune(line)
	}
	if utf8.Valid(line) {
		return line, res
	}
	res.flags |= record.FlagEscaped
	out := c.buf[:0]
	for i := 0; i < len(line); {
		r, size := utf8.DecodeRune(line[i:])
		var add []byte
		var tmp [4]byte
		switch {
		case r == utf8.RuneError && size == 1:
			if c.policy == InvalidUTF8Replace {
				add = utf8.AppendRune(tmp[:0], utf8.RuneError)
			} else {
				add = append(tmp[:0], '\\', 'x', hexDigit(line[i]>>4), hexDigit(line[i]&0xf))
			}
		case line[i] == '\\' && c.policy == InvalidUTF8Escape:
			add = append(tmp[:0], '\\', '\\')
		default:
			add = line[i : i+size]
		}
		if len(out)+len(add) > c.max {
			res.flags |= record.FlagTruncated
			res.cut = uint64(len(line) - i)
			break
		}
		out = append(out, add...)
		i += size
	}
	c.buf = out
	return out, res
}

// release drops a large buffer left by one long line.
func (c *converter) release() {
	if cap(c.buf) > 64<<10 {
		c.buf = nil
	}
}

func ascii(b []byte) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func hexDigit(b byte) byte { return "0123456789abcdef"[b] }

// trimPartialRune drops an incomplete UTF-8 sequence at the end of b.
func trimPartialRune(b []byte) []byte {
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:]) {
				return b[:i]
			}
			return b
		}
	}
	return b
}
