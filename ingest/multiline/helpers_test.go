package multiline

import (
	"bytes"
	"testing"
	"time"

	"github.com/logcapturer/log_capturer_go/wal/record"
)

// fline is one framed line as the file source hands it over.
type fline struct {
	text []byte
	end  uint64 // offset after its '\n'
}

// frame splits data like the file framer: on '\n', a trailing '\r'
// stripped, an unterminated last line held back (dropped here).
func frame(data []byte) []fline {
	var out []fline
	var off uint64
	for {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			return out
		}
		line := data[:i]
		line = bytes.TrimSuffix(line, []byte("\r"))
		off += uint64(i + 1)
		out = append(out, fline{text: line, end: off})
		data = data[i+1:]
	}
}

func frameStrings(lines ...string) []fline {
	var b bytes.Buffer
	for _, l := range lines {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	return frame(b.Bytes())
}

// entry is one emitted entry, copied out of the callback.
type entry struct {
	text  string
	end   uint64
	flags record.Flags
}

func collector(out *[]entry) EmitFunc {
	return func(e []byte, end uint64, fl record.Flags) error {
		*out = append(*out, entry{string(e), end, fl})
		return nil
	}
}

var t0 = time.Date(2026, 11, 26, 20, 0, 0, 0, time.UTC)

func mustNew(t testing.TB, cfg Config) *Assembler {
	t.Helper()
	a, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%+v): %v", cfg, err)
	}
	return a
}

// assemble feeds every line at t0 (no timeout fires) and flushes at the end.
func assemble(t testing.TB, cfg Config, lines []fline) []entry {
	t.Helper()
	a := mustNew(t, cfg)
	var out []entry
	emit := collector(&out)
	for _, l := range lines {
		if err := a.Add(l.text, l.end, 0, t0, emit); err != nil {
			t.Fatalf("Add: %v", err)
		}
	}
	if err := a.FlushAll(emit); err != nil {
		t.Fatalf("FlushAll: %v", err)
	}
	return out
}

func texts(es []entry) []string {
	s := make([]string, len(es))
	for i, e := range es {
		s[i] = e.text
	}
	return s
}
