package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestWriteTree checks that a tree holds every seq exactly once, spread over
// the asked number of files, and that the include pattern the agent gets
// would match each file (one "**" level per directory level).
func TestWriteTree(t *testing.T) {
	tests := map[string]struct {
		lines uint64
		files int
	}{
		"one file":          {10, 1},
		"uneven split":      {1000, 7},
		"several dirs":      {500, 120},
		"one line per file": {60, 60},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			if _, err := writeTree(root, tc.lines, tc.files); err != nil {
				t.Fatal(err)
			}
			var paths []string
			err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
				if err == nil && !d.IsDir() {
					paths = append(paths, p)
				}
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(paths) != tc.files {
				t.Fatalf("%d files, want %d", len(paths), tc.files)
			}
			seen := make([]bool, tc.lines)
			for _, p := range paths {
				rel, _ := filepath.Rel(root, p)
				if parts := strings.Split(rel, string(filepath.Separator)); len(parts) != 3 || !strings.HasSuffix(p, ".log") {
					t.Fatalf("%s: want gG/dDDD/app-N.log", rel)
				}
				b, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				if len(b) == 0 || len(b)%LineBytes != 0 {
					t.Fatalf("%s: %d bytes, want whole lines", rel, len(b))
				}
				for l := range bytes.Lines(b) {
					seq, _, ok := parseLine(bytes.TrimSuffix(l, []byte("\n")))
					if !ok || seq >= tc.lines || seen[seq] {
						t.Fatalf("%s: bad or repeated line %q", rel, l)
					}
					seen[seq] = true
				}
			}
			for i, ok := range seen {
				if !ok {
					t.Fatalf("seq %d missing", i)
				}
			}
			if got, want := treePattern(root), filepath.Join(root, "**", "*.log"); got != want {
				t.Fatalf("pattern %q, want %q", got, want)
			}
		})
	}
	if _, err := writeTree(t.TempDir(), 3, 4); err == nil {
		t.Fatal("more files than lines accepted")
	}
}

func TestFilesFlag(t *testing.T) {
	tests := map[string]struct {
		args    []string
		want    []int
		skip    bool
		wantErr bool
	}{
		"default":           {nil, []int{1, 100, 2000}, false, false},
		"quick":             {[]string{"-quick"}, []int{2000}, false, false},
		"explicit in quick": {[]string{"-quick", "-e2e-files", "1,10"}, []int{1, 10}, false, false},
		"empty skips":       {[]string{"-e2e-files", ""}, nil, true, false},
		"zero":              {[]string{"-e2e-files", "0"}, nil, false, true},
		"not a number":      {[]string{"-e2e-files", "x"}, nil, false, true},
		"more than lines":   {[]string{"-lines", "10", "-e2e-files", "11"}, nil, false, true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			o, err := parseFlags(tc.args, io.Discard)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			if len(o.E2EFiles) != len(tc.want) || o.SkipFiles != tc.skip {
				t.Fatalf("files %v skip %v, want %v skip %v", o.E2EFiles, o.SkipFiles, tc.want, tc.skip)
			}
			for i := range tc.want {
				if o.E2EFiles[i] != tc.want[i] {
					t.Fatalf("files %v, want %v", o.E2EFiles, tc.want)
				}
			}
		})
	}
}

func TestReportFilesSection(t *testing.T) {
	run := func(secs float64) E2EResult {
		return E2EResult{Receiver: "victorialogs", Lines: 1e6, Files: 2000, MaxOpenFiles: 1024, FilesPeak: 1024,
			Elapsed: time.Duration(secs * float64(time.Second)), AgentLife: Usage{CPU: 2 * time.Second}, Missing: 3}
	}
	r := &report{Opts: options{Repeat: 3, Lines: 1e6, Concurrency: []int{2}}, Started: time.Now(), Finished: time.Now(),
		Files: []FilesGroup{{E2EGroup: E2EGroup{Receiver: "victorialogs", Concurrency: 2, Runs: []E2EResult{run(5), run(4), run(8)}}, Files: 2000}}}
	md := r.markdown()
	for _, want := range []string{
		"## 4. End to end with many files",
		"| 2,000 | 500 | victorialogs | 1024 | 1024 | 5.00 | 200,000 (125,000–250,000)",
		"1,000,000 lines over 2,000 files (max_open_files 1024) → victorialogs, all lines, timed from exec | 200,000 lines/s | ≥ 300,000 lines/s | 0.67× the target (MISSED)",
		"2000 files victorialogs run 1: 3 missing",
		"lines lost, all runs | 9 of 3,000,000",
	} {
		if !strings.Contains(md, want) {
			t.Fatalf("report lacks %q:\n%s", want, md)
		}
	}
}
