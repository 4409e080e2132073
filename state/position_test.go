package state

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math"
	"testing"
)

// The on-disk layout must not drift: files written by an older binary are
// read by newer ones.
func TestPositionGolden(t *testing.T) {
	p := Position{Offset: 300, WALIndex: 1, UpdatedUnixNano: -2, Meta: []byte("ab")}
	const want = "01" + "ac02" + "01" + "03" + "02" + "6162"
	got := hex.EncodeToString(appendPosition(nil, p))
	if got != want {
		t.Fatalf("encoding = %s, want %s", got, want)
	}
	raw, _ := hex.DecodeString(want)
	back, err := decodePosition(raw)
	if err != nil {
		t.Fatal(err)
	}
	if !equalPosition(back, p) {
		t.Fatalf("decoded %+v, want %+v", back, p)
	}
}

func TestPositionRoundTrip(t *testing.T) {
	tests := map[string]Position{
		"zero":          {},
		"max values":    {Offset: math.MaxUint64, WALIndex: math.MaxUint64, UpdatedUnixNano: math.MaxInt64},
		"min time":      {UpdatedUnixNano: math.MinInt64},
		"typical":       {Offset: 123456789, WALIndex: 42, UpdatedUnixNano: 1_700_000_000_000_000_000, Meta: []byte{0, 1, 2, 0xff}},
		"max meta":      {Meta: bytes.Repeat([]byte{'m'}, MaxMetaBytes)},
		"empty not nil": {Meta: []byte{}},
	}
	for name, p := range tests {
		t.Run(name, func(t *testing.T) {
			enc := appendPosition([]byte("prefix"), p)[len("prefix"):]
			got, err := decodePosition(enc)
			if err != nil {
				t.Fatal(err)
			}
			if !equalPosition(got, p) {
				t.Fatalf("got %+v, want %+v", got, p)
			}
			if len(got.Meta) > 0 && &got.Meta[0] == &enc[len(enc)-len(got.Meta)] {
				t.Fatal("decoded Meta aliases the input")
			}
		})
	}
}

func TestDecodePositionRejects(t *testing.T) {
	overflow := append([]byte{1}, bytes.Repeat([]byte{0xff}, 10)...)
	overflow = append(overflow, 0x01)
	tests := map[string][]byte{
		"nil":                  nil,
		"empty":                {},
		"format 0":             {0, 0, 0, 0, 0},
		"format 2":             {2, 0, 0, 0, 0},
		"format 0xff":          {0xff},
		"format only":          {1},
		"truncated offset":     {1, 0x80},
		"offset overflow":      overflow,
		"missing wal index":    {1, 5},
		"missing updated":      {1, 5, 6},
		"missing meta len":     {1, 5, 6, 7},
		"meta longer than buf": {1, 5, 6, 7, 3, 'a', 'b'},
		"meta len huge":        {1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"meta over max":        append([]byte{1, 0, 0, 0, 0x81, 0x80, 0x04}, make([]byte, MaxMetaBytes+1)...),
		"trailing bytes":       {1, 5, 6, 7, 1, 'a', 'b'},
		"trailing after empty": {1, 0, 0, 0, 0, 0},
		"text garbage":         []byte("{\"offset\": 12}"),
	}
	for name, b := range tests {
		t.Run(name, func(t *testing.T) {
			p, err := decodePosition(b)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("err = %v, want ErrCorrupt (decoded %+v)", err, p)
			}
		})
	}
}

func FuzzDecodePosition(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{1, 0, 0, 0, 0})
	f.Add(appendPosition(nil, Position{Offset: 300, WALIndex: 9, UpdatedUnixNano: -5, Meta: []byte("meta")}))
	f.Add([]byte{1, 0x80, 0x80, 0x80})
	f.Add([]byte{1, 5, 6, 7, 3, 'a', 'b'})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := decodePosition(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error does not wrap ErrCorrupt: %v", err)
			}
			return
		}
		if len(p.Meta) > MaxMetaBytes {
			t.Fatalf("meta of %d bytes accepted", len(p.Meta))
		}
		// Varints may be non-minimal, so compare values, not bytes.
		again, err := decodePosition(appendPosition(nil, p))
		if err != nil {
			t.Fatalf("re-encoded position does not decode: %v", err)
		}
		if !equalPosition(again, p) {
			t.Fatalf("round trip changed %+v into %+v", p, again)
		}
	})
}

func equalPosition(a, b Position) bool {
	return a.Offset == b.Offset && a.WALIndex == b.WALIndex &&
		a.UpdatedUnixNano == b.UpdatedUnixNano && bytes.Equal(a.Meta, b.Meta)
}
