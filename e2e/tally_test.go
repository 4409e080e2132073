package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"time"
)

// scanRows runs a LogsQL query over all time against VictoriaLogs at
// baseURL and calls fn for each row as it arrives, decoded into a map.
func scanRows(ctx context.Context, baseURL, logsql string, fn func(row map[string]string) error) error {
	return streamRows(ctx, baseURL, logsql, func(line []byte) error {
		var row map[string]string
		if err := json.Unmarshal(line, &row); err != nil {
			return err
		}
		return fn(row)
	})
}

// streamRows runs a LogsQL query over all time against VictoriaLogs at
// baseURL and calls fn with each row's raw JSON as it arrives: the response
// (one JSON object per line) is streamed, never held whole. The caller
// flushes first. An error from fn ends the scan, wrapped with the row number.
func streamRows(ctx context.Context, baseURL, logsql string, fn func(line []byte) error) error {
	form := url.Values{"query": {logsql}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, baseURL+"/select/logsql/query",
		strings.NewReader(form.Encode()))
	if err != nil {
		return fmt.Errorf("query: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("query %q: %w", logsql, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("query %q: HTTP %d: %s", logsql, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	n := 0
	for sc.Scan() {
		if len(sc.Bytes()) == 0 {
			continue
		}
		n++
		if err := fn(sc.Bytes()); err != nil {
			return fmt.Errorf("query %q: row %d: %w", logsql, n, err)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("query %q: after %d rows: %w", logsql, n, err)
	}
	return nil
}

// tally counts the received rows per sequence number.
type tally struct {
	files, total int
	counts       []uint32
	rows         int
	foreign      []string // rows that are not one of our lines, up to maxSamples
	foreignN     int
	misfiled     []string // lines stored under another file's filename label
	misfiledN    int
}

const maxSamples = 20

func newTally(files, total int) *tally {
	return &tally{files: files, total: total, counts: make([]uint32, total)}
}

// add counts one row (its _msg and filename fields).
func (t *tally) add(row map[string]string) {
	t.rows++
	msg := row["_msg"]
	seq, ok := parseLine(msg, t.files, t.total)
	if !ok {
		t.foreignN++
		if len(t.foreign) < maxSamples {
			t.foreign = append(t.foreign, fmt.Sprintf("%.200q", msg))
		}
		return
	}
	t.counts[seq]++
	want := fmt.Sprintf("app-%d.log", seq%t.files)
	if got := filepath.Base(row["filename"]); got != want {
		t.misfiledN++
		if len(t.misfiled) < maxSamples {
			t.misfiled = append(t.misfiled, fmt.Sprintf("seq %d under filename %q, want %s", seq, row["filename"], want))
		}
	}
}

// missing returns how many sequence numbers never arrived and the first
// maxSamples of them.
func (t *tally) missing() (int, []int) {
	n := 0
	var first []int
	for seq, c := range t.counts {
		if c == 0 {
			n++
			if len(first) < maxSamples {
				first = append(first, seq)
			}
		}
	}
	return n, first
}

// duplicates returns the rows beyond the first per sequence number, the
// number of sequence numbers that have any, and the highest count seen.
func (t *tally) duplicates() (extra, seqs int, most uint32) {
	for _, c := range t.counts {
		if c > 1 {
			extra += int(c - 1)
			seqs++
		}
		most = max(most, c)
	}
	return extra, seqs, most
}

// dupRun is a run of consecutive lines of one file that arrived more than
// once: a batch re-sent after a kill shows up as one run per file.
type dupRun struct {
	file, first, last int // sequence numbers
	lines, extra      int
}

// dupRuns returns every run, per file, in sequence order.
func (t *tally) dupRuns() []dupRun {
	var out []dupRun
	for f := range t.files {
		var cur *dupRun
		for seq := f; seq < t.total; seq += t.files {
			c := int(t.counts[seq])
			if c < 2 {
				cur = nil
				continue
			}
			if cur == nil {
				out = append(out, dupRun{file: f, first: seq})
				cur = &out[len(out)-1]
			}
			cur.last = seq
			cur.lines++
			cur.extra += c - 1
		}
	}
	return out
}

// dupRanges describes the first maxSamples runs.
func (t *tally) dupRanges() []string {
	var out []string
	for _, r := range t.dupRuns() {
		if len(out) == maxSamples {
			out = append(out, "...")
			break
		}
		out = append(out, fmt.Sprintf("file %d: seq %d..%d (%d lines)", r.file, r.first, r.last, r.lines))
	}
	return out
}

// collect streams every row of VictoriaLogs into a new tally.
func collect(ctx context.Context, baseURL string, files, total int) (*tally, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	t := newTally(files, total)
	err := scanRows(ctx, baseURL, "* | fields _msg, filename", func(row map[string]string) error {
		t.add(row)
		return nil
	})
	return t, err
}
