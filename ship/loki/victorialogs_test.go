package loki

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang/snappy"

	"github.com/logcapturer/log_capturer_go/internal/testutil/victorialogs"
	"github.com/logcapturer/log_capturer_go/wal/record"
)

// wantRow is what one pushed entry must look like when queried back.
type wantRow struct {
	stream string
	fields map[string]string // labels, metadata, _msg, _time
}

func TestPushToVictoriaLogs(t *testing.T) {
	t.Parallel()
	vl := victorialogs.Start(t)
	c := newClient(t, ClientConfig{URL: vl.PushURL()})

	const perStream = 1000
	sets := []*record.LabelSet{
		record.NewLabelSet([]record.Label{{Name: "app", Value: "alpha"}, {Name: "env", Value: "test"}}),
		record.NewLabelSet([]record.Label{{Name: "host", Value: "h-1"}, {Name: "app", Value: "beta"}}),
		record.NewLabelSet([]record.Label{{Name: "app", Value: "gamma"}, {Name: "odd", Value: `q"uo\te ü`}}),
	}
	line := func(s, i int) string {
		switch {
		case s == 1:
			return fmt.Sprintf("βeta ünïcödé 日本語 🚀 #%d", i)
		case s == 2 && i%100 == 7:
			return fmt.Sprintf(`say "hi" \ back\slash \n not a newline #%d`, i)
		case s == 2 && i%100 == 8:
			return fmt.Sprintf(`{"level":"info","n":%d}`, i) // must stay verbatim
		case s == 2 && i%100 == 9:
			return fmt.Sprintf("tab\there  trailing spaces #%d  ", i)
		}
		return fmt.Sprintf("%s line %04d", sets[s].Labels()[0].Value, i)
	}
	// Distinct nanosecond timestamps with non-zero nanos, a minute ago.
	base := time.Now().Add(-time.Minute).Truncate(time.Second).UnixNano()
	ts := func(s, i int) int64 { return base + int64(i)*1_000_003 + int64(s)*7 + 1 }
	meta := func(s, i int) []record.Label {
		if s == 0 && i%10 == 0 {
			return []record.Label{{Name: "trace_id", Value: "t-" + strconv.Itoa(i)}, {Name: "user", Value: "ünï-" + strconv.Itoa(i)}}
		}
		return nil
	}

	want := map[string]wantRow{} // keyed by app and _time
	var pushed int
	// Four requests, each carrying a slice of every stream.
	for chunk := range 4 {
		streams := make([]Stream, len(sets))
		for s, set := range sets {
			streams[s].Labels = set.String()
			for i := chunk * perStream / 4; i < (chunk+1)*perStream/4; i++ {
				e := Entry{Time: ts(s, i), Line: []byte(line(s, i)), Metadata: meta(s, i)}
				streams[s].Entries = append(streams[s].Entries, e)
				fields := map[string]string{
					"_msg":  line(s, i),
					"_time": time.Unix(0, e.Time).UTC().Format(time.RFC3339Nano),
				}
				for _, l := range set.Labels() {
					fields[l.Name] = l.Value
				}
				for _, m := range e.Metadata {
					fields[m.Name] = m.Value
				}
				app, _ := set.Get("app")
				want[app+" "+fields["_time"]] = wantRow{stream: vlStream(set), fields: fields}
			}
			pushed += len(streams[s].Entries)
		}
		body, err := Compress(nil, AppendPushRequest(nil, streams))
		if err != nil {
			t.Fatal(err)
		}
		if res := c.Push(t.Context(), body); res.Class != Ack || res.Status != 204 {
			t.Fatalf("push %d: %+v", chunk, res)
		}
	}
	if pushed != 3*perStream {
		t.Fatalf("pushed %d entries; want %d", pushed, 3*perStream)
	}

	ctx := t.Context()
	for _, q := range []string{`{app="alpha"}`, `{app="beta", host="h-1"}`, `{app="gamma"}`} {
		if n, err := vl.Count(ctx, q); err != nil || n != perStream {
			t.Fatalf("Count(%s) = %d, %v; want %d", q, n, err, perStream)
		}
	}
	if n, err := vl.Count(ctx, "*"); err != nil || n != 3*perStream {
		t.Fatalf("Count(*) = %d, %v; want %d", n, err, 3*perStream)
	}
	if n, err := vl.Count(ctx, `{app="alpha"} trace_id:*`); err != nil || n != perStream/10 {
		t.Fatalf("entries with trace_id = %d, %v; want %d", n, err, perStream/10)
	}
	if n, err := vl.Count(ctx, `{odd="q\"uo\\te ü"}`); err != nil || n != perStream {
		t.Fatalf("Count by escaped label value = %d, %v; want %d", n, err, perStream)
	}

	// Every row, field by field.
	rows, err := vl.Query(ctx, "*")
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(want) {
		t.Fatalf("query returned %d rows; want %d", len(rows), len(want))
	}
	seen := map[string]bool{}
	for _, row := range rows {
		key := row["app"] + " " + row["_time"]
		w, ok := want[key]
		if !ok {
			t.Fatalf("unexpected row %v", row)
		}
		if seen[key] {
			t.Fatalf("duplicate row %v", row)
		}
		seen[key] = true
		if row["_stream"] != w.stream {
			t.Fatalf("_stream = %q; want %q", row["_stream"], w.stream)
		}
		for k, v := range w.fields {
			if row[k] != v {
				t.Fatalf("row %s: %s = %q; want %q (row %v)", key, k, row[k], v, row)
			}
		}
		for k := range row {
			if _, ok := w.fields[k]; !ok && k != "_stream" && k != "_stream_id" {
				t.Fatalf("row %s has unexpected field %s=%q", key, k, row[k])
			}
		}
	}

	// A few exact messages, found by content.
	for _, msg := range []string{line(2, 107), line(2, 8), line(1, 999), line(0, 0)} {
		rows, err := vl.Query(ctx, "_msg:="+strconv.Quote(msg))
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != 1 || rows[0]["_msg"] != msg {
			t.Fatalf("exact match for %q: %v", msg, rows)
		}
	}
}

