package file

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/logcapturer/log_capturer_go/ingest/multiline"
	"github.com/logcapturer/log_capturer_go/wal/record"
)

// mlRoute is a route whose entries start with "E<n> ".
func mlRoute(match string, ml multiline.Config) Route {
	if ml.Mode == "" && ml.Preset == "" {
		ml.Mode, ml.Pattern = multiline.ModeStart, `^E[0-9]+ `
	}
	if ml.FlushTimeout == 0 {
		ml.FlushTimeout = time.Hour // only what a test asks for is flushed by time
	}
	return Route{Name: "ml", Match: []string{match}, Labels: map[string]string{"job": "ml"}, Multiline: ml}
}

func mlConfig(dir string, ml multiline.Config) Config {
	cfg := testConfig(filepath.Join(dir, "*.log"))
	cfg.Routes = []Route{mlRoute(filepath.Join(dir, "*.log"), ml)}
	return cfg
}

// entryText renders entry n with k continuation lines, without the last
// newline: what one record must hold.
func entryText(n, k int, width int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "E%d head", n)
	for i := range k {
		fmt.Fprintf(&b, "\n  at frame %d.%d %s", n, i, strings.Repeat("x", width))
	}
	return b.String()
}

// textsOf returns the records' texts, in capture order.
func textsOf(recs []capRec) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.line
	}
	return out
}

// waitRecords waits until n records were captured and returns them.
func waitRecords(t *testing.T, w *testWAL, n int) []capRec {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d records", n), func() bool { return len(w.records()) >= n })
	return w.records()
}

// checkBoundaries fails unless every position the source saved is 0 or the
// end of an entry: a position never passes the pending entry's start.
func checkBoundaries(t *testing.T, st *testState, ends []uint64) {
	t.Helper()
	for _, c := range st.history() {
		if !c.del && c.offset != 0 && !slices.Contains(ends, c.offset) {
			t.Errorf("position %d saved for %s is not an entry boundary %v", c.offset, c.id, ends)
		}
	}
}

func TestMultilineAcrossReadBuffers(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "app.log")
	cfg := mlConfig(dir, multiline.Config{MaxBytes: 48 << 10})
	cfg.ReadBufferBytes = 4 << 10
	cfg.MaxLineBytes = 4 << 10
	cfg.MaxEntryBytes = 64 << 10
	rng := rand.New(rand.NewPCG(7, 7))
	var want []string
	var ends []uint64
	var data strings.Builder
	for n := range 40 {
		e := entryText(n, rng.IntN(60), rng.IntN(200))
		want = append(want, e)
		data.WriteString(e + "\n")
		ends = append(ends, uint64(data.Len()))
	}
	data.WriteString("E999 the next entry\n") // completes the last one
	all := data.String()

	w, st := newTestWAL(t), newTestState()
	writeFile(t, p, "")
	r := startSource(t, cfg, w, st, nil)
	// Written in random pieces, cut anywhere (inside lines too).
	for off := 0; off < len(all); {
		n := min(len(all)-off, 1+rng.IntN(9000))
		appendFile(t, p, all[off:off+n])
		off += n
		if rng.IntN(4) == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	ackedAt(t, r, p, ends[len(ends)-1])
	recs := w.records()
	if got := textsOf(recs); !slices.Equal(got, want) {
		t.Fatalf("got %d entries, want %d; first difference at %d", len(got), len(want), firstDiff(got, want))
	}
	for i, rec := range recs {
		if rec.offset != ends[i] || rec.flags != 0 || rec.job != "ml" || rec.filename != p || rec.host != "h1" {
			t.Errorf("entry %d: offset %d (want %d) flags %v job %q filename %q host %q", i, rec.offset, ends[i], rec.flags, rec.job, rec.filename, rec.host)
		}
	}
	if pos, _ := positionOf(r, p); pos.ReadOffset != uint64(len(all)) {
		t.Errorf("read offset %d, want %d: the pending entry is read", pos.ReadOffset, len(all))
	}
	checkBoundaries(t, st, ends)
	wantLines := uint64(strings.Count(all, "\n"))
	s := waitStats(t, r, func(s Stats) bool { return s.LinesRead >= wantLines })
	if s.LinesRead != wantLines || s.MultilineEntries != uint64(len(want)) || s.MultilinePartial != 0 || s.MultilineSplit != 0 {
		t.Errorf("stats: lines %d (want %d) entries %d (want %d) partial %d split %d",
			s.LinesRead, wantLines, s.MultilineEntries, len(want), s.MultilinePartial, s.MultilineSplit)
	}
}

