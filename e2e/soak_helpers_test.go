package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Soak lines are "soak w=W seq=NNNNNNNNNN f=NAME pad=<40..160 bytes>": the
// writer, its own sequence number (10 digits: a 24 h run at 5,000 lines/s
// writes about 10^8 lines per writer), the base name of the stream path the
// line was written under, and a filler derived from seq, so a received line
// is checked byte for byte and its filename label against f.
const soakSeqDigits = 10

var soakFiller = strings.Repeat(fillerBase, 4)

func soakLine(w, seq int, name string) string {
	n := 40 + (seq*7)%121
	off := seq % len(fillerBase)
	return "soak w=" + strconv.Itoa(w) + " seq=" + fmt.Sprintf("%0*d", soakSeqDigits, seq) +
		" f=" + name + " pad=" + soakFiller[off:off+n]
}

// parseSoakLine returns the writer, sequence number and stream name of msg
// if msg is exactly the line they stand for.
func parseSoakLine(msg string) (w, seq int, name string, ok bool) {
	rest, found := strings.CutPrefix(msg, "soak w=")
	if !found {
		return 0, 0, "", false
	}
	ws, rest, found := strings.Cut(rest, " seq=")
	if !found || len(rest) < soakSeqDigits+3 {
		return 0, 0, "", false
	}
	w, err1 := strconv.Atoi(ws)
	seq, err2 := strconv.Atoi(rest[:soakSeqDigits])
	if err1 != nil || err2 != nil || w < 0 || seq < 0 {
		return 0, 0, "", false
	}
	name, _, found = strings.Cut(rest[soakSeqDigits:], " pad=")
	name, ok = strings.CutPrefix(name, " f=")
	if !found || !ok {
		return 0, 0, "", false
	}
	return w, seq, name, msg == soakLine(w, seq, name)
}

// soakLoad is the soak's steady load: Writers writers at Rate lines/s in
// all until StopAt. Writers 0..Writers-2 each write one long-lived file
// (slot-W.log), rotated about every RotateEvery, alternately by rename
// (create mode: the writer keeps writing to the renamed file for up to
// 400 ms, then reopens the live name) and by copytruncate (done by the
// writer between two writes, so no line falls between copy and truncation).
// The last writer churns: it writes churn-W-N.log for ChurnEvery, then
// closes it and starts the next. Every file left behind (rotated names,
// copies, finished churn files) is handed to the janitor for deletion.
type soakLoad struct {
	Dir         string
	Writers     int
	Rate        float64
	RotateEvery time.Duration
	ChurnEvery  time.Duration
	StopAt      time.Time
	Seed        uint64
}

// soakWriters is the running load. written[w] is the number of lines writer
// w wrote: its sequence numbers 0..written[w]-1.
type soakWriters struct {
	written    []atomic.Int64
	renames    atomic.Int64
	truncates  atomic.Int64
	churnFiles atomic.Int64
	done       chan struct{}
	err        error // valid after done
}

func (ws *soakWriters) total() int64 {
	var n int64
	for i := range ws.written {
		n += ws.written[i].Load()
	}
	return n
}

func (l soakLoad) start(ctx context.Context, jan *soakJanitor) *soakWriters {
	ws := &soakWriters{written: make([]atomic.Int64, l.Writers), done: make(chan struct{})}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for w := range l.Writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			if w == l.Writers-1 {
				err = l.churn(ctx, w, ws, jan)
			} else {
				err = l.slot(ctx, w, ws, jan)
			}
			if err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("soak writer %d: %w", w, err))
				mu.Unlock()
			}
		}()
	}
	go func() {
		wg.Wait()
		ws.err = errors.Join(errs...)
		close(ws.done)
	}()
	return ws
}

// pacer releases lines at rate per second, counted from its start, in
// bursts every 5 ms; it catches up after a pause (a rotation, a slow disk).
type pacer struct {
	rate  float64
	start time.Time
	n     int
	tick  *time.Ticker
}

func newPacer(rate float64) *pacer {
	return &pacer{rate: rate, start: time.Now(), tick: time.NewTicker(5 * time.Millisecond)}
}

// due returns how many lines are due now.
func (p *pacer) due() int {
	return max(0, int(time.Since(p.start).Seconds()*p.rate)+1-p.n)
}

// wait sleeps until the next tick; false when ctx ended or stopAt passed.
func (p *pacer) wait(ctx context.Context, stopAt time.Time) bool {
	select {
	case <-p.tick.C:
		return time.Now().Before(stopAt)
	case <-ctx.Done():
		return false
	}
}

