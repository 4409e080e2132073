package ship

import (
	"context"
	"sync"
	"time"
)

// CircuitState is a circuit breaker's state. Its numeric value is the
// logcapturer_ship_circuit_state gauge.
type CircuitState int

const (
	CircuitClosed   CircuitState = 0 // sending normally
	CircuitHalfOpen CircuitState = 1 // one probe request decides
	CircuitOpen     CircuitState = 2 // not sending until the cool-down ends
)

func (s CircuitState) String() string {
	switch s {
	case CircuitClosed:
		return "closed"
	case CircuitHalfOpen:
		return "half_open"
	case CircuitOpen:
		return "open"
	}
	return "unknown"
}

// breaker is one sink's circuit breaker. After threshold consecutive
// failures of the receiver (transport errors, timeouts, 5xx) it opens: no
// worker sends for the cool-down, which doubles (up to maxCooldown) each
// time a probe fails. Then one worker sends a probe; its success closes
// the circuit, its failure opens it again. Rate limits (429) and
// rejections are answers of a working receiver and reset the count.
//
// It spares a dead receiver the retries of every worker and makes the
// outage visible as one state in metrics and /health; the data waits in
// the WAL meanwhile.
type breaker struct {
	threshold   int // 0: never opens
	cooldown    time.Duration
	maxCooldown time.Duration
	onChange    func(CircuitState)
	now         func() time.Time

	mu       sync.Mutex
	state    CircuitState
	failures int
	wait     time.Duration // current cool-down
	openedAt time.Time
	probing  bool
	changed  chan struct{} // closed and replaced on every change
}

func newBreaker(threshold int, cooldown, maxCooldown time.Duration, onChange func(CircuitState)) *breaker {
	if onChange == nil {
		onChange = func(CircuitState) {}
	}
	return &breaker{
		threshold: threshold, cooldown: cooldown, maxCooldown: max(maxCooldown, cooldown),
		onChange: onChange, now: time.Now, wait: cooldown, changed: make(chan struct{}),
	}
}

// State returns the current state.
func (b *breaker) State() CircuitState {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state
}

// acquire waits until a send may start. probe reports that this send is
// the half-open probe; the caller must pass it to done.
func (b *breaker) acquire(ctx context.Context) (probe bool, err error) {
	for {
		b.mu.Lock()
		var timer *time.Timer
		switch b.state {
		case CircuitClosed:
			b.mu.Unlock()
			return false, nil
		case CircuitOpen:
			left := b.openedAt.Add(b.wait).Sub(b.now())
			if left <= 0 {
				b.set(CircuitHalfOpen)
				b.mu.Unlock()
				continue // re-evaluate as half-open
			}
			timer = time.NewTimer(left)
		case CircuitHalfOpen:
			if !b.probing {
				b.probing = true
				b.mu.Unlock()
				return true, nil
			}
		}
		ch := b.changed
		b.mu.Unlock()
		var tc <-chan time.Time
		if timer != nil {
			tc = timer.C
		}
		select {
		case <-ch:
		case <-tc:
		case <-ctx.Done():
		}
		if timer != nil {
			timer.Stop()
		}
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
	}
}

// Outcome of a send, as the breaker sees it.
type sendOutcome int

const (
	outcomeSuccess sendOutcome = iota // the receiver answered (2xx, 4xx, 429)
	outcomeFailure                    // transport error, timeout, 5xx
	outcomeAborted                    // cancelled by shutdown: says nothing
)

// done records the outcome of a send started after acquire.
func (b *breaker) done(probe bool, o sendOutcome) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if probe {
		b.probing = false
	}
	switch o {
	case outcomeSuccess:
		b.failures = 0
		b.wait = b.cooldown
		if b.state != CircuitClosed {
			b.set(CircuitClosed)
		}
	case outcomeFailure:
		b.failures++
		switch {
		case b.threshold <= 0:
		case probe:
			b.wait = min(b.wait*2, b.maxCooldown)
			b.openedAt = b.now()
			b.set(CircuitOpen)
		case b.state == CircuitClosed && b.failures >= b.threshold:
			b.openedAt = b.now()
			b.set(CircuitOpen)
		}
	case outcomeAborted:
		if probe {
			b.notify() // let another worker probe
		}
	}
}

// set changes the state and wakes the waiters; b.mu is held.
func (b *breaker) set(s CircuitState) {
	if s == b.state {
		return
	}
	b.state = s
	b.onChange(s)
	b.notify()
}

func (b *breaker) notify() {
	close(b.changed)
	b.changed = make(chan struct{})
}
