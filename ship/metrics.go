package ship

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	linesShipped prometheus.Counter
	bytesShipped prometheus.Counter
	batches      prometheus.Counter
	retries      *prometheus.CounterVec
	rejected     *prometheus.CounterVec
	sendSeconds  *prometheus.HistogramVec
	lagSeconds   prometheus.Histogram
	inflight     prometheus.Gauge
	lag          prometheus.Gauge
	corrupt      prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, sink string) (*metrics, error) {
	c := prometheus.Labels{"sink": sink}
	m := &metrics{
		linesShipped: prometheus.NewCounter(prometheus.CounterOpts{Name: "logcapturer_ship_lines_total",
			Help: "Lines acknowledged by the sink.", ConstLabels: c}),
		bytesShipped: prometheus.NewCounter(prometheus.CounterOpts{Name: "logcapturer_ship_line_bytes_total",
			Help: "Line bytes acknowledged by the sink.", ConstLabels: c}),
		batches: prometheus.NewCounter(prometheus.CounterOpts{Name: "logcapturer_ship_batches_total",
			Help: "Batches acknowledged by the sink.", ConstLabels: c}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "logcapturer_ship_retries_total",
			Help: "Failed sends that will be retried, by reason.", ConstLabels: c}, []string{"reason"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "logcapturer_ship_rejected_lines_total",
			Help: "Lines the sink rejected for good, by reason.", ConstLabels: c}, []string{"reason"}),
		sendSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "logcapturer_ship_request_duration_seconds",
			Help: "Duration of one send, by outcome.", ConstLabels: c,
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16)}, []string{"outcome"}),
		lagSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "logcapturer_ship_batch_latency_seconds",
			Help: "Time from a batch's creation to its acknowledgement.", ConstLabels: c,
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 18)}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{Name: "logcapturer_ship_batches_in_flight",
			Help: "Batches being sent.", ConstLabels: c}),
		lag: prometheus.NewGauge(prometheus.GaugeOpts{Name: "logcapturer_ship_lag_entries",
			Help: "WAL entries committed but not yet acknowledged by the sink.", ConstLabels: c}),
		corrupt: prometheus.NewCounter(prometheus.CounterOpts{Name: "logcapturer_ship_skipped_entries_total",
			Help: "WAL entries skipped because they were damaged or removed.", ConstLabels: c}),
	}
	if reg != nil {
		for _, col := range []prometheus.Collector{m.linesShipped, m.bytesShipped, m.batches, m.retries, m.rejected,
			m.sendSeconds, m.lagSeconds, m.inflight, m.lag, m.corrupt} {
			if err := reg.Register(col); err != nil {
				return nil, fmt.Errorf("ship: register metrics: %w", err)
			}
		}
	}
	return m, nil
}
