package main

import (
	"fmt"
	"time"

	"github.com/logcapturer/log_capturer_go/api"
	"github.com/logcapturer/log_capturer_go/ship"
)

// The views adapt the agent's components to the api package's interfaces.

type healthView struct{ a *agent }

func (v healthView) Health() api.Health {
	comps := map[string]api.ComponentHealth{}
	if bp, why := v.a.log.Backpressure(); bp {
		comps["wal"] = api.ComponentHealth{Status: api.StatusDegraded, Message: why}
	} else {
		comps["wal"] = api.ComponentHealth{Status: api.StatusOK}
	}
	for _, sh := range v.a.shippers {
		st := sh.Status()
		h := api.ComponentHealth{Status: api.StatusOK}
		switch {
		case st.Circuit != "" && st.Circuit != ship.CircuitClosed.String():
			h = api.ComponentHealth{Status: api.StatusDegraded,
				Message: fmt.Sprintf("circuit %s after %d consecutive send errors, lag %d entries: %s", st.Circuit, st.ConsecutiveErrors, st.LagEntries, st.LastError)}
		case st.ConsecutiveErrors > 0:
			h = api.ComponentHealth{Status: api.StatusDegraded,
				Message: fmt.Sprintf("%d consecutive send errors, lag %d entries: %s", st.ConsecutiveErrors, st.LagEntries, st.LastError)}
		}
		comps["sink_"+st.Sink] = h
	}
	return api.Health{Status: api.Aggregate(comps), Components: comps}
}

type statsView struct{ a *agent }

type walStatsView struct {
	CommittedIndex uint64            `json:"committed_index"`
	FirstIndex     uint64            `json:"first_index"`
	DiskBytes      int64             `json:"disk_bytes"`
	Backpressure   bool              `json:"backpressure"`
	Reason         string            `json:"backpressure_reason,omitempty"`
	Cursors        map[string]uint64 `json:"cursors"`
}

func (v statsView) Stats() any {
	first, _ := v.a.log.FirstIndex()
	bp, why := v.a.log.Backpressure()
	out := map[string]any{
		"uptime_seconds": time.Since(v.a.started).Seconds(),
		"version":        version,
		"wal": walStatsView{CommittedIndex: v.a.log.CommittedIndex(), FirstIndex: first, DiskBytes: v.a.log.DiskBytes(),
			Backpressure: bp, Reason: why, Cursors: v.a.log.Cursors()},
	}
	var sinks []any
	for _, sh := range v.a.shippers {
		sinks = append(sinks, sh.Status())
	}
	out["sinks"] = sinks
	if v.a.source != nil {
		out["files"] = v.a.source.Stats()
	}
	return out
}

type configView struct{ a *agent }

func (v configView) RedactedConfig() any { return v.a.cfg.Redacted() }

type positionsView struct{ a *agent }

func (v positionsView) Positions() any {
	if v.a.source == nil {
		return map[string]any{"files": []any{}}
	}
	return map[string]any{"files": v.a.source.Positions()}
}
