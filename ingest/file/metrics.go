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
	escapedLines     atomic.Uint64
	transcodedLines  atomic.Uint64
	mlEntries        atomic.Uint64
	mlPartial        atomic.Uint64
	mlSplit          atomic.Uint64
	mlFlushed        atomic.Uint64
	filesOpen        atomic.Int64
	filesOpenPeak    atomic.Int64
	filesWaiting     atomic.Int64
	filesClosed      atomic.Uint64
	filesReopened    atomic.Uint64
	rotRename        atomic.Uint64
	rotDelete        atomic.Uint64
	rotCopytruncate  atomic.Uint64
	truncations      atomic.Uint64
	bytesRecovered   atomic.Uint64
	copyUnverified   atomic.Uint64
	rotatedFound     atomic.Uint64
	lateWrites       atomic.Uint64
	inodeReuses      atomic.Uint64
	appendErrors     atomic.Uint64
	appendWaitNanos  atomic.Uint64
	readErrors       atomic.Uint64
	watchErrors      atomic.Uint64
	pollingDirs      atomic.Int64
	notifyFallbacks  atomic.Uint64
	overflows        atomic.Uint64
	acksOutOfOrder   atomic.Uint64
	positionsDropped atomic.Uint64
	scans            atomic.Uint64

	budget *byteBudget // payload bytes of all files (set by New)
	reads  *readSlots  // read buffers lent out (set by New)
}

// opened counts a file opened and keeps the peak.
func (c *counters) opened() {
	n := c.filesOpen.Add(1)
	for {
		p := c.filesOpenPeak.Load()
		if n <= p || c.filesOpenPeak.CompareAndSwap(p, n) {
			return
		}
	}
}

func (c *counters) addWait(d time.Duration) {
	if d > 0 {
		c.appendWaitNanos.Add(uint64(d))
	}
}

// Stats is a snapshot of the source's counters (for /stats).
type Stats struct {
	FilesOpen    int64  `json:"files_open"`
	FilesPeak    int64  `json:"files_open_peak"`
	FilesWaiting int64  `json:"files_waiting"`
	FilesClosed  uint64 `json:"files_closed"`
	FilesReopen  uint64 `json:"files_reopened"`

	LinesRead       uint64 `json:"lines_read"`
	BytesRead       uint64 `json:"bytes_read"`
	LinesTruncated  uint64 `json:"lines_truncated"`
	BytesSkipped    uint64 `json:"bytes_skipped"`
	PartialLines    uint64 `json:"partial_lines"`
	LinesEscaped    uint64 `json:"lines_escaped"`
	LinesTranscoded uint64 `json:"lines_transcoded"`

	// Multiline routes: entries appended (one WAL record each, pieces of
	// cut entries included), those flagged partial, pieces cut at
	// max_lines/max_bytes, and entries emitted by the flush timeout.
	MultilineEntries uint64 `json:"multiline_entries"`
	MultilinePartial uint64 `json:"multiline_entries_partial"`
	MultilineSplit   uint64 `json:"multiline_entries_split"`
	MultilineFlushed uint64 `json:"multiline_entries_flushed"`

	// Rotations by kind: renamed away from every matched path, deleted
	// while open, truncated with the rotated copy found (copytruncate), and
	// truncated (or rewritten) in place with no copy to recover from.
	RotationsRename       uint64 `json:"rotations_rename"`
	RotationsDelete       uint64 `json:"rotations_delete"`
	RotationsCopytruncate uint64 `json:"rotations_copytruncate"`
	Truncations           uint64 `json:"truncations"`
	BytesRecovered        uint64 `json:"copytruncate_bytes_recovered"`
	CopiesUnverified      uint64 `json:"copytruncate_copies_unverified"`
	RotatedFilesFound     uint64 `json:"rotated_files_found"`
	LateWrites            uint64 `json:"late_writes"`
	InodeReuses           uint64 `json:"inode_reuses"`

	AppendErrors      uint64  `json:"append_errors"`
	AppendWaitSeconds float64 `json:"append_wait_seconds"`
	ReadErrors        uint64  `json:"read_errors"`
	WatchErrors       uint64  `json:"watch_errors"`
	PollingDirs       int64   `json:"polling_dirs"`
	NotifyFallbacks   uint64  `json:"notify_fallbacks"`
	EventOverflows    uint64  `json:"event_overflows"`
	PositionsDropped  uint64  `json:"positions_dropped"`
	AcksOutOfOrder    uint64  `json:"acks_out_of_order"`
	Scans             uint64  `json:"scans"`

	// Memory budget (max_inflight_bytes): payload bytes being built or
	// appended and not yet acked, its peak and limit, and the waits of
	// files for it and for a read buffer.
	InflightBytes      int64   `json:"inflight_bytes"`
	InflightBytesPeak  int64   `json:"inflight_bytes_peak"`
	InflightBytesLimit int64   `json:"inflight_bytes_limit"`
	BudgetWaits        uint64  `json:"inflight_budget_waits"`
	BudgetWaitSeconds  float64 `json:"inflight_budget_wait_seconds"`
	ReadBufferWaits    uint64  `json:"read_buffer_waits"`
}

