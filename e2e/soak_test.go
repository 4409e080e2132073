package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/logcapturer/log_capturer_go/internal/testutil/victorialogs"
)

// TestSoak is the soak run of DESIGN.md ("no growth in goroutines, FDs or
// heap over the run") and checklist item 17: the real agent, on its default
// configuration, under a steady load for E2E_SOAK_DURATION (90 s by
// default; `make soak SOAK_DURATION=24h` for the real one): four writers at
// 5,000 lines/s in all, three long-lived files rotated every ~10 s,
// alternately by rename and by copytruncate, one writer creating a new file
// every ~5 s, every file left behind deleted once read, and one receiver
// outage (VictoriaLogs stopped and restarted) in the middle. /metrics and
// /stats are sampled all along and printed as a table.
//
// The leak rule (docs/runbook-soak.md): after a warm-up, the median of the
// samples in the first third of the measured time is compared with the
// median of the last third; the outage lies in the middle third. It fails
// when goroutines grow by more than 10, open FDs by more than 5, followed
// files by more than 10, the live heap (the heap goal over 1+GOGC/100: what
// the last GC kept) by more than max(8 MiB, 25 %) or RSS by more than
// max(16 MiB, 25 %); the two memory tolerances are doubled when the
// measured time is under an hour (the dedup set filling up, the WAL tail
// and the memory the runtime keeps after the outage's peak are of that
// size). They do not grow with the run, so a longer run catches a slower
// leak: over 24 h, 8 MiB is about 0.15 KiB/s. Then every line written must
// be in VictoriaLogs (0 lost), byte for byte, under the filename it was
// written to.
func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e: soak, E2E_SOAK_DURATION (90s by default); skipped with -short")
	}
	p := soakPlanFromEnv(t)
	// The run, then up to 5 minutes to settle and the read-back.
	need := p.duration + 5*time.Minute + p.duration/24
	if dl, ok := t.Deadline(); ok && time.Until(dl) < need {
		t.Fatalf("e2e: E2E_SOAK_DURATION=%v needs %v left before the go test -timeout, has %v (make soak derives it)",
			p.duration, need, time.Until(dl).Round(time.Second))
	}
	t.Logf("e2e: soak %v: warm-up %v, sample every %v, %d writers at %.0f lines/s, receiver down %v at %v",
		p.duration, p.warmup, p.interval, p.writers, p.rate, p.outageLen.Round(time.Second), p.outageAt.Round(time.Second))

	bin := agentBinary(t)
	// Reading back a long run takes longer than VictoriaLogs' default 30 s
	// query limit; the read-back also cuts it into windows of time.
	vl := victorialogs.Start(t, victorialogs.WithArgs("-search.maxQueryDuration=1h"))
	root := t.TempDir()
	logs := filepath.Join(root, "logs")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		t.Fatalf("e2e: %v", err)
	}
	cfg := baseConfig(t, root, filepath.Join(logs, "*.log"), vl.PushURL())
	ag := newAgent(t, bin, root, cfg)
	if err := os.WriteFile(ag.cfgPath, []byte(soakConfigYAML(cfg)), 0o644); err != nil {
		t.Fatalf("e2e: %v", err)
	}
	// The opt-in pprof listener (cmd/logcapturer/pprof.go): goroutine
	// profiles at both ends of the measured time explain a growth.
	pprofAddr := freeAddr(t)
	t.Setenv("LOGCAPTURER_PPROF", pprofAddr)
	ag.start()

	began := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), p.duration+5*time.Minute)
	defer cancel()
	jan := startJanitor(ctx, ag, time.Minute)
	load := soakLoad{Dir: logs, Writers: p.writers, Rate: p.rate, RotateEvery: 10 * time.Second,
		ChurnEvery: 5 * time.Second, StopAt: began.Add(p.duration + 2*time.Second), Seed: chaosSeed(t)}
	ws := load.start(ctx, jan)
	t.Cleanup(func() { cancel(); <-ws.done; <-jan.done })

	rec := newSoakRecorder(t, p)
	defer rec.close()
	profiles := soakProfiler{addr: pprofAddr, dir: os.Getenv("E2E_SOAK_PROFILES")}
	var firstGoroutines, lastGoroutines string
	down := false
	for next := p.interval; ; next += p.interval {
		at := min(next, p.duration)
		select {
		case <-time.After(time.Until(began.Add(at))):
		case <-ws.done:
			t.Fatalf("e2e: writers stopped early: %v", ws.err)
		}
		switch {
		case !down && at >= p.outageAt && at < p.outageAt+p.outageLen:
			vl.Stop()
			down = true
			t.Logf("e2e: %v receiver stopped", time.Since(began).Round(time.Second))
		case down && at >= p.outageAt+p.outageLen:
			vl.Restart()
			down = false
			t.Logf("e2e: %v receiver restarted", time.Since(began).Round(time.Second))
		}
		rec.add(sampleAgent(ag, at, p, down, ws))
		if firstGoroutines == "" && at >= p.warmup+p.third {
			firstGoroutines = profiles.take("first")
		}
		if at >= p.duration {
			lastGoroutines = profiles.take("last")
			break
		}
	}
	if down {
		vl.Restart()
	}
	select {
	case <-ws.done:
	case <-time.After(time.Minute):
		t.Fatalf("e2e: writers did not stop")
	}
	if ws.err != nil {
		t.Fatalf("e2e: writers: %v", ws.err)
	}
	written := make([]int64, p.writers)
	for w := range written {
		written[w] = ws.written[w].Load()
	}
	t.Logf("e2e: %v writers done: %d lines, %d renames, %d copytruncates, %d churn files; janitor deleted %d read files, %d unconfirmed after %v, %d left, %d errors",
		time.Since(began).Round(time.Second), ws.total(), ws.renames.Load(), ws.truncates.Load(), ws.churnFiles.Load(),
		jan.confirmed.Load(), jan.unconfirmed.Load(), jan.maxAge, jan.left(), jan.errs.Load())

	st := ag.waitSettled(5 * time.Minute)
	rec.add(sampleAgent(ag, time.Since(began), p, false, ws))
	rec.note("drained: the row above is after the writers stopped and the agent settled; it is not judged")
	cancel()
	<-jan.done

	leaks := rec.judge()
	if leaks > 0 && firstGoroutines != "" && lastGoroutines != "" {
		t.Logf("e2e: goroutine stacks that grew between the first and the last window:\n%s",
			goroutineGrowth(firstGoroutines, lastGoroutines, 15))
	}

	finish(t, ag, vl, st)
	ended := time.Now()
	t.Logf("e2e: %v agent stopped, WAL verified; reading every row back", time.Since(began).Round(time.Second))
	seen := newSoakSeen(written)
	var foreign, misfiled int
	var samples []string
	rctx, rcancel := context.WithTimeout(context.Background(), 10*time.Minute+p.duration/24)
	defer rcancel()
	rows, err := soakReadBack(rctx, vl.URL(), began.Add(-time.Minute), ended.Add(time.Minute), 30*time.Minute, seen,
		func(kind, sample string) {
			if kind == "foreign" {
				foreign++
			} else {
				misfiled++
			}
			if len(samples) < maxSamples {
				samples = append(samples, kind+": "+sample)
			}
		})
	if err != nil {
		t.Fatalf("e2e: read back: %v", err)
	}
	t.Logf("e2e: read back %d rows in %v", rows, time.Since(ended).Round(time.Second))
	if total, err := vl.Count(rctx, ""); err != nil || total != rows {
		t.Errorf("e2e: VictoriaLogs holds %d rows (%v), the read-back windows read %d", total, err, rows)
	}
	lost := 0
	for w, n := range written {
		l, first := seen.missing(w, n)
		if l > 0 {
			t.Errorf("e2e: writer %d: %d of %d lines LOST; first: %v", w, l, n, first)
		}
		lost += l
	}
	if lost > 0 && jan.unconfirmed.Load() > 0 {
		jan.mu.Lock()
		t.Logf("e2e: the janitor deleted %d files the agent had not confirmed read: %v", jan.unconfirmed.Load(), jan.unconfNames)
		jan.mu.Unlock()
	}
	if foreign > 0 || misfiled > 0 {
		t.Errorf("e2e: %d rows are not lines written, %d under the wrong filename; e.g.:\n%s", foreign, misfiled, strings.Join(samples, "\n"))
	}
	// No agent restart: only a batch in flight when the receiver stopped
	// can arrive twice.
	total := ws.total()
	inFlight := 2 * 2 * (1<<20 + 512<<10) / 100
	if seen.extra > inFlight {
		t.Errorf("e2e: %d duplicates: more than the %d lines the shipper may have had in flight at the outage", seen.extra, inFlight)
	}
	t.Logf("e2e: RESULT soak=%v lines=%d lost=%d duplicates=%d (%.4f%%) foreign=%d misfiled=%d leak_checks_failed=%d",
		p.duration, total, lost, seen.extra, 100*float64(seen.extra)/float64(max(total, 1)), foreign, misfiled, leaks)
}

