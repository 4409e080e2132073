package dlq

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	letters          *prometheus.CounterVec // sink, reason
	lines            *prometheus.CounterVec // sink, reason
	writeErrors      prometheus.Counter
	reprocLetters    *prometheus.CounterVec // sink
	reprocLines      *prometheus.CounterVec // sink
	replayedLines    *prometheus.CounterVec // sink
	reprocFailures   *prometheus.CounterVec // sink, reason
	requests         *prometheus.CounterVec // outcome
	expiredLetters   *prometheus.CounterVec // cause
	expiredLines     *prometheus.CounterVec // sink, reason, cause
	lostLines        *prometheus.CounterVec // cause
	repairs          *prometheus.CounterVec // kind
	heldBytes        prometheus.Gauge
	heldLetters      prometheus.Gauge
	heldLines        prometheus.Gauge
	oldestLetterSecs prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	cv := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	}
	g := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
	}
	m := &metrics{
		letters: cv("logcapturer_dlq_letters_total",
			"Letters dead-lettered (entries of one WAL range one sink rejected for one reason).", "sink", "reason"),
		lines: cv("logcapturer_dlq_lines_total", "Lines dead-lettered.", "sink", "reason"),
		writeErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "logcapturer_dlq_write_errors_total",
			Help: "Dead-letter hand-offs that failed to be stored (the shipper retries them)."}),
		reprocLetters: cv("logcapturer_dlq_reprocessed_letters_total", "Letters sent again and released.", "sink"),
		reprocLines:   cv("logcapturer_dlq_reprocessed_lines_total", "Lines of letters sent again.", "sink"),
		replayedLines: cv("logcapturer_dlq_replayed_lines_total", "Lines replayed from a WAL range.", "sink"),
		reprocFailures: cv("logcapturer_dlq_reprocess_failures_total",
			"Batches a reprocess or replay could not deliver, by error reason.", "sink", "reason"),
		requests: cv("logcapturer_dlq_reprocess_requests_total",
			"Reprocess requests by outcome (done, repeated, dry_run, failed).", "outcome"),
		expiredLetters: cv("logcapturer_dlq_expired_letters_total",
			"Pending letters expired by retention or max_bytes (their lines are lost).", "cause"),
		expiredLines: cv("logcapturer_dlq_expired_lines_total",
			"Lines lost because their letter expired.", "sink", "reason", "cause"),
		lostLines: cv("logcapturer_dlq_lost_lines_total",
			"Lines lost to a damaged DLQ store (letter file missing or undecodable at open).", "cause"),
		repairs: cv("logcapturer_dlq_repairs_total",
			"Inconsistencies between letter files and their index repaired at open, by kind.", "kind"),
		heldBytes:   g("logcapturer_dlq_bytes", "Bytes of letter files held."),
		heldLetters: g("logcapturer_dlq_pending_letters", "Letters held, waiting for reprocess or expiry."),
		heldLines:   g("logcapturer_dlq_pending_lines", "Lines held in pending letters."),
		oldestLetterSecs: g("logcapturer_dlq_oldest_letter_timestamp_seconds",
			"Creation time of the oldest pending letter (0 when none)."),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	for _, c := range []**prometheus.CounterVec{&m.letters, &m.lines, &m.reprocLetters, &m.reprocLines,
		&m.replayedLines, &m.reprocFailures, &m.requests, &m.expiredLetters, &m.expiredLines, &m.lostLines, &m.repairs} {
		if *c, err = register(reg, *c); err != nil {
			return nil, err
		}
	}
	if m.writeErrors, err = register(reg, m.writeErrors); err != nil {
		return nil, err
	}
	for _, gp := range []*prometheus.Gauge{&m.heldBytes, &m.heldLetters, &m.heldLines, &m.oldestLetterSecs} {
		if *gp, err = register(reg, *gp); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// register registers c, reusing a collector already registered under the
// same name (a Store reopened in the same process).
func register[T prometheus.Collector](reg prometheus.Registerer, c T) (T, error) {
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(T); ok {
			return existing, nil
		}
	}
	var zero T
	return zero, fmt.Errorf("dlq: register metrics: %w", err)
}
