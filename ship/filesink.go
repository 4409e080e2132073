package ship

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// FileSinkConfig configures the local file sink.
type FileSinkConfig struct {
	Path     string // JSON-lines file
	MaxBytes int64  // rotate once the file reaches this size
	MaxFiles int    // rotated files kept (path.1 … path.N)
}

// FileSink writes batches as JSON lines to a local file and fsyncs before
// acknowledging, so the cursor never passes lines that are not on disk.
// Each line: {"ts":"<RFC3339Nano>","labels":{...},"line":"..."}; a line's
// invalid UTF-8 bytes become U+FFFD in this text format (the WAL keeps the
// original bytes), and "flags" lists truncated/partial/escaped when set.
type FileSink struct {
	cfg  FileSinkConfig
	mu   sync.Mutex
	f    *os.File
	size int64
	buf  []byte
}

// NewFileSink opens (creating if needed) the sink file.
func NewFileSink(cfg FileSinkConfig) (*FileSink, error) {
	if cfg.Path == "" {
		return nil, fmt.Errorf("ship: file sink: path is empty")
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = 100 << 20
	}
	if cfg.MaxFiles <= 0 {
		cfg.MaxFiles = 5
	}
	s := &FileSink{cfg: cfg}
	if err := os.MkdirAll(filepath.Dir(cfg.Path), 0o750); err != nil {
		return nil, fmt.Errorf("ship: file sink: %w", err)
	}
	if err := s.open(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *FileSink) open() error {
	f, err := os.OpenFile(s.cfg.Path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("ship: file sink: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("ship: file sink: %w", err)
	}
	s.f, s.size = f, st.Size()
	return nil
}

// Name implements Sink.
func (s *FileSink) Name() string { return "file" }

// Send implements Sink.
func (s *FileSink) Send(_ context.Context, b *Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		if err := s.open(); err != nil {
			return &RetryError{Reason: "io", Err: err}
		}
	}
	buf := s.buf[:0]
	for _, st := range b.Streams {
		labels := appendLabelsJSON(nil, st)
		for _, e := range st.Entries {
			buf = append(buf, `{"ts":"`...)
			buf = time.Unix(0, e.Time).UTC().AppendFormat(buf, time.RFC3339Nano)
			buf = append(buf, `","labels":`...)
			buf = append(buf, labels...)
			if e.Flags != 0 {
				buf = append(buf, `,"flags":"`...)
				buf = append(buf, flagString(e.Flags)...)
				buf = append(buf, '"')
			}
			buf = append(buf, `,"line":`...)
			buf = appendJSONString(buf, e.Line)
			buf = append(buf, "}\n"...)
		}
	}
	s.buf = buf
	if _, err := s.f.Write(buf); err != nil {
		// A partial write may have landed: the batch is re-sent whole, and
		// the reader of this file sees at most a duplicate, never a gap.
		s.f.Close()
		s.f = nil
		return &RetryError{Reason: "io", Err: fmt.Errorf("ship: file sink: write: %w", err)}
	}
	if err := s.f.Sync(); err != nil {
		s.f.Close()
		s.f = nil
		return &RetryError{Reason: "io", Err: fmt.Errorf("ship: file sink: fsync: %w", err)}
	}
	s.size += int64(len(buf))
	if s.size >= s.cfg.MaxBytes {
		if err := s.rotate(); err != nil {
			return &RetryError{Reason: "io", Err: err}
		}
	}
	return nil
}

// rotate renames path.N-1 → path.N … path → path.1 and starts a new file.
// The batch that triggered it is already on disk, so a failure here only
// delays the next batch.
func (s *FileSink) rotate() error {
	if err := s.f.Close(); err != nil {
		return fmt.Errorf("ship: file sink: close: %w", err)
	}
	s.f = nil
	for i := s.cfg.MaxFiles - 1; i >= 1; i-- {
		from := s.cfg.Path + "." + strconv.Itoa(i)
		if _, err := os.Stat(from); err == nil {
			if err := os.Rename(from, s.cfg.Path+"."+strconv.Itoa(i+1)); err != nil {
				return fmt.Errorf("ship: file sink: rotate: %w", err)
			}
		}
	}
	if err := os.Rename(s.cfg.Path, s.cfg.Path+".1"); err != nil {
		return fmt.Errorf("ship: file sink: rotate: %w", err)
	}
	return s.open()
}

// Close closes the file.
func (s *FileSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}

func flagString(f interface{ String() string }) string { return f.String() }

func appendLabelsJSON(dst []byte, st *Stream) []byte {
	dst = append(dst, '{')
	for i, l := range st.Labels.Labels() {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendJSONString(dst, []byte(l.Name))
		dst = append(dst, ':')
		dst = appendJSONString(dst, []byte(l.Value))
	}
	return append(dst, '}')
}

const hexDigits = "0123456789abcdef"

// appendJSONString writes s as a JSON string; invalid UTF-8 becomes U+FFFD.
func appendJSONString(dst, s []byte) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
