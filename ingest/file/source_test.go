package file

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/logcapturer/log_capturer_go/ingest"
	"github.com/logcapturer/log_capturer_go/wal/record"
)

func TestPartialLineHeldUntilComplete(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "app.log")
	writeFile(t, p, "one\ntwo\r\nthr")
	w, st := newTestWAL(t), newTestState()
	r := startSource(t, testConfig(filepath.Join(dir, "*.log")), w, st, nil)

	pos := ackedAt(t, r, p, 9)
	if pos.ReadOffset != 12 {
		t.Fatalf("read offset %d, want 12 (the held partial line is read)", pos.ReadOffset)
	}
	if got := w.lines(); !slices.Equal(got, []string{"one", "two"}) {
		t.Fatalf("captured %q; the partial line must be held back", got)
	}

	appendFile(t, p, "ee\n")
	ackedAt(t, r, p, 15)
	recs := w.records()
	if got := w.lines(); !slices.Equal(got, []string{"one", "two", "three"}) {
		t.Fatalf("captured %q", got)
	}
	for i, want := range []uint64{4, 9, 15} {
		c := recs[i]
		if c.offset != want {
			t.Errorf("line %q offset %d, want end offset %d", c.line, c.offset, want)
		}
		if c.filename != p || c.host != "h1" || c.job != "test" || c.flags != 0 || c.time == 0 {
			t.Errorf("record %+v: want filename %s, host h1, job test, no flags, a time", c, p)
		}
		if c.source != pos.ID {
			t.Errorf("source %q, want %q", c.source, pos.ID)
		}
	}
	if sp, ok := st.position(pos.ID); !ok || sp.Offset != 15 || sp.WALIndex == 0 {
		t.Fatalf("saved position %+v, want offset 15 with a WAL index", sp)
	}
	s := r.src.Stats()
	if s.LinesRead != 3 || s.BytesRead != 15 || s.FilesOpen != 1 {
		t.Fatalf("stats %+v", s)
	}
	if got := metricValue(t, r, "logcapturer_ingest_lines_total"); got != 3 {
		t.Fatalf("lines_total metric = %v, want 3", got)
	}
}

// metricValue reads one metric of the running source's registry.
func metricValue(t *testing.T, r *running, name string) float64 {
	t.Helper()
	mfs, err := r.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, mt := range mf.GetMetric() {
			if mt.GetCounter() != nil {
				return mt.GetCounter().GetValue()
			}
			return mt.GetGauge().GetValue()
		}
	}
	t.Fatalf("metric %s not found", name)
	return 0
}

func TestLongLineTruncated(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "app.log")
	long := strings.Repeat("x", 5000)
	writeFile(t, p, "short\n"+long+"\nnext\n")
	cfg := testConfig(p)
	cfg.MaxLineBytes = 1000
	w, st := newTestWAL(t), newTestState()
	r := startSource(t, cfg, w, st, nil)
	ackedAt(t, r, p, fileSize(t, p))
	recs := w.records()
	if len(recs) != 3 {
		t.Fatalf("got %d records, want 3", len(recs))
	}
	if recs[1].line != long[:1000] || recs[1].flags != record.FlagTruncated || recs[1].offset != 6+5001 {
		t.Fatalf("long line: len %d flags %v offset %d", len(recs[1].line), recs[1].flags, recs[1].offset)
	}
	if recs[2].line != "next" || recs[2].flags != 0 {
		t.Fatalf("line after the long one: %+v", recs[2])
	}
	if s := r.src.Stats(); s.LinesTruncated != 1 || s.BytesSkipped != 4000 {
		t.Fatalf("stats %+v, want 1 truncated line and 4000 bytes skipped", s)
	}
}

