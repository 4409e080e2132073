package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/golang/snappy"
	"google.golang.org/protobuf/encoding/protowire"
)

// errMalformed is returned for a push body that is not a PushRequest.
var errMalformed = errors.New("blackhole: malformed push request")

// Field numbers of Loki's PushRequest (PROTOCOLS.md A2), the only ones the
// blackhole reads.
const (
	fieldStreams protowire.Number = 1 // PushRequest.streams
	fieldEntries protowire.Number = 2 // StreamAdapter.entries
	fieldLine    protowire.Number = 2 // EntryAdapter.line
)

// maxPushBytes bounds a request body, compressed and decoded.
const maxPushBytes = 64 << 20

// walkPush calls fn for the line of every entry of a protobuf PushRequest,
// skipping every other field. Lines alias b.
func walkPush(b []byte, fn func(line []byte)) error {
	return walkField(b, fieldStreams, func(stream []byte) error {
		return walkField(stream, fieldEntries, func(entry []byte) error {
			return walkField(entry, fieldLine, func(line []byte) error {
				fn(line)
				return nil
			})
		})
	})
}

// walkField calls fn with the bytes of every length-delimited field num of
// the message b.
func walkField(b []byte, num protowire.Number, fn func([]byte) error) error {
	for len(b) > 0 {
		n, typ, l := protowire.ConsumeTag(b)
		if l < 0 {
			return errMalformed
		}
		b = b[l:]
		if n == num && typ == protowire.BytesType {
			v, l := protowire.ConsumeBytes(b)
			if l < 0 {
				return errMalformed
			}
			if err := fn(v); err != nil {
				return err
			}
			b = b[l:]
			continue
		}
		l = protowire.ConsumeFieldValue(n, typ, b)
		if l < 0 {
			return errMalformed
		}
		b = b[l:]
	}
	return nil
}

// tally counts what a receiver got, by sequence number.
type tally struct {
	mu        sync.Mutex
	expect    uint64
	seen      []uint64 // bitset over [0, expect)
	unique    uint64
	dups      uint64
	foreign   uint64 // lines that are not ours or out of range
	entries   uint64
	requests  uint64
	latencies []int64 // by seq: arrival minus write time of the first copy, ns; nil when not recorded
	complete  chan struct{}
	lastNew   time.Time
}

func newTally(expect uint64, recordLatency bool) *tally {
	t := &tally{expect: expect, seen: make([]uint64, (expect+63)/64), complete: make(chan struct{})}
	if recordLatency {
		t.latencies = make([]int64, expect)
	}
	if expect == 0 {
		close(t.complete)
	}
	return t
}

// TallySnapshot is a copy of the counters.
type TallySnapshot struct {
	Expect, Unique, Dups, Foreign, Entries, Requests uint64
	LastNew                                          time.Time
}

// Missing is how many expected lines never arrived.
func (s TallySnapshot) Missing() uint64 { return s.Expect - s.Unique }

func (t *tally) snapshot() TallySnapshot {
	t.mu.Lock()
	defer t.mu.Unlock()
	return TallySnapshot{Expect: t.expect, Unique: t.unique, Dups: t.dups, Foreign: t.foreign,
		Entries: t.entries, Requests: t.requests, LastNew: t.lastNew}
}

// Latencies returns the recorded latencies indexed by seq (the caller owns
// the slice); lines that did not arrive hold 0.
func (t *tally) Latencies() []int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]int64(nil), t.latencies...)
}

// item is one parsed line of a request, merged under the lock.
type item struct {
	seq uint64
	ts  int64
	ok  bool
}

func (t *tally) add(arrival time.Time, items []item) {
	at := arrival.UnixNano()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.requests++
	before := t.unique
	for _, it := range items {
		t.entries++
		if !it.ok || it.seq >= t.expect {
			t.foreign++
			continue
		}
		w, bit := it.seq/64, uint64(1)<<(it.seq%64)
		if t.seen[w]&bit != 0 {
			t.dups++
			continue
		}
		t.seen[w] |= bit
		t.unique++
		if t.latencies != nil {
			t.latencies[it.seq] = at - it.ts
		}
	}
	if t.unique > before {
		t.lastNew = arrival
		if t.unique == t.expect {
			close(t.complete)
		}
	}
}

// blackhole is an in-process Loki push receiver that decodes and counts
// every entry and throws it away, so the agent's own cost shows when the
// real receiver is the bottleneck.
type blackhole struct {
	srv   *http.Server
	ln    net.Listener
	mu    sync.Mutex
	tally *tally
	bufs  sync.Pool
	done  chan struct{}
}

func newBlackhole() (*blackhole, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("blackhole: listen: %w", err)
	}
	b := &blackhole{ln: ln, tally: newTally(0, false), done: make(chan struct{})}
	b.bufs.New = func() any { return &pushBufs{} }
	mux := http.NewServeMux()
	mux.HandleFunc("POST /loki/api/v1/push", b.push)
	b.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		defer close(b.done)
		_ = b.srv.Serve(ln)
	}()
	return b, nil
}

// Reset starts a new count of expect lines.
func (b *blackhole) Reset(expect uint64, recordLatency bool) *tally {
	t := newTally(expect, recordLatency)
	b.mu.Lock()
	b.tally = t
	b.mu.Unlock()
	return t
}

// PushURL is the URL to configure as the agent's Loki URL.
func (b *blackhole) PushURL() string { return "http://" + b.ln.Addr().String() + "/loki/api/v1/push" }

// Close stops the server, waiting at most a few seconds for requests.
func (b *blackhole) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b.srv.Shutdown(ctx); err != nil {
		_ = b.srv.Close()
	}
	<-b.done
}

type pushBufs struct {
	body, plain []byte
	items       []item
}

func (b *blackhole) push(w http.ResponseWriter, r *http.Request) {
	bufs := b.bufs.Get().(*pushBufs)
	defer b.bufs.Put(bufs)
	body, err := readAll(http.MaxBytesReader(w, r.Body, maxPushBytes), bufs.body[:0])
	bufs.body = body
	if err != nil {
		http.Error(w, "read: "+err.Error(), http.StatusBadRequest)
		return
	}
	arrival := time.Now()
	n, err := snappy.DecodedLen(body)
	if err != nil || n > maxPushBytes {
		http.Error(w, "snappy: bad length", http.StatusBadRequest)
		return
	}
	if cap(bufs.plain) < n {
		bufs.plain = make([]byte, n)
	}
	plain, err := snappy.Decode(bufs.plain[:cap(bufs.plain)], body)
	if err != nil {
		http.Error(w, "snappy: "+err.Error(), http.StatusBadRequest)
		return
	}
	items := bufs.items[:0]
	err = walkPush(plain, func(line []byte) {
		seq, ts, ok := parseLine(line)
		items = append(items, item{seq: seq, ts: ts, ok: ok})
	})
	bufs.items = items
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	b.mu.Lock()
	t := b.tally
	b.mu.Unlock()
	t.add(arrival, items)
	w.WriteHeader(http.StatusNoContent)
}

// readAll reads r into buf, growing it as needed.
func readAll(r io.Reader, buf []byte) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err != nil {
			if errors.Is(err, io.EOF) {
				return buf, nil
			}
			return buf, err
		}
	}
}
