package ship

import (
	"testing"
	"time"

	"github.com/logcapturer/log_capturer_go/wal/record"
)

func TestDedupKey(t *testing.T) {
	base := Entry{Source: "file:1:2:3", Offset: 100, Time: 5, Line: []byte("x")}
	tests := map[string]struct {
		a, b Entry
		same bool
	}{
		"identical":                 {a: base, b: base, same: true},
		"file: time does not count": {a: base, b: Entry{Source: base.Source, Offset: 100, Time: 6, Line: []byte("x")}, same: true},
		"file: offset counts":       {a: base, b: Entry{Source: base.Source, Offset: 101, Time: 5, Line: []byte("x")}},
		"file: source counts":       {a: base, b: Entry{Source: "file:1:2:4", Offset: 100, Time: 5, Line: []byte("x")}},
		"line counts":               {a: base, b: Entry{Source: base.Source, Offset: 100, Time: 5, Line: []byte("y")}},
		"docker: time counts": {a: Entry{Source: "docker:abc", Offset: 1, Time: 5, Line: []byte("x")},
			b: Entry{Source: "docker:abc", Offset: 1, Time: 6, Line: []byte("x")}},
		"docker: offset does not count": {a: Entry{Source: "docker:abc", Offset: 1, Time: 5, Line: []byte("x")},
			b: Entry{Source: "docker:abc", Offset: 2, Time: 5, Line: []byte("x")}, same: true},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			ka, kb := dedupKey(&tt.a), dedupKey(&tt.b)
			if ka == 0 || kb == 0 {
				t.Fatal("zero key for an entry with a source")
			}
			if (ka == kb) != tt.same {
				t.Fatalf("keys %x %x, same=%v", ka, kb, tt.same)
			}
		})
	}
	if k := dedupKey(&Entry{Line: []byte("x")}); k != 0 {
		t.Fatalf("entry without source has key %x", k)
	}
}

func TestDedupSetExpiry(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	tests := map[string]struct {
		window  time.Duration
		maxKeys int
		run     func(d *dedupSet) // inserts and advances
		present []uint64
		absent  []uint64
	}{
		"kept within the window": {window: 8 * time.Second, maxKeys: 100,
			run: func(d *dedupSet) {
				d.rotate(t0)
				d.insertLocked(1, 0)
				d.rotate(t0.Add(6 * time.Second))
			}, present: []uint64{1}},
		"expired after the window": {window: 8 * time.Second, maxKeys: 100,
			run: func(d *dedupSet) {
				d.rotate(t0)
				d.insertLocked(1, 0)
				d.rotate(t0.Add(8 * time.Second))
			}, absent: []uint64{1}},
		"re-recording renews a key": {window: 8 * time.Second, maxKeys: 100,
			run: func(d *dedupSet) {
				d.rotate(t0)
				d.insertLocked(1, 0)
				d.rotate(t0.Add(5 * time.Second))
				d.insertLocked(1, 0)
				d.rotate(t0.Add(10 * time.Second))
			}, present: []uint64{1}},
		"count cap drops the oldest generation first": {window: time.Hour, maxKeys: 4,
			run: func(d *dedupSet) {
				d.rotate(t0)
				d.insertLocked(1, 0)
				d.insertLocked(2, 0)
				d.rotate(t0.Add(8 * time.Minute)) // next generation
				d.insertLocked(3, 0)
				d.insertLocked(4, 0)
				d.insertLocked(5, 0) // over the cap: generation of 1 and 2 ends
			}, present: []uint64{3, 4, 5}, absent: []uint64{1, 2}},
		"aged load expires sooner": {window: 8 * time.Second, maxKeys: 100,
			run: func(d *dedupSet) {
				d.rotate(t0)
				d.insertLocked(1, 6) // recorded 6 generations ago
				d.insertLocked(2, 0)
				d.rotate(t0.Add(3 * time.Second))
			}, present: []uint64{2}, absent: []uint64{1}},
		"a long pause expires everything": {window: 8 * time.Second, maxKeys: 100,
			run: func(d *dedupSet) {
				d.rotate(t0)
				d.insertLocked(1, 0)
				d.rotate(t0.Add(time.Hour))
				d.insertLocked(2, 0)
			}, present: []uint64{2}, absent: []uint64{1}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			d := newDedupSet(tt.window, tt.maxKeys, t0)
			tt.run(d)
			for _, k := range tt.present {
				if !d.containsLocked(k) {
					t.Errorf("key %d missing", k)
				}
			}
			for _, k := range tt.absent {
				if d.containsLocked(k) {
					t.Errorf("key %d still present", k)
				}
			}
		})
	}
}