// A 50 MiB "line" without a newline is read with bounded memory.
func TestHugeLineBoundedMemory(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "huge.log")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	chunk := []byte(strings.Repeat("y", 1<<20))
	const size = 50 << 20
	for range size >> 20 {
		if _, err := bw.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := bw.WriteString("\nafter\n"); err != nil {
		t.Fatal(err)
	}
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	chunk = nil

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	var peak atomic.Uint64
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var ms runtime.MemStats
		for {
			select {
			case <-stopSampling:
				return
			case <-time.After(2 * time.Millisecond):
			}
			runtime.ReadMemStats(&ms)
			if ms.HeapAlloc > peak.Load() {
				peak.Store(ms.HeapAlloc)
			}
		}
	}()

	cfg := testConfig(p)
	cfg.MaxLineBytes = 64 << 10
	w, st := newTestWAL(t), newTestState()
	r := startSource(t, cfg, w, st, nil)
	ackedAt(t, r, p, size+7)
	close(stopSampling)
	<-sampled

	recs := w.records()
	if len(recs) != 2 || len(recs[0].line) != 64<<10 || recs[0].flags != record.FlagTruncated || recs[1].line != "after" {
		t.Fatalf("got %d records; first len %d flags %v", len(recs), len(recs[0].line), recs[0].flags)
	}
	if s := r.src.Stats(); s.BytesSkipped != size-64<<10 {
		t.Fatalf("skipped %d bytes, want %d", s.BytesSkipped, size-64<<10)
	}
	if grew := int64(peak.Load()) - int64(base); grew > 16<<20 {
		t.Fatalf("heap grew by %d MiB while reading a 50 MiB line", grew>>20)
	}
}

func TestResumeFromSavedPosition(t *testing.T) {
	tests := map[string]struct {
		keepMeta bool
	}{
		"checkpoint with meta": {keepMeta: true},
		"known from WAL only":  {keepMeta: false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "app.log")
			writeFile(t, p, "a1\na2\na3\n")
			w1, st := newTestWAL(t), newTestState()
			r1 := startSource(t, testConfig(p), w1, st, nil)
			first := ackedAt(t, r1, p, 9)
			r1.stop(t)

			saved := st.saved()
			if len(saved) != 1 || saved[0].ID != first.ID || saved[0].Offset != 9 {
				t.Fatalf("saved %+v", saved)
			}
			if !tc.keepMeta {
				saved[0].Meta = nil
			}
			appendFile(t, p, "b1\nb2\n")
			w2 := newTestWAL(t)
			r2 := startSource(t, testConfig(p), w2, st, saved)
			pos := ackedAt(t, r2, p, 15)
			if pos.ID != first.ID {
				t.Fatalf("id changed across restart: %s -> %s", first.ID, pos.ID)
			}
			recs := w2.records()
			if got := w2.lines(); !slices.Equal(got, []string{"b1", "b2"}) {
				t.Fatalf("after restart captured %q; want only the new lines", got)
			}
			if recs[0].offset != 12 || recs[1].offset != 15 {
				t.Fatalf("offsets %d %d, want 12 15", recs[0].offset, recs[1].offset)
			}
		})
	}
}

// Same device and inode, other content: the saved position is not reused.
func TestInodeReuseDetectedByFingerprint(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "app.log")
	writeFile(t, p, "alpha\nbeta\n")
	w1, st := newTestWAL(t), newTestState()
	r1 := startSource(t, testConfig(p), w1, st, nil)
	old := ackedAt(t, r1, p, 11)
	r1.stop(t)

	ino := func() uint64 {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Sys().(*syscall.Stat_t).Ino
	}
	inoBefore := ino()
	// Rewritten in place: same inode, longer than the saved offset, other head.
	writeFile(t, p, "gamma\ndelta\nepsilon\n")
	if ino() != inoBefore {
		t.Skip("file system gave a new inode; the case needs the same one")
	}
	w2 := newTestWAL(t)
	r2 := startSource(t, testConfig(p), w2, st, st.saved())
	pos := ackedAt(t, r2, p, 20)
	if got := w2.lines(); !slices.Equal(got, []string{"gamma", "delta", "epsilon"}) {
		t.Fatalf("captured %q; want the new content from its start", got)
	}
	if pos.ID == old.ID {
		t.Fatalf("same id %s for other content", pos.ID)
	}
	if !st.wasDeleted(old.ID) {
		t.Fatalf("old position %s not deleted", old.ID)
	}
	if s := r2.src.Stats(); s.InodeReuses != 1 {
		t.Fatalf("inode reuses = %d, want 1", s.InodeReuses)
	}
	// The fingerprint kept in meta covers the file's head as it grew.
	sp, _ := st.position(pos.ID)
	m, err := decodeMeta(sp.Meta)
	if err != nil || m.fp.n != 20 || m.path != p {
		t.Fatalf("meta %+v, %v; want a 20-byte fingerprint and the path", m, err)
	}
}

