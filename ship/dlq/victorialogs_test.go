package dlq

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/logcapturer/log_capturer_go/internal/testutil/victorialogs"
	"github.com/logcapturer/log_capturer_go/ship"
	"github.com/logcapturer/log_capturer_go/wal/record"
)

func vlCount(t *testing.T, vl *victorialogs.Server, q string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := vl.Count(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestReprocessOnceAtVictoriaLogs: the same request id twice delivers the
// letters once, counted at a real receiver that keeps exact duplicates.
func TestReprocessOnceAtVictoriaLogs(t *testing.T) {
	t.Parallel()
	vl := victorialogs.Start(t)
	e := newEnv(t, nil)
	sink := lokiSink(t, vl.PushURL())
	now := time.Now().Add(-time.Minute)
	for i := range 3 {
		e.deadLetter(letter("loki", "too_old", fmt.Sprintf("idem%d", i), uint64(1+50*i), 50, now.Add(time.Duration(i)*time.Second)))
	}

	first, err := e.s.Reprocess(context.Background(), Request{ID: "ops-1"}, []ship.Sink{sink}, nil)
	if err != nil || first.Reprocessed != 3 || first.LinesSent != 150 {
		t.Fatalf("first = %+v, %v", first, err)
	}
	if n := vlCount(t, vl, `app:dlqtest`); n != 150 {
		t.Fatalf("VictoriaLogs holds %d rows after the first run, want 150", n)
	}
	again, err := e.s.Reprocess(context.Background(), Request{ID: "ops-1"}, []ship.Sink{sink}, nil)
	if err != nil || !again.Repeated || again.LinesSent != 150 {
		t.Fatalf("repeat = %+v, %v", again, err)
	}
	// A crash between the two would not change it either.
	e.reopen()
	if r, err := e.s.Reprocess(context.Background(), Request{ID: "ops-1"}, []ship.Sink{sink}, nil); err != nil || !r.Repeated {
		t.Fatalf("repeat after reopen = %+v, %v", r, err)
	}
	if n := vlCount(t, vl, `app:dlqtest`); n != 150 {
		t.Fatalf("VictoriaLogs holds %d rows after repeating the request, want 150", n)
	}
	if n := vlCount(t, vl, `_msg:="idem1 7"`); n != 1 {
		t.Fatalf("line idem1 7 stored %d times, want 1", n)
	}
}

// TestReplayDeliveredRangeOnceAtVictoriaLogs: a WAL range already delivered
// is sent again by a replay, exactly once per request id.
func TestReplayDeliveredRangeOnceAtVictoriaLogs(t *testing.T) {
	t.Parallel()
	vl := victorialogs.Start(t)
	e := newEnv(t, nil)
	sink := lokiSink(t, vl.PushURL())
	walDir := filepath.Join(e.dir, "wal")
	base := time.Now().Add(-2 * time.Minute)
	writeWAL(t, walDir, 20, 10, "rep", "", func(k, j int) int64 {
		return base.Add(time.Duration(k)*time.Second + time.Duration(j)*time.Millisecond).UnixNano()
	})
	src := DirSource(walDir)

	// The first delivery, as the shipper would have made it.
	var bb BatchBuilder
	if err := src.Walk(context.Background(), 1, 20, func(idx uint64, payload []byte) error {
		return record.Each(payload, func(r *record.Record) error { bb.AddRecord(idx, r); return nil })
	}); err != nil {
		t.Fatal(err)
	}
	if err := sink.Send(context.Background(), bb.Take()); err != nil {
		t.Fatal(err)
	}
	if n := vlCount(t, vl, `app:dlqtest`); n != 200 {
		t.Fatalf("delivered %d rows, want 200", n)
	}

	// Loki "lost" entries 5..12: replay them.
	req := Request{ID: "replay-5-12", FromIndex: 5, ToIndex: 12}
	res, err := e.s.Reprocess(context.Background(), req, []ship.Sink{sink}, src)
	if err != nil || res.LinesSent != 80 || len(res.Unavailable) != 0 || len(res.Failed) != 0 {
		t.Fatalf("replay = %+v, %v", res, err)
	}
	for range 2 {
		r, err := e.s.Reprocess(context.Background(), req, []ship.Sink{sink}, src)
		if err != nil || !r.Repeated {
			t.Fatalf("repeat = %+v, %v", r, err)
		}
	}
	if n := vlCount(t, vl, `app:dlqtest`); n != 280 {
		t.Fatalf("VictoriaLogs holds %d rows, want 200 + 80 replayed once", n)
	}
	for line, want := range map[string]int{"rep e4 l3 |": 1, "rep e5 l0 |": 2, "rep e12 l9 |": 2, "rep e13 l0 |": 1} {
		if n := vlCount(t, vl, fmt.Sprintf(`_msg:=%q`, line)); n != want {
			t.Errorf("line %q stored %d times, want %d", line, n, want)
		}
	}
	// A new id replays again: the operator asked twice.
	if r, err := e.s.Reprocess(context.Background(), Request{ID: "replay-again", FromIndex: 5, ToIndex: 5}, []ship.Sink{sink}, src); err != nil || r.LinesSent != 10 {
		t.Fatalf("second id = %+v, %v", r, err)
	}
	if n := vlCount(t, vl, `_msg:="rep e5 l0 |"`); n != 3 {
		t.Fatalf("line stored %d times after a second replay id, want 3", n)
	}
}
