package wal

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"
	tidwall "github.com/tidwall/wal"
)

// TestSegmentBytesGolden pins the bytes on disk (FORMAT.md): uvarint length
// of the framed entry, version 1, CRC32C little-endian, payload.
func TestSegmentBytesGolden(t *testing.T) {
	dir := t.TempDir()
	h := start(t, dir, smallCfg())
	h.appendSync([]byte("hello"))
	h.appendSync([]byte{})
	h.stop()
	got, err := os.ReadFile(filepath.Join(dir, "00000000000000000001"))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := hex.DecodeString("0a" + "01" + "4cbb719a" + hex.EncodeToString([]byte("hello")) +
		"05" + "01" + "00000000")
	if !bytes.Equal(got, want) {
		t.Fatalf("segment bytes\n got %x\nwant %x", got, want)
	}
}

// sizedPayload is n bytes that name their index, so a mix-up shows.
func sizedPayload(i, n int) []byte {
	p := make([]byte, n)
	tag := fmt.Sprintf("<%d:%d>", i, n)
	for j := range p {
		p[j] = tag[j%len(tag)]
	}
	return p
}

// mixedSizes covers the write buffer (small), direct writes (>= 32 KiB) and
// reads larger than the reader's chunk (64 KiB), and an empty payload.
var mixedSizes = []int{0, 1, 100, 5000, 31 << 10, 32 << 10, 40 << 10, 63 << 10, 64 << 10, 65 << 10, 100 << 10, 7, 200 << 10}

// TestMixedSizesFollowAndReopen appends payloads of every size class while a
// reader follows, across many segment changes, then reopens and reads from
// every index: each payload comes back whole and in place.
func TestMixedSizesFollowAndReopen(t *testing.T) {
	dir := t.TempDir()
	cfg := smallCfg()
	cfg.SegmentSize = 256 << 10
	cfg.MaxEntryBytes = 256 << 10
	h := start(t, dir, cfg)
	const n = 120
	size := func(i int) int { return mixedSizes[i%len(mixedSizes)] }

	var wg sync.WaitGroup
	followErr := make(chan error, 1)
	go func() {
		r := h.l.NewReader(1)
		defer r.Close()
		for i := 0; i < n; i++ {
			idx, p, err := r.Read(context.Background())
			if err != nil {
				followErr <- err
				return
			}
			if idx != uint64(i+1) || !bytes.Equal(p, sizedPayload(i, size(i))) {
				followErr <- fmt.Errorf("follow: entry %d: index %d, %d bytes", i+1, idx, len(p))
				return
			}
		}
		followErr <- nil
	}()
	for i := 0; i < n; i++ {
		wg.Add(1)
		if err := h.l.Append(context.Background(), sizedPayload(i, size(i)), func(_ uint64, err error) {
			if err != nil {
				t.Errorf("append: %v", err)
			}
			wg.Done()
		}); err != nil {
			t.Fatal(err)
		}
		if i%10 == 0 {
			wg.Wait() // let some commits land between appends
		}
	}
	wg.Wait()
	if err := <-followErr; err != nil {
		t.Fatal(err)
	}
	h.stop()
	segs, _ := listSegments(dir)
	if len(segs) < 5 {
		t.Fatalf("want many segments, got %d", len(segs))
	}

	h = start(t, dir, cfg)
	if got := h.l.CommittedIndex(); got != n {
		t.Fatalf("committed after reopen %d", got)
	}
	// Every start index: segment starts, middles and the tail.
	for from := 1; from <= n; from += 7 {
		r := h.l.NewReader(uint64(from))
		for i := from - 1; i < min(from+9, n); i++ {
			idx, p, ok, err := r.TryRead()
			if err != nil || !ok || idx != uint64(i+1) || !bytes.Equal(p, sizedPayload(i, size(i))) {
				t.Fatalf("from %d: entry %d: idx %d ok %v len %d err %v", from, i+1, idx, ok, len(p), err)
			}
		}
		r.Close()
	}
	// Seek backwards and forwards on one reader.
	r := h.l.NewReader(50)
	for _, at := range []uint64{50, 3, 119, 60, 61, 1, 120} {
		r.Seek(at)
		idx, p, ok, err := r.TryRead()
		if err != nil || !ok || idx != at || !bytes.Equal(p, sizedPayload(int(at-1), size(int(at-1)))) {
			t.Fatalf("seek %d: idx %d ok %v err %v", at, idx, ok, err)
		}
	}
	if _, _, ok, err := r.TryRead(); ok || err != nil {
		t.Fatalf("read past the end: ok %v err %v", ok, err)
	}
	h.stop()
	if rep, err := Verify(dir); err != nil || !rep.OK() || rep.Entries != n {
		t.Fatalf("verify: %+v %v", rep, err)
	}
}

