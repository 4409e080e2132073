package file

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/logcapturer/log_capturer_go/wal/record"
)

// TestManyFilesWithinBudget tails 2,000 files in a directory tree with 256
// open files at most: files at their end give their slot up to waiting
// ones, are reopened by identity when they grow, and every line of every
// file is captured exactly once.
func TestManyFilesWithinBudget(t *testing.T) {
	const (
		dirs, subs, perDir = 20, 10, 10 // 2,000 files
		budget             = 256
		rounds             = 3
		linesPerRound      = 4
	)
	root := t.TempDir()
	var paths []string
	for d := range dirs {
		for s := range subs {
			for f := range perDir {
				paths = append(paths, filepath.Join(root, fmt.Sprintf("d%02d", d), fmt.Sprintf("s%d", s), fmt.Sprintf("f%d.log", f)))
			}
		}
	}
	writeRound := func(round int) {
		for i, p := range paths {
			var b strings.Builder
			for n := range linesPerRound {
				fmt.Fprintf(&b, "file-%04d line-%02d\n", i, round*linesPerRound+n)
			}
			appendFile(t, p, b.String())
		}
	}
	for _, p := range paths {
		writeFile(t, p, "")
	}
	writeRound(0)
	cfg := testConfig(filepath.Join(root, "**", "*.log"))
	cfg.MaxOpenFiles = budget
	cfg.ScanInterval = 200 * time.Millisecond
	w, st := newTestWAL(t), newTestState()
	r := startSource(t, cfg, w, st, nil)
	total := len(paths) * linesPerRound
	waitFor(t, "the first round", func() bool { return len(w.records()) >= total })
	for round := 1; round < rounds; round++ {
		writeRound(round)
		total += len(paths) * linesPerRound
		waitFor(t, fmt.Sprintf("round %d", round), func() bool { return len(w.records()) >= total })
	}
	scans := r.src.Stats().Scans
	waitFor(t, "three more scans", func() bool { return r.src.Stats().Scans >= scans+3 })

	seen := make(map[string]bool, total)
	for _, c := range w.records() {
		var file, n int
		if _, err := fmt.Sscanf(c.line, "file-%d line-%d", &file, &n); err != nil || c.flags != 0 {
			t.Fatalf("unexpected record %+v", c)
		}
		if c.filename != paths[file] {
			t.Fatalf("line %q under %q", c.line, c.filename)
		}
		if seen[c.line] {
			t.Fatalf("line %q captured twice", c.line)
		}
		seen[c.line] = true
	}
	if len(seen) != total {
		t.Fatalf("captured %d distinct lines of %d", len(seen), total)
	}
	s := r.src.Stats()
	if s.FilesPeak > budget || s.FilesPeak < budget/2 {
		t.Fatalf("peak open files %d; want the budget %d used and never exceeded", s.FilesPeak, budget)
	}
	if s.FilesClosed < uint64(len(paths)-budget) || s.FilesReopen == 0 {
		t.Fatalf("stats %+v: files must have given their slot up and been reopened", s)
	}
	t.Logf("2,000 files, budget %d: peak open %d, closed %d times, reopened %d times, %d scans",
		budget, s.FilesPeak, s.FilesClosed, s.FilesReopen, s.Scans)
}

// TestBadInput feeds the source what real files contain on bad days: a
// 20 MiB line, a binary file, invalid UTF-8, CRLF, NUL bytes and a last line
// completed much later than any timeout. The source keeps running, captures
// every good line that follows, and counts what it cut or escaped.
func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(filepath.Join(dir, "*.log"))
	cfg.MaxLineBytes = 64 << 10
	cfg.IdleTimeout = 100 * time.Millisecond // "minutes" in this test's time

	huge := filepath.Join(dir, "huge.log")
	f, err := os.Create(huge)
	if err != nil {
		t.Fatal(err)
	}
	chunk := []byte(strings.Repeat("z", 1<<20))
	for range 20 {
		if _, err := f.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.WriteString("\nafter huge\n"); err != nil {
		t.Fatal(err)
	}
	f.Close()

	bin := filepath.Join(dir, "binary.log")
	rng := rand.New(rand.NewPCG(1, 2))
	blob := make([]byte, 256<<10)
	for i := range blob {
		blob[i] = byte(rng.Uint32())
	}
	writeFile(t, bin, string(blob)+"\nafter binary\n")

	text := filepath.Join(dir, "text.log")
	writeFile(t, text, "crlf line\r\n"+
		"latin1 caf\xe9\n"+
		"nul\x00byte\n"+
		"cut \xe2\x82\n"+ // a truncated euro sign
		"back\\slash ok\n"+
		"last line, start")

	w, st := newTestWAL(t), newTestState()
	r := startSource(t, cfg, w, st, nil)
	ackedAt(t, r, huge, fileSize(t, huge))
	ackedAt(t, r, bin, fileSize(t, bin))
	ackedAt(t, r, text, fileSize(t, text)-uint64(len("last line, start")))
	waitFor(t, "the text file closed while idle", func() bool {
		p, ok := positionOf(r, text)
		return ok && !p.Open
	})
	time.Sleep(3 * cfg.IdleTimeout)
	appendFile(t, text, " and its end\nfollows\n")
	ackedAt(t, r, text, fileSize(t, text))

	byFile := map[string][]capRec{}
	for _, c := range w.records() {
		byFile[c.filename] = append(byFile[c.filename], c)
	}
	h := byFile[huge]
	if len(h) != 2 || len(h[0].line) != 64<<10 || h[0].flags != record.FlagTruncated || h[1].line != "after huge" {
		t.Fatalf("huge file: %d records", len(h))
	}
	b := byFile[bin]
	if last := b[len(b)-1]; last.line != "after binary" || last.flags != 0 {
		t.Fatalf("binary file: last record %+v", last)
	}
	escaped := 0
	for _, c := range b[:len(b)-1] {
		if c.flags&record.FlagEscaped != 0 {
			escaped++
			if back, ok := unescapeLine([]byte(c.line)); !ok || len(back) == 0 {
				t.Fatalf("escaped line does not unescape: %q", c.line)
			}
		}
	}
	if escaped == 0 {
		t.Fatal("no line of the binary file was escaped")
	}
	var lines []string
	var flags []record.Flags
	for _, c := range byFile[text] {
		lines = append(lines, c.line)
		flags = append(flags, c.flags)
	}
	wantLines := []string{"crlf line", `latin1 caf\xe9`, "nul\x00byte", `cut \xe2\x82`, "back\\slash ok", "last line, start and its end", "follows"}
	wantFlags := []record.Flags{0, record.FlagEscaped, 0, record.FlagEscaped, 0, 0, 0}
	if strings.Join(lines, "|") != strings.Join(wantLines, "|") || fmt.Sprint(flags) != fmt.Sprint(wantFlags) {
		t.Fatalf("text file:\n got %q %v\nwant %q %v", lines, flags, wantLines, wantFlags)
	}
	s := r.src.Stats()
	if s.LinesTruncated != 1 || s.BytesSkipped != 20<<20-64<<10 || s.LinesEscaped != uint64(escaped+2) || s.ReadErrors != 0 {
		t.Fatalf("stats %+v", s)
	}
	for _, m := range []string{"logcapturer_ingest_lines_escaped_total", "logcapturer_ingest_lines_truncated_total"} {
		if v := metricValue(t, r, m); v == 0 {
			t.Fatalf("metric %s = 0", m)
		}
	}
}

