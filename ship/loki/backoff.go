package loki

import (
	"errors"
	"math/rand/v2"
	"time"
)

// Default backoff bounds, as in Promtail and Alloy (PROTOCOLS.md A7).
const (
	DefaultMinBackoff = 500 * time.Millisecond
	DefaultMaxBackoff = 5 * time.Minute
)

// ErrBadBackoff is returned by Backoff.Validate.
var ErrBadBackoff = errors.New("loki: bad backoff")

// Backoff is exponential backoff with full jitter: the delay before retry
// number attempt (0-based) is uniform in [0, min(Max, Min·2^attempt)].
// Full jitter spreads the retries of many senders that failed together
// (a Loki restart) instead of letting them hit the server in waves.
// Zero fields mean the defaults.
type Backoff struct {
	Min, Max time.Duration
}

// Validate reports negative bounds or Max below Min.
func (b Backoff) Validate() error {
	switch {
	case b.Min < 0 || b.Max < 0:
		return errors.Join(ErrBadBackoff, errors.New("negative bound"))
	case b.Max != 0 && b.Max < b.withDefaults().Min:
		return errors.Join(ErrBadBackoff, errors.New("max below min"))
	}
	return nil
}

func (b Backoff) withDefaults() Backoff {
	if b.Min <= 0 {
		b.Min = DefaultMinBackoff
	}
	if b.Max <= 0 {
		b.Max = DefaultMaxBackoff
	}
	// An invalid Backoff still yields bounded delays.
	b.Max = max(b.Max, b.Min)
	return b
}

// Ceiling returns min(Max, Min·2^attempt), the upper bound of Delay. It
// never overflows, whatever attempt is.
func (b Backoff) Ceiling(attempt int) time.Duration {
	b = b.withDefaults()
	attempt = max(attempt, 0)
	if attempt >= 63 {
		return b.Max
	}
	c := b.Min << attempt
	if c>>attempt != b.Min || c <= 0 || c > b.Max {
		return b.Max
	}
	return c
}

// Delay returns the jittered wait before retry number attempt. rnd returns
// a number in [0, 1), as rand.Float64 does; nil uses math/rand/v2.
func (b Backoff) Delay(attempt int, rnd func() float64) time.Duration {
	c := b.Ceiling(attempt)
	if rnd == nil {
		rnd = rand.Float64
	}
	r := rnd()
	if !(r > 0) { // also catches NaN
		return 0
	}
	f := r * float64(c)
	if f >= float64(c) {
		return c
	}
	return time.Duration(f)
}

// DelayAfter is Delay, but never shorter than the server's Retry-After.
// Retry-After is capped at Max so that a hostile or mistaken header cannot
// park the sender for hours.
func (b Backoff) DelayAfter(attempt int, retryAfter time.Duration, rnd func() float64) time.Duration {
	d := b.Delay(attempt, rnd)
	ra := min(max(retryAfter, 0), b.withDefaults().Max)
	return max(d, ra)
}
