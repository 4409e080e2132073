// Command lcbench measures log_capturer_go: WAL append throughput with group
// commit, end-to-end file → agent → receiver throughput and cost (one file,
// the same lines over many files, multiline entries), and capture-to-ack
// latency at a fixed rate. It drives the real agent binary
// (built from ./cmd/logcapturer) and a real VictoriaLogs; only the WAL
// benchmark uses the wal package directly, as a library benchmark.
//
//	go run ./bench/cmd/lcbench -out bench/RESULTS.md          # full run
//	go run ./bench/cmd/lcbench -quick                         # CI, < 60 s
//
// Every process it starts is killed when it ends, however it ends.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type options struct {
	Quick            bool
	Lines            uint64
	Rate             int
	RateDuration     time.Duration
	WALDuration      time.Duration
	Concurrency      []int
	LatencyBatchWait []time.Duration
	Out              string
	SkipVL           bool
	SkipWAL          bool
	SkipE2E          bool
	SkipLatency      bool
	SkipFiles        bool
	MultilineFrames  int
	E2EFiles         []int
	TmpDir           string
	Keep             bool
	AgentBin         string
	VLBin            string
	CPUProfile       string
	Perf             string
	Timeout          time.Duration
	Repeat           int
	Warmup           int64
	AgentEnv         []string
	SegmentSize      string
	QuietWait        time.Duration
	DedupWindow      string
	Args             []string
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("lcbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.BoolVar(&o.Quick, "quick", false, "CI mode: 100k lines, 1s WAL variants, 5s latency run, concurrency 2 (explicit flags still win)")
	lines := fs.Uint64("lines", 1_000_000, "lines in the end-to-end backlog file")
	fs.IntVar(&o.Rate, "rate", 50_000, "lines/s of the latency run")
	fs.DurationVar(&o.RateDuration, "rate-duration", 20*time.Second, "duration of the latency run")
	fs.DurationVar(&o.WALDuration, "wal-duration", 3*time.Second, "duration of each WAL append variant")
	conc := fs.String("concurrency", "2,4", "comma-separated sinks.loki.concurrency values for the end-to-end runs")
	bw := fs.String("latency-batch-wait", "1s,50ms", "comma-separated sinks.loki.batch_wait values for the latency run")
	fs.StringVar(&o.Out, "out", "", "also write the report (markdown) to this file")
	fs.BoolVar(&o.SkipVL, "skip-vl", false, "skip the VictoriaLogs end-to-end runs")
	fs.BoolVar(&o.SkipWAL, "skip-wal", false, "skip the WAL append benchmark")
	fs.BoolVar(&o.SkipE2E, "skip-e2e", false, "skip the end-to-end runs")
	fs.BoolVar(&o.SkipLatency, "skip-latency", false, "skip the fixed-rate latency run")
	fs.BoolVar(&o.SkipFiles, "skip-files", false, "skip the many-files end-to-end runs (-e2e-files)")
	fs.IntVar(&o.MultilineFrames, "e2e-multiline", 9, "multiline end-to-end case: entries of a head line plus this many Java stack frames, grouped by a file route with multiline preset java; -lines physical lines in all (0: off; off in -quick unless set)")
	files := fs.String("e2e-files", "1,100,2000", "comma-separated file counts: the same -lines total spread over that many files in a directory tree, one end-to-end run set per count (independent of -skip-e2e)")
	fs.StringVar(&o.TmpDir, "tmpdir", os.TempDir(), "where data dirs are created (use a real disk, not tmpfs)")
	fs.BoolVar(&o.Keep, "keep", false, "keep the temporary directory (logs, configs, data)")
	fs.StringVar(&o.AgentBin, "agent-bin", "", "use this logcapturer binary instead of building ./cmd/logcapturer")
	fs.StringVar(&o.VLBin, "vl-bin", "", "victoria-logs binary (default: $VICTORIA_LOGS_BIN, PATH, GOPATH/bin)")
	fs.StringVar(&o.CPUProfile, "cpuprofile", "", "write a CPU profile of the WAL append benchmark to this file")
	fs.StringVar(&o.Perf, "perf", "", "record `perf` of the agent in the first blackhole run; write perf.data and a report into this dir")
	fs.DurationVar(&o.Timeout, "timeout", 30*time.Minute, "give up after this long")
	fs.IntVar(&o.Repeat, "repeat", 3, "end-to-end runs per receiver and concurrency; the report shows the median run and the range")
	warm := fs.Int("warmup-mib", 1024, "MiB written and deleted twice before measuring, so first-touch page faults of a fresh VM stay out of the figures (0: off)")
	agentEnv := fs.String("agent-env", "", "comma-separated KEY=VALUE pairs added to the agent's environment (experiments, e.g. GOGC=50)")
	fs.StringVar(&o.SegmentSize, "segment-size", "2MiB", "wal.segment_size of the agent (experiments; 2MiB is the default)")
	fs.StringVar(&o.DedupWindow, "dedup-window", "", "dedup.window of the agent, e.g. 0 to turn dedup off (default: the agent's default)")
	fs.DurationVar(&o.QuietWait, "quiet-wait", 30*time.Second, "before each measured run, wait up to this long for other processes to leave the box idle (0: do not wait)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	o.Lines = *lines
	if o.Quick {
		if !set["lines"] {
			o.Lines = 100_000
		}
		if !set["rate-duration"] {
			o.RateDuration = 5 * time.Second
		}
		if !set["wal-duration"] {
			o.WALDuration = time.Second
		}
		if !set["concurrency"] {
			*conc = "2"
		}
		if !set["repeat"] {
			o.Repeat = 1
		}
		if !set["warmup-mib"] {
			*warm = 256
		}
		if !set["quiet-wait"] {
			o.QuietWait = 0
		}
		if !set["e2e-files"] {
			*files = "2000"
		}
		if !set["e2e-multiline"] {
			o.MultilineFrames = 0
		}
	}
	for _, s := range strings.Split(*conc, ",") {
		c, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || c < 1 || c > 64 {
			return o, fmt.Errorf("-concurrency: %q is not in 1..64", s)
		}
		o.Concurrency = append(o.Concurrency, c)
	}
	for _, s := range strings.Split(*bw, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil || d <= 0 {
			return o, fmt.Errorf("-latency-batch-wait: %q is not a positive duration", s)
		}
		o.LatencyBatchWait = append(o.LatencyBatchWait, d)
	}
	for _, s := range strings.Split(*files, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 100_000 {
			return o, fmt.Errorf("-e2e-files: %q is not in 1..100000", s)
		}
		o.E2EFiles = append(o.E2EFiles, n)
	}
	o.Warmup = int64(*warm) << 20
	for _, kv := range strings.Split(*agentEnv, ",") {
		if kv = strings.TrimSpace(kv); kv == "" {
			continue
		}
		if !strings.Contains(kv, "=") {
			return o, fmt.Errorf("-agent-env: %q is not KEY=VALUE", kv)
		}
		o.AgentEnv = append(o.AgentEnv, kv)
	}
	if o.Repeat < 1 {
		return o, errors.New("-repeat must be at least 1")
	}
	if o.Lines == 0 || o.Rate <= 0 || o.RateDuration <= 0 || o.WALDuration <= 0 {
		return o, errors.New("-lines, -rate, -rate-duration and -wal-duration must be positive")
	}
	for _, n := range o.E2EFiles {
		if uint64(n) > o.Lines {
			return o, fmt.Errorf("-e2e-files: %d files for %d lines: every file needs a line", n, o.Lines)
		}
	}
	if len(o.E2EFiles) == 0 {
		o.SkipFiles = true
	}
	if o.MultilineFrames < 0 || o.MultilineFrames > 400 {
		return o, fmt.Errorf("-e2e-multiline: %d is not in 0..400 (the preset's max_lines is 500)", o.MultilineFrames)
	}
	o.Args = args
	return o, nil
}

func run(args []string, stdout, stderr io.Writer) (code int) {
	o, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "lcbench:", err)
		return 2
	}
	rp := newReaper()
	// Children die with us: on return, on panic (re-raised after), on signal.
	defer func() {
		if p := recover(); p != nil {
			rp.killAll()
			panic(p)
		}
	}()
	defer rp.killAll()
	ctx, cancel := context.WithTimeout(context.Background(), o.Timeout)
	defer cancel()
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	tmp, err := os.MkdirTemp(o.TmpDir, "lcbench-")
	if err != nil {
		fmt.Fprintln(stderr, "lcbench:", err)
		return 1
	}
	if o.Keep {
		defer fmt.Fprintf(stderr, "lcbench: kept %s\n", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}
	logf := func(format string, a ...any) {
		fmt.Fprintf(stderr, "%s lcbench: %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, a...))
	}

	rep := &report{Opts: o, Started: time.Now(), Machine: describeMachine(tmp)}
	rn := &runner{opts: o, reap: rp, tmp: tmp, pollIv: 20 * time.Millisecond, logf: logf}
	failed := false
	fail := func(phase string, err error) {
		failed = true
		rep.Errors = append(rep.Errors, fmt.Sprintf("%s: %v", phase, err))
		logf("%s FAILED: %v", phase, err)
	}

	if o.Warmup > 0 {
		w, err := warmup(tmp, o.Warmup)
		if err != nil {
			fail("warmup", err)
		} else {
			rep.Warmup = &w
			logf("warmup: %d MiB of fresh page cache: %v CPU the first time, %v the second", w.Bytes>>20,
				w.FirstCPU.Round(time.Millisecond), w.SecondCPU.Round(time.Millisecond))
		}
	}
	if !o.SkipWAL {
		rep.WAL = rn.walPhase(ctx, logf, fail)
	}
	if !o.SkipE2E || !o.SkipLatency || !o.SkipFiles || o.MultilineFrames > 0 {
		if err := rn.prepareAgent(ctx, logf); err != nil {
			fail("agent", err)
		} else {
			rep.Machine.AgentBuild = rn.agent
			bh, err := newBlackhole()
			if err != nil {
				fail("blackhole", err)
			} else {
				rn.bh = bh
				defer bh.Close()
				if !o.SkipE2E {
					rep.E2E, rep.BacklogWrite = rn.e2ePhase(ctx, logf, fail, rep)
				}
				if !o.SkipFiles && ctx.Err() == nil {
					rep.Files = rn.filesPhase(ctx, logf, fail, rn.receivers(fail, rep))
				}
				if o.MultilineFrames > 0 && ctx.Err() == nil {
					rep.Multiline = rn.multilinePhase(ctx, logf, fail, rn.receivers(fail, rep))
				}
				if !o.SkipLatency {
					for _, bw := range o.LatencyBatchWait {
						logf("latency: %d lines/s for %v, concurrency %d, batch_wait %v", o.Rate, o.RateDuration, o.Concurrency[0], bw)
						lr, err := rn.runLatency(ctx, o.Concurrency[0], bw)
						if err != nil {
							fail("latency", err)
							continue
						}
						logf("latency: p50 %v p99 %v max %v, peak RSS %.1f MiB (others: %.2f cores)", lr.P50, lr.P99, lr.Max, mib(lr.AgentHWM), lr.OtherCores)
						rep.Latency = append(rep.Latency, lr)
					}
				}
			}
		}
	}
	rep.Finished = time.Now()
	text := rep.markdown()
	fmt.Fprint(stdout, text)
	if o.Out != "" {
		if err := writeReport(o.Out, text); err != nil {
			fmt.Fprintln(stderr, "lcbench:", err)
			return 1
		}
		logf("wrote %s", o.Out)
	}
	if failed || ctx.Err() != nil {
		return 1
	}
	return 0
}

func (rn *runner) walPhase(ctx context.Context, logf func(string, ...any), fail func(string, error)) []WALResult {
	if rn.opts.CPUProfile != "" {
		f, err := os.Create(rn.opts.CPUProfile)
		if err != nil {
			fail("cpuprofile", err)
		} else {
			defer f.Close()
			if err := pprof.StartCPUProfile(f); err != nil {
				fail("cpuprofile", err)
			} else {
				defer pprof.StopCPUProfile()
			}
		}
	}
	variants := []walVariant{
		{Name: "1 MiB payloads, 4 in flight (file source backlog)", Lines: 0, InFlight: 4},
		{Name: "1 MiB payloads, 4 in flight, fsync OFF (reference)", Lines: 0, InFlight: 4, NoSync: true},
		{Name: "100-line payloads, 4 in flight", Lines: 100, InFlight: 4},
		{Name: "100-line payloads, 256 in flight (many files)", Lines: 100, InFlight: 256},
	}
	var out []WALResult
	for i, v := range variants {
		if ctx.Err() != nil {
			break
		}
		rn.quiet(ctx)
		r, err := runWAL(ctx, filepath.Join(rn.tmp, fmt.Sprintf("wal-%d", i)), v, rn.opts.WALDuration)
		if err != nil {
			fail("wal "+v.Name, err)
			continue
		}
		logf("wal %s: %.0f lines/s, %.1f MB/s, %.0f fsyncs/s, %.1f entries/fsync (others: %.2f cores)", v.Name, r.LinesPerSec(), r.MBPerSec(), r.FsyncsPerSec(), r.EntriesPerFsync(), r.OtherCores)
		out = append(out, r)
	}
	return out
}

func (rn *runner) prepareAgent(ctx context.Context, logf func(string, ...any)) error {
	if rn.opts.AgentBin != "" {
		rn.agent = rn.opts.AgentBin
		return nil
	}
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	logf("building the agent from %s", root)
	rn.agent, err = buildAgent(ctx, root, rn.tmp)
	return err
}

func (rn *runner) e2ePhase(ctx context.Context, logf func(string, ...any), fail func(string, error), rep *report) ([]E2EGroup, time.Duration) {
	backlog := filepath.Join(rn.tmp, "backlog.log")
	took, err := writeBacklog(backlog, rn.opts.Lines)
	if err != nil {
		fail("backlog", err)
		return nil, 0
	}
	logf("backlog: %d lines (%.0f MB) written in %v", rn.opts.Lines, float64(rn.opts.Lines)*LineBytes/1e6, took.Round(time.Millisecond))
	receivers := rn.receivers(fail, rep)
	type combo struct {
		recv, dedup string
		conc        int
	}
	var combos []combo
	for _, recv := range receivers {
		for _, c := range rn.opts.Concurrency {
			combos = append(combos, combo{recv, rn.opts.DedupWindow, c})
		}
	}
	if rn.opts.DedupWindow == "" {
		// The same agent with dedup off shows what dedup costs.
		combos = append(combos, combo{"blackhole", "0", rn.opts.Concurrency[0]})
	}
	var out []E2EGroup
	for _, cb := range combos {
		g := E2EGroup{Receiver: cb.recv, Concurrency: cb.conc, Dedup: cb.dedup}
		name := fmt.Sprintf("%s c=%d %s", cb.recv, cb.conc, dedupDesc(cb.dedup))
		for i := range rn.opts.Repeat {
			if ctx.Err() != nil {
				return out, took
			}
			logf("e2e: %d lines → agent → %s, run %d of %d", rn.opts.Lines, name, i+1, rn.opts.Repeat)
			r, err := rn.runE2E(ctx, oneLineCase(backlog, rn.opts.Lines), cb.recv, cb.conc, cb.dedup, i == 0 && cb.dedup == rn.opts.DedupWindow)
			if err != nil {
				fail(fmt.Sprintf("e2e %s run %d", name, i+1), err)
				continue
			}
			logf("e2e %s: %.0f lines/s (sustained %.0f), agent %.2f CPU-s/M lines, peak RSS %.1f MiB, dups %d, missing %d (others: %.2f cores)",
				name, r.LinesPerSec(), r.Sustained, r.CPUPerM(), mib(r.AgentRun.HWM), r.Dups, r.Missing, r.OtherCores)
			if r.Perf != "" {
				rep.Perf = r.Perf
			}
			g.Runs = append(g.Runs, r)
		}
		if len(g.Runs) > 0 {
			out = append(out, g)
		}
	}
	return out, took
}

// receivers lists the end-to-end receivers: the blackhole, and VictoriaLogs
// unless -skip-vl or it cannot be found (looked for once).
func (rn *runner) receivers(fail func(string, error), rep *report) []string {
	out := []string{"blackhole"}
	if rn.opts.SkipVL {
		return out
	}
	if rn.vlBin == "" && !rn.vlMissing {
		bin, err := findVictoriaLogs(rn.opts.VLBin)
		if err != nil {
			rn.vlMissing = true
			fail("victorialogs", err)
			return out
		}
		rn.vlBin = bin
		rep.Machine.VLVersion = victoriaLogsVersion(bin)
	}
	if rn.vlBin != "" {
		out = append(out, "victorialogs")
	}
	return out
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