// TestTidwallCompat: a directory written by tidwall/wal (the library that
// wrote the segments before) opens and reads, and what the log appends
// after it reads back through tidwall: the bytes on disk did not change.
func TestTidwallCompat(t *testing.T) {
	dir := t.TempDir()
	tw, err := tidwall.Open(dir, &tidwall.Options{NoSync: true, SegmentSize: 64 << 10, LogFormat: tidwall.Binary})
	if err != nil {
		t.Fatal(err)
	}
	const old = 500
	for i := 1; i <= old; i++ {
		if err := tw.Write(uint64(i), frame(nil, payloadN(i-1))); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	h := start(t, dir, smallCfg())
	if got := h.l.CommittedIndex(); got != old {
		t.Fatalf("committed %d, want %d", got, old)
	}
	for i := old; i < old+300; i++ {
		if idx := h.appendSync(payloadN(i)); idx != uint64(i+1) {
			t.Fatalf("index %d, want %d", idx, i+1)
		}
	}
	r := h.l.NewReader(1)
	for i := 0; i < old+300; i++ {
		_, p, err := r.Read(context.Background())
		if err != nil || !bytes.Equal(p, payloadN(i)) {
			t.Fatalf("read %d: %q %v", i+1, p, err)
		}
	}
	h.stop()

	tw, err = tidwall.Open(dir, &tidwall.Options{NoSync: true, SegmentSize: 64 << 10, LogFormat: tidwall.Binary})
	if err != nil {
		t.Fatalf("tidwall opens what the log wrote: %v", err)
	}
	defer tw.Close()
	last, _ := tw.LastIndex()
	if last != old+300 {
		t.Fatalf("tidwall sees last index %d", last)
	}
	for i := uint64(1); i <= last; i++ {
		data, err := tw.Read(i)
		if err != nil {
			t.Fatal(err)
		}
		p, err := unframe(data)
		if err != nil || !bytes.Equal(p, payloadN(int(i-1))) {
			t.Fatalf("tidwall read %d: %q %v", i, p, err)
		}
	}
}

// writeSegment writes entries first.. as one segment file named name.
func writeSegment(t *testing.T, dir, name string, first, count int) {
	t.Helper()
	var b []byte
	for i := first; i < first+count; i++ {
		f := frame(nil, payloadN(i-1))
		b = appendUvarint(b, uint64(len(f)))
		b = append(b, f...)
	}
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o640); err != nil {
		t.Fatal(err)
	}
}

