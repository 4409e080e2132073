package ship

import (
	"encoding/binary"
	"strings"
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"
)

// Dedup at shipping (DESIGN.md contract 8).
//
// Where: a shard worker drops, before the first send of a batch, every entry
// whose key the sink acknowledged within the window. Keys are recorded when
// a batch is acknowledged, never when it is sent, so a key in the set means
// "the receiver has it".
//
// What it removes: lines sent again after a crash although the receiver had
// acknowledged them (batches of one shard acknowledged beyond another
// shard's slower batch, which the cursor could not pass yet), and lines a
// source captured twice (a Docker resume whose `since` is inclusive, a file
// re-read at the same offsets).
//
// What it cannot remove on its own: the lines of a request that was in
// flight at the crash (or timed out) and that the receiver stored without
// our seeing its answer. Their keys were never recorded, since nothing
// acknowledged them; recording keys at send time instead would turn a lost
// request into lost lines. Nor lines acknowledged after the last checkpoint
// of the keys (Config.Dedup.FlushInterval) before a crash. The recovery
// probe (probe.go) finds those in the receiver at start and records their
// keys here.
//
// Replays through the DLQ must not go through this filter: a replay of a
// delivered range means "send it again".

// DedupStore persists the recently acknowledged keys (the state store's
// dedup bucket). Saves are batched by the shipper: one call per
// FlushInterval, never one per line.
type DedupStore interface {
	// LoadDedup calls fn with every batch of keys of sink saved at or after
	// since, oldest first.
	LoadDedup(sink string, since time.Time, fn func(at time.Time, keys []uint64)) error
	// SaveDedup stores keys as saved at at and forgets the batches of sink
	// saved before expire.
	SaveDedup(sink string, at time.Time, keys []uint64, expire time.Time) error
}

// dedupKey identifies a line for dedup: a file line by its source (which
// encodes device, inode and generation), end offset and content, a
// container line ("docker:" sources) by its source, timestamp and content.
// A line without a source has no identity and key 0: it is never dropped.
func dedupKey(e *Entry) uint64 {
	if e.Source == "" {
		return 0
	}
	var d xxhash.Digest
	d.Reset()
	_, _ = d.WriteString(e.Source)
	var b [9]byte
	if strings.HasPrefix(e.Source, "docker:") {
		b[0] = 't'
		binary.LittleEndian.PutUint64(b[1:], uint64(e.Time))
	} else {
		b[0] = 'o'
		binary.LittleEndian.PutUint64(b[1:], e.Offset)
	}
	_, _ = d.Write(b[:])
	_, _ = d.Write(e.Line)
	if k := d.Sum64(); k != 0 {
		return k
	}
	return 1
}

// dedupGens is how many generations the window is cut into: a key expires
// between window·(1-1/gens) and window after it was last recorded.
const dedupGens = 8

// dedupSet is a compact set of 64-bit keys with expiry by time and by
// count: an open-addressing table (linear probing, at most 3/4 full) of
// one word per slot, holding the top 56 bits of the key and, in the low
// byte, the generation that last recorded it — one cache line touched per
// probe. A generation lasts window/8; a key older than 8 generations is
// stale and its slot reusable. When more than maxKeys are live,
// generations end early, so the oldest keys go first. 11 to 22 bytes per
// live key. Two keys whose mixed values agree in the top 56 bits collide:
// with a million keys, a false hit has a chance of about 1 in 10^11 per
// lookup.
type dedupSet struct {
	window  time.Duration
	maxKeys int

	mu       sync.Mutex
	slots    []uint64 // tag | generation; 0 = empty
	used     int      // non-empty slots, live or stale
	live     int
	counts   [dedupGens]int // live keys by generation (gen % dedupGens)
	cur      uint8
	curStart time.Time
	advances int // since the last rebuild; uint8 generations wrap
	unsaved  []uint64
}

const genMask = 0xff

// tagOf mixes key (a bijection, so distinct keys stay distinct, and close
// ones spread) and keeps the top 56 bits, never zero.
func tagOf(key uint64) uint64 {
	if t := mix(key) &^ genMask; t != 0 {
		return t
	}
	return 1 << 8
}

// home is the first slot to probe for tag.
func home(tag uint64, mask int) int { return int(tag>>8) & mask }

func newDedupSet(window time.Duration, maxKeys int, now time.Time) *dedupSet {
	d := &dedupSet{window: window, maxKeys: maxKeys, curStart: now}
	d.slots = make([]uint64, 1024)
	return d
}

func (d *dedupSet) slot() time.Duration { return max(d.window/dedupGens, time.Nanosecond) }

func (d *dedupSet) isLive(s uint64) bool { return d.cur-uint8(s) < dedupGens }

// rotate ends the generations whose time is over.
func (d *dedupSet) rotate(now time.Time) {
	for n := 0; now.Sub(d.curStart) >= d.slot() && n <= dedupGens; n++ {
		d.advance(d.curStart.Add(d.slot()))
	}
	if now.Sub(d.curStart) >= d.slot() {
		d.curStart = now // a long pause: everything has expired
	}
}

func (d *dedupSet) advance(start time.Time) {
	d.cur++
	i := int(d.cur % dedupGens)
	d.live -= d.counts[i]
	d.counts[i] = 0
	d.curStart = start
	d.advances++
	if d.advances >= 128 {
		// Generations are uint8: drop stale slots before they could look
		// live again after wrapping.
		d.rebuild()
	}
}

