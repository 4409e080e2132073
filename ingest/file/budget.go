package file

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// byteBudget bounds the payload bytes of every file together: those being
// built and those appended to the WAL and not yet acknowledged
// (Config.MaxInflightBytes). Grants are first come, first served: a file
// that waits is never overtaken, so a fast file cannot starve a slow one. A
// request larger than the whole budget is granted alone, once nothing else
// is held, so a payload bigger than the budget still goes through.
//
// Whoever waits must hold nothing of the budget itself (only payloads in
// flight, which acks release on their own): a holder that waited for more
// could deadlock with the others.
type byteBudget struct {
	max int64

	mu      sync.Mutex
	used    int64
	waiters []*budgetWaiter // FIFO

	inUse     atomic.Int64 // == used, readable without mu
	peak      atomic.Int64
	waits     atomic.Uint64
	waitNanos atomic.Uint64
}

type budgetWaiter struct {
	n       int64
	ready   chan struct{}
	granted bool
}

func newByteBudget(max int64) *byteBudget { return &byteBudget{max: max} }

// fitsLocked reports whether n can be granted now, ignoring the queue.
func (b *byteBudget) fitsLocked(n int64) bool {
	return b.used+n <= b.max || b.used == 0
}

func (b *byteBudget) takeLocked(n int64) {
	b.used += n
	b.inUse.Store(b.used)
	if b.used > b.peak.Load() {
		b.peak.Store(b.used)
	}
}

// tryAcquire takes n bytes if they fit now and nobody waits.
func (b *byteBudget) tryAcquire(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.waiters) > 0 || b.used+n > b.max {
		return false
	}
	b.takeLocked(n)
	return true
}

// acquire takes n bytes, waiting in line until they fit or ctx ends.
func (b *byteBudget) acquire(ctx context.Context, n int64) error {
	b.mu.Lock()
	if len(b.waiters) == 0 && b.fitsLocked(n) {
		b.takeLocked(n)
		b.mu.Unlock()
		return nil
	}
	w := &budgetWaiter{n: n, ready: make(chan struct{})}
	b.waiters = append(b.waiters, w)
	b.mu.Unlock()
	b.waits.Add(1)
	start := time.Now()
	defer func() { b.waitNanos.Add(uint64(time.Since(start))) }()
	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
	}
	b.mu.Lock()
	if w.granted {
		// Granted as ctx ended: give it back.
		b.used -= n
		b.inUse.Store(b.used)
	} else {
		for i, x := range b.waiters {
			if x == w {
				b.waiters = append(b.waiters[:i], b.waiters[i+1:]...)
				break
			}
		}
	}
	// The head may have been this waiter, holding up smaller requests.
	b.grantLocked()
	b.mu.Unlock()
	return ctx.Err()
}

// force takes n bytes whether they fit or not.
func (b *byteBudget) force(n int64) {
	b.mu.Lock()
	b.takeLocked(n)
	b.mu.Unlock()
}

// release gives n bytes back and wakes the waiters they make room for.
func (b *byteBudget) release(n int64) {
	if n <= 0 {
		return
	}
	b.mu.Lock()
	b.used = max(b.used-n, 0) // never below 0, even after a bookkeeping slip
	b.inUse.Store(b.used)
	b.grantLocked()
	b.mu.Unlock()
}

// grantLocked grants waiters in order while the head fits.
func (b *byteBudget) grantLocked() {
	for len(b.waiters) > 0 && b.fitsLocked(b.waiters[0].n) {
		w := b.waiters[0]
		b.waiters[0] = nil
		b.waiters = b.waiters[1:]
		b.takeLocked(w.n)
		w.granted = true
		close(w.ready)
	}
	if len(b.waiters) == 0 {
		b.waiters = nil
	}
}

// readSlots lends out the source's read buffers: a file reads only while it
// holds one, so read buffers cost Config.ReadBufferBytes times the slots,
// whatever the number of open files. Slots are handed out first come, first
// served (a channel's waiting receivers are served in order).
type readSlots struct {
	size    int
	free    chan *[]byte
	waiting atomic.Int64
	waits   atomic.Uint64
}

func newReadSlots(n, size int) *readSlots {
	r := &readSlots{size: size, free: make(chan *[]byte, n)}
	for range n {
		r.free <- nil // allocated on first use
	}
	return r
}

// tryGet returns a buffer if one is free now.
func (r *readSlots) tryGet() (*[]byte, bool) {
	select {
	case bp := <-r.free:
		return r.alloc(bp), true
	default:
		return nil, false
	}
}

// get waits for a buffer, or ctx.
func (r *readSlots) get(ctx context.Context) (*[]byte, error) {
	if bp, ok := r.tryGet(); ok {
		return bp, nil
	}
	r.waits.Add(1)
	r.waiting.Add(1)
	defer r.waiting.Add(-1)
	select {
	case bp := <-r.free:
		return r.alloc(bp), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (r *readSlots) alloc(bp *[]byte) *[]byte {
	if bp == nil {
		b := make([]byte, r.size)
		bp = &b
	}
	return bp
}

func (r *readSlots) put(bp *[]byte) { r.free <- bp }

// contended reports whether a file waits for a read buffer.
func (r *readSlots) contended() bool { return r.waiting.Load() > 0 }

// payloadPool recycles payload buffers by size class (powers of two from
// minPayloadClass), so that a small payload never pins a buffer sized for
// the largest: a buffer's capacity is less than twice what it was taken for.
type payloadPool struct {
	classes []sync.Pool
}

const minPayloadClass = 12 // 4 KiB

// newPayloadPool serves payloads up to maxBytes: the largest class holds
// them.
func newPayloadPool(maxBytes int) *payloadPool {
	top := 0
	for 1<<(minPayloadClass+top) < maxBytes {
		top++
	}
	return &payloadPool{classes: make([]sync.Pool, top+1)}
}

// classOf is the smallest class whose buffers hold n bytes.
func (p *payloadPool) classOf(n int) int {
	c := 0
	for (1<<(minPayloadClass+c)) < n && c < len(p.classes)-1 {
		c++
	}
	return c
}

// get returns an empty buffer with room for n bytes (more for the largest
// class: the estimate may be a little short; append grows it).
func (p *payloadPool) get(n int) *[]byte {
	c := p.classOf(n)
	if v := p.classes[c].Get(); v != nil {
		bp := v.(*[]byte)
		*bp = (*bp)[:0]
		return bp
	}
	b := make([]byte, 0, max(n, 1<<(minPayloadClass+c)))
	return &b
}

// put recycles bp in the largest class its capacity fills.
func (p *payloadPool) put(bp *[]byte) {
	cp := cap(*bp)
	if cp < 1<<minPayloadClass {
		return
	}
	c := 0
	for c+1 < len(p.classes) && 1<<(minPayloadClass+c+1) <= cp {
		c++
	}
	p.classes[c].Put(bp)
}

// readSlotsFor is how many files read at once: enough to keep two cores and
// a disk busy, few enough that read buffers and payloads being built stay a
// fraction of the budget (half of it in payloads of MaxEntryBytes), from 2
// to 8.
func readSlotsFor(cfg Config) int {
	return min(max(cfg.MaxInflightBytes/(2*cfg.MaxEntryBytes), 2), 8)
}
