package loki

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/logcapturer/log_capturer_go/internal/testutil/victorialogs"
	"github.com/logcapturer/log_capturer_go/wal/record"
)

// probeCase is a line in question and whether the receiver stores it.
type probeCase struct {
	name string
	time int64
	line string
	want bool
}

// TestVictoriaLogsProber pushes rows to a real VictoriaLogs and probes a
// mix of lines it stores and lines it does not: a row matches only on its
// exact stream (not a stream with one more label), its timestamp to the
// nanosecond and its bytes, and identical lines count with multiplicity.
// The rows are probed right after the push: Prepare's force_flush makes
// them searchable.
func TestVictoriaLogsProber(t *testing.T) {
	t.Parallel()
	vl := victorialogs.Start(t)
	for _, tenant := range []string{"", "12:34"} {
		t.Run("tenant="+tenant, func(t *testing.T) {
			c := newClient(t, ClientConfig{URL: vl.PushURL(), TenantID: tenant})
			base := time.Now().Add(-time.Minute).Truncate(time.Second).UnixNano() + 123_456_789
			ours := []record.Label{{Name: "app", Value: "probe"}, {Name: "odd", Value: `q"uo\te ü, x="y"`}, {Name: "tenant", Value: tenant}}
			// One more label: a different stream that the selector also matches.
			wider := append([]record.Label{{Name: "host", Value: "h2"}}, ours...)
			push := func(labels []record.Label, rows ...probeCase) {
				t.Helper()
				st := Stream{Labels: record.NewLabelSet(labels).String()}
				for _, r := range rows {
					st.Entries = append(st.Entries, Entry{Time: r.time, Line: []byte(r.line)})
				}
				body, err := Compress(nil, AppendPushRequest(nil, []Stream{st}))
				if err != nil {
					t.Fatal(err)
				}
				if res := c.Push(t.Context(), body); res.Class != Ack {
					t.Fatalf("push: %+v", res)
				}
			}
			stored := []probeCase{
				{name: "plain", time: base, line: "line one", want: true},
				{name: "unicode and quotes", time: base + 10, line: `ünï "q" \ tab	end `, want: true},
				{name: "json-looking, kept verbatim", time: base + 20, line: `{"level":"info","n":1}`, want: true},
				{name: "twice stored", time: base + 30, line: "dup", want: true},
				{name: "twice stored", time: base + 30, line: "dup", want: true},
				{name: "last", time: base + 1000, line: "the end", want: true},
			}
			push(ours, stored...)
			// The same lines in the wider stream, and near misses in ours.
			push(wider, probeCase{time: base + 40, line: "only in the wider stream"})
			push(ours, probeCase{time: base + 51, line: "one nanosecond later"})

			cases := append([]probeCase(nil), stored...)
			cases = append(cases,
				probeCase{name: "third copy: only two stored", time: base + 30, line: "dup"},
				probeCase{name: "other stream only", time: base + 40, line: "only in the wider stream"},
				probeCase{name: "one ns off", time: base + 50, line: "one nanosecond later"},
				probeCase{name: "same time, other bytes", time: base, line: "line one "},
				probeCase{name: "never pushed", time: base + 500, line: "never"},
			)
			p, err := NewVictoriaLogsProber(ProberConfig{URL: vl.URL(), TenantID: tenant})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			if err := p.Prepare(t.Context()); err != nil {
				t.Fatalf("prepare: %v", err)
			}
			got := probe(t, p, ours, cases)
			for i, c := range cases {
				if got[i] != c.want {
					t.Errorf("%s (%d, %q): present = %v, want %v", c.name, c.time-base, c.line, got[i], c.want)
				}
			}
		})
	}
}

func probe(t *testing.T, p Prober, labels []record.Label, cases []probeCase) []bool {
	t.Helper()
	s := &ProbeStream{Labels: labels}
	for _, c := range cases {
		s.Entries = append(s.Entries, ProbeEntry{Time: c.time, Hash: HashLine([]byte(c.line))})
	}
	if err := p.Probe(t.Context(), s); err != nil {
		t.Fatalf("probe: %v", err)
	}
	out := make([]bool, len(s.Entries))
	for i, e := range s.Entries {
		out[i] = e.Present
	}
	return out
}

// The failure paths: a receiver that is down, a stream without a label to
// select it by, a tenant VictoriaLogs cannot map, more rows in the range
// than the lines in question justify.
func TestVictoriaLogsProberFailures(t *testing.T) {
	t.Parallel()
	vl := victorialogs.Start(t)
	p, err := NewVictoriaLogsProber(ProberConfig{URL: vl.URL(), Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	labels := []record.Label{{Name: "app", Value: "crowded"}}
	// 10,001 rows in one second, and a single line in question spanning it.
	c := newClient(t, ClientConfig{URL: vl.PushURL()})
	base := time.Now().Add(-time.Minute).Truncate(time.Second).UnixNano()
	st := Stream{Labels: record.NewLabelSet(labels).String()}
	for i := range 10_001 {
		st.Entries = append(st.Entries, Entry{Time: base + int64(i)*1000, Line: []byte(fmt.Sprint("row ", i))})
	}
	body, err := Compress(nil, AppendPushRequest(nil, []Stream{st}))
	if err != nil {
		t.Fatal(err)
	}
	if res := c.Push(t.Context(), body); res.Class != Ack {
		t.Fatalf("push: %+v", res)
	}
	if err := p.Prepare(t.Context()); err != nil {
		t.Fatal(err)
	}
	wide := &ProbeStream{Labels: labels, Entries: []ProbeEntry{
		{Time: base, Hash: HashLine([]byte("row 0"))},
		{Time: base + 10_000_000, Hash: HashLine([]byte("row 10000"))},
	}}
	if err := p.Probe(t.Context(), wide); !errors.Is(err, ErrProbe) {
		t.Fatalf("probe over a crowded range: err = %v, want ErrProbe", err)
	}

	if err := p.Probe(t.Context(), &ProbeStream{Labels: []record.Label{{Name: "empty", Value: ""}},
		Entries: []ProbeEntry{{Time: base}}}); !errors.Is(err, ErrNotProbeable) {
		t.Fatalf("stream without values: err = %v, want ErrNotProbeable", err)
	}
	if _, err := NewVictoriaLogsProber(ProberConfig{URL: vl.URL(), TenantID: "team-a"}); !errors.Is(err, ErrConfig) {
		t.Fatalf("non-numeric tenant: err = %v, want ErrConfig", err)
	}

	vl.Stop()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := p.Probe(ctx, &ProbeStream{Labels: labels, Entries: []ProbeEntry{{Time: base, Hash: HashLine([]byte("row 0"))}}}); err == nil {
		t.Fatal("probe of a stopped receiver succeeded")
	}
	if err := p.Prepare(ctx); err == nil {
		t.Fatal("force_flush of a stopped receiver succeeded")
	}
}
