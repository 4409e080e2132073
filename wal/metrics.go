package wal

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the log's Prometheus instruments.
type metrics struct {
	entries       prometheus.Counter
	bytes         prometheus.Counter
	fsyncs        prometheus.Counter
	fsyncSeconds  prometheus.Histogram
	batchEntries  prometheus.Histogram
	segments      prometheus.Gauge
	diskBytes     prometheus.Gauge
	lastIndex     prometheus.Gauge
	committed     prometheus.Gauge
	blocked       prometheus.Gauge
	blockedSecs   prometheus.Counter
	repairs       prometheus.Counter
	repairedBytes prometheus.Counter
	writeErrors   prometheus.Counter
	removedSegs   prometheus.Counter
	corruptReads  prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		entries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "logcapturer_wal_entries_appended_total", Help: "WAL entries committed (fsynced)."}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "logcapturer_wal_bytes_appended_total", Help: "Bytes of WAL entries committed."}),
		fsyncs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "logcapturer_wal_fsyncs_total", Help: "Group-commit fsyncs."}),
		fsyncSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "logcapturer_wal_fsync_duration_seconds", Help: "Duration of one group-commit fsync.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)}),
		batchEntries: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "logcapturer_wal_group_commit_entries", Help: "Entries covered by one fsync.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 12)}),
		segments: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "logcapturer_wal_segments", Help: "Segment files on disk."}),
		diskBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "logcapturer_wal_disk_bytes", Help: "Bytes of segment files on disk."}),
		lastIndex: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "logcapturer_wal_last_index", Help: "Index of the last entry written."}),
		committed: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "logcapturer_wal_committed_index", Help: "Index of the last fsynced entry."}),
		blocked: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "logcapturer_wal_backpressure", Help: "1 while appends wait for disk budget or for recovery."}),
		blockedSecs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "logcapturer_wal_backpressure_seconds_total", Help: "Time appends spent waiting for disk budget or recovery."}),
		repairs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "logcapturer_wal_tail_repairs_total", Help: "Torn or corrupt tails cut at open."}),
		repairedBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "logcapturer_wal_tail_repaired_bytes_total", Help: "Bytes moved aside by tail repairs."}),
		writeErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "logcapturer_wal_write_errors_total", Help: "Write or fsync errors (each makes the log reopen)."}),
		removedSegs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "logcapturer_wal_segments_removed_total", Help: "Segments removed after delivery and retention."}),
		corruptReads: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "logcapturer_wal_corrupt_reads_total", Help: "Entries that failed their checksum when read."}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.entries, m.bytes, m.fsyncs, m.fsyncSeconds,
			m.batchEntries, m.segments, m.diskBytes, m.lastIndex, m.committed, m.blocked,
			m.blockedSecs, m.repairs, m.repairedBytes, m.writeErrors, m.removedSegs, m.corruptReads} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("wal: register metrics: %w", err)
			}
		}
	}
	return m, nil
}
