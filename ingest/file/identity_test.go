package file

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestParseID(t *testing.T) {
	k := fileKey{dev: 2049, ino: 1234567}
	for _, head := range []fingerprint{{}, fingerprintOf([]byte("first line\n"))} {
		id := formatID(k, 0x17f00dbeef, head)
		gk, gen, gh, ok := parseID(id)
		if !ok || gk != k || gen != 0x17f00dbeef || gh != head {
			t.Fatalf("parseID(%q) = %v %x %+v %v", id, gk, gen, gh, ok)
		}
	}
	if _, _, _, ok := parseID("file:1:2:3"); !ok {
		t.Fatal("an id without a head (older agents) is refused")
	}
	for name, bad := range map[string]string{
		"docker id":     "docker:abc",
		"missing gen":   "file:1:2",
		"extra field":   "file:1:2:3:4:5",
		"bad head":      "file:1:2:3:4",
		"zero head":     "file:1:2:3:0-00000000000000000000000000000000",
		"short hash":    "file:1:2:3:a-0011",
		"not a number":  "file:x:2:3",
		"bad hex gen":   "file:1:2:zz",
		"empty":         "",
		"prefix only":   "file:",
		"negative ino":  "file:1:-2:3",
		"dev overflows": "file:99999999999999999999:2:3",
	} {
		t.Run(name, func(t *testing.T) {
			if _, _, _, ok := parseID(bad); ok {
				t.Fatalf("parseID(%q) accepted", bad)
			}
		})
	}
}

func TestMetaRoundTrip(t *testing.T) {
	for _, m := range []meta{
		{path: "/var/log/app.log", fp: fingerprintOf([]byte("head bytes"))},
		{path: "/var/log/app.log.1", stream: "/var/log/app.log", fp: fingerprintOf([]byte("h")),
			mark: fingerprintOf([]byte("tail")), markOff: 1 << 40, seen: -5, rotated: true},
	} {
		got, err := decodeMeta(m.encode())
		if err != nil || got != m {
			t.Fatalf("decode(encode(m)) = %+v, %v; want %+v", got, err, m)
		}
	}
	// Version 1 (path and head only) still decodes.
	v1 := append([]byte{metaV1, 2, '/', 'p', 16}, make([]byte, 16)...)
	if m, err := decodeMeta(v1); err != nil || m.path != "/p" || m.fp.n != 16 {
		t.Fatalf("v1: %+v %v", m, err)
	}
}

func TestDecodeMetaRejects(t *testing.T) {
	good := meta{path: "/p", fp: fingerprintOf([]byte("x"))}.encode()
	tests := map[string][]byte{
		"empty":          nil,
		"bad version":    append([]byte{9}, good[1:]...),
		"path too long":  {metaV1, 200, 'a'},
		"short hash":     good[:len(good)-1],
		"trailing bytes": append(append([]byte{}, good...), 0),
		"bad varint":     {metaV1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
	}
	for name, b := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := decodeMeta(b); !errors.Is(err, errBadMeta) {
				t.Fatalf("decodeMeta(%x) err = %v, want errBadMeta", b, err)
			}
		})
	}
}

func FuzzDecodeMeta(f *testing.F) {
	f.Add(meta{path: "/var/log/x", fp: fingerprintOf([]byte("abc"))}.encode())
	f.Add([]byte{metaV1})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMeta(b)
		if err != nil {
			return
		}
		again, err := decodeMeta(m.encode())
		if err != nil || again != m {
			t.Fatalf("re-decode of %+v: %+v, %v", m, again, err)
		}
	})
}

func TestFingerprintMatchesFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, []byte("0123456789"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fp, err := computeFingerprint(f, 4)
	if err != nil || fp.n != 4 {
		t.Fatalf("fingerprint = %+v, %v", fp, err)
	}
	short, err := computeFingerprint(f, 100)
	if err != nil || short.n != 10 {
		t.Fatalf("fingerprint of a short file = %+v, %v; want the 10 bytes there are", short, err)
	}
	tests := map[string]struct {
		fp   fingerprint
		want bool
	}{
		"same head":         {fp, true},
		"whole short file":  {short, true},
		"other content":     {fingerprintOf([]byte("abcd")), false},
		"longer than file":  {fingerprintOf(make([]byte, 20)), false},
		"empty fingerprint": {fingerprint{}, true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := tc.fp.matchesFile(f)
			if err != nil || got != tc.want {
				t.Fatalf("matchesFile = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}