func openAppend(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
}

// writeLines writes n lines of writer w under stream name, one write each.
func writeLines(fh *os.File, w int, name string, n int, ws *soakWriters, buf []byte) ([]byte, error) {
	for range n {
		seq := int(ws.written[w].Load())
		buf = append(append(buf[:0], soakLine(w, seq, name)...), '\n')
		if _, err := fh.Write(buf); err != nil {
			return buf, err
		}
		ws.written[w].Add(1)
	}
	return buf, nil
}

// jitter returns d ±20 %.
func jitter(rng *rand.Rand, d time.Duration) time.Duration {
	return d*4/5 + time.Duration(rng.Int64N(int64(d*2/5)+1))
}

// slot writes slot-W.log and rotates it.
func (l soakLoad) slot(ctx context.Context, w int, ws *soakWriters, jan *soakJanitor) error {
	name := fmt.Sprintf("slot-%d.log", w)
	path := filepath.Join(l.Dir, name)
	fh, err := openAppend(path)
	if err != nil {
		return err
	}
	defer func() { _ = fh.Close() }()
	rng := rand.New(rand.NewPCG(l.Seed, uint64(w)))
	p := newPacer(l.Rate / float64(l.Writers))
	defer p.tick.Stop()
	// Writers rotate at staggered times.
	nextRotate := time.Now().Add(jitter(rng, l.RotateEvery) * time.Duration(w+1) / time.Duration(l.Writers))
	var (
		rotations int
		renamed   string    // the renamed file still written to, until reopenAt
		reopenAt  time.Time // zero: not in a rename
		buf       []byte
	)
	for {
		now := time.Now()
		if renamed != "" && !now.Before(reopenAt) {
			if err := fh.Close(); err != nil {
				return err
			}
			if fh, err = openAppend(path); err != nil {
				return err
			}
			jan.add(renamed)
			renamed = ""
		}
		if renamed == "" && !now.Before(nextRotate) {
			rotations++
			rotated := fmt.Sprintf("%s.%d", path, rotations)
			if (rotations+w)%2 == 0 {
				// create mode: rename, keep writing to the old descriptor
				// for a moment (the application has not reopened yet).
				if err := os.Rename(path, rotated); err != nil {
					return err
				}
				renamed, reopenAt = rotated, now.Add(time.Duration(rng.Int64N(int64(400*time.Millisecond))))
				ws.renames.Add(1)
			} else {
				if err := soakCopy(path, rotated); err != nil {
					return err
				}
				if err := fh.Truncate(0); err != nil {
					return err
				}
				jan.add(rotated)
				ws.truncates.Add(1)
			}
			nextRotate = now.Add(jitter(rng, l.RotateEvery))
		}
		n := p.due()
		if buf, err = writeLines(fh, w, name, n, ws, buf); err != nil {
			return err
		}
		p.n += n
		if !p.wait(ctx, l.StopAt) {
			if renamed != "" {
				jan.add(renamed)
			}
			return fh.Close()
		}
	}
}

// churn writes churn-W-N.log, a new N every ChurnEvery.
func (l soakLoad) churn(ctx context.Context, w int, ws *soakWriters, jan *soakJanitor) error {
	rng := rand.New(rand.NewPCG(l.Seed, uint64(w)))
	p := newPacer(l.Rate / float64(l.Writers))
	defer p.tick.Stop()
	var (
		fh    *os.File
		name  string
		until time.Time
		buf   []byte
		err   error
	)
	defer func() {
		if fh != nil {
			_ = fh.Close()
		}
	}()
	for {
		if now := time.Now(); fh == nil || !now.Before(until) {
			if fh != nil {
				if err := fh.Close(); err != nil {
					return err
				}
				jan.add(filepath.Join(l.Dir, name))
			}
			name = fmt.Sprintf("churn-%d-%d.log", w, ws.churnFiles.Add(1))
			if fh, err = openAppend(filepath.Join(l.Dir, name)); err != nil {
				return err
			}
			until = now.Add(jitter(rng, l.ChurnEvery))
		}
		n := p.due()
		if buf, err = writeLines(fh, w, name, n, ws, buf); err != nil {
			return err
		}
		p.n += n
		if !p.wait(ctx, l.StopAt) {
			err := fh.Close()
			fh = nil
			return err
		}
	}
}

// soakCopy copies src to a new file dst (copytruncate's copy).
func soakCopy(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		_ = out.Close()
		return err
	}
	return out.Close()
}