// vlStream renders a label set the way VictoriaLogs renders _stream: sorted,
// quoted, no space after the comma.
func vlStream(s *record.LabelSet) string {
	parts := make([]string, 0, len(s.Labels()))
	for _, l := range s.Labels() {
		parts = append(parts, l.Name+"="+strconv.Quote(l.Value))
	}
	return "{" + strings.Join(parts, ",") + "}"
}

func TestVictoriaLogsRejections(t *testing.T) {
	t.Parallel()
	vl := victorialogs.Start(t)
	good := goldenStreams()
	good[0].Entries[0].Time = time.Now().UnixNano()
	goodBody, err := Compress(nil, AppendPushRequest(nil, good))
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		tenant string
		body   []byte
		class  Class
		status int
	}{
		// VictoriaLogs wants a numeric tenant (PROTOCOLS.md A9); a real Loki
		// would take any string. The point here is the classification of a
		// real server's 400.
		"non-numeric tenant":  {tenant: "team-a", body: goodBody, class: Permanent, status: 400},
		"numeric tenant":      {tenant: "12:34", body: goodBody, class: Ack, status: 204},
		"protobuf not snappy": {body: AppendPushRequest(nil, good), class: Permanent, status: 400},
		"framed snappy":       {body: framedSnappy(t, AppendPushRequest(nil, good)), class: Permanent, status: 400},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			c := newClient(t, ClientConfig{URL: vl.PushURL(), TenantID: tt.tenant})
			res := c.Push(t.Context(), tt.body)
			if res.Class != tt.class || res.Status != tt.status {
				t.Fatalf("Push = %+v; want %v %d", res, tt.class, tt.status)
			}
			if tt.class == Permanent && (res.Err == nil || res.Body == "") {
				t.Fatalf("Push = %+v; want an error carrying the server's message", res)
			}
		})
	}
	// Only the tenant-less push is visible in the default tenant: the
	// numeric-tenant one went to (12,34), every other one was rejected.
	if n, err := vl.Count(t.Context(), "*"); err != nil || n != 0 {
		t.Fatalf("default tenant Count = %d, %v; want 0", n, err)
	}
}

func framedSnappy(t *testing.T, pb []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := snappy.NewBufferedWriter(&buf)
	if _, err := w.Write(pb); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
