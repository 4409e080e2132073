package multiline

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/logcapturer/log_capturer_go/wal/record"
)

func TestModes(t *testing.T) {
	tests := []struct {
		name  string
		cfg   Config
		lines []string
		want  []string // entries, lines joined with "|"
		flags []record.Flags
	}{
		{
			name:  "start",
			cfg:   Config{Mode: ModeStart, Pattern: `^\d`},
			lines: []string{"1 a", " b", " c", "2 d", "3 e", " f"},
			want:  []string{"1 a| b| c", "2 d", "3 e| f"},
		},
		{
			name:  "start orphan head is partial",
			cfg:   Config{Mode: ModeStart, Pattern: `^\d`},
			lines: []string{" x", " y", "1 a", " b"},
			want:  []string{" x| y", "1 a| b"},
			flags: []record.Flags{record.FlagPartial, 0},
		},
		{
			name:  "start negate",
			cfg:   Config{Mode: ModeStart, Pattern: `^\s`, Negate: true},
			lines: []string{"a", " b", "c", "d", " e"},
			want:  []string{"a| b", "c", "d| e"},
		},
		{
			name:  "continue",
			cfg:   Config{Mode: ModeContinue, Pattern: `^\s`},
			lines: []string{"a", " b", " c", "d", "e", " f"},
			want:  []string{"a| b| c", "d", "e| f"},
		},
		{
			name:  "continue negate",
			cfg:   Config{Mode: ModeContinue, Pattern: `^\d`, Negate: true},
			lines: []string{"1", "x", "2", "3", "y", "z"},
			want:  []string{"1|x", "2", "3|y|z"},
		},
		{
			name:  "end",
			cfg:   Config{Mode: ModeEnd, Pattern: `;$`},
			lines: []string{"select", "1;", "select 2;", "update t", "set a=1", "where b;", "tail"},
			want:  []string{"select|1;", "select 2;", "update t|set a=1|where b;", "tail"},
			flags: []record.Flags{0, 0, 0, record.FlagPartial},
		},
		{
			name:  "end negate",
			cfg:   Config{Mode: ModeEnd, Pattern: `\\$`, Negate: true},
			lines: []string{`a \`, `b \`, `c`, `d`},
			want:  []string{`a \|b \|c`, `d`},
		},
		{
			name:  "empty lines are lines",
			cfg:   Config{Mode: ModeStart, Pattern: `^#`},
			lines: []string{"#1", "", "", "#2", ""},
			want:  []string{"#1||", "#2|"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := assemble(t, tt.cfg, frameStrings(tt.lines...))
			var gs []string
			for _, e := range got {
				gs = append(gs, strings.ReplaceAll(e.text, "\n", "|"))
			}
			if !slices.Equal(gs, tt.want) {
				t.Fatalf("entries\n got %q\nwant %q", gs, tt.want)
			}
			for i, f := range tt.flags {
				if got[i].flags != f {
					t.Errorf("entry %d flags %v, want %v", i, got[i].flags, f)
				}
			}
		})
	}
}

// Offsets: an entry carries its last line's end offset; Pending reports the
// offset a re-read must start from, which never passes an unemitted line.
func TestOffsetsAndPending(t *testing.T) {
	a := mustNew(t, Config{Mode: ModeStart, Pattern: `^\d`})
	a.Reset(1000) // the stream resumes at a saved position
	if _, _, ok := a.Pending(); ok {
		t.Fatal("pending before any line")
	}
	var out []entry
	emit := collector(&out)
	lines := frameStrings("1 a", " b", "2 c", " d", " e")
	for i := range lines {
		lines[i].end += 1000
	}
	// "1 a" [1000,1004) " b" [1004,1007) "2 c" [1007,1011) " d" [1011,1014) " e" [1014,1017)
	steps := []struct {
		pendStart, pendEnd uint64
		emitted            int
	}{
		{1000, 1004, 0},
		{1000, 1007, 0},
		{1007, 1011, 1},
		{1007, 1014, 1},
		{1007, 1017, 1},
	}
	for i, l := range lines {
		if err := a.Add(l.text, l.end, 0, t0, emit); err != nil {
			t.Fatal(err)
		}
		s, e, ok := a.Pending()
		if !ok || s != steps[i].pendStart || e != steps[i].pendEnd || len(out) != steps[i].emitted {
			t.Fatalf("after line %d: pending (%d,%d,%v) emitted %d, want (%d,%d) %d",
				i, s, e, ok, len(out), steps[i].pendStart, steps[i].pendEnd, steps[i].emitted)
		}
	}
	if out[0].end != 1007 || out[0].text != "1 a\n b" {
		t.Fatalf("first entry %+v", out[0])
	}
	if err := a.FlushAll(emit); err != nil {
		t.Fatal(err)
	}
	if out[1].end != 1017 {
		t.Fatalf("second entry end %d", out[1].end)
	}
	if _, _, ok := a.Pending(); ok {
		t.Fatal("pending after FlushAll")
	}
	// Reset drops a pending entry: the caller re-reads it from its start.
	_ = a.Add([]byte("3 f"), 1021, 0, t0, emit)
	a.Reset(1017)
	if _, _, ok := a.Pending(); ok || len(out) != 2 {
		t.Fatal("Reset kept or emitted the pending entry")
	}
	_ = a.Add([]byte("3 f"), 1021, 0, t0, emit)
	if s, _, _ := a.Pending(); s != 1017 {
		t.Fatalf("pending start after Reset %d, want 1017", s)
	}
}

func TestFlushTimeout(t *testing.T) {
	a := mustNew(t, Config{Mode: ModeStart, Pattern: `^\d`, FlushTimeout: 2 * time.Second})
	var out []entry
	emit := collector(&out)
	if _, ok := a.NextFlush(); ok {
		t.Fatal("NextFlush with nothing pending")
	}
	if err := a.Flush(t0.Add(time.Hour), emit); err != nil || len(out) != 0 {
		t.Fatal("Flush with nothing pending emitted")
	}
	_ = a.Add([]byte("1 a"), 4, 0, t0, emit)
	_ = a.Add([]byte(" b"), 7, 0, t0.Add(1500*time.Millisecond), emit) // age counts from the first line
	if at, ok := a.NextFlush(); !ok || !at.Equal(t0.Add(2*time.Second)) {
		t.Fatalf("NextFlush = %v %v", at, ok)
	}
	_ = a.Flush(t0.Add(1999*time.Millisecond), emit)
	if len(out) != 0 {
		t.Fatal("flushed before the timeout")
	}
	_ = a.Flush(t0.Add(2*time.Second), emit)
	if len(out) != 1 || out[0].text != "1 a\n b" || out[0].flags != 0 {
		t.Fatalf("after timeout: %+v", out)
	}
	// Lines of the same entry arriving after the flush form an orphan,
	// flagged partial; the next start line is whole again.
	_ = a.Add([]byte(" c"), 10, 0, t0.Add(3*time.Second), emit)
	_ = a.Add([]byte("2 d"), 14, 0, t0.Add(3*time.Second), emit)
	_ = a.FlushAll(emit)
	if len(out) != 3 || out[1].text != " c" || out[1].flags != record.FlagPartial || out[2].flags != 0 {
		t.Fatalf("orphan: %+v", out)
	}

	// End mode: an entry flushed before its end line is partial, and so is
	// the rest of it.
	e := mustNew(t, Config{Mode: ModeEnd, Pattern: `;$`, FlushTimeout: time.Second})
	out = nil
	_ = e.Add([]byte("select"), 7, 0, t0, emit)
	_ = e.Flush(t0.Add(time.Second), emit)
	_ = e.Add([]byte("1;"), 10, 0, t0.Add(2*time.Second), emit)
	_ = e.Add([]byte("2;"), 13, 0, t0.Add(2*time.Second), emit)
	want := []entry{{"select", 7, record.FlagPartial}, {"1;", 10, record.FlagPartial}, {"2;", 13, 0}}
	if !slices.Equal(out, want) {
		t.Fatalf("end mode flush:\n got %+v\nwant %+v", out, want)
	}
}

func TestLimitsSplit(t *testing.T) {
	tests := []struct {
		name  string
		cfg   Config
		lines []string
		want  []entry
	}{
		{
			name:  "max lines",
			cfg:   Config{Mode: ModeStart, Pattern: `^\d`, MaxLines: 3},
			lines: []string{"1", "a", "b", "c", "d", "e", "f", "2", "g"},
			want: []entry{
				{"1\na\nb", 6, record.FlagPartial},
				{"c\nd\ne", 12, record.FlagPartial},
				{"f", 14, record.FlagPartial},
				{"2\ng", 18, 0},
			},
		},
		{
			name:  "max bytes",
			cfg:   Config{Mode: ModeStart, Pattern: `^\d`, MaxBytes: 10},
			lines: []string{"1 aaaa", "bbb", "cc", "2 dd"},
			// "1 aaaa\nbbb" is 10 bytes: fits; "\ncc" would make 13.
			want: []entry{
				{"1 aaaa\nbbb", 11, record.FlagPartial},
				{"cc", 14, record.FlagPartial},
				{"2 dd", 19, 0},
			},
		},
		{
			name:  "one line over max bytes stands alone",
			cfg:   Config{Mode: ModeStart, Pattern: `^\d`, MaxBytes: 4},
			lines: []string{"1 a", "xxxxxxxxxx", "b", "2"},
			want: []entry{
				{"1 a", 4, record.FlagPartial},
				{"xxxxxxxxxx", 15, record.FlagPartial},
				{"b", 17, record.FlagPartial},
				{"2", 19, 0},
			},
		},
		{
			name:  "end mode split then end",
			cfg:   Config{Mode: ModeEnd, Pattern: `;$`, MaxLines: 2},
			lines: []string{"a", "b", "c;", "d;"},
			want: []entry{
				{"a\nb", 4, record.FlagPartial},
				{"c;", 7, record.FlagPartial},
				{"d;", 10, 0},
			},
		},
		{
			name:  "max lines 1",
			cfg:   Config{Mode: ModeContinue, Pattern: `^\s`, MaxLines: 1},
			lines: []string{"a", " b", "c"},
			want: []entry{
				{"a", 2, record.FlagPartial},
				{" b", 5, record.FlagPartial},
				{"c", 7, 0},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := assemble(t, tt.cfg, frameStrings(tt.lines...))
			if !slices.Equal(got, tt.want) {
				t.Fatalf("\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// Line flags are carried into the entry; FlagMeta (internal to the WAL
// encoding) is not.
func TestFlagsUnion(t *testing.T) {
	a := mustNew(t, Config{Mode: ModeStart, Pattern: `^\d`})
	var out []entry
	emit := collector(&out)
	_ = a.Add([]byte("1"), 2, record.FlagEscaped, t0, emit)
	_ = a.Add([]byte("x"), 4, record.FlagTruncated|record.FlagMeta, t0, emit)
	_ = a.Add([]byte("2"), 6, 0, t0, emit)
	_ = a.FlushAll(emit)
	if out[0].flags != record.FlagEscaped|record.FlagTruncated || out[1].flags != 0 {
		t.Fatalf("flags: %v %v", out[0].flags, out[1].flags)
	}
}

func TestEmitError(t *testing.T) {
	boom := errors.New("wal closed")
	fail := func([]byte, uint64, record.Flags) error { return boom }
	tests := []struct {
		name string
		run  func(a *Assembler) error
	}{
		{"add ending an entry", func(a *Assembler) error {
			_ = a.Add([]byte("1"), 2, 0, t0, fail)
			return a.Add([]byte("2"), 4, 0, t0, fail)
		}},
		{"add at a limit", func(a *Assembler) error {
			_ = a.Add([]byte("1"), 2, 0, t0, fail)
			_ = a.Add([]byte("a"), 4, 0, t0, fail)
			return a.Add([]byte("b"), 6, 0, t0, fail)
		}},
		{"flush", func(a *Assembler) error {
			_ = a.Add([]byte("1"), 2, 0, t0, fail)
			return a.Flush(t0.Add(time.Hour), fail)
		}},
		{"flush all", func(a *Assembler) error {
			_ = a.Add([]byte("1"), 2, 0, t0, fail)
			return a.FlushAll(fail)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := mustNew(t, Config{Mode: ModeStart, Pattern: `^\d`, MaxLines: 2})
			if err := tt.run(a); !errors.Is(err, boom) {
				t.Fatalf("error %v, want %v", err, boom)
			}
			// After Reset the assembler works again from the given offset.
			a.Reset(2)
			var out []entry
			_ = a.Add([]byte("1"), 4, 0, t0, collector(&out))
			_ = a.FlushAll(collector(&out))
			if len(out) != 1 || out[0].text != "1" || out[0].end != 4 {
				t.Fatalf("after Reset: %+v", out)
			}
		})
	}
}

// The emitted slice aliases the buffer: the caller's copy must not change
// when the next entry is assembled, and the input line may be reused.
func TestBufferReuse(t *testing.T) {
	a := mustNew(t, Config{Mode: ModeStart, Pattern: `^\d`})
	var kept [][]byte
	emit := func(e []byte, _ uint64, _ record.Flags) error {
		kept = append(kept, append([]byte(nil), e...))
		return nil
	}
	line := []byte("1 first")
	_ = a.Add(line, 8, 0, t0, emit)
	copy(line, "X")
	_ = a.Add([]byte("2 second"), 17, 0, t0, emit)
	_ = a.FlushAll(emit)
	if string(kept[0]) != "1 first" || string(kept[1]) != "2 second" {
		t.Fatalf("kept %q", kept)
	}
	// A big entry's buffer is not kept.
	big := make([]byte, 100<<10)
	_ = a.Add([]byte("3"), 1, 0, t0, emit)
	_ = a.Add(big, 2, 0, t0, emit)
	_ = a.FlushAll(emit)
	if cap(a.buf) > shrinkCap {
		t.Fatalf("buffer of %d bytes kept after a big entry", cap(a.buf))
	}
}

// Add allocates nothing once its buffer has grown (the hot path of every
// followed file).
func TestAddDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	for _, p := range Presets() {
		t.Run(p, func(t *testing.T) {
			a := mustNew(t, Config{Preset: p})
			lines := frameStrings(
				"Nov 26 20:11:40 [2412] INFO:script: new INVITE",
				"INVITE sip:1002@sbc.example.com SIP/2.0",
				"\tat com.example.App.main(App.java:10)",
				"Traceback (most recent call last):",
				`  File "x.py", line 3, in <module>`,
				"ValueError: bad",
				"# Time: 261126 20:27:56",
				"# User@Host: [root] @ localhost []",
				"SET timestamp=1795724876;",
				"2026-11-26 20:27:56 0 [Note] ready",
			)
			emit := func([]byte, uint64, record.Flags) error { return nil }
			feed := func() {
				for _, l := range lines {
					_ = a.Add(l.text, l.end, 0, t0, emit)
				}
			}
			feed()
			if n := testing.AllocsPerRun(200, feed); n != 0 {
				t.Fatalf("%.1f allocations per %d lines", n, len(lines))
			}
		})
	}
}

// Reset also forgets a preset hook's state: after it, a line is judged as
// the first of a new stream.
func TestResetClearsHookState(t *testing.T) {
	a := mustNew(t, Config{Preset: PresetPython})
	var out []entry
	emit := collector(&out)
	_ = a.Add([]byte("Traceback (most recent call last):"), 35, 0, t0, emit)
	_ = a.Add([]byte(`  File "a.py", line 1, in <module>`), 70, 0, t0, emit)
	a.Reset(0)
	_ = a.Add([]byte("ValueError: x"), 14, 0, t0, emit)
	_ = a.FlushAll(emit)
	if len(out) != 1 || out[0].text != "ValueError: x" || out[0].flags != 0 {
		t.Fatalf("after Reset: %+v", out)
	}
}

func TestCounts(t *testing.T) {
	a := mustNew(t, Config{Mode: ModeStart, Pattern: `^\d`, MaxLines: 2, FlushTimeout: time.Second})
	var out []entry
	emit := collector(&out)
	for _, l := range frameStrings("1 a", " b", " c", "2 d", "3 e") {
		if err := a.Add(l.text, l.end, 0, t0, emit); err != nil {
			t.Fatal(err)
		}
	}
	// "1 a| b" cut at max_lines, " c", "2 d" emitted; "3 e" pending.
	if c := a.TakeCounts(); c != (Counts{Entries: 3, Split: 1}) {
		t.Errorf("counts %+v", c)
	}
	if err := a.Flush(t0.Add(time.Second), emit); err != nil {
		t.Fatal(err)
	}
	if c := a.TakeCounts(); c != (Counts{Entries: 1, Flushed: 1}) {
		t.Errorf("counts after Flush %+v (TakeCounts must clear)", c)
	}
	if err := a.Add([]byte("4 f"), 100, 0, t0, emit); err != nil {
		t.Fatal(err)
	}
	if err := a.FlushAll(emit); err != nil {
		t.Fatal(err)
	}
	if c := a.TakeCounts(); c != (Counts{Entries: 1}) {
		t.Errorf("counts after FlushAll %+v: FlushAll is not a timeout", c)
	}
	if len(out) != 5 {
		t.Errorf("entries %q", texts(out))
	}
}