// Positions never advance before the WAL acknowledged the lines.
func TestPositionWaitsForAck(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "app.log")
	writeFile(t, p, "l1\nl2\nl3\n")
	w, st := newTestWAL(t), newTestState()
	release := w.hold()
	r := startSource(t, testConfig(p), w, st, nil)
	waitFor(t, "an append", func() bool { return w.appendCount() >= 1 })
	waitFor(t, "read ahead", func() bool {
		pos, ok := positionOf(r, p)
		return ok && pos.ReadOffset == 9
	})
	// Give the source every chance to misbehave before checking.
	time.Sleep(50 * time.Millisecond)
	if h := st.history(); len(h) != 0 {
		t.Fatalf("position set before the ack: %+v", h)
	}
	if pos, _ := positionOf(r, p); pos.AckedOffset != 0 || pos.InFlight != 1 {
		t.Fatalf("positions %+v, want acked 0 and one payload in flight", pos)
	}
	release()
	ackedAt(t, r, p, 9)
	h := st.history()
	if len(h) != 1 || h[0].offset != 9 {
		t.Fatalf("state calls %+v, want one SetPosition at 9", h)
	}
}

func TestAppendFailuresAreRetried(t *testing.T) {
	tests := map[string]struct {
		failAck    func(n int) error
		failAppend func(n int) error
	}{
		"done reports error": {failAck: func(n int) error {
			if n <= 2 {
				return errInjected
			}
			return nil
		}},
		"append refuses": {failAppend: func(n int) error {
			if n <= 2 {
				return errInjected
			}
			return nil
		}},
		"middle payload fails": {failAck: func(n int) error {
			if n == 3 {
				return errInjected
			}
			return nil
		}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "app.log")
			var want []string
			var b strings.Builder
			for i := range 300 {
				want = append(want, fmt.Sprintf("line-%04d-%s", i, strings.Repeat("z", 40)))
				b.WriteString(want[i] + "\n")
			}
			writeFile(t, p, b.String())
			cfg := testConfig(p)
			cfg.MaxLineBytes = 100
			cfg.MaxEntryBytes = 100 + entrySlack // several payloads
			cfg.MaxInflight = 3
			w, st := newTestWAL(t), newTestState()
			w.failAck, w.failAppend = tc.failAck, tc.failAppend
			r := startSource(t, cfg, w, st, nil)
			ackedAt(t, r, p, fileSize(t, p))

			got := map[string]int{}
			for _, l := range w.lines() {
				got[l]++
			}
			for _, l := range want {
				if got[l] == 0 {
					t.Fatalf("line %q lost", l)
				}
			}
			var last uint64
			for _, c := range st.history() {
				if c.offset < last {
					t.Fatalf("position went back: %+v", st.history())
				}
				last = c.offset
			}
			if s := r.src.Stats(); s.AppendErrors == 0 {
				t.Fatalf("append errors not counted: %+v", s)
			}
		})
	}
}

