package e2e

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// rotatingLoad is writeLoad for files that logrotate rotates: the writers
// reopen their file by name when told to (as an application does on the
// SIGHUP of a postrotate script), and never split a line across two files.
type rotatingLoad struct {
	writeLoad
	reopen *atomic.Uint64 // bumped after each rotation; nil: never reopen
}

// start runs the writers until every line is written or ctx ends.
func (w rotatingLoad) start(ctx context.Context) *writers {
	return startWriters(ctx, w.Files, w.writeFile)
}

// writeFile is writeLoad.writeFile with a reopen between lines when the
// rotation counter moved. Files are opened O_APPEND: after a copytruncate
// the next line lands at the new end, not at the old offset.
func (w rotatingLoad) writeFile(ctx context.Context, f int, ws *writers) error {
	open := func() (*os.File, error) {
		return os.OpenFile(w.path(f), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	}
	fh, err := open()
	if err != nil {
		return err
	}
	defer func() { _ = fh.Close() }()
	var gen uint64
	if w.reopen != nil {
		gen = w.reopen.Load()
	}
	rng := rand.New(rand.NewPCG(w.Seed, uint64(f)))
	perFile := w.Rate / float64(w.Files)
	start := time.Now()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	buf := make([]byte, 0, lineLen()+1)
	n := 0
	for seq := f; seq < w.Lines; {
		if w.reopen != nil {
			if g := w.reopen.Load(); g != gen {
				gen = g
				if err := fh.Close(); err != nil {
					return err
				}
				if fh, err = open(); err != nil {
					return err
				}
			}
		}
		due := int(time.Since(start).Seconds()*perFile) + 1
		for ; n < due && seq < w.Lines; n, seq = n+1, seq+w.Files {
			buf = append(append(buf[:0], line(seq, w.Files)...), '\n')
			if w.SplitEvery > 0 && rng.IntN(w.SplitEvery) == 0 {
				cut := 1 + rng.IntN(len(buf)-1)
				if _, err := fh.Write(buf[:cut]); err != nil {
					return err
				}
				pause := w.SplitMin + time.Duration(rng.Int64N(int64(w.SplitMax-w.SplitMin)+1))
				select {
				case <-time.After(pause):
				case <-ctx.Done():
					return ctx.Err()
				}
				buf = buf[cut:]
				ws.splits.Add(1)
			}
			if _, err := fh.Write(buf); err != nil {
				return err
			}
			ws.written.Add(1)
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// rotator runs the real logrotate, with its own configuration and state
// file, once a second. The test can hold it (no rotation while held) and
// rotate at a moment of its choosing.
type rotator struct {
	t      *testing.T
	bin    string
	conf   string
	state  string
	reopen atomic.Uint64 // bumped after every run

	mu        sync.Mutex // held by a run, and by the test to keep runs out
	runs      atomic.Int64
	lastStart atomic.Int64 // unix ns when the last run began
	longest   atomic.Int64 // ns, for the log
	errs      chan error
	done      chan struct{}
}

// logrotateConf renders the configuration for the files matching glob.
func logrotateConf(glob string, copytruncate bool) string {
	mode := "create 0644"
	if copytruncate {
		// compress+delaycompress: the newest rotated file stays plain text
		// for a rotation, older ones are gzipped (and ignored by the agent).
		mode = "copytruncate\n    compress\n    delaycompress"
	}
	return fmt.Sprintf(`%s {
    rotate 10000
    missingok
    notifempty
    %s
}
`, glob, mode)
}

func startRotator(ctx context.Context, t *testing.T, dir, glob string, copytruncate bool, every time.Duration) *rotator {
	t.Helper()
	bin, err := exec.LookPath("logrotate")
	if err != nil {
		for _, p := range []string{"/usr/sbin/logrotate", "/sbin/logrotate"} {
			if _, err := os.Stat(p); err == nil {
				bin = p
			}
		}
	}
	if bin == "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("e2e: logrotate not installed (Debian package logrotate)")
		}
		t.Skip("e2e: logrotate not installed (apt-get install -y logrotate)")
	}
	r := &rotator{t: t, bin: bin, conf: filepath.Join(dir, "logrotate.conf"), state: filepath.Join(dir, "logrotate.state"),
		errs: make(chan error, 1), done: make(chan struct{})}
	if err := os.WriteFile(r.conf, []byte(logrotateConf(glob, copytruncate)), 0o644); err != nil {
		t.Fatalf("e2e: %v", err)
	}
	go func() {
		defer close(r.done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			r.mu.Lock()
			err := r.rotateLocked()
			r.mu.Unlock()
			if err != nil {
				select {
				case r.errs <- err:
				default:
				}
				return
			}
		}
	}()
	return r
}

// rotateLocked runs logrotate once (r.mu held) and tells the writers.
func (r *rotator) rotateLocked() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	began := time.Now()
	r.lastStart.Store(began.UnixNano())
	out, err := exec.CommandContext(ctx, r.bin, "-s", r.state, "-f", r.conf).CombinedOutput()
	if d := int64(time.Since(began)); d > r.longest.Load() {
		r.longest.Store(d)
	}
	r.runs.Add(1)
	r.reopen.Add(1)
	if err != nil {
		return fmt.Errorf("logrotate: %w: %s", err, out)
	}
	return nil
}

// hold keeps rotations out until release is called; rotateNow rotates while
// held.
func (r *rotator) hold() (rotateNow func(), release func()) {
	r.mu.Lock()
	var once sync.Once
	return func() {
			if err := r.rotateLocked(); err != nil {
				r.t.Errorf("e2e: %v", err)
			}
		}, func() {
			once.Do(r.mu.Unlock)
		}
}

// err reports a failed logrotate run, if any.
func (r *rotator) err() error {
	select {
	case err := <-r.errs:
		return err
	default:
		return nil
	}
}

// onDisk reports which lines are in some file of dir: plain, or gzipped by
// logrotate. A line written but in no file was removed by logrotate itself:
// with copytruncate, the lines written between the end of its copy and its
// truncation are in neither the copy nor the truncated file.
func onDisk(dir string, files, total int) ([]bool, error) {
	present := make([]bool, total)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if !e.Type().IsRegular() || !strings.HasPrefix(e.Name(), "app-") {
			continue
		}
		if err := scanFile(filepath.Join(dir, e.Name()), func(msg string) {
			if seq, ok := parseLine(msg, files, total); ok {
				present[seq] = true
			}
		}); err != nil {
			return nil, err
		}
	}
	return present, nil
}

