package api

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// RegisterProcessMetrics adds the Go runtime collector (goroutines, GC,
// heap) and the process collector (CPU seconds, RSS, open and max FDs) to
// reg, so the agent's own footprint beside OpenSIPS/MySQL is observable.
// It fails, rather than panics, when either is already registered, and then
// registers neither.
func RegisterProcessMetrics(reg prometheus.Registerer) error {
	goc := collectors.NewGoCollector()
	if err := reg.Register(goc); err != nil {
		return fmt.Errorf("api: register go collector: %w", err)
	}
	if err := reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
		// All or nothing, so a retry after fixing the cause does not trip
		// over half of a previous attempt.
		reg.Unregister(goc)
		return fmt.Errorf("api: register process collector: %w", err)
	}
	return nil
}
