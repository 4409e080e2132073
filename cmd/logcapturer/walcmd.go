package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/logcapturer/log_capturer_go/wal"
	"github.com/logcapturer/log_capturer_go/wal/record"
)

const walUsage = `Usage: logcapturer wal ls|dump|verify|stats --data-dir DIR [--json]
  ls       list segments (first/last index, entries, bytes, damage)
  dump     print the records (--from INDEX, --limit N entries, --lines to print lines only)
  verify   check every entry's framing and checksum; exit 1 on damage
  stats    totals: segments, entries, records, bytes, per source
These read the files directly and change nothing; they work while the daemon is stopped.
`

// walDir accepts either the agent's data_dir (holding wal/) or the WAL
// directory itself.
func walDir(dataDir string) string {
	if st, err := os.Stat(filepath.Join(dataDir, "wal")); err == nil && st.IsDir() {
		return filepath.Join(dataDir, "wal")
	}
	return dataDir
}

func cmdWAL(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, walUsage)
		return 2
	}
	sub := args[0]
	fs := flag.NewFlagSet("wal "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data-dir", "", "the agent's data_dir (or its wal/ directory)")
	asJSON := fs.Bool("json", false, "machine-readable output")
	from := fs.Uint64("from", 0, "dump: first WAL index")
	limit := fs.Int("limit", 0, "dump: at most this many entries (0 = all)")
	linesOnly := fs.Bool("lines", false, "dump: print only the lines")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if *dataDir == "" {
		fmt.Fprintln(stderr, "logcapturer wal: --data-dir is required")
		return 2
	}
	dir := walDir(*dataDir)
	switch sub {
	case "ls":
		return walLs(dir, *asJSON, stdout, stderr)
	case "verify":
		return walVerify(dir, *asJSON, stdout, stderr)
	case "stats":
		return walStats(dir, *asJSON, stdout, stderr)
	case "dump":
		return walDump(dir, *from, *limit, *linesOnly, *asJSON, stdout, stderr)
	default:
		fmt.Fprintf(stderr, "logcapturer wal: unknown subcommand %q\n%s", sub, walUsage)
		return 2
	}
}

func walLs(dir string, asJSON bool, stdout, stderr io.Writer) int {
	segs, err := wal.Segments(dir)
	if err != nil {
		fmt.Fprintln(stderr, "logcapturer wal ls:", err)
		return 1
	}
	if asJSON {
		return writeJSON(stdout, stderr, segs)
	}
	fmt.Fprintf(stdout, "%-22s %12s %12s %9s %12s  %s\n", "SEGMENT", "FIRST", "LAST", "ENTRIES", "BYTES", "PROBLEM")
	for _, s := range segs {
		fmt.Fprintf(stdout, "%-22s %12d %12d %9d %12d  %s\n", s.Name, s.First, s.Last, s.Entries, s.Bytes, s.Problem)
	}
	return 0
}

func walVerify(dir string, asJSON bool, stdout, stderr io.Writer) int {
	rep, err := wal.Verify(dir)
	if err != nil {
		fmt.Fprintln(stderr, "logcapturer wal verify:", err)
		return 1
	}
	if asJSON {
		if c := writeJSON(stdout, stderr, rep); c != 0 {
			return c
		}
	} else {
		for _, p := range rep.Problems {
			fmt.Fprintf(stdout, "DAMAGED segment=%s index=%d offset=%d: %v\n", p.Segment, p.Index, p.Offset, p.Err)
		}
		status := "OK"
		if !rep.OK() {
			status = "DAMAGED"
		}
		fmt.Fprintf(stdout, "%s: %d segments, %d entries, %d bytes, %d problems\n", status, rep.Segments, rep.Entries, rep.Bytes, len(rep.Problems))
	}
	if !rep.OK() {
		return 1
	}
	return 0
}

type walStatsOut struct {
	Segments   int              `json:"segments"`
	Entries    int              `json:"entries"`
	Records    int              `json:"records"`
	Bytes      int64            `json:"bytes"`
	LineBytes  int64            `json:"line_bytes"`
	FirstIndex uint64           `json:"first_index"`
	LastIndex  uint64           `json:"last_index"`
	Oldest     time.Time        `json:"oldest,omitzero"`
	Newest     time.Time        `json:"newest,omitzero"`
	Truncated  int              `json:"truncated_lines"`
	Partial    int              `json:"partial_lines"`
	Escaped    int              `json:"escaped_lines"`
	Problems   []string         `json:"problems"`
	Sources    map[string]int   `json:"records_per_source"`
	LastOffset map[string]int64 `json:"last_offset_per_source"`
}

