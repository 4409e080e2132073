package e2e

import (
	"context"
	"encoding/json"
	"sync"
	"time"
)

// shipSample is the Loki sink's lines_shipped counter of the running agent
// at one moment. The counter restarts at 0 with each run.
type shipSample struct {
	asked   time.Time // request sent: a sample asked after a run started is of that run
	at      time.Time // answer received
	shipped uint64
}

// shipSampler polls /stats in the background so that, at a kill, the test
// knows how many lines the dying run acknowledged in the last moments: those
// are the lines whose shipper cursor may not have been committed yet.
type shipSampler struct {
	mu      sync.Mutex
	samples []shipSample
	done    chan struct{}
}

// startSampler polls a's API every interval until ctx ends. It only reads
// a's immutable fields (address, HTTP client), so it may run beside the test
// goroutine.
func startSampler(ctx context.Context, a *agent, interval time.Duration) *shipSampler {
	s := &shipSampler{done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			asked := time.Now()
			body, err := a.get("/stats")
			if err != nil {
				continue // between runs
			}
			var st statsDoc
			if json.Unmarshal(body, &st) != nil {
				continue
			}
			if k, ok := st.sink("loki"); ok {
				s.add(shipSample{asked: asked, at: time.Now(), shipped: k.LinesShipped})
			}
		}
	}()
	return s
}

func (s *shipSampler) add(x shipSample) {
	s.mu.Lock()
	s.samples = append(s.samples, x)
	s.mu.Unlock()
}

// shippedBefore returns the counter of the run that started at runStart as
// it was at or before t: the latest sample of that run no later than t, or 0
// (nothing shipped when the run began).
func (s *shipSampler) shippedBefore(runStart, t time.Time) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var v uint64
	for _, x := range s.samples {
		if x.asked.After(runStart) && !x.at.After(t) {
			v = x.shipped
		}
	}
	return v
}