// soakPlan is the schedule of one run.
type soakPlan struct {
	duration, warmup, third time.Duration
	interval                time.Duration
	outageAt, outageLen     time.Duration
	writers                 int
	rate                    float64
	csv                     string
}

func clampDur(d, lo, hi time.Duration) time.Duration { return max(lo, min(hi, d)) }

// soakPlanFromEnv reads E2E_SOAK_DURATION (default 90s), E2E_SOAK_RATE
// (lines/s, default 5000), E2E_SOAK_WARMUP, E2E_SOAK_INTERVAL and
// E2E_SOAK_CSV, and derives the rest.
func soakPlanFromEnv(t *testing.T) soakPlan {
	t.Helper()
	dur := func(name string, def time.Duration) time.Duration {
		s := os.Getenv(name)
		if s == "" {
			return def
		}
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			t.Fatalf("e2e: %s=%q: want a Go duration such as 90s, 30m or 24h", name, s)
		}
		return d
	}
	p, err := newSoakPlan(dur("E2E_SOAK_DURATION", 90*time.Second), dur("E2E_SOAK_WARMUP", 0), dur("E2E_SOAK_INTERVAL", 0))
	if err != nil {
		t.Fatalf("e2e: %v", err)
	}
	p.csv = os.Getenv("E2E_SOAK_CSV")
	if s := os.Getenv("E2E_SOAK_RATE"); s != "" {
		r, err := strconv.ParseFloat(s, 64)
		if err != nil || r < 100 || r > 100_000 {
			t.Fatalf("e2e: E2E_SOAK_RATE=%q: want lines/s in [100, 100000]", s)
		}
		p.rate = r
	}
	return p
}