// waitStats waits until the source's counters satisfy cond: a tailer adds
// its counts after the read that produced them, maybe after the acks.
func waitStats(t *testing.T, r *running, cond func(Stats) bool) Stats {
	t.Helper()
	var s Stats
	waitFor(t, "counters", func() bool { s = r.src.Stats(); return cond(s) })
	return s
}

func firstDiff(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// A stop (or a crash) with an entry pending leaves the position at the
// entry's start: the next run reads it again and ships it whole, once.
func TestMultilineRestartMidEntry(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "app.log")
	cfg := mlConfig(dir, multiline.Config{})
	e1, e2head := "E1 a\n  c1\n  c2\n", "E2 b\n  d1\n"
	writeFile(t, p, e1+e2head)
	w, st := newTestWAL(t), newTestState()
	r := startSource(t, cfg, w, st, nil)
	ackedAt(t, r, p, uint64(len(e1)))
	waitFor(t, "the pending entry read", func() bool {
		pos, _ := positionOf(r, p)
		return pos.ReadOffset == uint64(len(e1+e2head))
	})
	r.stop(t)
	saved := st.saved()
	if len(saved) != 1 || saved[0].Offset != uint64(len(e1)) {
		t.Fatalf("saved positions %+v: want one at %d, the pending entry's start", saved, len(e1))
	}

	appendFile(t, p, "  d2\nE3 c\n")
	r2 := startSource(t, cfg, w, st, saved)
	ackedAt(t, r2, p, uint64(len(e1+e2head+"  d2\n")))
	recs := w.records()
	want := []string{"E1 a\n  c1\n  c2", "E2 b\n  d1\n  d2"}
	if got := textsOf(recs); !slices.Equal(got, want) {
		t.Fatalf("entries %q, want %q", got, want)
	}
	if recs[1].flags != 0 || recs[0].source != recs[1].source {
		t.Errorf("second entry flags %v, sources %q %q: want whole, same id", recs[1].flags, recs[0].source, recs[1].source)
	}
	checkBoundaries(t, st, []uint64{uint64(len(e1)), uint64(len(e1 + e2head + "  d2\n"))})
}

func TestMultilineFlushTimeout(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "app.log")
	cfg := mlConfig(dir, multiline.Config{FlushTimeout: 50 * time.Millisecond})
	cfg.IdleTimeout = 10 * time.Millisecond // the pending entry keeps the file open
	content := "E1 a\n  x\nE2 b\n  y\n  z\n"
	writeFile(t, p, content)
	w, st := newTestWAL(t), newTestState()
	r := startSource(t, cfg, w, st, nil)
	ackedAt(t, r, p, uint64(len(content)))
	want := []string{"E1 a\n  x", "E2 b\n  y\n  z"}
	if got := textsOf(w.records()); !slices.Equal(got, want) {
		t.Fatalf("entries %q, want %q", got, want)
	}
	for _, rec := range w.records() {
		if rec.flags != 0 {
			t.Errorf("entry %q flagged %v", rec.line, rec.flags)
		}
	}
	if s := waitStats(t, r, func(s Stats) bool { return s.MultilineEntries >= 2 }); s.MultilineFlushed != 1 || s.MultilineEntries != 2 {
		t.Errorf("flushed %d entries %d, want 1 and 2", s.MultilineFlushed, s.MultilineEntries)
	}
	// A continuation that comes after the flush is an entry of its own,
	// flagged partial: its head was shipped already.
	appendFile(t, p, "  late\n")
	recs := waitRecords(t, w, 3)
	if recs[2].line != "  late" || recs[2].flags&record.FlagPartial == 0 {
		t.Errorf("late continuation: %q flags %v", recs[2].line, recs[2].flags)
	}
}

