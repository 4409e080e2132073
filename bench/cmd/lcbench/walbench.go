package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/rs/zerolog"

	"github.com/logcapturer/log_capturer_go/wal"
	"github.com/logcapturer/log_capturer_go/wal/record"
)

// walVariant is one shape of WAL append load.
type walVariant struct {
	Name string
	// Lines per payload; 0 fills each payload up to the entry cap, as the
	// file source does when it reads a backlog.
	Lines int
	// InFlight caps payloads appended and not yet acknowledged (the file
	// source allows 4 per file).
	InFlight int
	NoSync   bool
}

// WALResult is the outcome of one variant.
type WALResult struct {
	Variant         walVariant
	LinesPerPayload int
	PayloadBytes    int
	Lines           uint64
	Payloads        uint64
	Elapsed         time.Duration
	Fsyncs          float64
	FsyncSeconds    float64 // sum of fsync durations
	CPU             time.Duration
	OtherCores      float64
}

func (r WALResult) LinesPerSec() float64 { return float64(r.Lines) / r.Elapsed.Seconds() }
func (r WALResult) MBPerSec() float64 {
	return float64(r.Payloads) * float64(r.PayloadBytes) / 1e6 / r.Elapsed.Seconds()
}
func (r WALResult) FsyncsPerSec() float64 { return r.Fsyncs / r.Elapsed.Seconds() }
func (r WALResult) EntriesPerFsync() float64 {
	if r.Fsyncs == 0 {
		return 0
	}
	return float64(r.Payloads) / r.Fsyncs
}
func (r WALResult) MeanFsync() time.Duration {
	if r.Fsyncs == 0 {
		return 0
	}
	return time.Duration(r.FsyncSeconds / r.Fsyncs * float64(time.Second))
}
func (r WALResult) CPUPerMLines() float64 { return r.CPU.Seconds() / (float64(r.Lines) / 1e6) }

// buildPayloads encodes k distinct payloads with the record Builder, the
// way a file tailer does: one source, one label set, ~170-byte lines, each
// payload either n lines or filled up to maxBytes.
func buildPayloads(k, n, maxBytes int) ([][]byte, int) {
	labels := record.NewLabelSet([]record.Label{{Name: "job", Value: "lcbench"},
		{Name: "host", Value: "bench"}, {Name: "filename", Value: "/var/log/app/bench.log"}})
	const source = "file:64769:1234567:1700000000000000000"
	// Per-line framing bound and header room, as the tailer reserves them.
	const overhead, header = 48, 256
	b := record.NewBuilder()
	var out [][]byte
	seq, off := uint64(0), uint64(0)
	lines := 0
	line := make([]byte, 0, LineBytes)
	for range k {
		b.Reset()
		ts := time.Now().UnixNano()
		for {
			line = appendLine(line[:0], seq, ts)
			body := line[:len(line)-1]
			if n > 0 && b.Len() == n {
				break
			}
			if n == 0 && b.Len() > 0 && b.Size()+len(body)+overhead+header > maxBytes {
				break
			}
			off += uint64(len(line))
			b.Add(source, labels, off, ts, 0, nil, body)
			seq++
		}
		lines = b.Len()
		out = append(out, b.AppendTo(nil))
	}
	return out, lines
}

// runWAL appends for about d with one appender goroutine and reports the
// throughput once every append of the run is acknowledged.
func runWAL(ctx context.Context, dir string, v walVariant, d time.Duration) (WALResult, error) {
	res := WALResult{Variant: v}
	cfg := wal.Defaults()
	cfg.MaxSize = 64 << 30 // the bench measures appends, not the disk budget
	cfg.NoSync = v.NoSync
	payloads, lines := buildPayloads(16, v.Lines, cfg.MaxEntryBytes)
	res.LinesPerPayload, res.PayloadBytes = lines, len(payloads[0])

	if err := os.MkdirAll(dir, 0o750); err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	reg := prometheus.NewRegistry()
	l, err := wal.Open(filepath.Join(dir, "wal"), cfg, zerolog.Nop(), reg)
	if err != nil {
		return res, err
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	runErr := make(chan error, 1)
	go func() { runErr <- l.Run(runCtx) }()

	var (
		acked    atomic.Uint64
		failures atomic.Uint64
		firstErr atomic.Pointer[error]
		wg       sync.WaitGroup
	)
	slots := make(chan struct{}, v.InFlight)
	done := func(_ uint64, err error) {
		if err != nil {
			failures.Add(1)
			firstErr.CompareAndSwap(nil, &err)
		} else {
			acked.Add(1)
		}
		<-slots
		wg.Done()
	}
	cpu0, busy0 := selfCPU(), sampleBox()
	start := time.Now()
	deadline := start.Add(d)
	var sent uint64
	for time.Now().Before(deadline) && ctx.Err() == nil {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			continue
		}
		wg.Add(1)
		if err := l.Append(ctx, payloads[sent%uint64(len(payloads))], done); err != nil {
			<-slots
			wg.Done()
			stop()
			<-runErr
			return res, fmt.Errorf("wal bench: append: %w", err)
		}
		sent++
	}
	waited := make(chan struct{})
	go func() { wg.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(30 * time.Second):
		stop()
		return res, errors.New("wal bench: appends not acknowledged within 30s")
	}
	res.Elapsed = time.Since(start)
	res.CPU = selfCPU() - cpu0
	res.OtherCores = otherLoad(sampleBox().busySince(busy0), res.CPU, res.Elapsed)
	stop()
	select {
	case err := <-runErr:
		if err != nil {
			return res, fmt.Errorf("wal bench: run: %w", err)
		}
	case <-time.After(30 * time.Second):
		return res, errors.New("wal bench: Run did not return within 30s")
	}
	if p := firstErr.Load(); p != nil {
		return res, fmt.Errorf("wal bench: %d appends failed: %w", failures.Load(), *p)
	}
	res.Payloads = acked.Load()
	res.Lines = res.Payloads * uint64(lines)
	mfs, err := reg.Gather()
	if err != nil {
		return res, err
	}
	for _, mf := range mfs {
		switch mf.GetName() {
		case "logcapturer_wal_fsyncs_total":
			res.Fsyncs = sumCounter(mf)
		case "logcapturer_wal_fsync_duration_seconds":
			for _, m := range mf.GetMetric() {
				res.FsyncSeconds += m.GetHistogram().GetSampleSum()
			}
		}
	}
	return res, nil
}

func sumCounter(mf *dto.MetricFamily) float64 {
	var s float64
	for _, m := range mf.GetMetric() {
		s += m.GetCounter().GetValue()
	}
	return s
}
