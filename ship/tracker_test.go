package ship

import (
	"math/rand/v2"
	"testing"
)

func TestTracker(t *testing.T) {
	type step struct {
		op         string // begin, hold, release, skip
		idx        []uint64
		wantNext   uint64
		wantMoved  bool
		checkMoved bool
	}
	tests := map[string]struct {
		start uint64
		steps []step
	}{
		"reader hold alone keeps the cursor": {start: 1, steps: []step{
			{op: "begin", idx: []uint64{1}, wantNext: 1},
			{op: "release", idx: []uint64{1}, wantNext: 2, wantMoved: true, checkMoved: true},
		}},
		"out of order completion": {start: 5, steps: []step{
			{op: "begin", idx: []uint64{5}, wantNext: 5},
			{op: "hold", idx: []uint64{5}, wantNext: 5},
			{op: "release", idx: []uint64{5}, wantNext: 5}, // the reader lets go; a batch still holds 5
			{op: "begin", idx: []uint64{6}, wantNext: 5},
			{op: "hold", idx: []uint64{6}, wantNext: 5},
			{op: "release", idx: []uint64{6}, wantNext: 5},
			{op: "release", idx: []uint64{6}, wantNext: 5, wantMoved: false, checkMoved: true}, // 6 done, 5 not
			{op: "release", idx: []uint64{5}, wantNext: 7, wantMoved: true, checkMoved: true},
		}},
		"skipped ranges pass once reached": {start: 1, steps: []step{
			{op: "begin", idx: []uint64{1}, wantNext: 1},
			{op: "skip", idx: []uint64{2, 9}, wantNext: 1},
			{op: "release", idx: []uint64{1}, wantNext: 10, wantMoved: true, checkMoved: true},
		}},
		"release of an unknown index is ignored": {start: 3, steps: []step{
			{op: "begin", idx: []uint64{3}, wantNext: 3},
			{op: "release", idx: []uint64{1, 2, 40}, wantNext: 3},
			{op: "release", idx: []uint64{3}, wantNext: 4},
		}},
		"zero start means one": {start: 0, steps: []step{
			{op: "skip", idx: []uint64{1, 1}, wantNext: 2},
		}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			tr := newTracker(tt.start)
			for i, s := range tt.steps {
				var next uint64
				var moved bool
				switch s.op {
				case "begin":
					tr.begin(s.idx[0])
					next = tr.Next()
				case "hold":
					tr.hold(s.idx[0])
					next = tr.Next()
				case "release":
					next, moved = tr.release(s.idx...)
				case "skip":
					next, moved = tr.skip(s.idx[0], s.idx[1])
				}
				if next != s.wantNext || (s.checkMoved && moved != s.wantMoved) {
					t.Fatalf("step %d %s %v: next %d moved %v, want %d %v", i, s.op, s.idx, next, moved, s.wantNext, s.wantMoved)
				}
			}
		})
	}
}

// TestTrackerRandomOrder completes many entries, each held by up to three
// batches, in random order: the cursor only ever moves forward, never past
// an entry with a hold, and ends past the last.
func TestTrackerRandomOrder(t *testing.T) {
	rnd := rand.New(rand.NewPCG(7, 8))
	tr := newTracker(1)
	const n = 5000
	holds := map[uint64]int{}
	var pending []uint64
	for idx := uint64(1); idx <= n; idx++ {
		tr.begin(idx)
		k := rnd.IntN(3)
		for range k {
			tr.hold(idx)
			pending = append(pending, idx)
		}
		holds[idx] = k
		tr.release(idx)
	}
	rnd.Shuffle(len(pending), func(i, j int) { pending[i], pending[j] = pending[j], pending[i] })
	last := tr.Next()
	for _, idx := range pending {
		holds[idx]--
		next, _ := tr.release(idx)
		if next < last {
			t.Fatalf("cursor moved back from %d to %d", last, next)
		}
		for i := last; i < next; i++ {
			if holds[i] > 0 {
				t.Fatalf("cursor %d passed entry %d with %d holds", next, i, holds[i])
			}
		}
		last = next
	}
	if last != n+1 || tr.pending() != 0 {
		t.Fatalf("end: next %d pending %d", last, tr.pending())
	}
}