// waitPending waits until the entry after the first acked bytes is read
// and pending: acked at acked, read to the end of the file.
func waitPending(t *testing.T, r *running, p string, acked, size int) {
	t.Helper()
	ackedAt(t, r, p, uint64(acked))
	waitFor(t, "the pending entry read", func() bool {
		pos, _ := positionOf(r, p)
		return pos.ReadOffset == uint64(size)
	})
}

func TestMultilineRotationMidEntry(t *testing.T) {
	for _, how := range []string{"rename", "copytruncate"} {
		t.Run(how, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "app.log")
			cfg := mlConfig(dir, multiline.Config{})
			e1, e2head := "E1 a\n  x\n", "E2 b\n  y1\n"
			writeFile(t, p, e1+e2head)
			w, st := newTestWAL(t), newTestState()
			r := startSource(t, cfg, w, st, nil)
			waitPending(t, r, p, len(e1), len(e1+e2head))

			e := &rotEnv{t: t, dir: dir, p: p}
			appendFile(t, p, "  y2\n") // the writer finishes the entry, then the rotation
			switch how {
			case "rename":
				e.rename(p, p+".1")
				writeFile(t, p, "E3 c\n  z\nE4 d\n")
			case "copytruncate":
				e.copy(p, p+".1")
				e.truncate(p)
				appendFile(t, p, "E3 c\n  z\nE4 d\n")
			}
			recs := waitRecords(t, w, 3)
			got := textsOf(recs)
			slices.Sort(got)
			want := []string{"E1 a\n  x", "E2 b\n  y1\n  y2", "E3 c\n  z"}
			if !slices.Equal(got, want) {
				t.Fatalf("entries %q, want %q", got, want)
			}
			for _, rec := range recs {
				if rec.flags != 0 || rec.filename != p || rec.job != "ml" {
					t.Errorf("entry %q: flags %v filename %q job %q", rec.line, rec.flags, rec.filename, rec.job)
				}
			}
			ackedAt(t, r, p, uint64(len("E3 c\n  z\n")))
			// Nothing more arrives: the rotated content is not read twice.
			if n := len(w.records()); n != 3 {
				t.Errorf("%d records, want 3: %q", n, textsOf(w.records()))
			}
		})
	}
}

func TestMultilineLimitsSplit(t *testing.T) {
	tests := map[string]struct {
		ml         multiline.Config
		content    string
		want       []string
		wantSplit  uint64
		wantPieces uint64
	}{
		"max_lines": {
			ml:        multiline.Config{MaxLines: 3},
			content:   "E1 h\n c1\n c2\n c3\n c4\n c5\n c6\nE2 h\n",
			want:      []string{"E1 h\n c1\n c2", " c3\n c4\n c5", " c6"},
			wantSplit: 2, wantPieces: 3,
		},
		"max_bytes": {
			ml:        multiline.Config{MaxBytes: 20},
			content:   "E1 h\ncccccccc\ndddddddd\neeeeeeee\nffffffff\nE2 h\n",
			want:      []string{"E1 h\ncccccccc", "dddddddd\neeeeeeee", "ffffffff"},
			wantSplit: 2, wantPieces: 3,
		},
		"one line over max_bytes": {
			ml:        multiline.Config{MaxBytes: 20},
			content:   "E1 h\n" + strings.Repeat("z", 30) + "\nE2 h\n",
			want:      []string{"E1 h", strings.Repeat("z", 30)},
			wantSplit: 1, wantPieces: 2,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "app.log")
			writeFile(t, p, tc.content)
			w, st := newTestWAL(t), newTestState()
			r := startSource(t, mlConfig(dir, tc.ml), w, st, nil)
			ackedAt(t, r, p, uint64(len(tc.content)-len("E2 h\n")))
			recs := w.records()
			if got := textsOf(recs); !slices.Equal(got, tc.want) {
				t.Fatalf("entries %q, want %q", got, tc.want)
			}
			for _, rec := range recs {
				if rec.flags != record.FlagPartial {
					t.Errorf("piece %q flags %v, want partial", rec.line, rec.flags)
				}
			}
			s := waitStats(t, r, func(s Stats) bool { return s.MultilineEntries >= tc.wantPieces })
			if s.MultilineSplit != tc.wantSplit || s.MultilinePartial != tc.wantPieces || s.MultilineEntries != tc.wantPieces {
				t.Errorf("split %d partial %d entries %d, want %d %d %d",
					s.MultilineSplit, s.MultilinePartial, s.MultilineEntries, tc.wantSplit, tc.wantPieces, tc.wantPieces)
			}
			if got := metricValue(t, r, "logcapturer_ingest_multiline_entries_split_total"); got != float64(tc.wantSplit) {
				t.Errorf("split metric %v, want %d", got, tc.wantSplit)
			}
		})
	}
}

