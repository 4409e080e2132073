package ship

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/rs/zerolog"
)

// The dispatch mark bounds what a crash can leave in doubt. Before a batch
// holding a WAL index above the durable mark is sent, the mark is raised to
// that index plus a lease and the commit is waited for; so after a crash
// only the entries in (cursor, mark] can have reached the receiver, and
// the recovery probe (probe.go) looks up those and no others.
//
// The lease keeps the commit off the hot path: one commit per Lease WAL
// entries, started in the background once a send comes within half a
// lease of the mark, so that in steady state no send waits for it. A send
// waits only when it outruns the mark (at start-up, or after a burst of
// more than half a lease within one commit).
//
// A failed commit never holds a send back: the send goes out, the failure
// is logged and counted, and the mark on disk stays lower than what was
// sent. After a crash the probe then covers too little, and the entries
// above the mark are sent again: duplicates are possible, loss is not.

// MarkStore persists the dispatch mark (the state store's cursors bucket,
// under MarkName).
type MarkStore interface {
	// Cursor returns the stored value; ok is false when none was stored.
	Cursor(name string) (idx uint64, ok bool, err error)
	// CommitCursor stores idx and returns once it is durable.
	CommitCursor(ctx context.Context, name string, idx uint64) error
}

// MarkName is the name under which a sink's dispatch mark is stored.
func MarkName(sink string) string { return CursorName(sink) + "/dispatched" }

// DefaultMarkLease is how many WAL entries the dispatch mark runs ahead of
// the highest entry sent.
const DefaultMarkLease = 256

// dispatchMark keeps the durable dispatch mark ahead of the sends. cover
// is called by the shards; run, the only committer, by one goroutine.
type dispatchMark struct {
	store  MarkStore
	name   string
	lease  uint64
	logger zerolog.Logger
	m      *metrics

	durable atomic.Uint64 // the mark known to be on disk
	sent    atomic.Uint64 // the highest index a send of this run covered

	mu    sync.Mutex
	want  uint64        // the highest mark asked for
	round chan struct{} // closed when the commit under way ends
	err   error         // outcome of the last commit
	kick  chan struct{}
}

func newDispatchMark(store MarkStore, name string, lease uint64, logger zerolog.Logger, m *metrics) *dispatchMark {
	if lease == 0 {
		lease = DefaultMarkLease
	}
	return &dispatchMark{store: store, name: name, lease: lease, logger: logger, m: m,
		round: make(chan struct{}), kick: make(chan struct{}, 1)}
}

// cover returns once the durable mark is at least idx, raising it if
// needed; ctx bounds the wait. An error (ctx, a failed commit) means the
// mark does not cover idx: the caller sends anyway.
func (d *dispatchMark) cover(ctx context.Context, idx uint64) error {
	for s := d.sent.Load(); idx > s && !d.sent.CompareAndSwap(s, idx); s = d.sent.Load() {
	}
	dur := d.durable.Load()
	if idx+d.lease/2 <= dur {
		return nil
	}
	waited := false
	for {
		// durable, want and round change together under mu: a round
		// taken here while durable < idx will close after a commit that
		// saw this want.
		d.mu.Lock()
		if dur = d.durable.Load(); idx+d.lease/2 <= dur {
			d.mu.Unlock()
			return nil
		}
		d.want = max(d.want, idx+d.lease)
		ch := d.round
		d.mu.Unlock()
		d.poke()
		if idx <= dur {
			return nil // raised ahead, in the background
		}
		if !waited {
			waited = true
			d.m.markWaits.Inc()
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		d.mu.Lock()
		covered, err := d.durable.Load() >= idx, d.err
		d.mu.Unlock()
		switch {
		case covered:
			return nil
		case err != nil:
			return err
		}
		// That commit was for a lower mark; ask again.
	}
}

func (d *dispatchMark) poke() {
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

// run commits the mark whenever a higher one is asked for, until ctx
// ends. It must outlive every cover call.
func (d *dispatchMark) run(ctx context.Context) {
	for {
		select {
		case <-d.kick:
		case <-ctx.Done():
			return
		}
		for {
			d.mu.Lock()
			target := d.want
			d.mu.Unlock()
			if target <= d.durable.Load() {
				break
			}
			err := d.store.CommitCursor(ctx, d.name, target)
			d.mu.Lock()
			if err == nil {
				d.durable.Store(max(d.durable.Load(), target))
				d.m.markCommits.Inc()
			} else if ctx.Err() == nil {
				d.m.markErrors.Inc()
			}
			d.err = err
			close(d.round)
			d.round = make(chan struct{})
			d.mu.Unlock()
			if err != nil && ctx.Err() != nil {
				return // stopping: no send waits any more
			}
			if err != nil {
				d.logger.Warn().Err(err).Uint64("mark", target).
					Msg("ship: dispatch mark not committed; sending anyway (a crash now may cost duplicates)")
				break // the next send that needs it asks again
			}
		}
	}
}

// settle stores the mark a clean stop leaves: floor, what this run sent
// and what the last run may have left in doubt. Below the durable mark it
// spares the next start a probe of entries never sent; above it (commits
// failed) it covers what was sent after all.
func (d *dispatchMark) settle(ctx context.Context, floor uint64) {
	if floor == d.durable.Load() {
		return
	}
	if err := d.store.CommitCursor(ctx, d.name, floor); err != nil {
		d.logger.Debug().Err(err).Msg("ship: dispatch mark not lowered at stop")
		return
	}
	d.durable.Store(floor)
}