func TestPayloadSizeAndInflightBounds(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "app.log")
	var b strings.Builder
	for i := range 2000 {
		fmt.Fprintf(&b, "%06d %s\n", i, strings.Repeat("q", 93))
	}
	writeFile(t, p, b.String())
	cfg := testConfig(p)
	cfg.MaxLineBytes = 1024
	cfg.MaxEntryBytes = 1024 + entrySlack
	cfg.MaxInflight = 2
	w, st := newTestWAL(t), newTestState()
	w.ackDelay = time.Millisecond
	r := startSource(t, cfg, w, st, nil)
	ackedAt(t, r, p, fileSize(t, p))
	if n := len(w.lines()); n != 2000 {
		t.Fatalf("captured %d lines", n)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.maxPayload > cfg.MaxEntryBytes {
		t.Fatalf("payload of %d bytes > max %d", w.maxPayload, cfg.MaxEntryBytes)
	}
	if w.maxInfl > cfg.MaxInflight || w.maxInfl == 0 {
		t.Fatalf("max in flight %d, limit %d", w.maxInfl, cfg.MaxInflight)
	}
	if w.appends < 40 {
		t.Fatalf("%d appends; want the data split into many payloads", w.appends)
	}
}

// checkExactlyOnceInOrder checks that every line "seq-NNNN" for n in [0,total) was
// captured exactly once and in order within each source id.
func checkExactlyOnceInOrder(t *testing.T, recs []capRec, total int) {
	t.Helper()
	seen := map[string]bool{}
	lastBySource := map[string]int{}
	for _, c := range recs {
		if c.flags&record.FlagPartial != 0 {
			continue
		}
		var n int
		if _, err := fmt.Sscanf(c.line, "seq-%d", &n); err != nil {
			t.Fatalf("unexpected line %q", c.line)
		}
		if seen[c.line] {
			t.Fatalf("line %q captured twice", c.line)
		}
		seen[c.line] = true
		if last, ok := lastBySource[c.source]; ok && n <= last {
			t.Fatalf("line %d after %d in source %s", n, last, c.source)
		}
		lastBySource[c.source] = n
	}
	for i := range total {
		if l := fmt.Sprintf("seq-%04d", i); !seen[l] {
			t.Fatalf("line %q lost", l)
		}
	}
}

func seqLines(from, to int) string {
	var b strings.Builder
	for i := from; i < to; i++ {
		fmt.Fprintf(&b, "seq-%04d\n", i)
	}
	return b.String()
}

// Rename rotation mid-write: the old file is drained (lines written to it
// after the rename too, and its last incomplete line, flagged partial), the
// new one read from its start.
func TestRenameRotation(t *testing.T) {
	for _, notify := range []bool{true, false} {
		t.Run(fmt.Sprintf("notify=%v", notify), func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "app.log")
			cfg := testConfig(p)
			cfg.DisableNotify = !notify
			w, st := newTestWAL(t), newTestState()
			writeFile(t, p, "")
			r := startSource(t, cfg, w, st, nil)
			ackedAt(t, r, p, 0)

			f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			write := func(f *os.File, s string) {
				if _, err := f.WriteString(s); err != nil {
					t.Fatal(err)
				}
			}
			write(f, seqLines(0, 100))
			waitFor(t, "the first lines", func() bool { return len(w.lines()) >= 50 })
			old := PositionInfo{ID: w.records()[0].source} // minted with the first bytes
			if err := os.Rename(p, p+".1"); err != nil {
				t.Fatal(err)
			}
			write(f, seqLines(100, 150)) // the writer has not reopened yet
			nf, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			defer nf.Close()
			write(nf, seqLines(150, 300))
			write(f, "last words")

			waitFor(t, "all lines", func() bool { return len(w.lines()) >= 301 })
			waitFor(t, "old file closed", func() bool { return r.src.Stats().FilesOpen == 1 })
			recs := w.records()
			checkExactlyOnceInOrder(t, recs, 300)
			var partial []capRec
			for _, c := range recs {
				if c.flags&record.FlagPartial != 0 {
					partial = append(partial, c)
				}
			}
			if len(partial) != 1 || partial[0].line != "last words" || partial[0].source != old.ID {
				t.Fatalf("partial records %+v, want the old file's last words", partial)
			}
			for _, c := range recs {
				if c.source == old.ID && c.filename != p {
					t.Fatalf("old file's line %+v lost its stream label", c)
				}
			}
			// The rotated file's position stays while the file exists (late
			// writes to it are read from there), at its end.
			if sp, ok := st.position(old.ID); !ok || sp.Offset != 150*9+10 || st.wasDeleted(old.ID) {
				t.Fatalf("old id position %+v (deleted %v): %+v", sp, st.wasDeleted(old.ID), st.history())
			}
			if s := r.src.Stats(); s.RotationsRename != 1 || s.PartialLines != 1 {
				t.Fatalf("stats %+v", s)
			}
			if err := os.Remove(p + ".1"); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "old position deleted once its file is gone", func() bool { return st.wasDeleted(old.ID) })
		})
	}
}

