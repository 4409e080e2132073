package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// filesPerDir is how many files writeTree puts in one directory.
const filesPerDir = 50

// treeFile names file i of a tree under root: 50 files per
// directory, two levels deep (root/gG/dDDD/app-NNNNN.log), so the agent's
// "**" discovery and per-directory watches both have work to do.
func treeFile(root string, i int) string {
	d := i / filesPerDir
	return filepath.Join(root, fmt.Sprintf("g%d", d%4), fmt.Sprintf("d%03d", d), fmt.Sprintf("app-%05d.log", i))
}

// treePattern is the include pattern that matches every file of a tree.
func treePattern(root string) string { return filepath.Join(root, "**", "*.log") }

// writeTree spreads lines seq 0..n-1 over files files under root, in
// contiguous runs (file i holds [i*n/files, (i+1)*n/files)), so the total
// is the same whatever the file count. It returns the wall time taken.
func writeTree(root string, n uint64, files int) (time.Duration, error) {
	if files < 1 || uint64(files) > n {
		return 0, fmt.Errorf("files: %d files for %d lines: want 1..lines", files, n)
	}
	start := time.Now()
	buf := make([]byte, 0, LineBytes)
	for i := range files {
		p := treeFile(root, i)
		if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
			return 0, err
		}
		f, err := os.Create(p)
		if err != nil {
			return 0, err
		}
		w := bufio.NewWriterSize(f, 256<<10)
		from, to := uint64(i)*n/uint64(files), uint64(i+1)*n/uint64(files)
		ts := time.Now().UnixNano()
		for seq := from; seq < to; seq++ {
			if seq%4096 == 0 {
				ts = time.Now().UnixNano()
			}
			buf = appendLine(buf[:0], seq, ts)
			if _, err := w.Write(buf); err != nil {
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
	}
	return time.Since(start), nil
}

// FilesGroup is the repeated runs of one file count and receiver.
type FilesGroup struct {
	E2EGroup
	Files     int
	WriteTook time.Duration
}

// filesPhase runs, for each -e2e-files count, the same -lines total spread
// over that many files through a fresh agent to every receiver, -repeat
// times, at the first -concurrency value.
func (rn *runner) filesPhase(ctx context.Context, logf func(string, ...any), fail func(string, error), receivers []string) []FilesGroup {
	var out []FilesGroup
	conc := rn.opts.Concurrency[0]
	for _, nf := range rn.opts.E2EFiles {
		if ctx.Err() != nil {
			break
		}
		root := filepath.Join(rn.tmp, fmt.Sprintf("tree-%d", nf))
		took, err := writeTree(root, rn.opts.Lines, nf)
		if err != nil {
			fail(fmt.Sprintf("files %d: tree", nf), err)
			continue
		}
		logf("files: %d lines over %d files written in %v", rn.opts.Lines, nf, took.Round(time.Millisecond))
		for _, recv := range receivers {
			g := FilesGroup{E2EGroup: E2EGroup{Receiver: recv, Concurrency: conc, Dedup: rn.opts.DedupWindow}, Files: nf, WriteTook: took}
			for i := range rn.opts.Repeat {
				if ctx.Err() != nil {
					break
				}
				logf("files: %d lines in %d files → agent → %s c=%d, run %d of %d", rn.opts.Lines, nf, recv, conc, i+1, rn.opts.Repeat)
				r, err := rn.runE2E(ctx, oneLineCase(treePattern(root), rn.opts.Lines), recv, conc, rn.opts.DedupWindow, false)
				if err != nil {
					fail(fmt.Sprintf("files %d %s run %d", nf, recv, i+1), err)
					continue
				}
				r.Files = nf
				logf("files %d %s: %.0f lines/s (sustained %.0f), agent %.2f CPU-s/M lines, peak RSS %.1f MiB, max_open_files %d, files open peak %d, dups %d, missing %d (others: %.2f cores)",
					nf, recv, r.LinesPerSec(), r.Sustained, r.CPUPerM(), mib(r.AgentRun.HWM), r.MaxOpenFiles, r.FilesPeak, r.Dups, r.Missing, r.OtherCores)
				g.Runs = append(g.Runs, r)
			}
			if len(g.Runs) > 0 {
				out = append(out, g)
			}
		}
		if !rn.opts.Keep {
			_ = os.RemoveAll(root)
		}
	}
	return out
}

// maxOpenFiles reads files_config.max_open_files from the agent's /config
// (the effective configuration, defaults applied); 0 when unknown.
func (a *agent) maxOpenFiles(ctx context.Context) int {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.api+"/config", nil)
	if err != nil {
		return 0
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0
	}
	var c struct {
		Files struct {
			MaxOpenFiles int `json:"max_open_files"`
		} `json:"files_config"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&c); err != nil {
		return 0
	}
	return c.Files.MaxOpenFiles
}
