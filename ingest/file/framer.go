package file

import (
	"bytes"

	"github.com/logcapturer/log_capturer_go/wal/record"
)

// emitFunc receives one framed line. line is only valid during the call (it
// aliases the read buffer or the framer's own buffer); end is the file offset
// of the byte after the line's terminator. An error stops the framer; its
// state is then undefined and the caller must reset it.
type emitFunc func(line []byte, end uint64, flags record.Flags) error

// framer splits a byte stream into '\n'-terminated lines.
//
// A line without its '\n' yet is held back (never emitted) until it completes
// or flush is called. At most max+1 bytes of a pending line are kept, so a
// line of any length costs bounded memory: a line whose content exceeds max
// bytes is emitted cut to max bytes with FlagTruncated when its '\n' arrives,
// and the rest is skipped and counted. A trailing '\r' (CRLF) is stripped from
// complete lines.
type framer struct {
	max int
	off uint64 // file offset of the next byte fed

	pend    []byte // head of the pending line, at most max+1 bytes
	lineLen uint64 // full length of the pending line, may exceed len(pend)
	lastCR  bool   // the pending line's last byte is '\r'
	discard bool   // drop the pending line silently (started mid-line)

	skipped uint64 // bytes cut from over-long lines since the last take
}

func newFramer(max int, off uint64) framer {
	return framer{max: max, off: off}
}

// reset forgets any pending line and continues at off.
func (f *framer) reset(off uint64) {
	f.off = off
	f.clearPending()
	f.discard = false
}

// startMidLine makes the framer drop everything up to and including the next
// '\n': the stream starts inside a line whose head was never seen.
func (f *framer) startMidLine() { f.discard = true }

// pending reports how many bytes of an incomplete line are held back.
func (f *framer) pending() uint64 { return f.lineLen }

// takeSkipped returns and clears the count of bytes cut from long lines.
func (f *framer) takeSkipped() uint64 {
	n := f.skipped
	f.skipped = 0
	return n
}

func (f *framer) clearPending() {
	// A huge pending buffer from one long line is not kept for the file's life.
	if cap(f.pend) > 64<<10 {
		f.pend = nil
	} else {
		f.pend = f.pend[:0]
	}
	f.lineLen = 0
	f.lastCR = false
}

func (f *framer) hold(p []byte) {
	if len(p) == 0 {
		return
	}
	if !f.discard {
		if room := f.max + 1 - len(f.pend); room > 0 {
			f.pend = append(f.pend, p[:min(room, len(p))]...)
		}
	}
	f.lineLen += uint64(len(p))
	f.lastCR = p[len(p)-1] == '\r'
}

// feed consumes p, the bytes at the framer's current offset.
func (f *framer) feed(p []byte, emit emitFunc) error {
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			f.hold(p)
			f.off += uint64(len(p))
			return nil
		}
		var (
			held []byte
			raw  uint64
			cr   bool
		)
		if f.lineLen == 0 {
			held, raw, cr = p[:i], uint64(i), i > 0 && p[i-1] == '\r'
		} else {
			f.hold(p[:i])
			held, raw, cr = f.pend, f.lineLen, f.lastCR
		}
		f.off += uint64(i) + 1
		p = p[i+1:]
		if f.discard {
			f.discard = false
			f.clearPending()
			continue
		}
		content := raw
		if cr {
			content--
		}
		var flags record.Flags
		var line []byte
		if content > uint64(f.max) {
			flags = record.FlagTruncated
			f.skipped += content - uint64(f.max)
			line = held[:f.max]
		} else {
			line = held[:content]
		}
		err := emit(line, f.off, flags)
		// held may alias f.pend: clear it only after emit has copied the line.
		f.clearPending()
		if err != nil {
			return err
		}
	}
	return nil
}

// flush emits the pending incomplete line, if any, with FlagPartial (and
// FlagTruncated when cut). Its end offset is the framer's offset. It is used
// when no more bytes will come: the file left its path and was drained.
func (f *framer) flush(emit emitFunc) error {
	if f.lineLen == 0 || f.discard {
		f.clearPending()
		f.discard = false
		return nil
	}
	flags := record.FlagPartial
	line := f.pend
	if f.lineLen > uint64(f.max) {
		flags |= record.FlagTruncated
		f.skipped += f.lineLen - uint64(f.max)
		line = f.pend[:f.max]
	}
	err := emit(line, f.off, flags)
	f.clearPending()
	return err
}
