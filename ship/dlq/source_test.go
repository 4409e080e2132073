package dlq

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/logcapturer/log_capturer_go/ship"
	"github.com/logcapturer/log_capturer_go/wal"
	"github.com/logcapturer/log_capturer_go/wal/record"
)

// TestReplayFromRunningLog replays through a running log's readers after
// retention removed its head: the removed range is reported, the rest sent.
func TestReplayFromRunningLog(t *testing.T) {
	e := newEnv(t, nil)
	cfg := wal.Defaults()
	cfg.SegmentSize = 64 << 10
	cfg.MaxEntryBytes = 32 << 10
	cfg.SyncInterval = time.Millisecond
	cfg.Retention = 0
	cfg.CompactInterval = 5 * time.Millisecond
	l, err := wal.Open(filepath.Join(e.dir, "wal"), cfg, zerolog.Nop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	var wg sync.WaitGroup
	pad := strings.Repeat("x", 2000)
	for k := 1; k <= 100; k++ {
		b := record.NewBuilder()
		b.Add("src", testLabels, uint64(k), time.Now().UnixNano(), 0, nil, fmt.Appendf(nil, "live e%d %s", k, pad))
		wg.Add(1)
		if err := l.Append(ctx, b.AppendTo(nil), func(uint64, error) { wg.Done() }); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	// A consumer past entry 60 lets compaction remove the segments before it.
	l.RegisterCursor("test", 61)
	deadline := time.Now().Add(10 * time.Second)
	for {
		first, _ := l.FirstIndex()
		if first > 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("compaction removed nothing")
		}
		time.Sleep(5 * time.Millisecond)
	}
	first, _ := l.FirstIndex()

	out := filepath.Join(t.TempDir(), "out.jsonl")
	fs, err := ship.NewFileSink(ship.FileSinkConfig{Path: out})
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	res, err := e.s.Reprocess(context.Background(), Request{ID: "live", FromIndex: 1, ToIndex: 100}, []ship.Sink{fs}, LogSource(l))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Unavailable) != 1 || res.Unavailable[0].From != 1 || res.Unavailable[0].To != first-1 {
		t.Fatalf("unavailable = %+v, want 1-%d", res.Unavailable, first-1)
	}
	if want := int64(100 - first + 1); res.LinesSent != want || int64(len(readFileSink(t, out))) != want {
		t.Fatalf("sent %d lines (file %d), want %d", res.LinesSent, len(readFileSink(t, out)), want)
	}
}

func TestDeadLetterWithoutLabels(t *testing.T) {
	e := newEnv(t, nil)
	l := letter("loki", "r", "n", 1, 2, time.Now())
	l.Entries[0].Labels = nil
	e.deadLetter(l)
	got, err := e.s.Entries(e.s.Letters(Filter{})[0].ID)
	if err != nil || len(got) != 2 || got[0].Labels.String() != "{}" {
		t.Fatalf("entries = %+v, %v", got, err)
	}
}