// TestDedupSetManyKeys grows the table, lets generations expire and wrap
// the uint8 generation counter many times: live keys are always found,
// expired ones never, and the table does not grow without bound.
func TestDedupSetManyKeys(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	d := newDedupSet(8*time.Second, 1_000_000, t0)
	now := t0
	next := uint64(1)
	for round := 0; round < 600; round++ {
		now = now.Add(time.Second) // one generation per round
		d.rotate(now)
		first := next
		for range 300 {
			d.insertLocked(next, 0)
			next++
		}
		// The keys of this round and of the last 7 rounds are live.
		if !d.containsLocked(first) || !d.containsLocked(next-1) {
			t.Fatalf("round %d: fresh keys missing", round)
		}
		if round >= 8 {
			old := first - 8*300
			if d.containsLocked(old) || d.containsLocked(old+299) {
				t.Fatalf("round %d: key of 8 rounds ago still live", round)
			}
			if !d.containsLocked(first - 7*300) {
				t.Fatalf("round %d: key of 7 rounds ago missing", round)
			}
		}
	}
	if d.live > 8*300 || len(d.slots) > 8192 {
		t.Fatalf("live %d keys, table of %d slots", d.live, len(d.slots))
	}
}

func TestDedupFilterAndRecord(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	d := newDedupSet(time.Minute, 1000, now)
	ls := record.NewLabelSet([]record.Label{{Name: "job", Value: "a"}})
	mk := func(lines ...string) *Batch {
		b := newBatch(0, 1)
		for i, l := range lines {
			r := record.Record{Source: "file:1:1:1", Labels: ls, Offset: uint64(i), Line: []byte(l)}
			b.add(ls.String(), &r, uint64(i+1))
		}
		return b
	}
	d.record(mk("a", "b"), now)
	b := mk("a", "b", "c")
	if n := d.filter(b, now); n != 2 {
		t.Fatalf("filtered %d, want 2", n)
	}
	if b.Lines != 1 || len(b.Streams) != 1 || string(b.Streams[0].Entries[0].Line) != "c" || len(b.idx) != 3 {
		t.Fatalf("after filter: lines %d streams %d idx %v", b.Lines, len(b.Streams), b.idx)
	}
	all := mk("a", "b")
	if n := d.filter(all, now); n != 2 || b.Lines == 0 || len(all.Streams) != 0 {
		t.Fatalf("filter of a fully known batch: %d, streams %d", n, len(all.Streams))
	}
	if got := d.takeUnsaved(); len(got) != 2 {
		t.Fatalf("unsaved %d keys, want 2", len(got))
	}
	d.putBack([]uint64{9})
	if got := d.takeUnsaved(); len(got) != 1 || got[0] != 9 {
		t.Fatalf("put back: %v", got)
	}
	// Keys loaded from the store count as acknowledged.
	d2 := newDedupSet(time.Minute, 1000, now)
	d2.load(now.Add(-10*time.Second), []uint64{dedupKey(&Entry{Source: "file:1:1:1", Offset: 0, Line: []byte("a")})}, now)
	d2.load(now.Add(-2*time.Minute), []uint64{dedupKey(&Entry{Source: "file:1:1:1", Offset: 1, Line: []byte("b")})}, now)
	b2 := mk("a", "b")
	if n := d2.filter(b2, now); n != 1 || string(b2.Streams[0].Entries[0].Line) != "b" {
		t.Fatalf("after load: filtered %d", n)
	}
}

func BenchmarkDedupInsertContains(b *testing.B) {
	d := newDedupSet(time.Hour, 1_000_000, time.Now())
	b.ReportAllocs()
	k := uint64(1)
	for b.Loop() {
		d.insertLocked(k, 0)
		_ = d.containsLocked(k ^ 0x5555)
		k++
	}
}