// Lines cut at max_line_bytes and lines with invalid UTF-8 keep their flags
// and counters inside an entry.
func TestMultilineLineFlags(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "app.log")
	cfg := mlConfig(dir, multiline.Config{})
	cfg.MaxLineBytes = 64
	long := strings.Repeat("x", 200)
	writeFile(t, p, "E1 h\n"+long+"\n  bad \xff byte\nE2 h\n")
	w, st := newTestWAL(t), newTestState()
	r := startSource(t, cfg, w, st, nil)
	recs := waitRecords(t, w, 1)
	want := "E1 h\n" + long[:64] + "\n  bad \\xff byte"
	if recs[0].line != want || recs[0].flags != record.FlagTruncated|record.FlagEscaped {
		t.Errorf("entry %q flags %v, want %q truncated|escaped", recs[0].line, recs[0].flags, want)
	}
	s := waitStats(t, r, func(s Stats) bool { return s.LinesRead >= 4 })
	if s.LinesRead != 4 || s.LinesTruncated != 1 || s.BytesSkipped != 136 || s.LinesEscaped != 1 || s.MultilineEntries != 1 {
		t.Errorf("stats %+v", s)
	}
}

// A file no route matches is read line by line with files_config's labels;
// a route's pattern adds files to follow beyond Include.
func TestMultilineUnroutedFileUnchanged(t *testing.T) {
	dir := t.TempDir()
	plain, routed := filepath.Join(dir, "plain.log"), filepath.Join(dir, "routed.txt")
	content := "E1 a\n  x\nE2 b\n"
	writeFile(t, plain, content)
	writeFile(t, routed, content)
	cfg := testConfig(filepath.Join(dir, "*.log"))
	cfg.Routes = []Route{
		{Name: "nothing", Match: []string{filepath.Join(dir, "none", "*")}, Labels: map[string]string{"job": "never"}},
		mlRoute(routed, multiline.Config{}),
	}
	w, st := newTestWAL(t), newTestState()
	r := startSource(t, cfg, w, st, nil)
	ackedAt(t, r, plain, uint64(len(content)))
	ackedAt(t, r, routed, uint64(len("E1 a\n  x\n")))
	var plainRecs, routedRecs []capRec
	for _, rec := range w.records() {
		if rec.filename == plain {
			plainRecs = append(plainRecs, rec)
		} else {
			routedRecs = append(routedRecs, rec)
		}
	}
	if got := textsOf(plainRecs); !slices.Equal(got, []string{"E1 a", "  x", "E2 b"}) {
		t.Errorf("plain file records %q", got)
	}
	for _, rec := range plainRecs {
		if rec.job != "test" {
			t.Errorf("plain record %q job %q, want files_config's", rec.line, rec.job)
		}
	}
	if len(routedRecs) != 1 || routedRecs[0].line != "E1 a\n  x" || routedRecs[0].job != "ml" || routedRecs[0].filename != routed {
		t.Errorf("routed records %+v", routedRecs)
	}
}

