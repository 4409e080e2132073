package multiline

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/logcapturer/log_capturer_go/wal/record"
)

// FuzzAssembler feeds arbitrary lines to every preset and to custom configs
// built from the presets' patterns in every mode, with arbitrary limits and
// flush times. Invariants: the emitted entries, split on "\n", are exactly
// the input lines in order (nothing lost, duplicated or reordered); every
// entry carries its last line's end offset; no entry passes MaxLines, nor
// MaxBytes unless it is a single line; Pending's start is always the end of
// the last emitted line.
func FuzzAssembler(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "*.log"))
	for i, s := range seeds {
		data, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, uint8(i), uint8(0), uint16(0), uint8(3))
		f.Add(data, uint8(i+6), uint8(4), uint16(200), uint8(1))
	}
	f.Add([]byte("a\n\n\nb\r\n \tc"), uint8(7), uint8(1), uint16(1), uint8(0))

	names := Presets()
	modes := []string{ModeStart, ModeContinue, ModeEnd}
	f.Fuzz(func(t *testing.T, data []byte, sel, maxLines uint8, maxBytes uint16, tick uint8) {
		cfg := Config{MaxLines: int(maxLines), MaxBytes: int(maxBytes), FlushTimeout: time.Second}
		p := names[int(sel)%len(names)]
		if sel&0x80 == 0 {
			cfg.Preset = p
		} else {
			cfg.Mode = modes[int(sel>>3)%len(modes)]
			cfg.Pattern = presets[p].pattern
			cfg.Negate = sel&0x40 != 0
		}
		a, err := New(cfg)
		if err != nil {
			t.Fatalf("New(%+v): %v", cfg, err)
		}
		cfg = cfg.WithDefaults()

		lines := bytes.Split(data, []byte("\n"))
		ends := make([]uint64, len(lines))
		var off uint64
		for i, l := range lines {
			off += uint64(len(l)) + 1
			ends[i] = off
		}

		out := 0 // lines emitted so far
		emit := func(e []byte, end uint64, _ record.Flags) error {
			got := bytes.Split(e, []byte("\n"))
			if len(got) > cfg.MaxLines {
				t.Fatalf("entry of %d lines, max %d", len(got), cfg.MaxLines)
			}
			if len(e) > cfg.MaxBytes && len(got) > 1 {
				t.Fatalf("entry of %d bytes and %d lines, max %d bytes", len(e), len(got), cfg.MaxBytes)
			}
			for _, g := range got {
				if out >= len(lines) {
					t.Fatalf("more lines emitted than fed")
				}
				if !bytes.Equal(g, lines[out]) {
					t.Fatalf("line %d emitted as %q, fed %q", out, g, lines[out])
				}
				out++
			}
			if end != ends[out-1] {
				t.Fatalf("entry end %d, want %d", end, ends[out-1])
			}
			return nil
		}
		now := t0
		every := int(tick%8) + 1
		for i, l := range lines {
			now = now.Add(time.Duration(tick) * 10 * time.Millisecond)
			if err := a.Add(l, ends[i], 0, now, emit); err != nil {
				t.Fatal(err)
			}
			if i%every == 0 {
				if err := a.Flush(now, emit); err != nil {
					t.Fatal(err)
				}
			}
			start, end, ok := a.Pending()
			if ok != (out <= i) {
				t.Fatalf("after line %d: pending %v with %d lines emitted", i, ok, out)
			}
			if ok {
				want := uint64(0)
				if out > 0 {
					want = ends[out-1]
				}
				if start != want || end != ends[i] {
					t.Fatalf("after line %d: pending (%d, %d), want (%d, %d)", i, start, end, want, ends[i])
				}
			}
		}
		if err := a.FlushAll(emit); err != nil {
			t.Fatal(err)
		}
		if out != len(lines) {
			t.Fatalf("%d lines fed, %d emitted", len(lines), out)
		}
	})
}