// soakJanitor deletes the files the writers left behind, as a log
// retention would, once the agent has read them: a file is deleted when
// /positions shows a position of its device and inode, of its size,
// acknowledged (by the WAL) up to that size, or, failing that, when it has
// waited maxAge. The size must match too because a deleted file's position
// lingers for two scans and its inode may already be reused. The second
// kind is counted: a line lost with it is the janitor's doing, not the
// agent's.
type soakJanitor struct {
	a      *agent
	maxAge time.Duration

	mu      sync.Mutex
	pending []retired

	confirmed   atomic.Int64
	unconfirmed atomic.Int64
	unconfNames []string // under mu, first maxSamples
	errs        atomic.Int64
	done        chan struct{}
}

type retired struct {
	path string
	at   time.Time
}

func (j *soakJanitor) add(path string) {
	j.mu.Lock()
	j.pending = append(j.pending, retired{path: path, at: time.Now()})
	j.mu.Unlock()
}

func (j *soakJanitor) left() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return len(j.pending)
}

// startJanitor looks every second until ctx ends. It only reads a's
// immutable fields, so it may run beside the test goroutine.
func startJanitor(ctx context.Context, a *agent, maxAge time.Duration) *soakJanitor {
	j := &soakJanitor{a: a, maxAge: maxAge, done: make(chan struct{})}
	go func() {
		defer close(j.done)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			j.sweep()
		}
	}()
	return j
}

func (j *soakJanitor) sweep() {
	j.mu.Lock()
	todo := j.pending
	j.pending = nil
	j.mu.Unlock()
	if len(todo) == 0 {
		return
	}
	type fileAt struct {
		key  string // "file:<dev>:<ino>:"
		size uint64
	}
	read := map[fileAt]bool{} // acknowledged up to its size
	if body, err := j.a.get("/positions"); err == nil {
		var doc struct {
			Files []positionDoc `json:"files"`
		}
		if json.Unmarshal(body, &doc) == nil {
			for _, p := range doc.Files {
				parts := strings.SplitN(p.ID, ":", 4)
				if len(parts) < 4 || p.AckedOffset < p.Size {
					continue
				}
				read[fileAt{key: strings.Join(parts[:3], ":") + ":", size: p.Size}] = true
			}
		}
	}
	var keep []retired
	for _, r := range todo {
		var st syscall.Stat_t
		if err := syscall.Stat(r.path, &st); err != nil {
			j.errs.Add(1)
			continue
		}
		switch {
		case read[fileAt{key: fmt.Sprintf("file:%d:%d:", st.Dev, st.Ino), size: uint64(st.Size)}]:
			j.confirmed.Add(1)
		case time.Since(r.at) >= j.maxAge:
			j.unconfirmed.Add(1)
			j.mu.Lock()
			if len(j.unconfNames) < maxSamples {
				j.unconfNames = append(j.unconfNames, fmt.Sprintf("%s (inode %d, %d bytes)", filepath.Base(r.path), st.Ino, st.Size))
			}
			j.mu.Unlock()
		default:
			keep = append(keep, r)
			continue
		}
		if err := os.Remove(r.path); err != nil {
			j.errs.Add(1)
		}
	}
	j.mu.Lock()
	j.pending = append(keep, j.pending...)
	j.mu.Unlock()
}

// soakSeen records which sequence numbers of each writer arrived: one bit
// a line (a 24 h run at 5,000 lines/s needs about 54 MB).
type soakSeen struct {
	written []int64
	bits    [][]uint64
	extra   int // rows beyond the first of a line
}

func newSoakSeen(written []int64) *soakSeen {
	s := &soakSeen{written: written, bits: make([][]uint64, len(written))}
	for w, n := range written {
		s.bits[w] = make([]uint64, (n+63)/64)
	}
	return s
}

// mark records (w, seq); false if it is not a line that was written.
func (s *soakSeen) mark(w, seq int) bool {
	if w >= len(s.bits) || int64(seq) >= s.written[w] {
		return false
	}
	m := uint64(1) << (seq % 64)
	if s.bits[w][seq/64]&m != 0 {
		s.extra++
	}
	s.bits[w][seq/64] |= m
	return true
}

// missing returns how many lines of writer w below n never arrived, and
// the first few.
func (s *soakSeen) missing(w int, n int64) (int, []int) {
	lost := 0
	var first []int
	for seq := range int(n) {
		if s.bits[w][seq/64]&(uint64(1)<<(seq%64)) == 0 {
			lost++
			if len(first) < maxSamples {
				first = append(first, seq)
			}
		}
	}
	return lost, first
}

