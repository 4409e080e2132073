package dlq

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"reflect"
	"testing"
	"time"

	"github.com/logcapturer/log_capturer_go/ship"
)

func sampleFile(t testing.TB) ([]byte, fileHeader, []ship.DeadEntry) {
	l := letter("loki", "too_old", "x", 40, 9, time.Unix(1_700_000_000, 5))
	l.Entries[4].Index = 0 // unknown index survives
	h := fileHeader{ID: 7, Created: 123, First: 40, Last: 48, Attempts: 3, PartiallyAccepted: true,
		Sink: "loki", Reason: "too_old", Detail: "détail"}
	return encodeLetter(h, l.Entries), h, l.Entries
}

func TestLetterFileRoundTrip(t *testing.T) {
	data, h, want := sampleFile(t)
	lf, err := decodeLetter(data)
	if err != nil {
		t.Fatal(err)
	}
	if lf.fileHeader != h {
		t.Fatalf("header = %+v, want %+v", lf.fileHeader, h)
	}
	got, err := lf.entries()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%d entries, want %d", len(got), len(want))
	}
	for i := range want {
		w, g := want[i], got[i]
		if g.Labels.String() != w.Labels.String() || g.Time != w.Time || !bytes.Equal(g.Line, w.Line) ||
			!reflect.DeepEqual(g.Metadata, w.Metadata) || g.Flags != w.Flags || g.Source != w.Source ||
			g.Offset != w.Offset || g.Index != w.Index {
			t.Errorf("entry %d = %+v, want %+v", i, g, w)
		}
	}
}

// reCRC fixes the checksum after a deliberate change of the body, so the
// decoder's structural checks are reached.
func reCRC(b []byte) []byte {
	binary.LittleEndian.PutUint32(b[5:9], crc32.Checksum(b[headerSize:], castagnoli))
	return b
}

func TestLetterFileRejectsDamage(t *testing.T) {
	good, _, _ := sampleFile(t)
	mod := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	tests := map[string][]byte{
		"empty":          {},
		"short header":   good[:headerSize-1],
		"bad magic":      mod(func(b []byte) []byte { b[0] = 'X'; return b }),
		"future version": mod(func(b []byte) []byte { b[4] = 2; return b }),
		"flipped byte":   mod(func(b []byte) []byte { b[len(b)/2] ^= 0x40; return b }),
		"truncated":      good[:len(good)-3],
		"trailing byte":  mod(func(b []byte) []byte { return reCRC(append(b, 0)) }),
		"id zero": func() []byte {
			h := fileHeader{ID: 0, Sink: "s", Reason: "r"}
			return encodeLetter(h, letter("s", "r", "x", 1, 1, time.Now()).Entries)
		}(),
		"unknown flags": func() []byte {
			b := encodeLetter(fileHeader{ID: 1}, nil)
			// id, created, first, last, attempts are one byte each here.
			b[headerSize+5] = 0x80
			return reCRC(b)
		}(),
		"count mismatch": func() []byte {
			b := encodeLetter(fileHeader{ID: 1}, letter("s", "r", "x", 1, 2, time.Now()).Entries)
			// n is right after the three empty strings.
			b[headerSize+6+3] = 1
			return reCRC(b)
		}(),
	}
	for name, data := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := decodeLetter(data); !errors.Is(err, ErrBadFile) {
				t.Fatalf("err = %v, want ErrBadFile", err)
			}
		})
	}
}

func TestParseFileName(t *testing.T) {
	tests := map[string]struct {
		name string
		id   uint64
		ok   bool
	}{
		"good":        {fileName(42), 42, true},
		"tmp":         {fileName(42) + tmpSuffix, 0, false},
		"zero":        {fileName(0), 0, false},
		"short":       {"42.letter", 0, false},
		"not numeric": {"0000000000000000000x.letter", 0, false},
		"other":       {"README", 0, false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			id, ok := parseFileName(tc.name)
			if id != tc.id || ok != tc.ok {
				t.Fatalf("parseFileName(%q) = %d, %t", tc.name, id, ok)
			}
		})
	}
}

func FuzzDecodeLetter(f *testing.F) {
	good, _, _ := sampleFile(f)
	f.Add(good)
	f.Add(good[:headerSize])
	f.Add(encodeLetter(fileHeader{ID: 1}, nil))
	f.Fuzz(func(t *testing.T, data []byte) {
		// Without a valid CRC almost nothing gets past the checksum, so
		// half the inputs get one: the body's decoding is what is fuzzed.
		if len(data) > headerSize && data[len(data)-1]&1 == 0 {
			copy(data, fileMagic)
			data[4] = fileVersion
			data = reCRC(data)
		}
		lf, err := decodeLetter(data)
		if err != nil {
			if !errors.Is(err, ErrBadFile) {
				t.Fatalf("error %v does not wrap ErrBadFile", err)
			}
			return
		}
		entries, err := lf.entries()
		if err != nil {
			t.Fatalf("accepted file whose entries fail: %v", err)
		}
		if len(entries) != len(lf.Indexes) {
			t.Fatalf("%d entries, %d indexes", len(entries), len(lf.Indexes))
		}
		// What was accepted encodes to a file that decodes the same.
		again, err := decodeLetter(encodeLetter(lf.fileHeader, entries))
		if err != nil || again.fileHeader != lf.fileHeader || !reflect.DeepEqual(again.Indexes, lf.Indexes) {
			t.Fatalf("re-encode: %+v, %v", again, err)
		}
	})
}