// newSoakPlan derives the schedule of a run of d; a zero warmup or interval
// takes its default.
func newSoakPlan(d, warmup, interval time.Duration) (soakPlan, error) {
	p := soakPlan{duration: d, warmup: warmup, interval: interval, writers: 4, rate: 5000}
	if d < 60*time.Second {
		return p, fmt.Errorf("soak duration %v: want at least 60s", d)
	}
	// The warm-up covers what fills up by design: the dedup set (250,000
	// keys, 10m), the WAL retention (1h) and its disk budget. Short runs
	// cannot wait that long; their doubled memory tolerances absorb it.
	if p.warmup == 0 {
		p.warmup = clampDur(d/6, 15*time.Second, time.Hour)
	}
	if p.warmup > d/2 {
		return p, fmt.Errorf("warm-up %v is more than half of %v", p.warmup, d)
	}
	p.third = (d - p.warmup) / 3
	if p.interval == 0 {
		p.interval = clampDur(d/240, 2*time.Second, 5*time.Minute)
	}
	if p.third < 3*p.interval {
		return p, fmt.Errorf("a third of the measured time (%v) holds fewer than 3 samples every %v", p.third, p.interval)
	}
	// The outage sits in the middle third, a quarter into it, and ends
	// early enough for the backlog to drain before the last third.
	p.outageLen = clampDur(p.third/4, 5*time.Second, 2*time.Minute)
	p.outageAt = p.warmup + p.third + p.third/4
	return p, nil
}

// soakConfigYAML is the agent's default configuration (configs/config.yaml
// defaults) with the test's paths and receiver, the file sink off, and
// short backoffs so that the outage's backlog drains within seconds.
func soakConfigYAML(c agentConfig) string {
	return fmt.Sprintf(`data_dir: %q
log:
  level: info
  format: json
server:
  listen: %q
  metrics_listen: %q
files_config:
  include: [%q]
  labels:
    job: soak
sinks:
  loki:
    url: %q
    min_backoff: 100ms
    max_backoff: 5s
    circuit:
      cooldown: 2s
  file:
    enabled: false
`, c.DataDir, c.Listen, c.MetricsListen, c.Include, c.LokiURL)
}

// soakSample is one row of the table.
type soakSample struct {
	at                         time.Duration
	phase                      string
	goroutines, threads, fds   float64
	heapInuse, heapLive, rss   float64 // bytes
	files, open                int     // followed files, open ones
	written                    int64
	shipped, lag               uint64
	walBytes                   int64
	scrapeErr                  string
	receiverDown, notMeasuring bool
}

