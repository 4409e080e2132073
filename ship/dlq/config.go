package dlq

import (
	"errors"
	"fmt"
	"time"
)

// Config tunes a Store. Zero fields take their defaults, except Dir.
type Config struct {
	// Dir holds the letter files (by convention data_dir/dlq).
	Dir string
	// Retention: a pending letter older than this is expired (counted and
	// logged as loss); a reprocessed letter's record is forgotten.
	Retention time.Duration
	// MaxBytes bounds the letter files held; over it the oldest pending
	// letters are expired.
	MaxBytes int64
	// RequestTTL is how long a reprocess request id is remembered (a repeat
	// within it returns the first outcome and sends nothing).
	RequestTTL time.Duration
	// CheckInterval is Run's expiry period.
	CheckInterval time.Duration
	// BatchBytes caps the line bytes of one batch sent during a reprocess.
	BatchBytes int
	// MaxAttempts bounds the sends of one batch during a reprocess
	// (retryable failures only; a permanent one stops at once).
	MaxAttempts int
	// MinBackoff and MaxBackoff bound the waits between those attempts
	// (exponential, full jitter; a Retry-After is honoured up to MaxBackoff).
	MinBackoff, MaxBackoff time.Duration
	// NoSync skips fsync of letter files. Tests only.
	NoSync bool
	// Now is the clock (nil: time.Now). Tests move it to expire letters.
	Now func() time.Time
}

// Defaults for the zero fields of Config.
const (
	DefaultRetention     = 168 * time.Hour
	DefaultMaxBytes      = 1 << 30
	DefaultRequestTTL    = 168 * time.Hour
	DefaultCheckInterval = time.Minute
	DefaultBatchBytes    = 1 << 20
	DefaultMaxAttempts   = 5
	DefaultMinBackoff    = 500 * time.Millisecond
	DefaultMaxBackoff    = 30 * time.Second
)

// Validate rejects a missing Dir and negative values.
func (c Config) Validate() error {
	var errs []error
	if c.Dir == "" {
		errs = append(errs, errors.New("dir is empty"))
	}
	for name, d := range map[string]time.Duration{"retention": c.Retention, "request_ttl": c.RequestTTL,
		"check_interval": c.CheckInterval, "min_backoff": c.MinBackoff, "max_backoff": c.MaxBackoff} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("%s %s is negative", name, d))
		}
	}
	if c.MaxBytes < 0 || c.BatchBytes < 0 || c.MaxAttempts < 0 {
		errs = append(errs, errors.New("max_bytes, batch_bytes and max_attempts must not be negative"))
	}
	if c.MaxBackoff > 0 && c.MinBackoff > c.MaxBackoff {
		errs = append(errs, fmt.Errorf("min_backoff %s above max_backoff %s", c.MinBackoff, c.MaxBackoff))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("dlq: config: %w", err)
	}
	return nil
}

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.Retention, DefaultRetention)
	def(&c.RequestTTL, DefaultRequestTTL)
	def(&c.CheckInterval, DefaultCheckInterval)
	def(&c.MinBackoff, DefaultMinBackoff)
	def(&c.MaxBackoff, DefaultMaxBackoff)
	c.MaxBackoff = max(c.MaxBackoff, c.MinBackoff)
	if c.MaxBytes == 0 {
		c.MaxBytes = DefaultMaxBytes
	}
	if c.BatchBytes == 0 {
		c.BatchBytes = DefaultBatchBytes
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}