// Several rotations between two scans, with the rotated names still matched.
func TestSeveralRotationsBetweenScans(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "app.log")
	cfg := testConfig(p + "*")
	cfg.DisableNotify = true
	cfg.ScanInterval = 300 * time.Millisecond
	w, st := newTestWAL(t), newTestState()
	writeFile(t, p, seqLines(0, 10))
	r := startSource(t, cfg, w, st, nil)
	ackedAt(t, r, p, 90)

	rotate := func() {
		for _, mv := range [][2]string{{p + ".2", p + ".3"}, {p + ".1", p + ".2"}, {p, p + ".1"}} {
			if err := os.Rename(mv[0], mv[1]); err != nil && !errors.Is(err, os.ErrNotExist) {
				t.Fatal(err)
			}
		}
	}
	rotate()
	writeFile(t, p, seqLines(10, 20))
	rotate()
	writeFile(t, p, seqLines(20, 30))
	rotate()
	writeFile(t, p, seqLines(30, 40))
	appendFile(t, p+".3", seqLines(40, 45)) // the oldest file still written to

	waitFor(t, "all lines", func() bool { return len(w.lines()) >= 45 })
	checkExactlyOnceInOrder(t, w.records(), 45)
	waitFor(t, "four files followed", func() bool { return len(r.src.Positions()) == 4 })
	if s := r.src.Stats(); s.RotationsRename != 0 {
		t.Fatalf("rotations %d: files renamed within the pattern did not leave it", s.RotationsRename)
	}
}

func TestTruncation(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "app.log")
	writeFile(t, p, "one\ntwo\nthree\n")
	w, st := newTestWAL(t), newTestState()
	r := startSource(t, testConfig(p), w, st, nil)
	old := ackedAt(t, r, p, 14)

	if err := os.Truncate(p, 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "truncation noticed", func() bool { return r.src.Stats().Truncations == 1 })
	appendFile(t, p, "four\nfive\n")
	pos := ackedAt(t, r, p, 10)
	if pos.ID == old.ID {
		t.Fatal("truncated file kept its id")
	}
	if got := w.lines(); !slices.Equal(got, []string{"one", "two", "three", "four", "five"}) {
		t.Fatalf("captured %q", got)
	}
	recs := w.records()
	if recs[3].source != pos.ID || recs[3].offset != 5 {
		t.Fatalf("first line after truncation %+v", recs[3])
	}
	if !st.wasDeleted(old.ID) {
		t.Fatal("old id not deleted")
	}
	if sp, ok := st.position(pos.ID); !ok || sp.Offset != 10 {
		t.Fatalf("new id position %+v", sp)
	}
}