func (c *counters) snapshot() Stats {
	st := c.snapshotCounters()
	if c.budget != nil {
		st.InflightBytes = c.budget.inUse.Load()
		st.InflightBytesPeak = c.budget.peak.Load()
		st.InflightBytesLimit = c.budget.max
		st.BudgetWaits = c.budget.waits.Load()
		st.BudgetWaitSeconds = float64(c.budget.waitNanos.Load()) / 1e9
	}
	if c.reads != nil {
		st.ReadBufferWaits = c.reads.waits.Load()
	}
	return st
}

func (c *counters) snapshotCounters() Stats {
	return Stats{
		FilesOpen:             c.filesOpen.Load(),
		FilesPeak:             c.filesOpenPeak.Load(),
		FilesWaiting:          c.filesWaiting.Load(),
		FilesClosed:           c.filesClosed.Load(),
		FilesReopen:           c.filesReopened.Load(),
		LinesRead:             c.lines.Load(),
		BytesRead:             c.bytes.Load(),
		LinesTruncated:        c.truncatedLines.Load(),
		BytesSkipped:          c.skippedBytes.Load(),
		PartialLines:          c.partialLines.Load(),
		LinesEscaped:          c.escapedLines.Load(),
		LinesTranscoded:       c.transcodedLines.Load(),
		MultilineEntries:      c.mlEntries.Load(),
		MultilinePartial:      c.mlPartial.Load(),
		MultilineSplit:        c.mlSplit.Load(),
		MultilineFlushed:      c.mlFlushed.Load(),
		RotationsRename:       c.rotRename.Load(),
		RotationsDelete:       c.rotDelete.Load(),
		RotationsCopytruncate: c.rotCopytruncate.Load(),
		Truncations:           c.truncations.Load(),
		BytesRecovered:        c.bytesRecovered.Load(),
		CopiesUnverified:      c.copyUnverified.Load(),
		RotatedFilesFound:     c.rotatedFound.Load(),
		LateWrites:            c.lateWrites.Load(),
		InodeReuses:           c.inodeReuses.Load(),
		AppendErrors:          c.appendErrors.Load(),
		AppendWaitSeconds:     float64(c.appendWaitNanos.Load()) / 1e9,
		ReadErrors:            c.readErrors.Load(),
		WatchErrors:           c.watchErrors.Load(),
		PollingDirs:           c.pollingDirs.Load(),
		NotifyFallbacks:       c.notifyFallbacks.Load(),
		EventOverflows:        c.overflows.Load(),
		PositionsDropped:      c.positionsDropped.Load(),
		AcksOutOfOrder:        c.acksOutOfOrder.Load(),
		Scans:                 c.scans.Load(),
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
	d := func(name, help string, kind prometheus.ValueType, v func(*counters) float64, labels ...string) metricDef {
		constLabels := prometheus.Labels{"source": "file"}
		for i := 0; i+1 < len(labels); i += 2 {
			constLabels[labels[i]] = labels[i+1]
		}
		return metricDef{prometheus.NewDesc("logcapturer_ingest_"+name, help, nil, constLabels), kind, v}
	}
	u := func(a *atomic.Uint64) func(*counters) float64 {
		return func(*counters) float64 { return float64(a.Load()) }
	}
	g := func(a *atomic.Int64) func(*counters) float64 {
		return func(*counters) float64 { return float64(a.Load()) }
	}
	const rotHelp = "Rotations of followed files by kind: rename (left every matched path), delete (deleted while open), copytruncate (truncated, rotated copy found), truncate (truncated or rewritten in place, no copy)."
	return &collector{c: c, defs: []metricDef{
		d("lines_total", "Lines read and handed to the WAL (under a multiline route, as part of an entry).", prometheus.CounterValue, u(&c.lines)),
		d("bytes_total", "Bytes read from sources.", prometheus.CounterValue, u(&c.bytes)),
		d("lines_truncated_total", "Lines cut at the maximum line size.", prometheus.CounterValue, u(&c.truncatedLines)),
		d("truncated_bytes_skipped_total", "Bytes dropped from lines cut at the maximum line size.", prometheus.CounterValue, u(&c.skippedBytes)),
		d("partial_lines_total", "Lines emitted without their terminator (file gone).", prometheus.CounterValue, u(&c.partialLines)),
		d("lines_escaped_total", "Lines with invalid UTF-8, escaped or replaced (flagged escaped).", prometheus.CounterValue, u(&c.escapedLines)),
		d("lines_transcoded_total", "Lines transcoded from latin1.", prometheus.CounterValue, u(&c.transcodedLines)),
		d("multiline_entries_total", "Multi-line entries appended to the WAL (one record each; pieces of cut entries included).", prometheus.CounterValue, u(&c.mlEntries)),
		d("multiline_entries_partial_total", "Multi-line entries flagged partial (cut at a limit, flushed before their end, or begun mid-entry).", prometheus.CounterValue, u(&c.mlPartial)),
		d("multiline_entries_split_total", "Multi-line entry pieces cut because the entry reached max_lines or max_bytes.", prometheus.CounterValue, u(&c.mlSplit)),
		d("multiline_entries_flushed_total", "Multi-line entries emitted by the flush timeout (no line continued them in time).", prometheus.CounterValue, u(&c.mlFlushed)),
		d("files_open", "Files currently held open.", prometheus.GaugeValue, g(&c.filesOpen)),
		d("files_waiting", "Files waiting for a slot under max_open_files.", prometheus.GaugeValue, g(&c.filesWaiting)),
		d("files_closed_total", "Files closed while still followed (idle, or giving up a slot).", prometheus.CounterValue, u(&c.filesClosed)),
		d("files_reopened_total", "Closed files opened again because they changed.", prometheus.CounterValue, u(&c.filesReopened)),
		d("file_rotations_total", rotHelp, prometheus.CounterValue, u(&c.rotRename), "kind", "rename"),
		d("file_rotations_total", rotHelp, prometheus.CounterValue, u(&c.rotDelete), "kind", "delete"),
		d("file_rotations_total", rotHelp, prometheus.CounterValue, u(&c.rotCopytruncate), "kind", "copytruncate"),
		d("file_rotations_total", rotHelp, prometheus.CounterValue, u(&c.truncations), "kind", "truncate"),
		d("copytruncate_bytes_recovered_total", "Bytes read from rotated copies after a copytruncate.", prometheus.CounterValue, u(&c.bytesRecovered)),
		d("copytruncate_copies_unverified_total", "Rotated copies taken as already read on their head fingerprint alone.", prometheus.CounterValue, u(&c.copyUnverified)),
		d("rotated_files_found_total", "Rotated files found and read that were never seen at a matched path (rotated while stopped or between scans).", prometheus.CounterValue, u(&c.rotatedFound)),
		d("late_writes_total", "Closed rotated files reopened because they grew.", prometheus.CounterValue, u(&c.lateWrites)),
		d("file_inode_reuses_total", "Saved positions dropped because the inode now holds other content.", prometheus.CounterValue, u(&c.inodeReuses)),
		d("append_errors_total", "WAL appends that failed (the lines are read again).", prometheus.CounterValue, u(&c.appendErrors)),
		d("append_wait_seconds_total", "Time spent blocked in WAL appends (backpressure).", prometheus.CounterValue, func(c *counters) float64 { return float64(c.appendWaitNanos.Load()) / 1e9 }),
		d("read_errors_total", "File open, stat and read errors.", prometheus.CounterValue, u(&c.readErrors)),
		d("watch_errors_total", "File system notification errors (polling continues).", prometheus.CounterValue, u(&c.watchErrors)),
		d("polling_dirs", "Directories followed by polling only (no file system watch: disabled, or inotify limits).", prometheus.GaugeValue, g(&c.pollingDirs)),
		d("notify_fallbacks_total", "Times a file system watch could not be set up and polling took over.", prometheus.CounterValue, u(&c.notifyFallbacks)),
		d("event_overflows_total", "File system event queue overflows (each triggers a rescan).", prometheus.CounterValue, u(&c.overflows)),
		d("acks_out_of_order_total", "WAL acks that arrived out of append order (positions still advance in order).", prometheus.CounterValue, u(&c.acksOutOfOrder)),
		d("positions_dropped_total", "Saved positions dropped because their file is gone.", prometheus.CounterValue, u(&c.positionsDropped)),
		d("inflight_bytes", "Payload bytes of all files being built or appended to the WAL and not yet acknowledged (bounded by files_config.max_inflight_bytes).", prometheus.GaugeValue,
			func(c *counters) float64 { return float64(c.budget.inUse.Load()) }),
		d("inflight_bytes_limit", "files_config.max_inflight_bytes: the bound of inflight_bytes (one payload larger than it is let through alone).", prometheus.GaugeValue,
			func(c *counters) float64 { return float64(c.budget.max) }),
		d("inflight_budget_waits_total", "Times a file waited for room under files_config.max_inflight_bytes.", prometheus.CounterValue,
			func(c *counters) float64 { return float64(c.budget.waits.Load()) }),
		d("inflight_budget_wait_seconds_total", "Time files spent waiting for room under files_config.max_inflight_bytes.", prometheus.CounterValue,
			func(c *counters) float64 { return float64(c.budget.waitNanos.Load()) / 1e9 }),
		d("read_buffer_waits_total", "Times a file with data to read waited for one of the shared read buffers.", prometheus.CounterValue,
			func(c *counters) float64 { return float64(c.reads.waits.Load()) }),
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
