package main

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestFormatting(t *testing.T) {
	tests := map[string]struct{ got, want string }{
		"int small":        {fmtInt(999), "999"},
		"int thousands":    {fmtInt(1234567), "1,234,567"},
		"int negative":     {fmtInt(-1234), "-1,234"},
		"floor met":        {atLeast(1.8e6, 1e6), "1.80× the target (met)"},
		"floor missed":     {atLeast(2.4e5, 3e5), "0.80× the target (MISSED)"},
		"budget over":      {atMost(1.4, 1.0), "1.40× the budget (OVER)"},
		"budget within":    {atMost(0.7, 1.0), "0.70× the budget (within)"},
		"relative better":  {relative(9, 1.5, "less CPU", "more CPU"), "6.00× less CPU"},
		"relative worse":   {relative(34, 68, "smaller", "larger"), "2.00× larger"},
		"relative unknown": {relative(0, 1, "a", "b"), "n/a"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if tc.got != tc.want {
				t.Fatalf("got %q, want %q", tc.got, tc.want)
			}
		})
	}
}

func TestPercentile(t *testing.T) {
	var v []int64
	for i := int64(1); i <= 1000; i++ {
		v = append(v, i)
	}
	tests := map[string]struct {
		in   []int64
		q    float64
		want time.Duration
	}{
		"empty":  {nil, 0.5, 0},
		"single": {[]int64{7}, 0.99, 7},
		"p50":    {v, 0.50, 500},
		"p99":    {v, 0.99, 990},
		"p99.9":  {v, 0.999, 999},
		"max":    {v, 1, 1000},
		"min":    {v, 0, 1},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := pct(tc.in, tc.q); got != tc.want {
				t.Fatalf("pct(%v) = %v, want %v", tc.q, got, tc.want)
			}
		})
	}
}

func TestMedianRun(t *testing.T) {
	run := func(secs float64, cpu time.Duration) E2EResult {
		return E2EResult{Lines: 1e6, Elapsed: time.Duration(secs * float64(time.Second)), AgentLife: Usage{CPU: cpu}}
	}
	g := E2EGroup{Runs: []E2EResult{run(4, 3*time.Second), run(2, 1*time.Second), run(3, 2*time.Second)}}
	m := g.Median()
	if m.Elapsed != 3*time.Second || m.AgentLife.CPU != 2*time.Second {
		t.Fatalf("median = %+v, want the 3 s run with its own CPU", m)
	}
	lo, hi := g.Range(E2EResult.LinesPerSec)
	if lo != 250_000 || hi != 500_000 {
		t.Fatalf("range = %v..%v", lo, hi)
	}
	even := E2EGroup{Runs: []E2EResult{run(1, 0), run(2, 0)}}
	if got := even.Median().Elapsed; got != 2*time.Second {
		t.Fatalf("even median = %v, want the lower throughput of the middle two", got)
	}
}

func TestReportFlagsBusyBox(t *testing.T) {
	r := &report{Opts: options{Repeat: 1, Lines: 10}, Started: time.Now(), Finished: time.Now(),
		Latency: []LatencyResult{{Rate: 10, Duration: time.Second, Measured: 10, Written: 12, AgentWall: time.Second, OtherCores: 0.9}}}
	md := r.markdown()
	if !strings.Contains(md, "Warning: other processes on this box used up to 0.90 cores") {
		t.Fatalf("busy box not flagged:\n%s", md)
	}
	r.Latency[0].OtherCores = 0.1
	if md := r.markdown(); !strings.Contains(md, "The box was quiet") {
		t.Fatalf("quiet box not reported:\n%s", md)
	}
}

func TestProcAndMachine(t *testing.T) {
	s, err := sampleProc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if s.RSS <= 0 || s.HWM < s.RSS {
		t.Fatalf("sample = %+v", s)
	}
	if _, err := sampleProc(-1); err == nil {
		t.Fatal("sampleProc(-1) succeeded")
	}
	if fs := filesystemOf(t.TempDir()); fs == "unknown" || !strings.Contains(fs, "mounted at") {
		t.Fatalf("filesystemOf = %q", fs)
	}
	if !under("/a/b", "/a") || under("/ab", "/a") || !under("/x", "/") {
		t.Fatal("under is wrong")
	}
}

func TestBusySince(t *testing.T) {
	sec := func(n int64) time.Duration { return time.Duration(n) * time.Second }
	tests := map[string]struct {
		earlier, later boxSample
		want           time.Duration
	}{
		"no kernel threads": {boxSample{stat: sec(10)}, boxSample{stat: sec(13)}, sec(3)},
		"kernel thread work is not someone else's": {
			boxSample{stat: sec(10), kthread: map[int]int64{5: 100}},
			boxSample{stat: sec(13), kthread: map[int]int64{5: 200}}, sec(2)},
		"a kernel thread that exits does not inflate the load": {
			boxSample{stat: sec(10), kthread: map[int]int64{5: 100, 6: 50_000}},
			boxSample{stat: sec(13), kthread: map[int]int64{5: 200}}, sec(2)},
		"a new kernel thread counts from zero": {
			boxSample{stat: sec(10), kthread: map[int]int64{}},
			boxSample{stat: sec(13), kthread: map[int]int64{7: 100}}, sec(2)},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := tc.later.busySince(tc.earlier); got != tc.want {
				t.Fatalf("busySince = %v, want %v", got, tc.want)
			}
		})
	}
	if got := otherLoad(sec(1), sec(3), sec(1)); got != 0 {
		t.Fatalf("otherLoad below zero not clamped: %v", got)
	}
}

func TestSustained(t *testing.T) {
	t0 := time.Unix(100, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	ps := []progress{{at(0), 0}, {at(100), 50}, {at(200), 100}, {at(1200), 900}, {at(2200), 950}, {at(3200), 1000}}
	if got := sustained(ps, 1000, 0.1, 0.9); got != 800 {
		t.Fatalf("sustained = %v, want 800 lines/s (100 → 900 in 1 s)", got)
	}
	if got := sustained(ps[:3], 1000, 0.1, 0.9); got != 0 {
		t.Fatalf("sustained without reaching 90%% = %v, want 0", got)
	}
	if got := sustained(nil, 1000, 0.1, 0.9); got != 0 {
		t.Fatalf("sustained(nil) = %v", got)
	}
}
