package ship

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	linesShipped   prometheus.Counter
	bytesShipped   prometheus.Counter
	batches        prometheus.Counter
	retries        *prometheus.CounterVec
	deadLettered   *prometheus.CounterVec
	dlqErrors      prometheus.Counter
	dedupHits      prometheus.Counter
	circuit        prometheus.Gauge
	circuitOpens   prometheus.Counter
	requestSeconds *prometheus.HistogramVec
	lagSeconds     prometheus.Histogram
	inflight       prometheus.Gauge
	lag            prometheus.Gauge
	corrupt        prometheus.Counter

	recoveryProbes   *prometheus.CounterVec
	recoveredPresent prometheus.Counter
	markCommits      prometheus.Counter
	markErrors       prometheus.Counter
	markWaits        prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, sink string) (*metrics, error) {
	c := prometheus.Labels{"sink": sink}
	m := &metrics{
		linesShipped: prometheus.NewCounter(prometheus.CounterOpts{Name: "logcapturer_ship_lines_total",
			Help: "Lines acknowledged by the sink.", ConstLabels: c}),
		bytesShipped: prometheus.NewCounter(prometheus.CounterOpts{Name: "logcapturer_ship_line_bytes_total",
			Help: "Line bytes acknowledged by the sink.", ConstLabels: c}),
		batches: prometheus.NewCounter(prometheus.CounterOpts{Name: "logcapturer_ship_batches_total",
			Help: "Requests acknowledged by the sink, wholly or in part.", ConstLabels: c}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "logcapturer_ship_retries_total",
			Help: "Failed sends that will be retried, by reason (network, timeout, 429, 5xx).", ConstLabels: c}, []string{"reason"}),
		deadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "logcapturer_ship_dead_lettered_lines_total",
			Help: "Lines handed to the DLQ (or, without a DLQ, given up and logged), by reason: Loki's discard reasons, " +
				"partially_accepted, retry_exhausted, stream_limit, http_<code>.", ConstLabels: c}, []string{"reason"}),
		dlqErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "logcapturer_ship_dead_letter_errors_total",
			Help: "Hand-offs to the DLQ that failed and were retried.", ConstLabels: c}),
		dedupHits: prometheus.NewCounter(prometheus.CounterOpts{Name: "logcapturer_ship_dedup_hits_total",
			Help: "Lines not sent because the sink acknowledged them within the dedup window.", ConstLabels: c}),
		circuit: prometheus.NewGauge(prometheus.GaugeOpts{Name: "logcapturer_ship_circuit_state",
			Help: "Circuit breaker state: 0 closed, 1 half-open (probing), 2 open (not sending).", ConstLabels: c}),
		circuitOpens: prometheus.NewCounter(prometheus.CounterOpts{Name: "logcapturer_ship_circuit_opens_total",
			Help: "Times the circuit breaker opened.", ConstLabels: c}),
		requestSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "logcapturer_ship_request_duration_seconds",
			Help: "Duration of one request, by status class (2xx, 4xx, 5xx, network).", ConstLabels: c,
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16)}, []string{"class"}),
		lagSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "logcapturer_ship_batch_latency_seconds",
			Help: "Time from a batch's creation to its acknowledgement.", ConstLabels: c,
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 18)}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{Name: "logcapturer_ship_batches_in_flight",
			Help: "Batches sealed and not yet delivered.", ConstLabels: c}),
		lag: prometheus.NewGauge(prometheus.GaugeOpts{Name: "logcapturer_ship_lag_entries",
			Help: "WAL entries committed but not yet acknowledged by the sink.", ConstLabels: c}),
		corrupt: prometheus.NewCounter(prometheus.CounterOpts{Name: "logcapturer_ship_skipped_entries_total",
			Help: "WAL entries skipped because they were damaged or removed.", ConstLabels: c}),
		recoveryProbes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "logcapturer_ship_recovery_probes_total",
			Help: "Start-up probes of the lines a crash left in doubt, by result (ok, failed, nothing_to_probe, skipped).", ConstLabels: c}, []string{"result"}),
		recoveredPresent: prometheus.NewCounter(prometheus.CounterOpts{Name: "logcapturer_ship_recovered_present_total",
			Help: "Lines in doubt after a crash that the probe found stored by the receiver: not sent again.", ConstLabels: c}),
		markCommits: prometheus.NewCounter(prometheus.CounterOpts{Name: "logcapturer_ship_dispatch_mark_commits_total",
			Help: "Commits of the dispatch mark (one per lease of WAL entries sent).", ConstLabels: c}),
		markErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "logcapturer_ship_dispatch_mark_errors_total",
			Help: "Failed commits of the dispatch mark (the sends went out anyway; a crash may then cost duplicates).", ConstLabels: c}),
		markWaits: prometheus.NewCounter(prometheus.CounterOpts{Name: "logcapturer_ship_dispatch_mark_waits_total",
			Help: "Sends that waited for a dispatch mark commit.", ConstLabels: c}),
	}
	if reg != nil {
		for _, col := range []prometheus.Collector{m.linesShipped, m.bytesShipped, m.batches, m.retries, m.deadLettered,
			m.dlqErrors, m.dedupHits, m.circuit, m.circuitOpens, m.requestSeconds, m.lagSeconds, m.inflight, m.lag, m.corrupt,
			m.recoveryProbes, m.recoveredPresent, m.markCommits, m.markErrors, m.markWaits} {
			if err := reg.Register(col); err != nil {
				return nil, fmt.Errorf("ship: register metrics: %w", err)
			}
		}
	}
	return m, nil
}
