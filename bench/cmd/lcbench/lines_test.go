package main

import (
	"bytes"
	"testing"
)

func TestAppendLine(t *testing.T) {
	tests := map[string]struct {
		seq uint64
		ts  int64
	}{
		"zero":      {0, 0},
		"typical":   {123456, 1_700_000_000_123_456_789},
		"max seq":   {9_999_999_999, 1},
		"max ts":    {7, 1<<63 - 1},
		"seq wraps": {1_000_000, 42},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			line := appendLine([]byte("prefix"), tc.seq, tc.ts)[len("prefix"):]
			if len(line) != LineBytes {
				t.Fatalf("len = %d, want %d: %q", len(line), LineBytes, line)
			}
			if line[len(line)-1] != '\n' || bytes.Count(line, []byte("\n")) != 1 {
				t.Fatalf("want exactly one trailing newline: %q", line)
			}
			seq, ts, ok := parseLine(line[:len(line)-1])
			if !ok || seq != tc.seq || ts != tc.ts {
				t.Fatalf("parseLine = %d, %d, %v; want %d, %d, true", seq, ts, ok, tc.seq, tc.ts)
			}
		})
	}
}

func TestParseLineRejects(t *testing.T) {
	good := appendLine(nil, 5, 6)
	tests := map[string][]byte{
		"empty":         nil,
		"short":         good[:headLen-1],
		"no seq prefix": append([]byte("SEQ="), good[4:]...),
		"letter in seq": bytes.Replace(good, []byte("0000000005"), []byte("00000000x5"), 1),
		"letter in ts":  append(append([]byte{}, good[:tsAt]...), append([]byte("z"), good[tsAt+1:]...)...),
		"ts overflows":  append(append([]byte{}, good[:tsAt]...), []byte("9999999999999999999")...),
		"other text":    []byte("hello world, this is not a generated line at all, no sir"),
	}
	for name, line := range tests {
		t.Run(name, func(t *testing.T) {
			if _, _, ok := parseLine(line); ok {
				t.Fatalf("parseLine(%q) accepted it", line)
			}
		})
	}
}

func FuzzParseLine(f *testing.F) {
	f.Add(appendLine(nil, 1, 2))
	f.Add([]byte("seq=0000000001 ts="))
	f.Fuzz(func(t *testing.T, b []byte) {
		seq, ts, ok := parseLine(b)
		if !ok {
			return
		}
		if ts < 0 || seq > 9_999_999_999 {
			t.Fatalf("accepted out-of-range values %d %d", seq, ts)
		}
	})
}
