package main

import (
	"context"
	"runtime/debug"
	"testing"
	"time"
)

func TestMemoryLimit(t *testing.T) {
	const floor = 28 << 20
	cases := map[string]struct{ live, want int64 }{
		"idle":              {0, floor},
		"at 50k lines/s":    {12 << 20, floor},
		"just above":        {14 << 20, 14<<20 + 14<<20*3/4 + memoryOverhead},
		"many files (heap)": {150 << 20, 150<<20 + 150<<20*3/4 + memoryOverhead},
	}
	for name, c := range cases {
		if got := memoryLimit(c.live, floor); got != c.want {
			t.Errorf("%s: memoryLimit(%d) = %d, want %d", name, c.live, got, c.want)
		}
		if got := memoryLimit(c.live, floor); got < c.live+c.live*3/4 {
			t.Errorf("%s: limit %d leaves less than 3/4 of the live heap to grow", name, got)
		}
	}
}

// TestGovernMemory: the governor sets the limit at once and stops with its
// context; the limit is restored afterwards for the other tests.
func TestGovernMemory(t *testing.T) {
	prev := debug.SetMemoryLimit(-1)
	defer debug.SetMemoryLimit(prev)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		governMemory(ctx, 1<<40, time.Hour) // a floor no live heap here reaches
	}()
	deadline := time.Now().Add(10 * time.Second)
	for debug.SetMemoryLimit(-1) != 1<<40 {
		if time.Now().After(deadline) {
			t.Fatal("the governor did not set the limit")
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
}