func (p soakPlan) phase(at time.Duration) string {
	switch {
	case at < p.warmup:
		return "warm-up"
	case at <= p.warmup+p.third:
		return "first"
	case at < p.duration-p.third:
		return "middle"
	case at <= p.duration:
		return "last"
	}
	return "drained"
}

// sampleAgent scrapes /metrics, /stats and /positions once.
func sampleAgent(a *agent, at time.Duration, p soakPlan, down bool, ws *soakWriters) soakSample {
	s := soakSample{at: at, phase: p.phase(at), receiverDown: down, written: ws.total()}
	var errs []string
	if body, err := a.get("/metrics"); err != nil {
		errs = append(errs, err.Error())
	} else {
		text := string(body)
		for _, m := range []struct {
			name string
			v    *float64
		}{
			{"go_goroutines", &s.goroutines},
			{"go_threads", &s.threads},
			{"process_open_fds", &s.fds},
			{"go_memstats_heap_inuse_bytes", &s.heapInuse},
			{"go_memstats_next_gc_bytes", &s.heapLive},
			{"process_resident_memory_bytes", &s.rss},
		} {
			v, ok := metricValue(text, m.name)
			if !ok {
				errs = append(errs, "no "+m.name)
			}
			*m.v = v
		}
		// The heap goal is the heap the last GC kept times 1+GOGC/100.
		gogc, ok := metricValue(text, "go_gc_gogc_percent")
		if !ok || gogc <= 0 {
			gogc = 100
		}
		s.heapLive /= 1 + gogc/100
	}
	if st, err := a.stats(); err != nil {
		errs = append(errs, err.Error())
	} else {
		k, _ := st.sink("loki")
		s.shipped, s.lag, s.walBytes = k.LinesShipped, k.LagEntries, st.WAL.DiskBytes
	}
	if pos, err := a.rotatePositions(); err != nil {
		errs = append(errs, err.Error())
	} else {
		s.files = len(pos)
		for _, x := range pos {
			if x.Open {
				s.open++
			}
		}
	}
	s.scrapeErr = strings.Join(errs, "; ")
	return s
}

// soakRecorder logs each sample as it is taken (a long run leaves its
// record even if it dies), writes it to the CSV, and judges at the end.
type soakRecorder struct {
	t       *testing.T
	p       soakPlan
	samples []soakSample
	csv     *os.File
}

const soakHeader = "%9s %-7s %6s %5s %5s %8s %8s %8s %5s %5s %11s %11s %8s %7s %s"

func newSoakRecorder(t *testing.T, p soakPlan) *soakRecorder {
	r := &soakRecorder{t: t, p: p}
	if p.csv != "" {
		f, err := os.Create(p.csv)
		if err != nil {
			t.Fatalf("e2e: E2E_SOAK_CSV: %v", err)
		}
		r.csv = f
		fmt.Fprintln(f, "elapsed_s,phase,goroutines,threads,open_fds,heap_inuse_bytes,heap_live_bytes,rss_bytes,followed_files,open_files,lines_written,lines_shipped,lag_entries,wal_bytes,receiver_down,error")
	}
	t.Logf("e2e: soak samples:\n"+soakHeader, "t", "phase", "gorout", "thr", "fds", "heap_MiB", "live_MiB", "rss_MiB",
		"files", "open", "written", "shipped", "lag", "wal_MiB", "note")
	return r
}

func (r *soakRecorder) add(s soakSample) {
	r.samples = append(r.samples, s)
	note := ""
	if s.receiverDown {
		note = "receiver down"
	}
	if s.scrapeErr != "" {
		note += " ERROR " + s.scrapeErr
	}
	r.t.Logf(soakHeader, fmtElapsed(s.at), s.phase, ffmt(s.goroutines), ffmt(s.threads), ffmt(s.fds),
		mib(s.heapInuse), mib(s.heapLive), mib(s.rss), strconv.Itoa(s.files), strconv.Itoa(s.open),
		strconv.FormatInt(s.written, 10), strconv.FormatUint(s.shipped, 10), strconv.FormatUint(s.lag, 10),
		fmt.Sprintf("%.1f", float64(s.walBytes)/(1<<20)), note)
	if r.csv != nil {
		fmt.Fprintf(r.csv, "%.0f,%s,%.0f,%.0f,%.0f,%.0f,%.0f,%.0f,%d,%d,%d,%d,%d,%d,%v,%q\n", s.at.Seconds(), s.phase,
			s.goroutines, s.threads, s.fds, s.heapInuse, s.heapLive, s.rss, s.files, s.open, s.written, s.shipped, s.lag, s.walBytes,
			s.receiverDown, s.scrapeErr)
	}
}