func walStats(dir string, asJSON bool, stdout, stderr io.Writer) int {
	segs, err := wal.Segments(dir)
	if err != nil {
		fmt.Fprintln(stderr, "logcapturer wal stats:", err)
		return 1
	}
	out := walStatsOut{Segments: len(segs), Sources: map[string]int{}, LastOffset: map[string]int64{}, Problems: []string{}}
	for i, s := range segs {
		out.Bytes += s.Bytes
		if i == 0 {
			out.FirstIndex = s.First
		}
		out.LastIndex = s.Last
	}
	var oldest, newest int64
	err = wal.Walk(dir, 0, func(_ uint64, payload []byte) bool {
		out.Entries++
		if err := record.Each(payload, func(r *record.Record) error {
			out.Records++
			out.LineBytes += int64(len(r.Line))
			out.Sources[r.Source]++
			out.LastOffset[r.Source] = int64(r.Offset)
			if oldest == 0 || r.Time < oldest {
				oldest = r.Time
			}
			if r.Time > newest {
				newest = r.Time
			}
			if r.Flags&record.FlagTruncated != 0 {
				out.Truncated++
			}
			if r.Flags&record.FlagPartial != 0 {
				out.Partial++
			}
			if r.Flags&record.FlagEscaped != 0 {
				out.Escaped++
			}
			return nil
		}); err != nil {
			out.Problems = append(out.Problems, err.Error())
		}
		return true
	}, func(ce *wal.CorruptionErr) { out.Problems = append(out.Problems, ce.Error()) })
	if err != nil {
		fmt.Fprintln(stderr, "logcapturer wal stats:", err)
		return 1
	}
	if oldest != 0 {
		out.Oldest, out.Newest = time.Unix(0, oldest).UTC(), time.Unix(0, newest).UTC()
	}
	if asJSON {
		return writeJSON(stdout, stderr, out)
	}
	fmt.Fprintf(stdout, "segments:    %d\nentries:     %d (index %d..%d)\nrecords:     %d\nbytes:       %d (lines %d)\n",
		out.Segments, out.Entries, out.FirstIndex, out.LastIndex, out.Records, out.Bytes, out.LineBytes)
	if oldest != 0 {
		fmt.Fprintf(stdout, "time range:  %s .. %s\n", out.Oldest.Format(time.RFC3339Nano), out.Newest.Format(time.RFC3339Nano))
	}
	fmt.Fprintf(stdout, "flags:       truncated %d, partial %d, escaped %d\n", out.Truncated, out.Partial, out.Escaped)
	fmt.Fprintf(stdout, "sources:     %d\n", len(out.Sources))
	for src, n := range out.Sources {
		fmt.Fprintf(stdout, "  %-40s records %-9d last offset %d\n", src, n, out.LastOffset[src])
	}
	for _, p := range out.Problems {
		fmt.Fprintf(stdout, "PROBLEM: %s\n", p)
	}
	return 0
}

type dumpRecord struct {
	Index  uint64            `json:"index"`
	Source string            `json:"source"`
	Offset uint64            `json:"offset"`
	Time   string            `json:"time"`
	Labels map[string]string `json:"labels"`
	Flags  string            `json:"flags,omitempty"`
	Meta   map[string]string `json:"metadata,omitempty"`
	Line   string            `json:"line"`
}

func walDump(dir string, from uint64, limit int, linesOnly, asJSON bool, stdout, stderr io.Writer) int {
	enc := json.NewEncoder(stdout)
	n := 0
	bad := 0
	err := wal.Walk(dir, from, func(idx uint64, payload []byte) bool {
		if err := record.Each(payload, func(r *record.Record) error {
			switch {
			case linesOnly:
				fmt.Fprintf(stdout, "%s\n", r.Line)
			case asJSON:
				d := dumpRecord{Index: idx, Source: r.Source, Offset: r.Offset,
					Time: time.Unix(0, r.Time).UTC().Format(time.RFC3339Nano), Labels: map[string]string{},
					Flags: r.Flags.String(), Line: string(r.Line)}
				for _, l := range r.Labels.Labels() {
					d.Labels[l.Name] = l.Value
				}
				if len(r.Metadata) > 0 {
					d.Meta = map[string]string{}
					for _, l := range r.Metadata {
						d.Meta[l.Name] = l.Value
					}
				}
				return enc.Encode(d)
			default:
				fl := ""
				if r.Flags != 0 {
					fl = " [" + r.Flags.String() + "]"
				}
				fmt.Fprintf(stdout, "%d %s %s@%d %s%s %s\n", idx, time.Unix(0, r.Time).UTC().Format(time.RFC3339Nano),
					r.Source, r.Offset, r.Labels, fl, strconv.Quote(string(r.Line)))
			}
			return nil
		}); err != nil {
			bad++
			fmt.Fprintf(stderr, "entry %d: %v\n", idx, err)
		}
		n++
		return limit == 0 || n < limit
	}, func(ce *wal.CorruptionErr) {
		bad++
		fmt.Fprintln(stderr, "DAMAGED:", ce.Error())
	})
	if err != nil {
		fmt.Fprintln(stderr, "logcapturer wal dump:", err)
		return 1
	}
	if bad > 0 {
		return 1
	}
	return 0
}

func writeJSON(stdout, stderr io.Writer, v any) int {
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		fmt.Fprintln(stderr, "logcapturer:", err)
		return 1
	}
	return 0
}
