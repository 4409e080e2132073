package file

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/logcapturer/log_capturer_go/wal/record"
)

type frame struct {
	line  string
	end   uint64
	flags record.Flags
}

// referenceFrames frames data the obvious way, for comparison.
func referenceFrames(data []byte, max int) (lines []frame, partial *frame) {
	var off uint64
	for {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			break
		}
		raw := data[:i]
		off += uint64(i) + 1
		data = data[i+1:]
		raw = bytes.TrimSuffix(raw, []byte("\r"))
		var fl record.Flags
		if len(raw) > max {
			raw, fl = raw[:max], record.FlagTruncated
		}
		lines = append(lines, frame{string(raw), off, fl})
	}
	if len(data) > 0 {
		end := off + uint64(len(data))
		fl := record.FlagPartial
		if len(data) > max {
			data, fl = data[:max], fl|record.FlagTruncated
		}
		partial = &frame{string(data), end, fl}
	}
	return lines, partial
}

// frameChunks feeds chunks to a framer and returns what it emitted, then
// what flush emitted.
func frameChunks(t testing.TB, max int, chunks [][]byte) (lines []frame, partial []frame) {
	f := newFramer(max, 0)
	emit := func(dst *[]frame) emitFunc {
		return func(line []byte, end uint64, flags record.Flags) error {
			*dst = append(*dst, frame{string(line), end, flags})
			return nil
		}
	}
	for _, c := range chunks {
		if err := f.feed(c, emit(&lines)); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.flush(emit(&partial)); err != nil {
		t.Fatal(err)
	}
	return lines, partial
}

func TestFramer(t *testing.T) {
	const max = 8
	tests := map[string]struct {
		chunks  []string
		want    []frame
		partial []frame
		skipped uint64
	}{
		"one line":                {chunks: []string{"abc\n"}, want: []frame{{"abc", 4, 0}}},
		"no trailing newline":     {chunks: []string{"abc\nde"}, want: []frame{{"abc", 4, 0}}, partial: []frame{{"de", 6, record.FlagPartial}}},
		"completed in next chunk": {chunks: []string{"ab", "c", "\nx\n"}, want: []frame{{"abc", 4, 0}, {"x", 6, 0}}},
		"empty lines":             {chunks: []string{"\n\n"}, want: []frame{{"", 1, 0}, {"", 2, 0}}},
		"crlf":                    {chunks: []string{"a\r\nb\r", "\n"}, want: []frame{{"a", 3, 0}, {"b", 6, 0}}},
		"lone cr kept inside":     {chunks: []string{"a\rb\n"}, want: []frame{{"a\rb", 4, 0}}},
		"exactly max":             {chunks: []string{"12345678\n"}, want: []frame{{"12345678", 9, 0}}},
		"exactly max with crlf":   {chunks: []string{"1234567", "8\r\n"}, want: []frame{{"12345678", 10, 0}}},
		"max plus one":            {chunks: []string{"123456789\n"}, want: []frame{{"12345678", 10, record.FlagTruncated}}, skipped: 1},
		"long line in pieces": {
			chunks:  []string{"1234", "5678", "9abc", "def\nok\n"},
			want:    []frame{{"12345678", 16, record.FlagTruncated}, {"ok", 19, 0}},
			skipped: 7,
		},
		"long line with crlf in pieces": {
			chunks:  []string{"123456789abc\r", "\n"},
			want:    []frame{{"12345678", 14, record.FlagTruncated}},
			skipped: 4,
		},
		"long partial": {
			chunks:  []string{"a\n123456789abc"},
			want:    []frame{{"a", 2, 0}},
			partial: []frame{{"12345678", 14, record.FlagPartial | record.FlagTruncated}},
			skipped: 4,
		},
		"partial crlf not stripped": {chunks: []string{"ab\r"}, partial: []frame{{"ab\r", 3, record.FlagPartial}}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			chunks := make([][]byte, len(tc.chunks))
			for i, c := range tc.chunks {
				chunks[i] = []byte(c)
			}
			f := newFramer(max, 0)
			var got, part []frame
			for _, c := range chunks {
				if err := f.feed(c, func(l []byte, end uint64, fl record.Flags) error {
					got = append(got, frame{string(l), end, fl})
					return nil
				}); err != nil {
					t.Fatal(err)
				}
			}
			if err := f.flush(func(l []byte, end uint64, fl record.Flags) error {
				part = append(part, frame{string(l), end, fl})
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("lines = %+v, want %+v", got, tc.want)
			}
			if !slices.Equal(part, tc.partial) {
				t.Errorf("partial = %+v, want %+v", part, tc.partial)
			}
			if s := f.takeSkipped(); s != tc.skipped {
				t.Errorf("skipped = %d, want %d", s, tc.skipped)
			}
			if f.pending() != 0 {
				t.Errorf("pending after flush = %d", f.pending())
			}
		})
	}
}

func TestFramerHoldsPartialUntilComplete(t *testing.T) {
	f := newFramer(100, 0)
	var got []string
	emit := func(l []byte, _ uint64, _ record.Flags) error { got = append(got, string(l)); return nil }
	if err := f.feed([]byte("first\nsec"), emit); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []string{"first"}) || f.pending() != 3 {
		t.Fatalf("got %q pending %d; want [first] and 3 held", got, f.pending())
	}
	if err := f.feed([]byte("ond\n"), emit); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []string{"first", "second"}) || f.pending() != 0 {
		t.Fatalf("got %q pending %d", got, f.pending())
	}
}

