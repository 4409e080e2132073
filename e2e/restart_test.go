package e2e

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/logcapturer/log_capturer_go/internal/testutil/victorialogs"
)

// TestRestartNoDuplicates restarts the agent gracefully (SIGTERM) twice
// while lines are written: a graceful stop drains and commits everything,
// so not one line may be lost or sent twice.
func TestRestartNoDuplicates(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e: about 15 s; skipped with -short")
	}
	const (
		files = 3
		lines = 20_000
		rate  = 4000.0
	)
	bin := agentBinary(t)
	vl := victorialogs.Start(t)
	root := t.TempDir()
	load := writeLoad{
		Dir: filepath.Join(root, "logs"), Files: files, Lines: lines, Rate: rate,
		SplitEvery: 200, SplitMin: 20 * time.Millisecond, SplitMax: 150 * time.Millisecond, Seed: 2,
	}
	if err := load.create(); err != nil {
		t.Fatalf("e2e: %v", err)
	}
	ag := newAgent(t, bin, root, baseConfig(t, root, filepath.Join(load.Dir, "*.log"), vl.PushURL()))
	ag.start()

	began := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), load.duration()+time.Minute)
	defer cancel()
	ws := load.start(ctx)
	t.Cleanup(func() { cancel(); <-ws.done })

	for _, at := range []time.Duration{load.duration() / 3, 2 * load.duration() / 3} {
		select {
		case <-time.After(time.Until(began.Add(at))):
		case <-ws.done:
			t.Fatalf("e2e: writers ended early: %v", ws.err)
		}
		if err := ag.stop(); err != nil {
			t.Fatalf("e2e: graceful stop of run %d: %v", len(ag.logs), err)
		}
		t.Logf("e2e: %5.2fs run %d stopped gracefully (written %d)", time.Since(began).Seconds(), len(ag.logs), ws.written.Load())
		ag.start()
	}

	select {
	case <-ws.done:
	case <-ctx.Done():
		t.Fatalf("e2e: writers did not finish: %d of %d lines written", ws.written.Load(), lines)
	}
	if ws.err != nil {
		t.Fatalf("e2e: writers: %v", ws.err)
	}
	st := ag.waitShipped(load.sizes(), time.Minute)
	finish(t, ag, vl, st)
	tl := verifyDelivery(t, vl, load)
	extra, seqs, _ := tl.duplicates()
	if extra != 0 {
		t.Errorf("e2e: %d duplicate rows over %d lines after graceful restarts: %v", extra, seqs, tl.dupRanges())
	}
	lost, _ := tl.missing()
	t.Logf("e2e: lines=%d lost=%d duplicates=%d restarts=2 elapsed=%v", lines, lost, extra, time.Since(began).Round(time.Millisecond))
}
