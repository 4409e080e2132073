package record

import (
	"bytes"
	"errors"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	a := NewLabelSet([]Label{{"job", "x"}, {"filename", "/var/log/a.log"}})
	b := NewLabelSet([]Label{{"job", "y"}})
	bl := NewBuilder()
	type in struct {
		src  string
		ls   *LabelSet
		off  uint64
		ts   int64
		fl   Flags
		meta []Label
		line string
	}
	ins := []in{
		{"file:1:2", a, 10, 1_700_000_000_000_000_000, 0, nil, "first"},
		{"file:1:2", a, 25, 1_700_000_000_000_000_500, FlagTruncated, nil, "second \"quoted\" \\ line"},
		{"file:3:4", b, 7, 1_699_999_999_000_000_000, FlagPartial | FlagEscaped, []Label{{"trace_id", "abc"}}, ""},
		{"file:1:2", b, 40, 5, 0, nil, "ünïcödé \x00 bin"},
	}
	for _, x := range ins {
		bl.Add(x.src, x.ls, x.off, x.ts, x.fl, x.meta, []byte(x.line))
	}
	if bl.Len() != len(ins) {
		t.Fatalf("len %d", bl.Len())
	}
	data := bl.AppendTo(nil)
	var got []Record
	err := Each(data, func(r *Record) error {
		c := *r
		c.Line = append([]byte(nil), r.Line...)
		c.Metadata = append([]Label(nil), r.Metadata...)
		got = append(got, c)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(ins) {
		t.Fatalf("got %d records", len(got))
	}
	for i, x := range ins {
		g := got[i]
		if g.Source != x.src || g.Offset != x.off || g.Time != x.ts || g.Flags != x.fl || string(g.Line) != x.line {
			t.Errorf("record %d: got %+v want %+v", i, g, x)
		}
		if g.Labels.String() != x.ls.String() {
			t.Errorf("record %d labels %s want %s", i, g.Labels, x.ls)
		}
		if len(g.Metadata) != len(x.meta) || (len(x.meta) > 0 && g.Metadata[0] != x.meta[0]) {
			t.Errorf("record %d meta %v want %v", i, g.Metadata, x.meta)
		}
	}
	// Label sets are written once per payload, not per line.
	if n := bytes.Count(data, []byte("/var/log/a.log")); n != 1 {
		t.Fatalf("label value written %d times", n)
	}
	bl.Reset()
	if bl.Len() != 0 || len(bl.AppendTo(nil)) > 8 {
		t.Fatal("reset did not empty the builder")
	}
}

func TestLabelSetString(t *testing.T) {
	ls := NewLabelSet([]Label{{"z", "1"}, {"a", "say \"hi\"\n"}})
	if got, want := ls.String(), `{a="say \"hi\"\n", z="1"}`; got != want {
		t.Fatalf("got %s want %s", got, want)
	}
	if v, ok := ls.Get("z"); !ok || v != "1" {
		t.Fatal("get")
	}
}

func TestMalformed(t *testing.T) {
	bl := NewBuilder()
	bl.Add("s", NewLabelSet([]Label{{"a", "b"}}), 1, 1, 0, nil, []byte("hello"))
	good := bl.AppendTo(nil)
	cases := map[string][]byte{
		"empty":          {},
		"bad format":     append([]byte{9}, good[1:]...),
		"truncated":      good[:len(good)-2],
		"trailing bytes": append(append([]byte(nil), good...), 0),
		"huge count":     {FormatV1, 0, 0xff, 0xff, 0xff, 0xff, 0x0f},
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			err := Each(data, func(*Record) error { return nil })
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("got %v", err)
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	bl := NewBuilder()
	bl.Add("s", NewLabelSet([]Label{{"a", "b"}}), 1, 1, FlagTruncated, []Label{{"k", "v"}}, []byte("hello"))
	f.Add(bl.AppendTo(nil))
	f.Add([]byte{FormatV1})
	f.Fuzz(func(t *testing.T, data []byte) {
		n := 0
		_ = Each(data, func(r *Record) error {
			n++
			if r.Labels == nil {
				t.Fatal("record without labels")
			}
			return nil
		})
		if n > len(data) {
			t.Fatalf("%d records from %d bytes", n, len(data))
		}
	})
}

func BenchmarkBuilderAdd(b *testing.B) {
	ls := NewLabelSet([]Label{{"job", "x"}, {"filename", "/var/log/a.log"}})
	line := bytes.Repeat([]byte("x"), 170)
	bl := NewBuilder()
	buf := make([]byte, 0, 1<<20)
	b.SetBytes(int64(len(line)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		bl.Add("file:1:2", ls, uint64(i), int64(i), 0, nil, line)
		if bl.Len() == 4096 {
			buf = bl.AppendTo(buf[:0])
			bl.Reset()
		}
	}
}