func TestFramerStartMidLine(t *testing.T) {
	f := newFramer(4, 10)
	f.startMidLine()
	var got []frame
	emit := func(l []byte, end uint64, fl record.Flags) error {
		got = append(got, frame{string(l), end, fl})
		return nil
	}
	if err := f.feed([]byte("tail of a very long line"), emit); err != nil {
		t.Fatal(err)
	}
	if err := f.feed([]byte("\nnext\n"), emit); err != nil {
		t.Fatal(err)
	}
	want := []frame{{"next", 40, 0}}
	if !slices.Equal(got, want) {
		t.Fatalf("got %+v want %+v", got, want)
	}
	if s := f.takeSkipped(); s != 0 {
		t.Fatalf("a skipped head is not a truncation, skipped = %d", s)
	}
}

func TestFramerEmitErrorStops(t *testing.T) {
	f := newFramer(10, 0)
	boom := errors.New("boom")
	n := 0
	err := f.feed([]byte("a\nb\nc\n"), func([]byte, uint64, record.Flags) error {
		n++
		if n == 2 {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) || n != 2 {
		t.Fatalf("err = %v after %d lines; want boom after 2", err, n)
	}
}

// A line of any length costs at most max+1 bytes of held memory.
func TestFramerBoundedHold(t *testing.T) {
	f := newFramer(1024, 0)
	chunk := bytes.Repeat([]byte("x"), 64<<10)
	for range 64 {
		if err := f.feed(chunk, func([]byte, uint64, record.Flags) error { t.Fatal("no line expected"); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	if cap(f.pend) > 2048 {
		t.Fatalf("held buffer grew to %d bytes", cap(f.pend))
	}
	if f.pending() != 64*64<<10 {
		t.Fatalf("pending = %d", f.pending())
	}
}

func FuzzFramer(f *testing.F) {
	f.Add([]byte("a\nbb\r\nccc"), uint8(3), []byte{1, 2, 3})
	f.Add([]byte(strings.Repeat("long line ", 20)+"\n\n\r\n"), uint8(7), []byte{0, 50, 1})
	f.Add([]byte("\r\r\n\n"), uint8(1), []byte{})
	f.Fuzz(func(t *testing.T, data []byte, maxB uint8, cuts []byte) {
		max := int(maxB%32) + 1
		// Split data at the points given by cuts.
		var chunks [][]byte
		rest := data
		for _, c := range cuts {
			if len(rest) == 0 {
				break
			}
			n := int(c) % (len(rest) + 1)
			chunks = append(chunks, rest[:n])
			rest = rest[n:]
		}
		chunks = append(chunks, rest)
		lines, partial := frameChunks(t, max, chunks)
		wantLines, wantPartial := referenceFrames(data, max)
		if !slices.Equal(lines, wantLines) {
			t.Fatalf("max %d chunks %q:\nlines %+v\nwant  %+v", max, chunks, lines, wantLines)
		}
		switch {
		case wantPartial == nil && len(partial) != 0:
			t.Fatalf("unexpected partial %+v", partial)
		case wantPartial != nil && (len(partial) != 1 || partial[0] != *wantPartial):
			t.Fatalf("partial %+v, want %+v", partial, *wantPartial)
		}
	})
}
