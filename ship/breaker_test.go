package ship

import (
	"context"
	"sync"
	"testing"
	"time"
)

// fakeClock is a manual clock for the breaker.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestBreakerTransitions(t *testing.T) {
	var states []CircuitState
	var smu sync.Mutex
	b := newBreaker(3, time.Second, 4*time.Second, func(s CircuitState) {
		smu.Lock()
		states = append(states, s)
		smu.Unlock()
	})
	clk := &fakeClock{t: time.Unix(1000, 0)}
	b.now = clk.now
	ctx := context.Background()

	// Two failures and a success: still closed.
	for _, o := range []sendOutcome{outcomeFailure, outcomeFailure, outcomeSuccess, outcomeFailure, outcomeFailure} {
		probe, err := b.acquire(ctx)
		if err != nil || probe {
			t.Fatalf("closed breaker: probe %v err %v", probe, err)
		}
		b.done(false, o)
	}
	if b.State() != CircuitClosed {
		t.Fatalf("state %v after non-consecutive failures", b.State())
	}
	b.done(false, outcomeFailure) // third in a row
	if b.State() != CircuitOpen {
		t.Fatalf("state %v after 3 consecutive failures", b.State())
	}

	// Open: acquire waits until the cool-down passes.
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	if _, err := b.acquire(short); err == nil {
		t.Fatal("acquire succeeded on an open circuit")
	}
	cancel()
	clk.add(time.Second)
	probe, err := b.acquire(ctx)
	if err != nil || !probe || b.State() != CircuitHalfOpen {
		t.Fatalf("after cool-down: probe %v err %v state %v", probe, err, b.State())
	}
	// Only one probe: a second worker waits.
	second := make(chan bool, 1)
	go func() {
		p, err := b.acquire(ctx)
		second <- err == nil && !p
	}()
	select {
	case <-second:
		t.Fatal("second worker passed a half-open circuit")
	case <-time.After(20 * time.Millisecond):
	}
	// The probe fails: open again with a doubled cool-down.
	b.done(true, outcomeFailure)
	if b.State() != CircuitOpen {
		t.Fatalf("state %v after failed probe", b.State())
	}
	clk.add(time.Second)
	short, cancel = context.WithTimeout(ctx, 20*time.Millisecond)
	if _, err := b.acquire(short); err == nil {
		t.Fatal("cool-down did not double")
	}
	cancel()
	clk.add(time.Second)
	// The waiting worker becomes the probe once the cool-down ends; it
	// succeeds and closes the circuit.
	probe, err = b.acquire(ctx)
	if !probe || err != nil {
		// The goroutine may have taken the probe first.
		select {
		case <-second:
			t.Fatalf("unexpected: probe %v err %v", probe, err)
		default:
		}
	}
	b.done(probe, outcomeSuccess)
	if b.State() != CircuitClosed {
		t.Fatalf("state %v after successful probe", b.State())
	}
	select {
	case ok := <-second:
		if !ok {
			t.Fatal("second worker failed")
		}
	case <-time.After(time.Second):
		t.Fatal("second worker still waiting after the circuit closed")
	}
	smu.Lock()
	defer smu.Unlock()
	want := []CircuitState{CircuitOpen, CircuitHalfOpen, CircuitOpen, CircuitHalfOpen, CircuitClosed}
	if len(states) != len(want) {
		t.Fatalf("transitions %v, want %v", states, want)
	}
	for i := range want {
		if states[i] != want[i] {
			t.Fatalf("transitions %v, want %v", states, want)
		}
	}
}

func TestBreakerAbortedProbeLetsAnotherProbe(t *testing.T) {
	b := newBreaker(1, time.Millisecond, time.Millisecond, nil)
	b.done(false, outcomeFailure)
	time.Sleep(2 * time.Millisecond)
	probe, err := b.acquire(context.Background())
	if !probe || err != nil {
		t.Fatalf("probe %v err %v", probe, err)
	}
	got := make(chan bool, 1)
	go func() {
		p, _ := b.acquire(context.Background())
		got <- p
	}()
	b.done(true, outcomeAborted)
	select {
	case p := <-got:
		if !p {
			t.Fatal("the next worker did not become the probe")
		}
	case <-time.After(time.Second):
		t.Fatal("aborted probe blocked the others")
	}
}

func TestBreakerDisabled(t *testing.T) {
	b := newBreaker(0, time.Second, time.Second, nil)
	for range 100 {
		b.done(false, outcomeFailure)
	}
	if b.State() != CircuitClosed {
		t.Fatalf("disabled breaker opened: %v", b.State())
	}
	if s := CircuitState(7).String(); s != "unknown" {
		t.Fatal(s)
	}
}