func (r *soakRecorder) note(msg string) { r.t.Logf("e2e: %s", msg) }

func (r *soakRecorder) close() {
	if r.csv != nil {
		if err := r.csv.Close(); err != nil {
			r.t.Errorf("e2e: E2E_SOAK_CSV: %v", err)
		}
		r.t.Logf("e2e: samples written to %s", r.p.csv)
	}
}

func ffmt(v float64) string { return strconv.FormatFloat(v, 'f', 0, 64) }

func mib(v float64) string { return strconv.FormatFloat(v/(1<<20), 'f', 1, 64) }

func fmtElapsed(d time.Duration) string {
	d = d.Round(time.Second)
	return fmt.Sprintf("%d:%02d:%02d", int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60)
}

// soakLimit is one leak check: the last window's median may exceed the
// first's by at most max(abs, rel × first), twice that for a memory check
// (mib) when the measured time is under an hour.
type soakLimit struct {
	name     string
	get      func(soakSample) float64
	abs, rel float64
	mib      bool
}

// soakShortRun is the measured time under which the memory tolerances are
// doubled.
const soakShortRun = time.Hour

var soakLimits = []soakLimit{
	{name: "goroutines", get: func(s soakSample) float64 { return s.goroutines }, abs: 10},
	{name: "open FDs", get: func(s soakSample) float64 { return s.fds }, abs: 5},
	{name: "followed files", get: func(s soakSample) float64 { return float64(s.files) }, abs: 10},
	{name: "live heap", get: func(s soakSample) float64 { return s.heapLive }, abs: 8 << 20, rel: 0.25, mib: true},
	{name: "RSS", get: func(s soakSample) float64 { return s.rss }, abs: 16 << 20, rel: 0.25, mib: true},
}

// judge logs the leak check and fails the test on growth; it returns the
// number of failed checks.
func (r *soakRecorder) judge() int {
	report, grew, err := judgeSoak(r.p, r.samples)
	if err != nil {
		r.t.Errorf("e2e: %v", err)
		return 1
	}
	r.t.Logf("e2e: leak check, median of the first window [%v, %v] against the last [%v, %v]:\n%s",
		r.p.warmup.Round(time.Second), (r.p.warmup + r.p.third).Round(time.Second),
		(r.p.duration - r.p.third).Round(time.Second), r.p.duration.Round(time.Second), report)
	if len(grew) > 0 {
		r.t.Errorf("e2e: grew beyond the tolerance over the soak: %s (see the table above)", strings.Join(grew, ", "))
	}
	return len(grew)
}

// judgeSoak applies soakLimits to the samples of a run planned as p: it
// returns a table, the names of the checks that failed, and an error when
// a window holds fewer than 3 good samples.
func judgeSoak(p soakPlan, samples []soakSample) (string, []string, error) {
	var first, last, measured []soakSample
	for _, s := range samples {
		if s.scrapeErr != "" {
			continue
		}
		switch s.phase {
		case "first":
			first = append(first, s)
		case "last":
			last = append(last, s)
		}
		if s.phase == "first" || s.phase == "middle" || s.phase == "last" {
			measured = append(measured, s)
		}
	}
	if len(first) < 3 || len(last) < 3 {
		return "", nil, fmt.Errorf("too few good samples to judge: %d in the first window, %d in the last", len(first), len(last))
	}
	var grew []string
	measuredTime := p.duration - p.warmup
	var b strings.Builder
	fmt.Fprintf(&b, "%-15s %12s %12s %12s %12s %12s %14s  %s\n", "", "start", "end", "first_med", "last_med", "allowed", "slope/hour", "verdict")
	for _, l := range soakLimits {
		f, e := median(first, l.get), median(last, l.get)
		allowed := max(l.abs, l.rel*f)
		if l.mib && measuredTime < soakShortRun {
			allowed *= 2
		}
		verdict := "ok"
		if e-f > allowed {
			verdict = "GROWTH"
			grew = append(grew, l.name)
		}
		unit := func(v float64) string {
			if l.mib {
				return fmt.Sprintf("%.1fMiB", v/(1<<20))
			}
			return strconv.FormatFloat(v, 'f', 1, 64)
		}
		// Over minutes a slope is the GC's sawtooth, not a trend.
		slope := "n/a"
		if measuredTime >= 30*time.Minute {
			slope = unit(slopePerHour(measured, l.get))
		}
		fmt.Fprintf(&b, "%-15s %12s %12s %12s %12s %12s %14s  %s\n", l.name, unit(l.get(first[0])), unit(l.get(last[len(last)-1])),
			unit(f), unit(e), "+"+unit(allowed), slope, verdict)
	}
	return b.String(), grew, nil
}