// An append that fails makes the file read again from the last captured
// entry: entries are assembled again whole.
func TestMultilineAppendFailureReassembles(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "app.log")
	cfg := mlConfig(dir, multiline.Config{MaxBytes: 2 << 10})
	cfg.MaxEntryBytes = 8 << 10
	cfg.MaxLineBytes = 1 << 10
	var data strings.Builder
	var want []string
	for n := range 30 {
		e := entryText(n, 5, 100)
		want = append(want, e)
		data.WriteString(e + "\n")
	}
	end := data.Len()
	data.WriteString("E99 next\n")
	writeFile(t, p, data.String())
	w, st := newTestWAL(t), newTestState()
	w.failAck = func(n int) error {
		if n == 2 {
			return errInjected
		}
		return nil
	}
	r := startSource(t, cfg, w, st, nil)
	ackedAt(t, r, p, uint64(end))
	got := map[string]int{}
	for _, rec := range w.records() {
		got[rec.line]++
		if rec.flags != 0 {
			t.Errorf("entry flagged %v after the rewind", rec.flags)
		}
	}
	for _, e := range want {
		if got[e] == 0 {
			t.Errorf("entry %q missing", e[:10])
		}
		delete(got, e)
	}
	if len(got) > 0 {
		t.Errorf("records that are not whole entries: %d", len(got))
	}
}

func TestRouteValidation(t *testing.T) {
	ok := Route{Name: "r", Match: []string{"/var/log/*.log"}, Multiline: multiline.Config{Preset: multiline.PresetMySQLSlow}}
	tests := map[string]struct {
		mutate func(c *Config)
		want   string
	}{
		"no name":       {func(c *Config) { c.Routes[0].Name = "" }, "route 0: name: required"},
		"duplicate":     {func(c *Config) { c.Routes = append(c.Routes, c.Routes[0]) }, `route 1 ("r"): name: used by an earlier route`},
		"no match":      {func(c *Config) { c.Routes[0].Match = nil }, "match: at least one pattern"},
		"bad glob":      {func(c *Config) { c.Routes[0].Match = []string{"/x/[a"} }, `match "/x/[a"`},
		"bad label":     {func(c *Config) { c.Routes[0].Labels = map[string]string{"a-b": "x"} }, `label "a-b": invalid name`},
		"filename":      {func(c *Config) { c.Routes[0].Labels = map[string]string{"filename": "x"} }, `label "filename": set by the source`},
		"bad preset":    {func(c *Config) { c.Routes[0].Multiline.Preset = "nope" }, `multiline.preset: unknown preset "nope"`},
		"bad regexp":    {func(c *Config) { c.Routes[0].Multiline = multiline.Config{Mode: "start", Pattern: "("} }, "multiline.pattern: invalid regexp"},
		"entry too big": {func(c *Config) { c.Routes[0].Multiline.MaxBytes = 4 << 20 }, "max_entry_bytes 1048576 must be at least"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c := testConfig("/var/log/*.log")
			c.Routes = []Route{ok}
			c = c.WithDefaults()
			if err := c.Validate(); err != nil {
				t.Fatalf("valid config: %v", err)
			}
			c.Routes = slices.Clone(c.Routes)
			tc.mutate(&c)
			_, err := New(c, newTestWAL(t), newTestState(), nil, zerolog.Nop(), nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
	// A route's max_bytes sets the default payload size.
	c := testConfig("/var/log/*.log")
	c.Routes = []Route{ok}
	c.Routes[0].Multiline.MaxBytes = 4 << 20
	c.MaxEntryBytes = 0
	if d := c.WithDefaults(); d.MaxEntryBytes != 4<<20+entrySlack || d.Validate() != nil {
		t.Errorf("max_entry_bytes default %d, err %v", d.MaxEntryBytes, d.Validate())
	}
}

// The caller's Routes are not modified by WithDefaults or New.
func TestRoutesNotMutated(t *testing.T) {
	routes := []Route{{Name: "r", Match: []string{"rel/*.log"}, Multiline: multiline.Config{Preset: multiline.PresetSIP}}}
	c := testConfig(filepath.Join(t.TempDir(), "*.log"))
	c.Routes = routes
	if _, err := New(c, newTestWAL(t), newTestState(), nil, zerolog.Nop(), nil); err != nil {
		t.Fatal(err)
	}
	if routes[0].Match[0] != "rel/*.log" || routes[0].Multiline.MaxLines != 0 {
		t.Errorf("caller's routes changed: %+v", routes[0])
	}
}
