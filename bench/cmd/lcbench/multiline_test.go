package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/logcapturer/log_capturer_go/ingest/multiline"
	"github.com/logcapturer/log_capturer_go/wal/record"
)

// TestMultilineBacklogGroups checks that the java preset groups the
// generated backlog into exactly one entry per seq, each starting with the
// head line the receivers parse.
func TestMultilineBacklogGroups(t *testing.T) {
	for _, frames := range []int{0, 1, 9, 40} {
		path := filepath.Join(t.TempDir(), "m.log")
		const entries = 300
		lines, _, err := writeMultiline(path, entries, frames)
		if err != nil {
			t.Fatal(err)
		}
		if lines != entries*uint64(1+frames) {
			t.Fatalf("frames %d: %d lines, want %d", frames, lines, entries*(1+frames))
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		a, err := multiline.New(multiline.Config{Preset: multilinePreset})
		if err != nil {
			t.Fatal(err)
		}
		var got []uint64
		emit := func(entry []byte, _ uint64, flags record.Flags) error {
			seq, _, ok := parseLine(entry)
			if !ok || flags&record.FlagPartial != 0 || bytes.Count(entry, []byte("\n")) != frames {
				t.Fatalf("frames %d: bad entry (flags %v): %q", frames, flags, entry)
			}
			got = append(got, seq)
			return nil
		}
		var off uint64
		n := 0
		for l := range bytes.Lines(b) {
			n++
			off += uint64(len(l))
			if err := a.Add(bytes.TrimSuffix(l, []byte("\n")), off, 0, time.Now(), emit); err != nil {
				t.Fatal(err)
			}
		}
		if err := a.FlushAll(emit); err != nil {
			t.Fatal(err)
		}
		if uint64(n) != lines || len(got) != entries {
			t.Fatalf("frames %d: %d lines, %d entries; want %d, %d", frames, n, len(got), lines, entries)
		}
		for i, s := range got {
			if s != uint64(i) {
				t.Fatalf("frames %d: entry %d has seq %d", frames, i, s)
			}
		}
	}
	if r := multilineRoutes("/x/m.log"); !strings.Contains(r, `match: ["/x/m.log"]`) || !strings.Contains(r, "preset: java") {
		t.Fatalf("routes:\n%s", r)
	}
}

func TestMultilineFlag(t *testing.T) {
	tests := map[string]struct {
		args    []string
		want    int
		wantErr bool
	}{
		"default":        {nil, 9, false},
		"quick is off":   {[]string{"-quick"}, 0, false},
		"quick explicit": {[]string{"-quick", "-e2e-multiline", "3"}, 3, false},
		"off":            {[]string{"-e2e-multiline", "0"}, 0, false},
		"negative":       {[]string{"-e2e-multiline", "-1"}, 0, true},
		"too many":       {[]string{"-e2e-multiline", "401"}, 0, true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			o, err := parseFlags(tc.args, io.Discard)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if err == nil && o.MultilineFrames != tc.want {
				t.Fatalf("frames %d, want %d", o.MultilineFrames, tc.want)
			}
		})
	}
}
