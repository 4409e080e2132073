package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// multilinePreset is the preset of the multiline end-to-end case: every
// entry is a generated head line followed by Java stack frames.
const multilinePreset = "java"

var javaFrames = []string{
	"com.example.billing.InvoiceService.create(InvoiceService.java:",
	"com.example.billing.TariffLoader.load(TariffLoader.java:",
	"org.springframework.aop.framework.ReflectiveMethodInvocation.proceed(ReflectiveMethodInvocation.java:",
	"org.apache.catalina.core.ApplicationFilterChain.doFilter(ApplicationFilterChain.java:",
	"java.base/java.util.concurrent.ThreadPoolExecutor.runWorker(ThreadPoolExecutor.java:",
	"java.base/java.lang.Thread.run(Thread.java:",
}

// appendFrame appends one "\tat ..." stack frame line (with its newline).
func appendFrame(dst []byte, seq uint64, i int) []byte {
	r := splitmix64(seq*31 + uint64(i))
	dst = append(dst, "\tat "...)
	dst = append(dst, javaFrames[(uint64(i)+r)%uint64(len(javaFrames))]...)
	dst = strconv.AppendUint(dst, 20+r>>20%900, 10)
	return append(dst, ")\n"...)
}

// writeMultiline writes entries entries (seq 0..entries-1) into path, each a
// generated head line (as in the other backlogs, so the receivers count it
// by seq) followed by frames Java stack frame lines, which the java preset
// continues. It returns the physical lines written and the wall time.
func writeMultiline(path string, entries uint64, frames int) (uint64, time.Duration, error) {
	start := time.Now()
	f, err := os.Create(path)
	if err != nil {
		return 0, 0, err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	buf := make([]byte, 0, 4096)
	ts := time.Now().UnixNano()
	for seq := range entries {
		if seq%4096 == 0 {
			ts = time.Now().UnixNano()
		}
		buf = appendLine(buf[:0], seq, ts)
		for i := range frames {
			buf = appendFrame(buf, seq, i)
		}
		if _, err := w.Write(buf); err != nil {
			_ = f.Close()
			return 0, 0, err
		}
	}
	if err := w.Flush(); err != nil {
		_ = f.Close()
		return 0, 0, err
	}
	if err := f.Close(); err != nil {
		return 0, 0, err
	}
	return entries * uint64(1+frames), time.Since(start), nil
}

// multilineRoutes is the file-routing file that sends path through the
// multiline preset.
func multilineRoutes(path string) string {
	return fmt.Sprintf("# written by lcbench\nroutes:\n  - name: lcbench-%s\n    match: [%q]\n    multiline: {preset: %s}\n", multilinePreset, path, multilinePreset)
}

// MultilineGroup is the repeated multiline runs of one receiver.
type MultilineGroup struct {
	E2EGroup
	Frames int // continuation lines per entry
}

// multilinePhase ships about -lines physical lines, grouped by the java
// preset into entries of 1 + -e2e-multiline lines, through a fresh agent to
// every receiver, -repeat times, at the first -concurrency value.
func (rn *runner) multilinePhase(ctx context.Context, logf func(string, ...any), fail func(string, error), receivers []string) []MultilineGroup {
	frames := rn.opts.MultilineFrames
	entries := max(rn.opts.Lines/uint64(1+frames), 1)
	path := filepath.Join(rn.tmp, "multiline.log")
	lines, took, err := writeMultiline(path, entries, frames)
	if err != nil {
		fail("multiline: backlog", err)
		return nil
	}
	defer func() {
		if !rn.opts.Keep {
			_ = os.RemoveAll(path)
		}
	}()
	logf("multiline: %d entries of %d lines (%d lines) written in %v", entries, 1+frames, lines, took.Round(time.Millisecond))
	c := e2eCase{include: path, lines: lines, records: entries, routes: multilineRoutes(path)}
	conc := rn.opts.Concurrency[0]
	var out []MultilineGroup
	for _, recv := range receivers {
		g := MultilineGroup{E2EGroup: E2EGroup{Receiver: recv, Concurrency: conc, Dedup: rn.opts.DedupWindow}, Frames: frames}
		for i := range rn.opts.Repeat {
			if ctx.Err() != nil {
				break
			}
			logf("multiline: %d entries → agent (preset %s) → %s c=%d, run %d of %d", entries, multilinePreset, recv, conc, i+1, rn.opts.Repeat)
			r, err := rn.runE2E(ctx, c, recv, conc, rn.opts.DedupWindow, false)
			if err != nil {
				fail(fmt.Sprintf("multiline %s run %d", recv, i+1), err)
				continue
			}
			logf("multiline %s: %.0f lines/s (%.0f entries/s), agent %.2f CPU-s/M lines, peak RSS %.1f MiB, dups %d, missing %d (others: %.2f cores)",
				recv, r.LinesPerSec(), r.RecordsPerSec(), r.CPUPerM(), mib(r.AgentRun.HWM), r.Dups, r.Missing, r.OtherCores)
			g.Runs = append(g.Runs, r)
		}
		if len(g.Runs) > 0 {
			out = append(out, g)
		}
	}
	return out
}
