package loki

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

func fixed(r float64) func() float64 { return func() float64 { return r } }

func TestBackoffCeiling(t *testing.T) {
	b := Backoff{Min: 500 * time.Millisecond, Max: 5 * time.Minute}
	tests := map[string]struct {
		b       Backoff
		attempt int
		want    time.Duration
	}{
		"first":              {b, 0, 500 * time.Millisecond},
		"second":             {b, 1, time.Second},
		"ninth":              {b, 9, 256 * time.Second},
		"capped":             {b, 10, 5 * time.Minute},
		"negative attempt":   {b, -3, 500 * time.Millisecond},
		"huge attempt":       {b, 1 << 40, 5 * time.Minute},
		"attempt 62":         {b, 62, 5 * time.Minute},
		"attempt 63":         {b, 63, 5 * time.Minute},
		"max int attempt":    {b, math.MaxInt, 5 * time.Minute},
		"max duration":       {Backoff{Min: time.Second, Max: math.MaxInt64}, 33, time.Second << 33},
		"max duration 62":    {Backoff{Min: time.Nanosecond, Max: math.MaxInt64}, 62, 1 << 62},
		"overflowing shift":  {Backoff{Min: time.Second, Max: math.MaxInt64}, 34, math.MaxInt64},
		"zero means default": {Backoff{}, 0, DefaultMinBackoff},
		"zero max default":   {Backoff{}, 100, DefaultMaxBackoff},
		"max below min":      {Backoff{Min: time.Second, Max: time.Millisecond}, 5, time.Second},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			if got := tt.b.Ceiling(tt.attempt); got != tt.want {
				t.Fatalf("Ceiling(%d) = %v; want %v", tt.attempt, got, tt.want)
			}
		})
	}
}

func TestBackoffDelay(t *testing.T) {
	b := Backoff{Min: time.Second, Max: time.Minute}
	tests := map[string]struct {
		attempt int
		rnd     func() float64
		want    time.Duration
	}{
		"zero draw":          {3, fixed(0), 0},
		"half draw":          {3, fixed(0.5), 4 * time.Second},
		"top draw":           {0, fixed(math.Nextafter(1, 0)), time.Second - 1},
		"draw of one clamps": {2, fixed(1), 4 * time.Second},
		"bad draw above one": {2, fixed(7), 4 * time.Second},
		"negative draw":      {2, fixed(-1), 0},
		"NaN draw":           {2, fixed(math.NaN()), 0},
		"capped":             {50, fixed(0.5), 30 * time.Second},
		"max int attempt":    {math.MaxInt, fixed(0.999), time.Duration(0.999 * float64(time.Minute))},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			if got := b.Delay(tt.attempt, tt.rnd); got != tt.want {
				t.Fatalf("Delay(%d) = %v; want %v", tt.attempt, got, tt.want)
			}
		})
	}
}

func TestBackoffDelayBounds(t *testing.T) {
	// Property over real draws: always in [0, ceiling], and the draws
	// actually spread over the range (full jitter, not a constant).
	rng := rand.New(rand.NewPCG(1, 2))
	for _, b := range []Backoff{{}, {Min: time.Millisecond, Max: time.Second}, {Min: time.Nanosecond, Max: math.MaxInt64}} {
		for attempt := range 80 {
			c := b.Ceiling(attempt)
			var lo, hi time.Duration = math.MaxInt64, 0
			for range 200 {
				d := b.Delay(attempt, rng.Float64)
				if d < 0 || d > c {
					t.Fatalf("%+v Delay(%d) = %v outside [0, %v]", b, attempt, d, c)
				}
				lo, hi = min(lo, d), max(hi, d)
			}
			if c >= 100 && (lo > c/4 || hi < c*3/4) {
				t.Fatalf("%+v attempt %d: draws in [%v, %v] do not spread over [0, %v]", b, attempt, lo, hi, c)
			}
		}
	}
	if d := (Backoff{}).Delay(1, nil); d < 0 || d > time.Second {
		t.Fatalf("Delay with nil rnd = %v; want within [0, 1s]", d)
	}
}

func TestBackoffDelayAfter(t *testing.T) {
	b := Backoff{Min: time.Second, Max: time.Minute}
	tests := map[string]struct {
		attempt    int
		retryAfter time.Duration
		rnd        float64
		want       time.Duration
	}{
		"no retry-after":          {2, 0, 0.5, 2 * time.Second},
		"retry-after wins":        {0, 10 * time.Second, 0.5, 10 * time.Second},
		"jitter wins":             {5, time.Second, 0.9, time.Duration(0.9 * float64(32*time.Second))},
		"retry-after capped":      {0, time.Hour, 0, time.Minute},
		"negative retry-after":    {1, -time.Hour, 0.5, time.Second},
		"zero draw, retry-after":  {7, 3 * time.Second, 0, 3 * time.Second},
		"huge attempt and header": {math.MaxInt, math.MaxInt64, 0.999, time.Minute},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			if got := b.DelayAfter(tt.attempt, tt.retryAfter, fixed(tt.rnd)); got != tt.want {
				t.Fatalf("DelayAfter(%d, %v) = %v; want %v", tt.attempt, tt.retryAfter, got, tt.want)
			}
		})
	}
}

func TestBackoffValidate(t *testing.T) {
	tests := map[string]struct {
		b  Backoff
		ok bool
	}{
		"zero":                  {Backoff{}, true},
		"defaults":              {Backoff{Min: DefaultMinBackoff, Max: DefaultMaxBackoff}, true},
		"equal":                 {Backoff{Min: time.Second, Max: time.Second}, true},
		"only max":              {Backoff{Max: time.Second}, true},
		"max below min":         {Backoff{Min: time.Second, Max: time.Millisecond}, false},
		"max below default min": {Backoff{Max: time.Millisecond}, false},
		"negative min":          {Backoff{Min: -1}, false},
		"negative max":          {Backoff{Max: -1}, false},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			if err := tt.b.Validate(); (err == nil) != tt.ok {
				t.Fatalf("Validate() = %v; want ok=%v", err, tt.ok)
			}
		})
	}
}