// containsLocked reports whether key was recorded within the window.
func (d *dedupSet) containsLocked(key uint64) bool {
	tag := tagOf(key)
	mask := len(d.slots) - 1
	for i := home(tag, mask); d.slots[i] != 0; i = (i + 1) & mask {
		if s := d.slots[i]; s&^genMask == tag {
			return d.isLive(s)
		}
	}
	return false
}

// insertLocked records key as seen age generations ago (0: now).
func (d *dedupSet) insertLocked(key uint64, age uint8) {
	if age >= dedupGens {
		return
	}
	for n := 0; d.live >= d.maxKeys && n < dedupGens; n++ {
		d.advance(d.curStart)
	}
	tag := tagOf(key)
	gen := d.cur - age
	mask := len(d.slots) - 1
	free := -1
	i := home(tag, mask)
	for ; d.slots[i] != 0; i = (i + 1) & mask {
		s := d.slots[i]
		if s&^genMask == tag {
			if d.isLive(s) {
				if old := uint8(s); d.cur-gen < d.cur-old { // newer than what it has
					d.counts[old%dedupGens]--
					d.slots[i] = tag | uint64(gen)
					d.counts[gen%dedupGens]++
				}
				return
			}
			free = i
			break
		}
		if free < 0 && !d.isLive(s) {
			free = i
		}
	}
	if free < 0 {
		free = i
		d.used++
	}
	d.slots[free] = tag | uint64(gen)
	d.counts[gen%dedupGens]++
	d.live++
	if d.used*4 > len(d.slots)*3 {
		d.rebuild()
	}
}

// rebuild drops stale slots and sizes the table for the live keys.
func (d *dedupSet) rebuild() {
	d.advances = 0
	n := 1024
	for n < d.live*2 {
		n *= 2
	}
	old := d.slots
	d.slots = make([]uint64, n)
	d.used = 0
	mask := n - 1
	for _, s := range old {
		if s == 0 || !d.isLive(s) {
			continue
		}
		i := home(s&^genMask, mask)
		for d.slots[i] != 0 {
			i = (i + 1) & mask
		}
		d.slots[i] = s
		d.used++
	}
}

// mix is the murmur3 finalizer: a bijection that spreads nearby keys.
func mix(k uint64) uint64 {
	k ^= k >> 33
	k *= 0xff51afd7ed558ccd
	k ^= k >> 33
	return k
}

// filter removes from b the entries acknowledged within the window and
// returns how many it removed.
func (d *dedupSet) filter(b *Batch, now time.Time) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.rotate(now)
	removed := 0
	for _, st := range b.Streams {
		kept := st.Entries[:0]
		for _, e := range st.Entries {
			k := dedupKey(&e)
			e.dkey = k // record needs it again on acknowledgement
			if k != 0 && d.containsLocked(k) {
				removed++
				b.Lines--
				b.Bytes -= len(e.Line)
				continue
			}
			kept = append(kept, e)
		}
		clear(st.Entries[len(kept):])
		st.Entries = kept
	}
	if removed > 0 {
		b.compact()
	}
	return removed
}

// record remembers the keys of an acknowledged batch and queues them for
// the next checkpoint.
func (d *dedupSet) record(b *Batch, now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.rotate(now)
	for _, st := range b.Streams {
		for i := range st.Entries {
			k := st.Entries[i].dkey
			if k == 0 {
				k = dedupKey(&st.Entries[i])
			}
			if k != 0 {
				d.insertLocked(k, 0)
				d.unsaved = append(d.unsaved, k)
			}
		}
	}
	if over := len(d.unsaved) - d.maxKeys; over > 0 {
		// Checkpoints have been failing for a while: keep the newest.
		d.unsaved = append(d.unsaved[:0], d.unsaved[over:]...)
	}
}

// contains reports whether key was acknowledged within the window.
func (d *dedupSet) contains(key uint64, now time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.rotate(now)
	return d.containsLocked(key)
}

// recordKeys remembers keys the receiver is known to store (the recovery
// probe found them) and queues them for the next checkpoint.
func (d *dedupSet) recordKeys(keys []uint64, now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.rotate(now)
	for _, k := range keys {
		if k != 0 {
			d.insertLocked(k, 0)
			d.unsaved = append(d.unsaved, k)
		}
	}
	if over := len(d.unsaved) - d.maxKeys; over > 0 {
		d.unsaved = append(d.unsaved[:0], d.unsaved[over:]...)
	}
}

// load inserts keys saved at at (from the store at start-up).
func (d *dedupSet) load(at time.Time, keys []uint64, now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.rotate(now)
	age := now.Sub(at)
	if age < 0 {
		age = 0
	}
	if age >= d.window {
		return
	}
	g := uint8(age / d.slot())
	for _, k := range keys {
		if k != 0 {
			d.insertLocked(k, g)
		}
	}
}

// takeUnsaved returns the keys recorded since the last call.
func (d *dedupSet) takeUnsaved() []uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	k := d.unsaved
	d.unsaved = nil
	return k
}

// putBack returns keys whose save failed, ahead of newer ones.
func (d *dedupSet) putBack(keys []uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.unsaved = append(keys, d.unsaved...)
	if over := len(d.unsaved) - d.maxKeys; over > 0 {
		d.unsaved = append(d.unsaved[:0], d.unsaved[over:]...)
	}
}

// size returns the number of live keys.
func (d *dedupSet) size() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.live
}