// soakReadBack streams every row stored between from and to back from
// VictoriaLogs, in windows of step (VictoriaLogs ends a query after
// -search.maxQueryDuration), and checks each against the lines written.
// It returns the rows read.
func soakReadBack(ctx context.Context, baseURL string, from, to time.Time, step time.Duration, seen *soakSeen,
	bad func(kind, sample string)) (int, error) {
	rows := 0
	for lo := from; lo.Before(to); lo = lo.Add(step) {
		hi := lo.Add(step)
		if hi.After(to) {
			hi = to
		}
		q := fmt.Sprintf("_time:[%s, %s) | fields _msg, filename", lo.UTC().Format(time.RFC3339Nano), hi.UTC().Format(time.RFC3339Nano))
		err := soakScan(ctx, baseURL, q, func(msg, filename string) {
			rows++
			w, seq, name, ok := parseSoakLine(msg)
			if !ok || !seen.mark(w, seq) {
				bad("foreign", fmt.Sprintf("%.200q", msg))
				return
			}
			if got := filepath.Base(filename); got != name {
				bad("misfiled", fmt.Sprintf("w=%d seq=%d written to %s, stored under %q", w, seq, name, filename))
			}
		})
		if err != nil {
			return rows, err
		}
	}
	return rows, nil
}

// soakFastRow reads {"_msg":"M","filename":"F"} without a JSON decoder
// (several times faster, and the read-back of a long run is hundreds of
// millions of rows); any other shape, or any escape, is left to the
// decoder.
func soakFastRow(row string) (msg, filename string, ok bool) {
	if strings.IndexByte(row, '\\') >= 0 {
		return "", "", false
	}
	rest, ok1 := strings.CutPrefix(row, `{"_msg":"`)
	rest, ok2 := strings.CutSuffix(rest, `"}`)
	msg, filename, ok3 := strings.Cut(rest, `","filename":"`)
	if !ok1 || !ok2 || !ok3 || strings.IndexByte(filename, '"') >= 0 || strings.IndexByte(msg, '"') >= 0 {
		return "", "", false
	}
	return msg, filename, true
}

// soakScan is scanRows for the two fields the soak reads, decoded into a
// struct rather than a map: a 24 h run reads back some 400 million rows.
func soakScan(ctx context.Context, baseURL, logsql string, fn func(msg, filename string)) error {
	return streamRows(ctx, baseURL, logsql, func(line []byte) error {
		if msg, filename, ok := soakFastRow(string(line)); ok {
			fn(msg, filename)
			return nil
		}
		var row struct {
			Msg      string `json:"_msg"`
			Filename string `json:"filename"`
		}
		if err := json.Unmarshal(line, &row); err != nil {
			return err
		}
		fn(row.Msg, row.Filename)
		return nil
	})
}

// TestSoakLines checks the soak's line format and the fast row reader
// against the JSON decoder. It runs with -short: it starts nothing.
func TestSoakLines(t *testing.T) {
	for _, c := range []struct {
		w, seq int
		name   string
	}{{0, 0, "slot-0.log"}, {3, 123456789, "churn-3-17.log"}, {1, 9_999_999_999, "slot-1.log"}} {
		l := soakLine(c.w, c.seq, c.name)
		w, seq, name, ok := parseSoakLine(l)
		if !ok || w != c.w || seq != c.seq || name != c.name {
			t.Errorf("parseSoakLine(%q) = %d %d %q %v", l, w, seq, name, ok)
		}
		// A line cut short, with one byte changed, or with another number
		// is not a line written.
		for _, bad := range []string{l[:len(l)-1], l[:len(l)-3] + "x" + l[len(l)-2:], strings.Replace(l, "seq=", "seq=1", 1)[:len(l)], ""} {
			if _, _, _, ok := parseSoakLine(bad); ok {
				t.Errorf("parseSoakLine(%q) accepted", bad)
			}
		}
	}
	for _, row := range []string{
		`{"_msg":"soak w=1 seq=0000000001 f=a.log pad=xy","filename":"/tmp/a.log"}`,
		`{"_msg":"with \"quotes\" and \\ backslash","filename":"/tmp/b.log"}`,
		`{"filename":"/tmp/c.log","_msg":"fields in the other order"}`,
		`{"_msg":"no filename"}`,
	} {
		var want struct {
			Msg      string `json:"_msg"`
			Filename string `json:"filename"`
		}
		if err := json.Unmarshal([]byte(row), &want); err != nil {
			t.Fatal(err)
		}
		if msg, filename, ok := soakFastRow(row); ok && (msg != want.Msg || filename != want.Filename) {
			t.Errorf("soakFastRow(%s) = %q %q, the decoder reads %q %q", row, msg, filename, want.Msg, want.Filename)
		}
	}
	seen := newSoakSeen([]int64{130, 1})
	for _, seq := range []int{0, 64, 129, 64} {
		if !seen.mark(0, seq) {
			t.Errorf("mark(0, %d) = false", seq)
		}
	}
	if seen.mark(0, 130) || seen.mark(1, 1) || seen.mark(2, 0) {
		t.Errorf("mark accepted a line never written")
	}
	if lost, first := seen.missing(0, 130); lost != 127 || first[0] != 1 || seen.extra != 1 {
		t.Errorf("missing = %d %v, extra %d; want 127 from 1, extra 1", lost, first, seen.extra)
	}
}

