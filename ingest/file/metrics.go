package file

import (
	"errors"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// counters are the source's counters. They are the one copy of the numbers:
// Stats reads them and the Prometheus collector renders them at scrape time.
type counters struct {
	lines, bytes     atomic.Uint64
	truncatedLines   atomic.Uint64
	skippedBytes     atomic.Uint64
	partialLines     atomic.Uint64
	filesOpen        atomic.Int64
	rotations        atomic.Uint64
	truncations      atomic.Uint64
	inodeReuses      atomic.Uint64
	appendErrors     atomic.Uint64
	appendWaitNanos  atomic.Uint64
	readErrors       atomic.Uint64
	watchErrors      atomic.Uint64
	acksOutOfOrder   atomic.Uint64
	positionsDropped atomic.Uint64
	scans            atomic.Uint64
}

func (c *counters) addWait(d time.Duration) {
	if d > 0 {
		c.appendWaitNanos.Add(uint64(d))
	}
}

// Stats is a snapshot of the source's counters (for /stats).
type Stats struct {
	FilesOpen         int64   `json:"files_open"`
	LinesRead         uint64  `json:"lines_read"`
	BytesRead         uint64  `json:"bytes_read"`
	LinesTruncated    uint64  `json:"lines_truncated"`
	BytesSkipped      uint64  `json:"bytes_skipped"`
	PartialLines      uint64  `json:"partial_lines"`
	Rotations         uint64  `json:"rotations"`
	Truncations       uint64  `json:"truncations"`
	InodeReuses       uint64  `json:"inode_reuses"`
	AppendErrors      uint64  `json:"append_errors"`
	AppendWaitSeconds float64 `json:"append_wait_seconds"`
	ReadErrors        uint64  `json:"read_errors"`
	WatchErrors       uint64  `json:"watch_errors"`
	PositionsDropped  uint64  `json:"positions_dropped"`
	AcksOutOfOrder    uint64  `json:"acks_out_of_order"`
	Scans             uint64  `json:"scans"`
}

func (c *counters) snapshot() Stats {
	return Stats{
		FilesOpen:         c.filesOpen.Load(),
		LinesRead:         c.lines.Load(),
		BytesRead:         c.bytes.Load(),
		LinesTruncated:    c.truncatedLines.Load(),
		BytesSkipped:      c.skippedBytes.Load(),
		PartialLines:      c.partialLines.Load(),
		Rotations:         c.rotations.Load(),
		Truncations:       c.truncations.Load(),
		InodeReuses:       c.inodeReuses.Load(),
		AppendErrors:      c.appendErrors.Load(),
		AppendWaitSeconds: float64(c.appendWaitNanos.Load()) / 1e9,
		ReadErrors:        c.readErrors.Load(),
		WatchErrors:       c.watchErrors.Load(),
		PositionsDropped:  c.positionsDropped.Load(),
		AcksOutOfOrder:    c.acksOutOfOrder.Load(),
		Scans:             c.scans.Load(),
	}
}

type metricDef struct {
	desc  *prometheus.Desc
	kind  prometheus.ValueType
	value func(*counters) float64
}

// collector renders counters as Prometheus metrics, labelled source="file" so
// that other sources can share the metric names.
type collector struct {
	c    *counters
	defs []metricDef
}

func newCollector(c *counters) *collector {
	constLabels := prometheus.Labels{"source": "file"}
	d := func(name, help string, kind prometheus.ValueType, v func(*counters) float64) metricDef {
		return metricDef{prometheus.NewDesc("logcapturer_ingest_"+name, help, nil, constLabels), kind, v}
	}
	u := func(a *atomic.Uint64) func(*counters) float64 {
		return func(*counters) float64 { return float64(a.Load()) }
	}
	return &collector{c: c, defs: []metricDef{
		d("lines_total", "Lines read and handed to the WAL.", prometheus.CounterValue, u(&c.lines)),
		d("bytes_total", "Bytes read from sources.", prometheus.CounterValue, u(&c.bytes)),
		d("lines_truncated_total", "Lines cut at the maximum line size.", prometheus.CounterValue, u(&c.truncatedLines)),
		d("truncated_bytes_skipped_total", "Bytes dropped from lines cut at the maximum line size.", prometheus.CounterValue, u(&c.skippedBytes)),
		d("partial_lines_total", "Lines emitted without their terminator (file gone).", prometheus.CounterValue, u(&c.partialLines)),
		d("files_open", "Files currently followed.", prometheus.GaugeValue, func(c *counters) float64 { return float64(c.filesOpen.Load()) }),
		d("file_rotations_total", "Followed files that left their path (renamed away or deleted).", prometheus.CounterValue, u(&c.rotations)),
		d("file_truncations_total", "Files found shorter than the read position (truncated).", prometheus.CounterValue, u(&c.truncations)),
		d("file_inode_reuses_total", "Saved positions dropped because the inode now holds other content.", prometheus.CounterValue, u(&c.inodeReuses)),
		d("append_errors_total", "WAL appends that failed (the lines are read again).", prometheus.CounterValue, u(&c.appendErrors)),
		d("append_wait_seconds_total", "Time spent blocked in WAL appends (backpressure).", prometheus.CounterValue, func(c *counters) float64 { return float64(c.appendWaitNanos.Load()) / 1e9 }),
		d("read_errors_total", "File open, stat and read errors.", prometheus.CounterValue, u(&c.readErrors)),
		d("watch_errors_total", "File system notification errors (polling continues).", prometheus.CounterValue, u(&c.watchErrors)),
		d("acks_out_of_order_total", "WAL acks that arrived out of append order (positions still advance in order).", prometheus.CounterValue, u(&c.acksOutOfOrder)),
		d("positions_dropped_total", "Saved positions dropped because their file is gone.", prometheus.CounterValue, u(&c.positionsDropped)),
	}}
}

func (col *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range col.defs {
		ch <- d.desc
	}
}

func (col *collector) Collect(ch chan<- prometheus.Metric) {
	for _, d := range col.defs {
		ch <- prometheus.MustNewConstMetric(d.desc, d.kind, d.value(col.c))
	}
}

// register adds col to reg. A collector left by an earlier Source (a reload,
// a second instance in tests) is replaced: its counters restart, which
// Prometheus rate() handles, instead of failing the new Source.
func register(reg prometheus.Registerer, col *collector) error {
	if reg == nil {
		return nil
	}
	err := reg.Register(col)
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		reg.Unregister(are.ExistingCollector)
		err = reg.Register(col)
	}
	return err
}
