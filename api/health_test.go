package api

import (
	"encoding/json"
	"net/http"
	"testing"
)

func TestAggregate(t *testing.T) {
	tests := map[string]struct {
		components map[string]ComponentHealth
		want       string
	}{
		"none":              {nil, StatusOK},
		"all ok":            {map[string]ComponentHealth{"wal": {Status: "ok"}, "loki": {Status: "ok"}}, StatusOK},
		"one degraded":      {map[string]ComponentHealth{"wal": {Status: "ok"}, "loki": {Status: "degraded"}}, StatusDegraded},
		"one down":          {map[string]ComponentHealth{"wal": {Status: "down"}, "loki": {Status: "ok"}}, StatusDown},
		"down beats degr.":  {map[string]ComponentHealth{"wal": {Status: "degraded"}, "loki": {Status: "down"}}, StatusDown},
		"unknown is degr.":  {map[string]ComponentHealth{"wal": {Status: "sick"}}, StatusDegraded},
		"empty is degraded": {map[string]ComponentHealth{"wal": {}}, StatusDegraded},
		"case matters":      {map[string]ComponentHealth{"wal": {Status: "DOWN"}}, StatusDegraded},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := Aggregate(tc.components); got != tc.want {
				t.Fatalf("Aggregate = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestHealthEndpoint(t *testing.T) {
	tests := map[string]struct {
		health     Health
		wantStatus string
		wantCode   int
	}{
		"ok":                          {Health{Components: map[string]ComponentHealth{"wal": {Status: "ok"}}}, StatusOK, http.StatusOK},
		"degraded still answers 200":  {Health{Components: map[string]ComponentHealth{"wal": {Status: "degraded", Message: "disk budget reached"}}}, StatusDegraded, http.StatusOK},
		"down answers 503":            {Health{Components: map[string]ComponentHealth{"loki": {Status: "down"}}}, StatusDown, http.StatusServiceUnavailable},
		"reporter status worsens":     {Health{Status: "down", Components: map[string]ComponentHealth{"wal": {Status: "ok"}}}, StatusDown, http.StatusServiceUnavailable},
		"reporter cannot hide down":   {Health{Status: "ok", Components: map[string]ComponentHealth{"wal": {Status: "down"}}}, StatusDown, http.StatusServiceUnavailable},
		"reporter unknown status":     {Health{Status: "meh"}, StatusDegraded, http.StatusOK},
		"no components, empty status": {Health{}, StatusOK, http.StatusOK},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			rs := start(t, testConfig(), Deps{Health: staticHealth(tc.health)}, nil)
			r := do(t, "GET", "http://"+rs.srv.Addr()+"/health", nil, "")
			if r.status != tc.wantCode {
				t.Fatalf("code = %d, want %d (body %q)", r.status, tc.wantCode, r.body)
			}
			var got Health
			if err := json.Unmarshal([]byte(r.body), &got); err != nil {
				t.Fatalf("decode %q: %v", r.body, err)
			}
			if got.Status != tc.wantStatus {
				t.Fatalf("status = %q, want %q", got.Status, tc.wantStatus)
			}
			if len(got.Components) != len(tc.health.Components) {
				t.Fatalf("components = %v, want %v", got.Components, tc.health.Components)
			}
			for k, c := range tc.health.Components {
				if got.Components[k] != c {
					t.Fatalf("component %s = %+v, want %+v", k, got.Components[k], c)
				}
			}
		})
	}
}