// A truncation while the agent was stopped: the file is read from 0.
func TestTruncatedWhileStopped(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "app.log")
	writeFile(t, p, "one\ntwo\nthree\n")
	w1, st := newTestWAL(t), newTestState()
	r1 := startSource(t, testConfig(p), w1, st, nil)
	old := ackedAt(t, r1, p, 14)
	r1.stop(t)

	f, err := os.OpenFile(p, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Same head as before, so only the size tells.
	if _, err := f.WriteString("one\n"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	saved := st.saved()
	saved[0].Meta = nil // as if known from the WAL tail only
	w2 := newTestWAL(t)
	r2 := startSource(t, testConfig(p), w2, st, saved)
	pos := ackedAt(t, r2, p, 4)
	if got := w2.lines(); !slices.Equal(got, []string{"one"}) || pos.ID == old.ID {
		t.Fatalf("captured %q with id %s (old %s)", got, pos.ID, old.ID)
	}
	// The new generation was registered at once and the old one forgotten.
	if !st.wasDeleted(old.ID) {
		t.Fatal("old id not deleted")
	}
}

func TestDeletedFileDrainedAndForgotten(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "app.log")
	writeFile(t, p, "a\nb\nunfinished")
	w, st := newTestWAL(t), newTestState()
	r := startSource(t, testConfig(p), w, st, nil)
	pos := ackedAt(t, r, p, 4)
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "position deleted", func() bool { return st.wasDeleted(pos.ID) })
	recs := w.records()
	if len(recs) != 3 || recs[2].line != "unfinished" || recs[2].flags != record.FlagPartial || recs[2].offset != 14 {
		t.Fatalf("records %+v", recs)
	}
	waitFor(t, "file closed", func() bool { return r.src.Stats().FilesOpen == 0 })
	h := st.history()
	if h[len(h)-1] != (stateCall{del: true, id: pos.ID}) || h[len(h)-2].offset != 14 {
		t.Fatalf("history %+v: want SetPosition at 14 then DeletePosition", h)
	}
}

func TestGlobsThroughSource(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"a.log":              "a\n",
		"sub/b.log":          "b\n",
		"sub/deep/c.log":     "c\n",
		"x.txt":              "x\n",
		"skip.log":           "skip\n",
		"sub/private/d.log":  "d\n",
		"sub/deep/e.log.bak": "e\n",
	}
	for name, content := range files {
		writeFile(t, filepath.Join(dir, name), content)
	}
	if err := os.Symlink(filepath.Join(dir, "a.log"), filepath.Join(dir, "link.log")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo.log"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(filepath.Join(dir, "*.log"), filepath.Join(dir, "**", "*.log"))
	cfg.Exclude = []string{"skip.*", filepath.Join(dir, "sub", "private", "*")}
	w, st := newTestWAL(t), newTestState()
	r := startSource(t, cfg, w, st, nil)
	waitFor(t, "three files", func() bool { return len(w.lines()) >= 3 })
	// One more scan to be sure nothing else shows up.
	scans := r.src.Stats().Scans
	waitFor(t, "two more scans", func() bool { return r.src.Stats().Scans >= scans+2 })
	got := w.lines()
	slices.Sort(got)
	if !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("captured %q, want a, b, c once each", got)
	}
	var paths []string
	for _, pos := range r.src.Positions() {
		paths = append(paths, strings.TrimPrefix(pos.Path, dir+"/"))
	}
	if !slices.Equal(paths, []string{"a.log", "sub/b.log", "sub/deep/c.log"}) {
		t.Fatalf("followed %q", paths)
	}
}

func TestStartAtEnd(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "app.log")
	writeFile(t, p, "old1\nold2\npart")
	cfg := testConfig(filepath.Join(dir, "*.log"))
	cfg.StartAt = StartEnd

	t.Run("first start", func(t *testing.T) {
		w, st := newTestWAL(t), newTestState()
		r := startSource(t, cfg, w, st, nil)
		pos := ackedAt(t, r, p, 10)
		if sp, ok := st.position(pos.ID); !ok || sp.Offset != 10 {
			t.Fatalf("start position not registered: %+v", st.history())
		}
		appendFile(t, p, "ial\nnew\n")
		later := filepath.Join(dir, "later.log")
		writeFile(t, later, "from the start\n")
		ackedAt(t, r, p, 22)
		ackedAt(t, r, later, 15)
		got := w.lines()
		slices.Sort(got)
		if !slices.Equal(got, []string{"from the start", "new", "partial"}) {
			t.Fatalf("captured %q", got)
		}
	})
	t.Run("positions exist", func(t *testing.T) {
		other := filepath.Join(dir, "other.log")
		writeFile(t, other, "o1\n")
		w, st := newTestWAL(t), newTestState()
		saved := []ingest.SavedPosition{{ID: "file:1:2:3", Offset: 5}}
		r := startSource(t, cfg, w, st, saved)
		ackedAt(t, r, other, 3)
		if got := w.lines(); !slices.Contains(got, "o1") || !slices.Contains(got, "old1") {
			t.Fatalf("captured %q: with saved positions every new file is read from its start", got)
		}
		waitFor(t, "unknown position dropped", func() bool { return st.wasDeleted("file:1:2:3") })
	})
}

