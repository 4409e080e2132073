package state

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	commits        prometheus.Counter
	commitErrors   prometheus.Counter
	commitDuration prometheus.Histogram
	rejected       prometheus.Counter
}

// newMetrics builds the metrics and registers them on reg (nil: not
// registered). A collector already registered under the same name (a Store
// reopened in the same process) is reused instead of failing.
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		commits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "logcapturer_state_commits_total",
			Help: "bbolt transactions that committed pending state changes.",
		}),
		commitErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "logcapturer_state_commit_errors_total",
			Help: "Failed state commits; their changes stay pending for the next try.",
		}),
		commitDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "logcapturer_state_commit_duration_seconds",
			Help:    "Duration of state commits, fsync included, failed ones too.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14), // 0.5ms .. ~4s
		}),
		rejected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "logcapturer_state_rejected_changes_total",
			Help: "Changes dropped because their key or Meta could never be stored (a caller bug).",
		}),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	if m.commits, err = register(reg, m.commits); err != nil {
		return nil, err
	}
	if m.commitErrors, err = register(reg, m.commitErrors); err != nil {
		return nil, err
	}
	if m.commitDuration, err = register(reg, m.commitDuration); err != nil {
		return nil, err
	}
	if m.rejected, err = register(reg, m.rejected); err != nil {
		return nil, err
	}
	return m, nil
}

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
	return zero, fmt.Errorf("state: register metrics: %w", err)
}
