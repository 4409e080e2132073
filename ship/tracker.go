package ship

import (
	"sort"
	"sync"
)

// tracker knows which WAL entries are done with: every batch holding a line
// of the entry was acknowledged or dead-lettered. Its next index (the
// cursor) is the lowest entry not done, so batches may complete in any
// order while the cursor never passes a line that is still being sent.
//
// The reader registers each entry before handing out any batch that holds
// its lines (begin), counts each batch that gets some (hold) and then lets
// go (end); batches release their entries when they complete (release).
type tracker struct {
	mu   sync.Mutex
	ents []span // ascending, non-overlapping; ents[head:] are live
	head int
	next uint64
}

// span is a run of WAL indices and the number of holds on it. Only spans of
// entries without lines (skipped, damaged, empty) cover more than one index.
type span struct {
	first, last uint64
	pending     int32
}

func newTracker(next uint64) *tracker {
	if next == 0 {
		next = 1
	}
	return &tracker{next: next}
}

// Next returns the cursor: the first index not done with.
func (t *tracker) Next() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.next
}

// begin registers entry idx with one hold (the reader's). Indices must be
// registered in increasing order.
func (t *tracker) begin(idx uint64) {
	t.mu.Lock()
	t.ents = append(t.ents, span{first: idx, last: idx, pending: 1})
	t.mu.Unlock()
}

// skip registers first..last as done (no lines to deliver) and reports the
// new cursor and whether it moved.
func (t *tracker) skip(first, last uint64) (uint64, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.ents = append(t.ents, span{first: first, last: last})
	return t.advance()
}

// hold adds a hold on the most recently begun entry idx.
func (t *tracker) hold(idx uint64) {
	t.mu.Lock()
	if n := len(t.ents); n > t.head && t.ents[n-1].first == idx {
		t.ents[n-1].pending++
	}
	t.mu.Unlock()
}

// release drops one hold on each of idxs and reports the new cursor and
// whether it moved.
func (t *tracker) release(idxs ...uint64) (uint64, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	live := t.ents[t.head:]
	for _, idx := range idxs {
		i := sort.Search(len(live), func(i int) bool { return live[i].last >= idx })
		if i < len(live) && live[i].first <= idx && live[i].pending > 0 {
			live[i].pending--
		}
	}
	return t.advance()
}

func (t *tracker) advance() (uint64, bool) {
	moved := false
	for t.head < len(t.ents) && t.ents[t.head].pending == 0 {
		if t.ents[t.head].last+1 > t.next {
			t.next = t.ents[t.head].last + 1
			moved = true
		}
		t.head++
	}
	if t.head == len(t.ents) {
		t.ents, t.head = t.ents[:0], 0
	} else if t.head > 1024 && t.head > len(t.ents)/2 {
		n := copy(t.ents, t.ents[t.head:])
		t.ents, t.head = t.ents[:n], 0
	}
	return t.next, moved
}

// pending returns the number of live entries (for tests and status).
func (t *tracker) pending() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.ents) - t.head
}