// Latin1 files are transcoded and counted.
func TestLatin1(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "app.log")
	writeFile(t, p, "caf\xe9\nplain\n\xc0 la carte\n")
	cfg := testConfig(p)
	cfg.Encoding = EncodingLatin1
	w, st := newTestWAL(t), newTestState()
	r := startSource(t, cfg, w, st, nil)
	ackedAt(t, r, p, fileSize(t, p))
	if got := strings.Join(w.lines(), "|"); got != "café|plain|À la carte" {
		t.Fatalf("captured %q", got)
	}
	if s := r.src.Stats(); s.LinesTranscoded != 2 || s.LinesEscaped != 0 {
		t.Fatalf("stats %+v", s)
	}
}

// A 1 GiB file without a newline (sparse, so the test writes nothing) is
// read with bounded memory: one truncated line.
func TestGiBWithoutNewline(t *testing.T) {
	if testing.Short() {
		t.Skip("reads 1 GiB")
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "big.log")
	const size = 1 << 30
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, size); err != nil {
		t.Fatal(err)
	}
	appendFile(t, p, "\nnext\n")
	cfg := testConfig(p)
	cfg.MaxLineBytes = 64 << 10
	w, st := newTestWAL(t), newTestState()
	peak := sampleHeap(t)
	r := startSource(t, cfg, w, st, nil)
	ackedAt(t, r, p, size+6)
	grew := peak()
	recs := w.records()
	if len(recs) != 2 || len(recs[0].line) != 64<<10 || recs[0].flags != record.FlagTruncated || recs[1].line != "next" {
		t.Fatalf("got %d records", len(recs))
	}
	if grew > 16<<20 {
		t.Fatalf("heap grew by %d MiB while reading a 1 GiB line", grew>>20)
	}
}

// sampleHeap samples the heap until the returned function is called, which
// returns how far the heap grew above its level at the start.
func sampleHeap(t *testing.T) func() uint64 {
	t.Helper()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	var peak atomic.Uint64
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		var ms runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
			runtime.ReadMemStats(&ms)
			if ms.HeapAlloc > peak.Load() {
				peak.Store(ms.HeapAlloc)
			}
		}
	}()
	var once sync.Once
	finish := func() uint64 {
		once.Do(func() { close(stop); <-done })
		return max(peak.Load(), base) - base
	}
	t.Cleanup(func() { finish() })
	return finish
}

// Without file system events (disabled here; the same path is taken when
// inotify instances or watches run out) every directory is polled, counted,
// and nothing is missed. A file reached through a symbolic link that sorts
// first is followed at its real path, once.
func TestPollingAndSymlinks(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "real", "app.log")
	writeFile(t, real, "a\n")
	if err := os.Symlink(real, filepath.Join(dir, "0link.log")); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(filepath.Join(dir, "*.log"), filepath.Join(dir, "**", "*.log"))
	cfg.DisableNotify = true
	w, st := newTestWAL(t), newTestState()
	r := startSource(t, cfg, w, st, nil)
	ackedAt(t, r, real, 2)
	appendFile(t, real, "b\n")
	ackedAt(t, r, real, 4)
	if got := strings.Join(w.lines(), ","); got != "a,b" {
		t.Fatalf("captured %q", got)
	}
	if s := r.src.Stats(); s.PollingDirs < 2 || s.NotifyFallbacks != 0 {
		t.Fatalf("stats %+v: every directory polled (events disabled, not failed)", s)
	}
	if v := metricValue(t, r, "logcapturer_ingest_polling_dirs"); v < 2 {
		t.Fatalf("polling_dirs metric %v", v)
	}
}
