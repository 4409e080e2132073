package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// writeBacklog writes n lines (seq 0..n-1) into path as fast as it can.
func writeBacklog(path string, n uint64) (time.Duration, error) {
	start := time.Now()
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	line := make([]byte, 0, LineBytes)
	ts := time.Now().UnixNano()
	for seq := range n {
		if seq%4096 == 0 {
			ts = time.Now().UnixNano()
		}
		line = appendLine(line[:0], seq, ts)
		if _, err := w.Write(line); err != nil {
			_ = f.Close()
			return 0, err
		}
	}
	if err := w.Flush(); err != nil {
		_ = f.Close()
		return 0, err
	}
	if err := f.Close(); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// E2EResult is one file → agent → receiver run.
type E2EResult struct {
	Receiver     string
	Concurrency  int
	Dedup        string        // dedup.window given to the agent; empty: its default
	Lines        uint64        // physical lines in the files
	Records      uint64        // records they make (multiline entries, else lines)
	Files        int           // files the lines were spread over (0: the one backlog file)
	MaxOpenFiles int           // files_config.max_open_files of the agent (/config)
	FilesPeak    int64         // most files the agent held open at once (/stats)
	Elapsed      time.Duration // agent start until every line acknowledged
	Sustained    float64       // lines/s while 10 % to 90 % of the lines were acknowledged
	AgentRun     ProcSample    // agent at completion (/proc)
	AgentLife    Usage         // agent over its whole life (wait4 rusage)
	RecvCPU      time.Duration // receiver CPU during the run
	Received     uint64        // rows/entries the receiver holds
	Unique       uint64
	Dups         uint64
	Missing      uint64
	Foreign      uint64
	Requests     uint64
	StopErr      string
	Perf         string // perf report excerpt
	Diag         AgentDiag
	OtherCores   float64 // CPU used by other processes of the box during the run, in cores
}

// E2EGroup is the repeated runs of one receiver and concurrency.
type E2EGroup struct {
	Receiver    string
	Concurrency int
	Dedup       string
	Runs        []E2EResult
}

// Median is the run with the median throughput (the lower middle one for an
// even count), so its figures belong together.
func (g E2EGroup) Median() E2EResult {
	rs := slices.Clone(g.Runs)
	slices.SortFunc(rs, func(a, b E2EResult) int { return cmpFloat(a.LinesPerSec(), b.LinesPerSec()) })
	return rs[(len(rs)-1)/2]
}

// Range returns the smallest and largest value of f over the runs.
func (g E2EGroup) Range(f func(E2EResult) float64) (lo, hi float64) {
	for i, r := range g.Runs {
		v := f(r)
		if i == 0 || v < lo {
			lo = v
		}
		if i == 0 || v > hi {
			hi = v
		}
	}
	return lo, hi
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (r E2EResult) LinesPerSec() float64 { return float64(r.Lines) / r.Elapsed.Seconds() }

// Entries is the records the lines make: Lines unless multiline grouped them.
func (r E2EResult) Entries() uint64 {
	if r.Records == 0 {
		return r.Lines
	}
	return r.Records
}

// RecordsPerSec is entries per second.
func (r E2EResult) RecordsPerSec() float64 { return float64(r.Entries()) / r.Elapsed.Seconds() }

// SustainedLines is Sustained (records acknowledged per second) in lines.
func (r E2EResult) SustainedLines() float64 {
	return r.Sustained * float64(r.Lines) / float64(r.Entries())
}

// CPUPerM is CPU-seconds per million lines over the agent's whole life.
func (r E2EResult) CPUPerM() float64 { return r.AgentLife.CPU.Seconds() / (float64(r.Lines) / 1e6) }

// RunCPUPerM is the same, from the /proc sample at completion (no shutdown).
func (r E2EResult) RunCPUPerM() float64 { return r.AgentRun.CPU.Seconds() / (float64(r.Lines) / 1e6) }

func (r E2EResult) RecvCPUPerM() float64 { return r.RecvCPU.Seconds() / (float64(r.Lines) / 1e6) }

// runner holds what every phase shares.
type runner struct {
	logf      func(string, ...any)
	opts      options
	reap      *reaper
	tmp       string
	agent     string
	vlBin     string
	vlMissing bool // looked for and not found
	bh        *blackhole
	pollIv    time.Duration
	seq       int
}

// quiet waits for the box to be idle before a measured run (-quiet-wait).
func (rn *runner) quiet(ctx context.Context) {
	if rn.opts.QuietWait <= 0 {
		return
	}
	if load := waitQuiet(ctx, rn.opts.QuietWait); load >= busyWarn {
		rn.logf("other processes keep %.2f cores busy after waiting %v; measuring anyway (the report flags it)", load, rn.opts.QuietWait)
	}
}

// cleanup removes a run's data once its processes are gone (deferred
// before them, so it runs after), unless -keep: every run starts from the
// same disk and page-cache state.
func (rn *runner) cleanup(dir string) {
	if !rn.opts.Keep {
		_ = os.RemoveAll(dir)
	}
}

// e2eCase is what one end-to-end run ships: the files include matches (one
// file, or a glob over a tree), holding lines physical lines that make
// records entries (equal unless routes groups lines with multiline), and
// the file-routing YAML given to the agent ("" for none).
type e2eCase struct {
	include string
	lines   uint64
	records uint64
	routes  string
}

// oneLineCase is a backlog of one record per line.
func oneLineCase(include string, lines uint64) e2eCase {
	return e2eCase{include: include, lines: lines, records: lines}
}

// runE2E ships a pre-written backlog through a fresh agent to the named
// receiver and checks what arrived: every record once, by seq.
func (rn *runner) runE2E(ctx context.Context, c e2eCase, receiver string, conc int, dedup string, first bool) (E2EResult, error) {
	n := c.records
	res := E2EResult{Receiver: receiver, Concurrency: conc, Lines: c.lines, Records: n, Dedup: dedup}
	rn.seq++
	dir := filepath.Join(rn.tmp, fmt.Sprintf("e2e-%d-%s-c%d", rn.seq, receiver, conc))
	defer rn.cleanup(dir)
	var (
		pushURL string
		vl      *victoriaLogs
		t       *tally
	)
	switch receiver {
	case "blackhole":
		t = rn.bh.Reset(n, false)
		pushURL = rn.bh.PushURL()
	case "victorialogs":
		var err error
		vl, err = startVictoriaLogs(ctx, rn.reap, rn.vlBin, filepath.Join(dir, "vl"))
		if err != nil {
			return res, err
		}
		defer func() { _, _ = vl.proc.stop(30 * time.Second) }()
		pushURL = vl.PushURL()
	}
	recvCPU := func() time.Duration {
		if vl == nil {
			return selfCPU() // the blackhole runs in this process
		}
		s, err := sampleProc(vl.proc.pid())
		if err != nil {
			return 0
		}
		return s.CPU
	}
	rn.quiet(ctx)
	cpu0, self0, busy0 := recvCPU(), selfCPU(), sampleBox()
	a, err := startAgent(rn.reap, rn.agent, agentParams{DataDir: filepath.Join(dir, "agent"), File: c.include, Routes: c.routes,
		PushURL: pushURL, Concurrency: conc, BatchBytes: "1MiB", BatchWait: time.Second, SegmentSize: rn.opts.SegmentSize, DedupWindow: dedup, Env: rn.opts.AgentEnv})
	if err != nil {
		return res, err
	}
	defer func() { _, _ = a.proc.stop(30 * time.Second) }()
	var perf *perfRecorder
	if rn.opts.Perf != "" && receiver == "blackhole" && conc == rn.opts.Concurrency[0] && first {
		if perf, err = startPerf(rn.reap, rn.opts.Perf, a.proc.pid()); err != nil {
			return res, err
		}
	}
	limit := time.Duration(max(60, int(n/10_000))) * time.Second // ≥ 10,000 lines/s or it is broken
	end, st, ps, err := a.waitShipped(ctx, n, rn.pollIv, limit)
	if err != nil {
		return res, fmt.Errorf("%s c=%d: %w", receiver, conc, err)
	}
	res.Elapsed = end.Sub(a.started)
	res.Sustained = sustained(ps, n, 0.1, 0.9)
	res.RecvCPU = recvCPU() - cpu0
	selfD, busyD := selfCPU()-self0, sampleBox().busySince(busy0)
	if s, err := sampleProc(a.proc.pid()); err == nil {
		res.AgentRun = s
	}
	ours := res.AgentRun.CPU + selfD
	if vl != nil {
		ours += res.RecvCPU
	}
	res.OtherCores = otherLoad(busyD, ours, time.Since(a.started))
	res.Diag = a.diagnose(ctx)
	res.FilesPeak = st.Files.FilesPeak
	res.MaxOpenFiles = a.maxOpenFiles(ctx)
	if perf != nil {
		rep, err := perf.stop(ctx)
		if err != nil {
			return res, err
		}
		res.Perf = rep
	}
	if st.Files.LinesRead != c.lines {
		return res, fmt.Errorf("%s c=%d: agent read %d lines, want %d", receiver, conc, st.Files.LinesRead, c.lines)
	}
	u, err := a.proc.stop(30 * time.Second)
	res.AgentLife = u
	if err != nil {
		res.StopErr = err.Error()
	}
	switch receiver {
	case "blackhole":
		// Everything was acknowledged, so it has been counted.
		s := t.snapshot()
		res.Received, res.Unique, res.Dups, res.Missing, res.Foreign, res.Requests = s.Entries, s.Unique, s.Dups, s.Missing(), s.Foreign, s.Requests
	case "victorialogs":
		rows, uniq, err := vl.Count(ctx)
		if err != nil {
			return res, err
		}
		res.Received, res.Unique = rows, uniq
		res.Dups = rows - uniq
		if uniq < n {
			res.Missing = n - uniq
		}
	}
	return res, nil
}

// LatencyResult is the fixed-rate run.
type LatencyResult struct {
	Rate        int
	Duration    time.Duration
	Measured    uint64 // lines written during Duration: the percentiles cover them
	Written     uint64 // including the tail written after Duration
	WriteRate   float64
	Concurrency int
	BatchWait   time.Duration
	P50, P90    time.Duration
	P99, P999   time.Duration
	Max         time.Duration
	LastLine    time.Duration // latency of the very last line, once the writer stopped
	AgentHWM    int64
	AgentCPU    time.Duration // from the first write until the last line arrived
	AgentWall   time.Duration // that interval
	OtherCores  float64
	Dups        uint64
	Missing     uint64
	Foreign     uint64
	StopErr     string
}

// runLatency writes lines at a fixed rate into a file the agent follows and
// records, for each line, the time from its write to its arrival at the
// blackhole receiver. The writer goes on at the same rate for batch_wait
// plus a second after the measured window, so every measured line is
// followed by traffic as in a stream that does not stop; the last line's
// latency (the flush of a stream that stops) is reported on its own.
func (rn *runner) runLatency(ctx context.Context, conc int, batchWait time.Duration) (LatencyResult, error) {
	rate, d := rn.opts.Rate, rn.opts.RateDuration
	measured := uint64(float64(rate) * d.Seconds())
	n := measured + uint64(float64(rate)*(batchWait+time.Second).Seconds())
	res := LatencyResult{Rate: rate, Duration: d, Measured: measured, Concurrency: conc, BatchWait: batchWait}
	rn.seq++
	dir := filepath.Join(rn.tmp, fmt.Sprintf("latency-%d-c%d-w%s", rn.seq, conc, batchWait))
	defer rn.cleanup(dir)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return res, err
	}
	path := filepath.Join(dir, "app.log")
	f, err := os.Create(path)
	if err != nil {
		return res, err
	}
	defer f.Close()
	t := rn.bh.Reset(n, true)
	a, err := startAgent(rn.reap, rn.agent, agentParams{DataDir: filepath.Join(dir, "agent"), File: path,
		PushURL: rn.bh.PushURL(), Concurrency: conc, BatchBytes: "1MiB", BatchWait: batchWait, SegmentSize: rn.opts.SegmentSize, DedupWindow: rn.opts.DedupWindow, Env: rn.opts.AgentEnv})
	if err != nil {
		return res, err
	}
	defer func() { _, _ = a.proc.stop(30 * time.Second) }()
	if err := a.waitReady(ctx); err != nil {
		return res, err
	}
	// Wait until the file is open, so the first lines do not measure start-up.
	for i := 0; ; i++ {
		st, err := a.stats(ctx)
		if err == nil && st.Files.FilesOpen >= 1 {
			break
		}
		if i > 500 || ctx.Err() != nil {
			return res, fmt.Errorf("latency: agent did not open %s within 10s", path)
		}
		time.Sleep(20 * time.Millisecond)
	}
	rn.quiet(ctx)
	cpu0, err := sampleProc(a.proc.pid())
	if err != nil {
		return res, err
	}
	self0, busy0 := selfCPU(), sampleBox()
	written, took, err := writeAtRate(ctx, f, n, rate)
	res.Written = written
	if err != nil {
		return res, err
	}
	res.WriteRate = float64(written) / took.Seconds()
	select {
	case <-t.complete:
	case <-a.proc.done:
		return res, fmt.Errorf("latency: agent exited early: %v", a.proc.err)
	case <-time.After(60 * time.Second):
		s := t.snapshot()
		return res, fmt.Errorf("latency: %d of %d lines arrived within 60s of the last write", s.Unique, n)
	case <-ctx.Done():
		return res, ctx.Err()
	}
	s1, err := sampleProc(a.proc.pid())
	if err != nil {
		return res, err
	}
	res.AgentCPU, res.AgentWall, res.AgentHWM = s1.CPU-cpu0.CPU, s1.Taken.Sub(cpu0.Taken), s1.HWM
	res.OtherCores = otherLoad(sampleBox().busySince(busy0), res.AgentCPU+selfCPU()-self0, res.AgentWall)
	if _, err := a.proc.stop(30 * time.Second); err != nil {
		res.StopErr = err.Error()
	}
	snap := t.snapshot()
	res.Dups, res.Missing, res.Foreign = snap.Dups, snap.Missing(), snap.Foreign
	all := t.Latencies()
	res.LastLine = time.Duration(all[len(all)-1])
	lat := all[:measured]
	slices.Sort(lat)
	res.P50, res.P90, res.P99, res.P999 = pct(lat, 0.50), pct(lat, 0.90), pct(lat, 0.99), pct(lat, 0.999)
	if len(lat) > 0 {
		res.Max = time.Duration(lat[len(lat)-1])
	}
	return res, nil
}

func pct(sorted []int64, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	i = min(max(i, 0), len(sorted)-1)
	return time.Duration(sorted[i])
}

// writeAtRate appends n lines to f at rate lines/s, one write per
// millisecond tick, each line stamped with the time of its write.
func writeAtRate(ctx context.Context, f *os.File, n uint64, rate int) (uint64, time.Duration, error) {
	buf := make([]byte, 0, 1<<20)
	start := time.Now()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	var seq uint64
	for seq < n {
		select {
		case <-ctx.Done():
			return seq, time.Since(start), ctx.Err()
		case <-tick.C:
		}
		now := time.Now()
		due := min(uint64(now.Sub(start).Seconds()*float64(rate)), n)
		buf = buf[:0]
		ts := now.UnixNano()
		for ; seq < due; seq++ {
			buf = appendLine(buf, seq, ts)
		}
		if len(buf) == 0 {
			continue
		}
		if _, err := f.Write(buf); err != nil {
			return seq, time.Since(start), fmt.Errorf("latency: write: %w", err)
		}
	}
	return seq, time.Since(start), nil
}