func appendUvarint(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

// TestTransientTruncationFiles: tidwall left NNNN.START or NNNN.END behind
// when it crashed while dropping the front or the back of the log; open
// finishes the job as tidwall would have.
func TestTransientTruncationFiles(t *testing.T) {
	t.Run("start", func(t *testing.T) {
		dir := t.TempDir()
		writeSegment(t, dir, segmentName(1), 1, 4)
		writeSegment(t, dir, segmentName(5), 5, 4)
		writeSegment(t, dir, segmentName(7)+".START", 7, 2)
		h := start(t, dir, smallCfg())
		first, _ := h.l.FirstIndex()
		if first != 7 || h.l.CommittedIndex() != 8 {
			t.Fatalf("first %d committed %d, want 7 and 8", first, h.l.CommittedIndex())
		}
		r := h.l.NewReader(7)
		for i := 7; i <= 8; i++ {
			_, p, err := r.Read(context.Background())
			if err != nil || !bytes.Equal(p, payloadN(i-1)) {
				t.Fatalf("read %d: %q %v", i, p, err)
			}
		}
		if idx := h.appendSync([]byte("next")); idx != 9 {
			t.Fatalf("next index %d", idx)
		}
		segs, _ := listSegments(dir)
		if len(segs) != 1 || segs[0].First != 7 {
			t.Fatalf("segments %+v", segs)
		}
	})
	t.Run("end", func(t *testing.T) {
		dir := t.TempDir()
		writeSegment(t, dir, segmentName(1), 1, 4)
		writeSegment(t, dir, segmentName(5), 5, 4)
		writeSegment(t, dir, segmentName(9), 9, 2)
		writeSegment(t, dir, segmentName(5)+".END", 5, 2)
		h := start(t, dir, smallCfg())
		if got := h.l.CommittedIndex(); got != 6 {
			t.Fatalf("committed %d, want 6", got)
		}
		if idx := h.appendSync(payloadN(6)); idx != 7 {
			t.Fatalf("next index %d", idx)
		}
		r := h.l.NewReader(1)
		for i := 1; i <= 7; i++ {
			_, p, err := r.Read(context.Background())
			if err != nil || !bytes.Equal(p, payloadN(i-1)) {
				t.Fatalf("read %d: %q %v", i, p, err)
			}
		}
	})
	t.Run("both", func(t *testing.T) {
		dir := t.TempDir()
		writeSegment(t, dir, segmentName(1), 1, 4)
		writeSegment(t, dir, segmentName(3)+".START", 3, 2)
		writeSegment(t, dir, segmentName(1)+".END", 1, 2)
		if _, err := Open(dir, smallCfg(), zerolog.Nop(), nil); err == nil {
			t.Fatal("open accepted both a START and an END file")
		}
	})
}

// TestTruncatedSealedSegment: a sealed segment that lost its end (not a
// crash artefact: damage) is reported with the resume point of the next
// segment, and reading goes on there.
func TestTruncatedSealedSegment(t *testing.T) {
	dir := t.TempDir()
	h := start(t, dir, smallCfg())
	h.appendMany(3000)
	h.stop()
	segs, _ := listSegments(dir)
	if len(segs) < 3 {
		t.Fatalf("need 3 segments, have %d", len(segs))
	}
	mid := segs[1]
	if err := os.Truncate(mid.Path, mid.Size-10); err != nil {
		t.Fatal(err)
	}
	h = start(t, dir, smallCfg())
	last := segs[2].First - 1 // the entry that lost its end
	r := h.l.NewReader(last - 1)
	if _, _, err := r.Read(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, _, err := r.Read(context.Background())
	var ce *CorruptionErr
	if !errors.As(err, &ce) || ce.Index != last || ce.Next != segs[2].First || ce.Segment != mid.Name {
		t.Fatalf("read torn entry: %v", err)
	}
	r.Seek(ce.Next)
	idx, p, err := r.Read(context.Background())
	if err != nil || idx != segs[2].First || !bytes.Equal(p, payloadN(int(idx-1))) {
		t.Fatalf("resume: %d %v", idx, err)
	}
	if got := testutil.ToFloat64(h.l.m.corruptReads); got != 1 {
		t.Fatalf("corrupt reads %v", got)
	}
}

// TestWriteErrorRecovers: the tail file refuses writes (a read-only
// handle). The append fails (not silently), the log reopens itself and
// later appends succeed with the next index; what is on disk verifies.
func TestWriteErrorRecovers(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(dir, smallCfg(), zerolog.Nop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ro, err := os.Open(l.tail.seg.path)
	if err != nil {
		t.Fatal(err)
	}
	l.tail.f.Close()
	l.tail.f = ro // every write now fails with EBADF
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- l.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-runErr; err != nil {
			t.Errorf("run: %v", err)
		}
	}()

	done := make(chan error, 1)
	if err := l.Append(context.Background(), []byte("lost?"), func(_ uint64, err error) { done <- err }); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err == nil {
		t.Fatal("append to an unwritable file reported success")
	}
	if got := testutil.ToFloat64(l.m.writeErrors); got != 1 {
		t.Fatalf("write errors counted %v", got)
	}
	// Append blocks while the log recovers, then goes through.
	type res struct {
		idx uint64
		err error
	}
	ok := make(chan res, 1)
	if err := l.Append(context.Background(), []byte("after"), func(i uint64, err error) { ok <- res{i, err} }); err != nil {
		t.Fatal(err)
	}
	if r := <-ok; r.err != nil || r.idx != 1 {
		t.Fatalf("append after recovery: %+v", r)
	}
	_, p, okRead, err := l.NewReader(1).TryRead()
	if err != nil || !okRead || string(p) != "after" {
		t.Fatalf("read: %q %v %v", p, okRead, err)
	}
	if b, _ := l.Backpressure(); b {
		t.Fatal("still reporting backpressure after recovery")
	}
}

// FuzzReadSealedSegment feeds arbitrary bytes to the reader as a sealed
// segment said to hold entries 1..20: every read either returns a payload
// that passed its CRC or a *CorruptionErr that moves forward; nothing
// panics and the walk ends.
func FuzzReadSealedSegment(f *testing.F) {
	var good []byte
	for i := range 3 {
		fr := frame(nil, payloadN(i))
		good = appendUvarint(good, uint64(len(fr)))
		good = append(good, fr...)
	}
	f.Add(good)
	f.Add(good[:len(good)-3])
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Add([]byte{0x03, 0x01, 0x00, 0x00})
	f.Add(append(appendUvarint(nil, 70000), make([]byte, 100)...))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, segmentName(1)), data, 0o640); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, segmentName(21)), nil, 0o640); err != nil {
			t.Fatal(err)
		}
		cfg := smallCfg()
		cfg.NoSync = true
		l, err := Open(dir, cfg, zerolog.Nop(), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		r := l.NewReader(1)
		defer r.Close()
		for steps := 0; r.Next() <= 20; steps++ {
			if steps > 100 {
				t.Fatalf("no progress at %d", r.Next())
			}
			at := r.Next()
			_, p, ok, err := r.TryRead()
			var ce *CorruptionErr
			switch {
			case err == nil && ok:
				if _, uerr := unframe(frame(nil, p)); uerr != nil {
					t.Fatal(uerr)
				}
			case errors.As(err, &ce):
				if ce.Next <= at {
					t.Fatalf("corruption at %d resumes at %d", at, ce.Next)
				}
				r.Seek(ce.Next)
			default:
				t.Fatalf("read %d: ok %v err %v", at, ok, err)
			}
		}
	})
}