// TestSoakJudge checks the leak rule on made-up samples: flat series pass,
// a goroutine or FD leak fails at any length, and the same heap growth
// fails a long run but not a short one (doubled tolerance).
func TestSoakJudge(t *testing.T) {
	series := func(p soakPlan, f func(s *soakSample, frac float64)) []soakSample {
		var out []soakSample
		for at := p.interval; at <= p.duration; at += p.interval {
			s := soakSample{at: at, phase: p.phase(at), goroutines: 40, fds: 24, files: 6, heapLive: 16 << 20, rss: 50 << 20}
			f(&s, float64(at)/float64(p.duration))
			out = append(out, s)
		}
		return out
	}
	short, err := newSoakPlan(90*time.Second, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	long, err := newSoakPlan(24*time.Hour, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if long.warmup != time.Hour || long.interval != 5*time.Minute || short.warmup != 15*time.Second || short.interval != 2*time.Second {
		t.Errorf("plans: short %+v, long %+v", short, long)
	}
	if short.outageAt <= short.warmup+short.third || short.outageAt+short.outageLen >= short.duration-short.third {
		t.Errorf("the outage [%v, +%v] is not inside the middle third of %+v", short.outageAt, short.outageLen, short)
	}
	for _, c := range []struct {
		name string
		p    soakPlan
		f    func(s *soakSample, frac float64)
		want string
	}{
		{"flat short", short, func(*soakSample, float64) {}, ""},
		{"flat long", long, func(*soakSample, float64) {}, ""},
		{"sawtooth", long, func(s *soakSample, frac float64) { s.heapLive += float64(int(frac*1000)%7) * (2 << 20) }, ""},
		{"goroutine leak", short, func(s *soakSample, frac float64) { s.goroutines += 30 * frac }, "goroutines"},
		{"fd leak", long, func(s *soakSample, frac float64) { s.fds += 10 * frac }, "open FDs"},
		{"heap +12MiB long", long, func(s *soakSample, frac float64) { s.heapLive += 18 * frac * (1 << 20) }, "live heap"},
		{"heap +12MiB short", short, func(s *soakSample, frac float64) { s.heapLive += 18 * frac * (1 << 20) }, ""},
	} {
		_, grew, err := judgeSoak(c.p, series(c.p, c.f))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := strings.Join(grew, ","); got != c.want {
			t.Errorf("%s: grew %q, want %q", c.name, got, c.want)
		}
	}
	// A window without 3 good samples is an error, not a pass.
	ss := series(short, func(s *soakSample, frac float64) {
		if frac > 0.5 {
			s.scrapeErr = "connection refused"
		}
	})
	if _, _, err := judgeSoak(short, ss); err == nil {
		t.Errorf("judged a run whose last window has no good sample")
	}
	if _, err := newSoakPlan(30*time.Second, 0, 0); err == nil {
		t.Errorf("accepted a 30s soak")
	}
}

// TestSoakGoroutineGrowth checks the profile diff the soak prints on growth.
func TestSoakGoroutineGrowth(t *testing.T) {
	prof := func(n int) string {
		return fmt.Sprintf(`goroutine profile: total %d
%d @ 0x1 0x2
#	0x1	main.leaky+0x10	/src/a.go:10
#	0x2	main.run+0x20	/src/a.go:20

3 @ 0x3
#	0x3	main.steady+0x30	/src/b.go:5
`, n+3, n)
	}
	got := goroutineGrowth(prof(2), prof(9), 5)
	if !strings.HasPrefix(got, "2 -> 9:") || !strings.Contains(got, "main.leaky+0x10 /src/a.go:10") || strings.Contains(got, "steady") {
		t.Errorf("goroutineGrowth:\n%s", got)
	}
}