func scanFile(path string, fn func(string)) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(path, ".gz") {
		zr, err := gzip.NewReader(f)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		defer zr.Close()
		r = zr
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		fn(sc.Text())
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// rotateConfigYAML is agentConfig.yaml with the keys the rotation test
// sets besides: several include patterns, excludes and rotate_wait.
func rotateConfigYAML(c agentConfig, include, exclude []string, rotateWait time.Duration) string {
	q := func(l []string) string {
		var parts []string
		for _, s := range l {
			parts = append(parts, fmt.Sprintf("%q", s))
		}
		return "[" + strings.Join(parts, ", ") + "]"
	}
	y := c.yaml()
	if os.Getenv("E2E_DEBUG") != "" {
		y = strings.Replace(y, "  level: info\n", "  level: debug\n", 1)
	}
	y = strings.Replace(y, fmt.Sprintf("  include: [%q]\n  exclude: []\n", c.Include),
		fmt.Sprintf("  include: %s\n  exclude: %s\n  rotate_wait: %s\n", q(include), q(exclude), rotateWait), 1)
	return y
}

// waitSettled polls until the agent has read every file to its end, has
// nothing left to ship, and stays so for a few polls.
func (a *agent) waitSettled(timeout time.Duration) statsDoc {
	a.t.Helper()
	deadline := time.Now().Add(timeout)
	nextLog := time.Now().Add(10 * time.Second)
	stable := 0
	var (
		st      statsDoc
		why     string
		lastRef uint64
	)
	for {
		var pos []rotatePositionDoc
		var err error
		st, err = a.stats()
		if err == nil {
			pos, err = a.rotatePositions()
		}
		switch {
		case err != nil:
			why = err.Error()
		default:
			why = settledGap(st, pos)
			if why == "" && st.Files.LinesRead != lastRef {
				why = "still reading"
			}
			lastRef = st.Files.LinesRead
		}
		if why == "" {
			stable++
			if stable >= 4 {
				return st
			}
		} else {
			stable = 0
		}
		if !a.running() {
			a.t.Fatalf("e2e: agent not running while draining (run %d)", len(a.logs))
		}
		if time.Now().After(deadline) {
			a.t.Fatalf("e2e: not settled after %v: %s\nstats: %+v", timeout, why, st)
		}
		if time.Now().After(nextLog) {
			a.t.Logf("e2e: settling: %s", why)
			nextLog = time.Now().Add(10 * time.Second)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// rotatePositionDoc is file.PositionInfo as JSON, with the fields the
// rotation test needs beyond positionDoc.
type rotatePositionDoc struct {
	ID          string `json:"id"`
	Path        string `json:"path"`
	Stream      string `json:"stream"`
	ReadOffset  uint64 `json:"read_offset"`
	AckedOffset uint64 `json:"acked_offset"`
	InFlight    int    `json:"in_flight"`
	Open        bool   `json:"open"`
}

func (a *agent) rotatePositions() ([]rotatePositionDoc, error) {
	var p struct {
		Files []rotatePositionDoc `json:"files"`
	}
	body, err := a.get("/positions")
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, fmt.Errorf("/positions: %w", err)
	}
	return p.Files, nil
}

// waitTruncationsSeen waits, at most timeout, until the agent follows every
// live file of the stream paths in a generation begun after since (its id
// carries the time it began): it saw the truncation of a copytruncate that
// began at since, and read the copy through. It reports whether it did.
func (a *agent) waitTruncationsSeen(streams []string, since int64, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		pos, _ := a.rotatePositions() // none on error: asked again
		seen := 0
		for _, p := range pos {
			if !p.Open || p.Path != p.Stream || !slices.Contains(streams, p.Path) {
				continue
			}
			parts := strings.Split(strings.TrimPrefix(p.ID, "file:"), ":")
			if len(parts) < 3 {
				continue
			}
			if gen, err := strconv.ParseUint(parts[2], 16, 64); err == nil && int64(gen) > since {
				seen++
			}
		}
		if seen == len(streams) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func settledGap(st statsDoc, pos []rotatePositionDoc) string {
	k, ok := st.sink("loki")
	if !ok {
		return "no loki sink in /stats"
	}
	if k.LagEntries != 0 || k.InFlight != 0 {
		return fmt.Sprintf("loki lag %d entries, %d batches in flight, last error %q", k.LagEntries, k.InFlight, k.LastError)
	}
	for _, p := range pos {
		if p.ReadOffset != p.AckedOffset || p.InFlight != 0 {
			return fmt.Sprintf("%s read %d, acked %d, %d in flight", filepath.Base(p.Path), p.ReadOffset, p.AckedOffset, p.InFlight)
		}
		if fi, err := os.Stat(p.Path); err == nil && uint64(fi.Size()) > p.AckedOffset && p.Open {
			return fmt.Sprintf("%s acked %d of %d bytes", filepath.Base(p.Path), p.AckedOffset, fi.Size())
		}
	}
	return ""
}

// walCounts counts, per line, the records the agent appended to its WAL
// (`logcapturer wal dump --lines` on the stopped agent's data dir): what
// the file source captured, before any shipping. A line there twice was
// read twice by the source.
func (a *agent) walCounts(files, total int) ([]uint16, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, a.bin, "wal", "dump", "--lines", "--data-dir", a.cfg.DataDir)
	cmd.Env = agentEnv()
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	counts := make([]uint16, total)
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		if seq, ok := parseLine(sc.Text(), files, total); ok && counts[seq] < 1<<15 {
			counts[seq]++
		}
	}
	scanErr := sc.Err()
	if err := cmd.Wait(); err != nil {
		return nil, fmt.Errorf("wal dump: %w: %s", err, stderr.String())
	}
	return counts, scanErr
}

// whereOnDisk says, for each run of consecutive lost lines of one file, the
// file on disk holding its first line and the line's offset there.
func whereOnDisk(dir string, files, total int, lost []int) []string {
	first := map[int]bool{}
	prev := map[int]int{}
	runLen := map[int]int{}
	var order []int
	for _, seq := range lost {
		f := seq % files
		if p, ok := prev[f]; ok && seq == p+files {
			runLen[order[len(order)-1]]++ // approximate: runs of one file are contiguous in lost
		} else {
			first[seq] = true
			order = append(order, seq)
			runLen[seq] = 1
		}
		prev[f] = seq
	}
	found := map[int]string{}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		var off int64
		_ = scanFile(filepath.Join(dir, e.Name()), func(msg string) {
			if seq, ok := parseLine(msg, files, total); ok && first[seq] {
				found[seq] = fmt.Sprintf("%s@%d", e.Name(), off)
			}
			off += int64(len(msg)) + 1
		})
	}
	var out []string
	for _, seq := range order {
		out = append(out, fmt.Sprintf("seq %d (+%d lines) in %s", seq, runLen[seq]-1, found[seq]))
	}
	return out
}

// walDuplicates describes the runs of lines the WAL holds more than once:
// for the first line of each run (per file), every record of it (WAL index,
// source id, offset, filename label).
func (a *agent) walDuplicates(files, total int, counts []uint16) []string {
	firsts := map[int]int{} // first seq of a run -> run length
	var order []int
	for f := range files {
		start := -1
		for seq := f; seq < total; seq += files {
			if counts[seq] > 1 {
				if start < 0 {
					start = seq
					order = append(order, seq)
				}
				firsts[start]++
			} else {
				start = -1
			}
		}
	}
	if len(order) > 20 {
		order = order[:20]
	}
	want := map[int]bool{}
	for _, seq := range order {
		want[seq] = true
	}
	recs := map[int][]string{}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, a.bin, "wal", "dump", "--json", "--data-dir", a.cfg.DataDir)
	cmd.Env = agentEnv()
	out, err := cmd.StdoutPipe()
	if err != nil {
		return []string{err.Error()}
	}
	if err := cmd.Start(); err != nil {
		return []string{err.Error()}
	}
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		var d struct {
			Index  uint64            `json:"index"`
			Source string            `json:"source"`
			Offset uint64            `json:"offset"`
			Labels map[string]string `json:"labels"`
			Line   string            `json:"line"`
		}
		if json.Unmarshal(sc.Bytes(), &d) != nil {
			continue
		}
		if seq, ok := parseLine(d.Line, files, total); ok && want[seq] {
			recs[seq] = append(recs[seq], fmt.Sprintf("[wal %d %s@%d %s]", d.Index, d.Source, d.Offset, filepath.Base(d.Labels["filename"])))
		}
	}
	_ = cmd.Wait()
	var res []string
	for _, seq := range order {
		res = append(res, fmt.Sprintf("seq %d (+%d lines of file %d): %s", seq, firsts[seq]-1, seq%files, strings.Join(recs[seq], " ")))
	}
	return res
}