func TestFindEnd(t *testing.T) {
	tests := map[string]struct {
		content string
		maxLine int
		off     uint64
		mid     bool
	}{
		"empty":                {"", 10, 0, false},
		"ends with newline":    {"a\nb\n", 10, 4, false},
		"partial last line":    {"a\nbc", 10, 2, false},
		"one partial line":     {"abc", 10, 0, false},
		"long partial line":    {"a\n" + strings.Repeat("z", 30), 10, 32, true},
		"newline out of reach": {strings.Repeat("z", 20) + "\n" + strings.Repeat("y", 20), 10, 41, true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "f")
			writeFile(t, p, tc.content)
			f, err := os.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			off, mid, err := findEnd(f, uint64(len(tc.content)), tc.maxLine)
			if err != nil || off != tc.off || mid != tc.mid {
				t.Fatalf("findEnd = %d %v %v; want %d %v", off, mid, err, tc.off, tc.mid)
			}
		})
	}
}

// A file rotated away (out of the patterns) while the agent was stopped is
// found next to its old path and drained.
func TestRotatedWhileStopped(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "app.log")
	writeFile(t, p, seqLines(0, 10))
	w1, st := newTestWAL(t), newTestState()
	r1 := startSource(t, testConfig(p), w1, st, nil)
	old := ackedAt(t, r1, p, 90)
	r1.stop(t)

	appendFile(t, p, seqLines(10, 15))
	if err := os.Rename(p, p+".1"); err != nil {
		t.Fatal(err)
	}
	writeFile(t, p, seqLines(15, 20))
	w2 := newTestWAL(t)
	r2 := startSource(t, testConfig(p), w2, st, st.saved())
	waitFor(t, "all lines", func() bool { return len(w2.lines()) >= 10 })
	waitFor(t, "old file drained", func() bool { sp, _ := st.position(old.ID); return sp.Offset == 135 })
	if err := os.Remove(p + ".1"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "old id forgotten", func() bool { return st.wasDeleted(old.ID) })
	recs := w2.records()
	for _, c := range recs {
		var n int
		fmt.Sscanf(c.line, "seq-%d", &n)
		if fromOld := c.source == old.ID; fromOld != (n < 15) || c.flags != 0 {
			t.Fatalf("record %+v: lines 10-14 come from the old file, under its id", c)
		}
	}
	checkExactlyOnceInOrder(t, append(w1.records(), recs...), 20)
	if s := r2.src.Stats(); s.PositionsDropped != 1 {
		t.Fatalf("stats %+v: the drained file's position is dropped once", s)
	}
}

// A blocked Append (WAL over budget) stalls reading without losing lines or
// deadlocking, and does not keep Run from stopping.
func TestBackpressure(t *testing.T) {
	for _, name := range []string{"released", "stopped"} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "app.log")
			writeFile(t, p, seqLines(0, 50))
			cfg := testConfig(p)
			cfg.MaxEntryBytes = cfg.MaxLineBytes + entrySlack
			w, st := newTestWAL(t), newTestState()
			w.unblock = make(chan struct{})
			r := startSource(t, cfg, w, st, nil)
			<-w.entered
			appendFile(t, p, seqLines(50, 100))
			time.Sleep(20 * time.Millisecond)
			if h := st.history(); len(h) != 0 {
				t.Fatalf("positions set without an ack: %+v", h)
			}
			if name == "stopped" {
				r.stop(t)
				if h := st.history(); len(h) != 0 {
					t.Fatalf("positions set without an ack: %+v", h)
				}
				return
			}
			close(w.unblock)
			ackedAt(t, r, p, 900)
			checkExactlyOnceInOrder(t, w.records(), 100)
			if s := r.src.Stats(); s.AppendWaitSeconds <= 0 {
				t.Fatalf("append wait not measured: %+v", s)
			}
		})
	}
}

