package api

import "net/http"

// Health statuses, from best to worst.
const (
	StatusOK       = "ok"
	StatusDegraded = "degraded"
	StatusDown     = "down"
)

// Health is what GET /health returns. Status is recomputed by the server as
// the worst of the reporter's own Status (if set) and every component's.
type Health struct {
	Status     string                     `json:"status"`
	Components map[string]ComponentHealth `json:"components"`
}

// ComponentHealth is the health of one component (a source, a sink, the WAL).
type ComponentHealth struct {
	Status  string `json:"status"`
	Message string `json:"message,omitempty"`
}

// rank orders statuses. An unknown status counts as degraded: it is a bug in
// a reporter, which should be visible, but it must not make a container
// HEALTHCHECK restart a working agent.
func rank(status string) int {
	switch status {
	case StatusOK:
		return 0
	case StatusDown:
		return 2
	default:
		return 1
	}
}

// Aggregate returns the overall status of a set of components: down if any
// is down, degraded if any is degraded (or has an unknown status), else ok.
// No components means ok: the process is alive and serving.
func Aggregate(components map[string]ComponentHealth) string {
	worst := StatusOK
	for _, c := range components {
		worst = worse(worst, c.Status)
	}
	return worst
}

func worse(a, b string) string {
	ra, rb := rank(a), rank(b)
	if rb > ra {
		ra = rb
	}
	switch ra {
	case 0:
		return StatusOK
	case 1:
		return StatusDegraded
	default:
		return StatusDown
	}
}

// normalize computes the overall status. The reporter's Status, when set,
// can only make the result worse, never hide a down component.
func (h Health) normalize() Health {
	status := Aggregate(h.Components)
	if h.Status != "" {
		status = worse(status, h.Status)
	}
	out := Health{Status: status, Components: h.Components}
	if out.Components == nil {
		out.Components = map[string]ComponentHealth{}
	}
	return out
}

// httpStatus maps an overall status to the /health response code.
//
// Degraded answers 200 on purpose: degraded means the agent is applying
// backpressure (WAL at its disk budget, a sink down with data safely queued).
// Restarting it then, as a container HEALTHCHECK or a liveness probe would on
// a non-2xx, loses the in-memory state and fixes nothing. Only down, where the
// agent cannot do its job at all, answers 503.
func httpStatus(status string) int {
	if status == StatusDown {
		return http.StatusServiceUnavailable
	}
	return http.StatusOK
}
