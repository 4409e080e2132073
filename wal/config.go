package wal

import (
	"errors"
	"fmt"
	"time"
)

// Config tunes the log. Zero values take the defaults below.
type Config struct {
	// SegmentSize is the target size of one segment file.
	SegmentSize int64
	// MaxSize is the disk budget for all segments. Appends block above it.
	MaxSize int64
	// SyncInterval bounds how long an appended entry waits for its fsync.
	// Zero means fsync as soon as the append queue is empty.
	SyncInterval time.Duration
	// SyncBytes forces an fsync once this many bytes are unsynced.
	SyncBytes int64
	// Retention keeps delivered segments replayable for this long.
	Retention time.Duration
	// SegmentCache is how many sealed segments readers keep in memory.
	SegmentCache int
	// MaxEntryBytes caps one payload.
	MaxEntryBytes int
	// CompactInterval is how often delivered segments are looked for.
	CompactInterval time.Duration
	// NoSync skips fsync. Only benchmarks that measure the difference use it.
	NoSync bool
}

// Defaults returns a Config with every default filled in.
func Defaults() Config {
	return Config{
		SegmentSize:     2 << 20,
		MaxSize:         1 << 30,
		SyncInterval:    10 * time.Millisecond,
		SyncBytes:       1 << 20,
		Retention:       time.Hour,
		SegmentCache:    2,
		MaxEntryBytes:   512 << 10,
		CompactInterval: 5 * time.Second,
	}
}

func (c Config) withDefaults() Config {
	d := Defaults()
	if c.SegmentSize == 0 {
		c.SegmentSize = d.SegmentSize
	}
	if c.MaxSize == 0 {
		c.MaxSize = d.MaxSize
	}
	if c.SyncBytes == 0 {
		c.SyncBytes = d.SyncBytes
	}
	if c.SegmentCache == 0 {
		c.SegmentCache = d.SegmentCache
	}
	if c.MaxEntryBytes == 0 {
		c.MaxEntryBytes = d.MaxEntryBytes
	}
	if c.CompactInterval == 0 {
		c.CompactInterval = d.CompactInterval
	}
	return c
}

// Validate reports every problem with the configuration.
func (c Config) Validate() error {
	var errs []error
	if c.SegmentSize < 64<<10 {
		errs = append(errs, fmt.Errorf("wal.segment_size must be at least 64KiB, got %d", c.SegmentSize))
	}
	if c.MaxSize < 2*c.SegmentSize {
		errs = append(errs, fmt.Errorf("wal.max_size (%d) must be at least twice wal.segment_size (%d)", c.MaxSize, c.SegmentSize))
	}
	if c.SyncInterval < 0 {
		errs = append(errs, errors.New("wal.sync_interval must not be negative"))
	}
	if c.SyncBytes < 0 {
		errs = append(errs, errors.New("wal.sync_bytes must not be negative"))
	}
	if c.Retention < 0 {
		errs = append(errs, errors.New("wal.retention must not be negative"))
	}
	if c.MaxEntryBytes <= 0 || int64(c.MaxEntryBytes) > c.SegmentSize {
		errs = append(errs, fmt.Errorf("wal.max_entry_bytes must be in (0, segment_size], got %d", c.MaxEntryBytes))
	}
	return errors.Join(errs...)
}