// Acks out of append order: the position still moves only over a prefix of
// acknowledged payloads, and never back.
func TestAcksOutOfOrder(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "app.log")
	var b strings.Builder
	for i := range 400 {
		fmt.Fprintf(&b, "seq-%04d %s\n", i, strings.Repeat("o", 80))
	}
	writeFile(t, p, b.String())
	cfg := testConfig(p)
	cfg.MaxLineBytes = 100
	cfg.MaxEntryBytes = 100 + entrySlack
	w, st := newTestWAL(t), newTestState()
	w.reorder = true
	r := startSource(t, cfg, w, st, nil)
	ackedAt(t, r, p, fileSize(t, p))
	var last uint64
	for _, c := range st.history() {
		if c.offset <= last {
			t.Fatalf("position did not move forward: %+v", st.history())
		}
		last = c.offset
	}
	if s := r.src.Stats(); s.AcksOutOfOrder == 0 {
		t.Fatalf("out-of-order acks not counted: %+v", s)
	}
	if n := len(w.lines()); n != 400 {
		t.Fatalf("captured %d lines", n)
	}
}

// Acks that arrive after Run returned still advance the position safely.
func TestStopWithAcksPending(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "app.log")
	writeFile(t, p, "x\ny\n")
	cfg := testConfig(p)
	cfg.StopTimeout = 50 * time.Millisecond
	w, st := newTestWAL(t), newTestState()
	release := w.hold()
	r := startSource(t, cfg, w, st, nil)
	waitFor(t, "an append", func() bool { return w.appendCount() >= 1 })
	r.stop(t)
	if h := st.history(); len(h) != 0 {
		t.Fatalf("positions set without an ack: %+v", h)
	}
	release()
	waitFor(t, "late ack applied", func() bool { return len(st.history()) == 1 })
	if h := st.history(); h[0].offset != 4 {
		t.Fatalf("history %+v", h)
	}
}

func TestRunTwiceAndBadConstruction(t *testing.T) {
	w, st := newTestWAL(t), newTestState()
	cfg := testConfig(filepath.Join(t.TempDir(), "*.log"))
	r := startSource(t, cfg, w, st, nil)
	waitFor(t, "a scan", func() bool { return r.src.Stats().Scans >= 1 })
	if err := r.src.Run(context.Background()); !errors.Is(err, ErrAlreadyRun) {
		t.Fatalf("second Run: %v", err)
	}
	bad := cfg
	bad.StartAt = "middle"
	if _, err := New(bad, w, st, nil, zerolog.Nop(), nil); err == nil {
		t.Fatal("invalid config accepted")
	}
	if _, err := New(cfg, nil, st, nil, zerolog.Nop(), nil); err == nil {
		t.Fatal("nil appender accepted")
	}
	// Building a second source on the same registry replaces the first's metrics.
	if _, err := New(cfg, w, st, nil, zerolog.Nop(), r.reg); err != nil {
		t.Fatalf("second source on one registry: %v", err)
	}
}

// Stale ids of one inode: the newest generation wins, the others are deleted.
func TestSavedGenerationsOfOneInode(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "app.log")
	writeFile(t, p, "l1\nl2\n")
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	k, _ := keyOf(fi)
	older, newer := formatID(k, 100, fingerprint{}), formatID(k, 200, fingerprint{})
	saved := []ingest.SavedPosition{
		{ID: newer, Offset: 3, WALIndex: 5},
		{ID: older, Offset: 6, WALIndex: 9},
		{ID: "docker:abc", Offset: 1},
	}
	w, st := newTestWAL(t), newTestState()
	r := startSource(t, testConfig(p), w, st, saved)
	pos := ackedAt(t, r, p, 6)
	if pos.ID != newer || !slices.Equal(w.lines(), []string{"l2"}) {
		t.Fatalf("followed as %s capturing %q; want %s from offset 3", pos.ID, w.lines(), newer)
	}
	if !st.wasDeleted(older) || st.wasDeleted("docker:abc") {
		t.Fatalf("history %+v", st.history())
	}
}
