package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// WarmupResult tells how much writing fresh page cache costs on this box,
// the first time and again once the pages were touched.
type WarmupResult struct {
	Bytes      int64
	FirstCPU   time.Duration
	SecondCPU  time.Duration
	FirstWall  time.Duration
	SecondWall time.Duration
}

// warmup writes size bytes into a file in dir and deletes it, twice.
//
// Why: on a VM whose memory the host backs lazily (as here), the first
// touch of every guest page costs a host fault, which shows as kernel CPU
// in whatever process touches it first: a WAL write or a heap grow of the
// agent. That cost is a property of a fresh VM, not of the agent, and it
// fades once the guest has touched its memory. Touching the memory the runs
// will need before measuring keeps it out of the figures; the two passes
// report how large it is.
func warmup(dir string, size int64) (WarmupResult, error) {
	res := WarmupResult{Bytes: size}
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = byte(i)
	}
	pass := func() (time.Duration, time.Duration, error) {
		path := filepath.Join(dir, "warmup.bin")
		cpu0, t0 := selfCPU(), time.Now()
		f, err := os.Create(path)
		if err != nil {
			return 0, 0, err
		}
		for n := int64(0); n < size; n += int64(len(buf)) {
			if _, err := f.Write(buf); err != nil {
				_ = f.Close()
				_ = os.Remove(path)
				return 0, 0, fmt.Errorf("warmup: %w", err)
			}
		}
		cpu, wall := selfCPU()-cpu0, time.Since(t0)
		_ = f.Close()
		return cpu, wall, os.Remove(path)
	}
	var err error
	if res.FirstCPU, res.FirstWall, err = pass(); err != nil {
		return res, err
	}
	res.SecondCPU, res.SecondWall, err = pass()
	return res, err
}