func median(ss []soakSample, get func(soakSample) float64) float64 {
	v := make([]float64, len(ss))
	for i, s := range ss {
		v[i] = get(s)
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// slopePerHour is the least-squares slope of get over time, per hour:
// reported, not judged.
func slopePerHour(ss []soakSample, get func(soakSample) float64) float64 {
	if len(ss) < 2 {
		return 0
	}
	var sx, sy, sxx, sxy float64
	for _, s := range ss {
		x, y := s.at.Hours(), get(s)
		sx, sy, sxx, sxy = sx+x, sy+y, sxx+x*x, sxy+x*y
	}
	n := float64(len(ss))
	den := n*sxx - sx*sx
	if den == 0 || math.IsNaN(den) {
		return 0
	}
	return (n*sxy - sx*sy) / den
}

// soakProfiler fetches the agent's goroutine profile (debug=1: stacks with
// counts) and, when dir is set, keeps it and a heap profile there.
type soakProfiler struct {
	addr, dir string
}

func (p soakProfiler) fetch(path string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.addr+path, nil)
	if err != nil {
		return nil, err
	}
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: HTTP %d", path, resp.StatusCode)
	}
	return io.ReadAll(io.LimitReader(resp.Body, 64<<20))
}

// take returns the goroutine profile ("" if it could not be had).
func (p soakProfiler) take(name string) string {
	g, err := p.fetch("/debug/pprof/goroutine?debug=1")
	if err != nil {
		return ""
	}
	if p.dir != "" {
		_ = os.MkdirAll(p.dir, 0o755)
		_ = os.WriteFile(filepath.Join(p.dir, "goroutine-"+name+".txt"), g, 0o644)
		if h, err := p.fetch("/debug/pprof/heap"); err == nil {
			_ = os.WriteFile(filepath.Join(p.dir, "heap-"+name+".pb.gz"), h, 0o644)
		}
	}
	return string(g)
}

// goroutineGrowth lists the stacks whose goroutine count grew between two
// debug=1 profiles, most grown first.
func goroutineGrowth(before, after string, n int) string {
	a, b := goroutineCounts(before), goroutineCounts(after)
	type grown struct {
		stack string
		from  int
		to    int
	}
	var out []grown
	for stack, c := range b {
		if c > a[stack] {
			out = append(out, grown{stack, a[stack], c})
		}
	}
	slices.SortFunc(out, func(x, y grown) int { return (y.to - y.from) - (x.to - x.from) })
	var sb strings.Builder
	for i, g := range out {
		if i == n {
			break
		}
		fmt.Fprintf(&sb, "%d -> %d:\n%s\n", g.from, g.to, g.stack)
	}
	if sb.Len() == 0 {
		return "(none: the growth is spread over stacks that also shrank)"
	}
	return sb.String()
}

// goroutineCounts parses a debug=1 goroutine profile: "N @ addrs" followed
// by "#\taddr\tfunc\tfile:line" lines, one block per stack. The key is the
// function lines (addresses dropped).
func goroutineCounts(profile string) map[string]int {
	out := map[string]int{}
	sc := bufio.NewScanner(strings.NewReader(profile))
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	count := 0
	var stack []string
	flush := func() {
		if count > 0 {
			out[strings.Join(stack, "\n")] += count
		}
		count, stack = 0, nil
	}
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.Contains(line, " @ "):
			flush()
			c, _, _ := strings.Cut(line, " @ ")
			count, _ = strconv.Atoi(c)
		case strings.HasPrefix(line, "#\t"):
			f := strings.Fields(line)
			if len(f) >= 4 {
				stack = append(stack, "    "+f[2]+" "+f[3])
			}
		case line == "":
			flush()
		}
	}
	flush()
	return out
}
