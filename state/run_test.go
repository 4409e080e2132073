package state

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestRunFinalCommitOnCancel(t *testing.T) {
	path := testPath(t)
	reg := prometheus.NewRegistry()
	s := mustOpen(t, path, Options{Registerer: reg, FlushInterval: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()

	s.SetPosition("file:a", Position{Offset: 42})
	s.SetCursor("loki", 9)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got := metricValue(t, reg, "logcapturer_state_commits_total"); got != 1 {
		t.Fatalf("commits = %v, want 1 (the final one)", got)
	}
	pos, err := s.Positions()
	if err != nil || pos["file:a"].Offset != 42 {
		t.Fatalf("positions = %v, %v", pos, err)
	}
	if idx, ok, err := s.Cursor("loki"); err != nil || !ok || idx != 9 {
		t.Fatalf("cursor = %d, %t, %v", idx, ok, err)
	}
}

func TestRunCommitsPeriodically(t *testing.T) {
	s := mustOpen(t, testPath(t), Options{FlushInterval: 5 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	s.SetCursor("loki", 3)
	// Wait for the ticker's commit without Flush; the deadline only guards
	// against a hang.
	deadline := time.Now().Add(10 * time.Second)
	for {
		idx, ok, err := s.Cursor("loki")
		if err != nil {
			t.Fatal(err)
		}
		if ok && idx == 3 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("Run never committed the cursor")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestRunTwice(t *testing.T) {
	s := mustOpen(t, testPath(t), Options{FlushInterval: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for !s.running.Load() {
		if time.Now().After(deadline) {
			t.Fatal("first Run never started")
		}
		time.Sleep(time.Millisecond)
	}
	err := s.Run(context.Background()) // would block forever if admitted
	cancel()
	if runErr := <-done; runErr != nil {
		t.Fatalf("first Run: %v", runErr)
	}
	if !errors.Is(err, ErrRunning) {
		t.Fatalf("second Run: err = %v, want ErrRunning", err)
	}
}

func TestRunFinalCommitFailure(t *testing.T) {
	s := mustOpen(t, testPath(t), Options{FlushInterval: time.Hour})
	s.db.MaxSize = 1 // no growth possible
	for i := range 4 {
		s.SetPosition(fmt.Sprint(i), Position{Meta: make([]byte, MaxMetaBytes)})
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Run(ctx); err == nil {
		t.Fatal("Run hid a failed final commit")
	}
	// Kept pending: a later Flush with room succeeds.
	s.db.MaxSize = 0
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if pos, err := s.Positions(); err != nil || len(pos) != 4 {
		t.Fatalf("positions = %d, %v; want 4", len(pos), err)
	}
}

func TestFlushHonoursCtxWhileWaiting(t *testing.T) {
	s := mustOpen(t, testPath(t), Options{})
	s.commitSem <- struct{}{} // a commit in progress
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := s.Flush(ctx)
	<-s.commitSem
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

// Setters, Run and Flush all at once: under -race this checks the locking,
// and the final state must be the last value of every key.
func TestConcurrentSetRunFlush(t *testing.T) {
	path := testPath(t)
	reg := prometheus.NewRegistry()
	s := mustOpen(t, path, Options{FlushInterval: time.Millisecond, NoSync: true, Registerer: reg})
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- s.Run(ctx) }()

	const writers, n = 4, 2000
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			id := fmt.Sprintf("src-%d", w)
			for i := 1; i <= n; i++ {
				s.SetPosition(id, Position{Offset: uint64(i), Meta: []byte(id)})
				s.SetCursor(id, uint64(i))
				if i%500 == 0 {
					s.DeletePosition(id)
					s.SetPosition(id, Position{Offset: uint64(i), Meta: []byte(id)})
				}
			}
		})
	}
	wg.Go(func() {
		for range 50 {
			if err := s.Flush(context.Background()); err != nil {
				t.Errorf("flush: %v", err)
			}
			if _, err := s.Positions(); err != nil {
				t.Errorf("positions: %v", err)
			}
		}
	})
	wg.Wait()
	cancel()
	if err := <-runDone; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got := metricValue(t, reg, "logcapturer_state_commit_errors_total"); got != 0 {
		t.Fatalf("commit errors = %v", got)
	}

	s = mustOpen(t, path, Options{})
	pos, err := s.Positions()
	if err != nil {
		t.Fatal(err)
	}
	curs, err := s.Cursors()
	if err != nil {
		t.Fatal(err)
	}
	for w := range writers {
		id := fmt.Sprintf("src-%d", w)
		if p := pos[id]; p.Offset != n || string(p.Meta) != id {
			t.Errorf("%s: position %+v, want offset %d", id, p, n)
		}
		if curs[id] != n {
			t.Errorf("%s: cursor %d, want %d", id, curs[id], n)
		}
	}
}

func TestMergeOlder(t *testing.T) {
	tests := map[string]struct {
		cur, old pending
		want     pending
	}{
		"empty current takes all": {
			old: pending{
				positions: map[string]posChange{"a": {pos: Position{Offset: 1}}},
				cursors:   map[string]uint64{"x": 1},
				walIndex:  5, walIndexSet: true,
			},
			want: pending{
				positions: map[string]posChange{"a": {pos: Position{Offset: 1}}},
				cursors:   map[string]uint64{"x": 1},
				walIndex:  5, walIndexSet: true,
			},
		},
		"newer wins per key": {
			cur: pending{
				positions: map[string]posChange{"a": {deleted: true}},
				cursors:   map[string]uint64{"x": 9},
				walIndex:  7, walIndexSet: true,
			},
			old: pending{
				positions: map[string]posChange{"a": {pos: Position{Offset: 1}}, "b": {pos: Position{Offset: 2}}},
				cursors:   map[string]uint64{"x": 1, "y": 2},
				walIndex:  5, walIndexSet: true,
			},
			want: pending{
				positions: map[string]posChange{"a": {deleted: true}, "b": {pos: Position{Offset: 2}}},
				cursors:   map[string]uint64{"x": 9, "y": 2},
				walIndex:  7, walIndexSet: true,
			},
		},
		"unset wal index in old leaves current": {
			cur:  pending{walIndex: 0, walIndexSet: true},
			old:  pending{walIndex: 3},
			want: pending{walIndex: 0, walIndexSet: true},
		},
		"nothing old": {
			cur:  pending{cursors: map[string]uint64{"x": 1}},
			want: pending{cursors: map[string]uint64{"x": 1}},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := tc.cur
			got.mergeOlder(tc.old)
			if got.walIndexSet != tc.want.walIndexSet || got.walIndex != tc.want.walIndex {
				t.Errorf("wal index = %d/%t, want %d/%t", got.walIndex, got.walIndexSet, tc.want.walIndex, tc.want.walIndexSet)
			}
			if len(got.positions) != len(tc.want.positions) || len(got.cursors) != len(tc.want.cursors) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			for k, w := range tc.want.positions {
				g, ok := got.positions[k]
				if !ok || g.deleted != w.deleted || !equalPosition(g.pos, w.pos) {
					t.Errorf("position %q = %+v, want %+v", k, g, w)
				}
			}
			for k, w := range tc.want.cursors {
				if got.cursors[k] != w {
					t.Errorf("cursor %q = %d, want %d", k, got.cursors[k], w)
				}
			}
		})
	}
}
