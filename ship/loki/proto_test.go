package loki

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/golang/snappy"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/logcapturer/log_capturer_go/wal/record"
)

// The VERIFIED vector of PROTOCOLS.md A2.
const (
	goldenProto  = "0a120a077b613d2262227d12070a020801120178"
	goldenSnappy = "144c" + goldenProto
)

func goldenStreams() []Stream {
	return []Stream{{Labels: `{a="b"}`, Entries: []Entry{{Time: 1e9, Line: []byte("x")}}}}
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestGoldenVector(t *testing.T) {
	pb := AppendPushRequest(nil, goldenStreams())
	if want := mustHex(t, goldenProto); !bytes.Equal(pb, want) {
		t.Fatalf("protobuf:\n got %x\nwant %x", pb, want)
	}
	if n := PushRequestSize(goldenStreams()); n != len(pb) {
		t.Fatalf("PushRequestSize = %d; want %d", n, len(pb))
	}
	sn, err := Compress(nil, pb)
	if err != nil {
		t.Fatal(err)
	}
	if want := mustHex(t, goldenSnappy); !bytes.Equal(sn, want) {
		t.Fatalf("snappy:\n got %x\nwant %x", sn, want)
	}
}

func TestAppendKeepsPrefix(t *testing.T) {
	prefix := []byte("prefix")
	out := AppendPushRequest(bytes.Clone(prefix), goldenStreams())
	if !bytes.HasPrefix(out, prefix) || !bytes.Equal(out[len(prefix):], mustHex(t, goldenProto)) {
		t.Fatalf("got %x", out)
	}
}

func TestAppendNoAllocsWithCapacity(t *testing.T) {
	streams := sampleStreams()
	buf := make([]byte, 0, PushRequestSize(streams))
	allocs := testing.AllocsPerRun(100, func() {
		buf = AppendPushRequest(buf[:0], streams)
	})
	if allocs != 0 {
		t.Fatalf("AppendPushRequest allocated %v times with enough capacity", allocs)
	}
}

func sampleStreams() []Stream {
	long := bytes.Repeat([]byte("0123456789abcdef"), 2000) // 32000 B: 3-byte length
	return []Stream{
		{Labels: `{app="a", env="prod"}`, Entries: []Entry{
			{Time: 1_700_000_000_123_456_789, Line: []byte("first")},
			{Time: 1_700_000_000_123_456_790, Line: []byte("with meta"), Metadata: []record.Label{
				{Name: "trace_id", Value: "abc"}, {Name: "user", Value: "ünï"},
			}},
			{Time: 1_700_000_001_000_000_000, Line: long},
		}},
		{Labels: `{app="b \"q\" \\"}`, Entries: []Entry{
			{Time: 1, Line: []byte("one nanosecond")},
		}},
	}
}

func TestRoundTrip(t *testing.T) {
	tests := map[string][]Stream{
		"empty request":           nil,
		"stream without entries":  {{Labels: `{a="b"}`}},
		"sample":                  sampleStreams(),
		"nanos only":              {{Labels: `{a="b"}`, Entries: []Entry{{Time: 999_999_999, Line: []byte("x")}}}},
		"zero time still written": {{Labels: `{a="b"}`, Entries: []Entry{{Time: 0, Line: []byte("x")}}}},
		"before epoch": {{Labels: `{a="b"}`, Entries: []Entry{
			{Time: -1, Line: []byte("x")},
			{Time: -1_500_000_000, Line: []byte("y")},
		}}},
		"extreme times": {{Labels: `{a="b"}`, Entries: []Entry{
			{Time: math.MaxInt64, Line: []byte("max")},
			{Time: math.MinInt64, Line: []byte("min")},
		}}},
		"empty line": {{Labels: `{a="b"}`, Entries: []Entry{{Time: 5, Line: nil}}}},
		"metadata with empty parts": {{Labels: `{a="b"}`, Entries: []Entry{{Time: 5, Line: []byte("x"),
			Metadata: []record.Label{{Name: "k", Value: ""}, {Name: "", Value: "v"}, {}}}}}},
		"empty labels": {{Labels: "", Entries: []Entry{{Time: 5, Line: []byte("x")}}}},
		"binary line":  {{Labels: `{a="b"}`, Entries: []Entry{{Time: 5, Line: []byte{0, 0xff, '\n', 0x80}}}}},
		"many streams": manyStreams(50, 20),
	}
	for name, streams := range tests {
		t.Run(name, func(t *testing.T) {
			pb := AppendPushRequest(nil, streams)
			if n := PushRequestSize(streams); n != len(pb) {
				t.Fatalf("PushRequestSize = %d; encoded %d bytes", n, len(pb))
			}
			got, err := decodePushRequest(pb)
			if err != nil {
				t.Fatalf("decode: %v\n%x", err, pb)
			}
			if !reflect.DeepEqual(normalize(got), normalize(streams)) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", got, streams)
			}
		})
	}
}

func manyStreams(ns, ne int) []Stream {
	out := make([]Stream, ns)
	for i := range out {
		out[i].Labels = fmt.Sprintf(`{n="%d"}`, i)
		for j := range ne {
			out[i].Entries = append(out[i].Entries, Entry{
				Time: int64(i*1_000_000_007 + j*13),
				Line: []byte(strings.Repeat("l", i*j)),
			})
		}
	}
	return out
}

// normalize maps nil and empty slices together: the wire cannot tell them apart.
func normalize(streams []Stream) []Stream {
	out := make([]Stream, 0, len(streams))
	for _, s := range streams {
		ns := Stream{Labels: s.Labels}
		for _, e := range s.Entries {
			ne := Entry{Time: e.Time, Line: append([]byte{}, e.Line...)}
			for _, m := range e.Metadata {
				ne.Metadata = append(ne.Metadata, m)
			}
			ns.Entries = append(ns.Entries, ne)
		}
		out = append(out, ns)
	}
	return out
}

func TestCompress(t *testing.T) {
	pb := AppendPushRequest(nil, sampleStreams())
	t.Run("block format decodes", func(t *testing.T) {
		out, err := Compress(nil, pb)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.HasPrefix(out, []byte{0xff, 0x06, 0x00, 0x00, 's', 'N', 'a', 'P', 'p', 'Y'}) {
			t.Fatal("framed snappy stream, want block format")
		}
		n, err := snappy.DecodedLen(out)
		if err != nil || n != len(pb) {
			t.Fatalf("DecodedLen = %d, %v; want %d", n, err, len(pb))
		}
		back, err := snappy.Decode(nil, out)
		if err != nil || !bytes.Equal(back, pb) {
			t.Fatalf("Decode: %v", err)
		}
	})
	t.Run("reuses dst", func(t *testing.T) {
		dst := make([]byte, 0, snappy.MaxEncodedLen(len(pb)))
		out, err := Compress(dst, pb)
		if err != nil {
			t.Fatal(err)
		}
		if &out[0] != &dst[:1][0] {
			t.Fatal("did not reuse dst")
		}
	})
	t.Run("empty input", func(t *testing.T) {
		out, err := Compress(nil, nil)
		if err != nil || !bytes.Equal(out, []byte{0}) {
			t.Fatalf("Compress(nil) = %x, %v; want 00", out, err)
		}
	})
}

// decodePushRequest is a strict test decoder: unknown fields, wrong wire
// types, trailing bytes and entries without a timestamp are errors.
func decodePushRequest(b []byte) ([]Stream, error) {
	var out []Stream
	err := eachField(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if num != 1 || typ != protowire.BytesType {
			return fmt.Errorf("PushRequest: unexpected field %d type %d", num, typ)
		}
		s, err := decodeStream(v)
		out = append(out, s)
		return err
	})
	return out, err
}

func decodeStream(b []byte) (Stream, error) {
	var s Stream
	err := eachField(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		switch {
		case num == 1 && typ == protowire.BytesType:
			s.Labels = string(v)
		case num == 2 && typ == protowire.BytesType:
			e, err := decodeEntry(v)
			s.Entries = append(s.Entries, e)
			return err
		default:
			return fmt.Errorf("Stream: unexpected field %d type %d", num, typ)
		}
		return nil
	})
	return s, err
}

func decodeEntry(b []byte) (Entry, error) {
	var e Entry
	seenTS := false
	err := eachField(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		switch {
		case num == 1 && typ == protowire.BytesType:
			seenTS = true
			var sec int64
			var nanos int64
			err := eachField(v, func(num protowire.Number, typ protowire.Type, _ []byte, x uint64) error {
				switch {
				case num == 1 && typ == protowire.VarintType:
					sec = int64(x)
				case num == 2 && typ == protowire.VarintType:
					nanos = int64(int32(x))
					if nanos < 0 || nanos >= 1e9 {
						return fmt.Errorf("nanos %d out of range", nanos)
					}
				default:
					return fmt.Errorf("Timestamp: unexpected field %d type %d", num, typ)
				}
				return nil
			})
			e.Time = sec*1e9 + nanos // wraps like the encoder's split for extreme values
			return err
		case num == 2 && typ == protowire.BytesType:
			e.Line = append([]byte{}, v...)
		case num == 3 && typ == protowire.BytesType:
			var l record.Label
			err := eachField(v, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
				switch {
				case num == 1 && typ == protowire.BytesType:
					l.Name = string(v)
				case num == 2 && typ == protowire.BytesType:
					l.Value = string(v)
				default:
					return fmt.Errorf("LabelPair: unexpected field %d type %d", num, typ)
				}
				return nil
			})
			e.Metadata = append(e.Metadata, l)
			return err
		default:
			return fmt.Errorf("Entry: unexpected field %d type %d", num, typ)
		}
		return nil
	})
	if err == nil && !seenTS {
		err = errors.New("Entry: no timestamp")
	}
	return e, err
}

func eachField(b []byte, fn func(protowire.Number, protowire.Type, []byte, uint64) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		var v []byte
		var x uint64
		switch typ {
		case protowire.BytesType:
			v, n = protowire.ConsumeBytes(b)
		case protowire.VarintType:
			x, n = protowire.ConsumeVarint(b)
		default:
			return fmt.Errorf("unexpected wire type %d", typ)
		}
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if err := fn(num, typ, v, x); err != nil {
			return err
		}
	}
	return nil
}

// FuzzRoundTrip builds streams from arbitrary bytes and checks that the
// encoding decodes back to them and that PushRequestSize is exact.
func FuzzRoundTrip(f *testing.F) {
	f.Add([]byte("a"), int64(0), uint8(0))
	f.Add([]byte(`{a="b"}`+"\x00line\xffmore"), int64(-1), uint8(7))
	f.Add(bytes.Repeat([]byte{0xee}, 300), int64(math.MaxInt64), uint8(255))
	f.Fuzz(func(t *testing.T, data []byte, ts int64, shape uint8) {
		parts := bytes.Split(data, []byte{0})
		nStreams := int(shape%4) + 1
		streams := make([]Stream, nStreams)
		for i := range streams {
			streams[i].Labels = string(parts[i%len(parts)])
			for j := range int(shape/4%8) + 1 {
				e := Entry{Time: ts + int64(i*j), Line: parts[(i+j)%len(parts)]}
				if j%2 == 1 {
					e.Metadata = []record.Label{{Name: string(parts[j%len(parts)]), Value: streams[i].Labels}}
				}
				streams[i].Entries = append(streams[i].Entries, e)
			}
		}
		pb := AppendPushRequest(nil, streams)
		if n := PushRequestSize(streams); n != len(pb) {
			t.Fatalf("PushRequestSize = %d; encoded %d", n, len(pb))
		}
		got, err := decodePushRequest(pb)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(normalize(got), normalize(streams)) {
			t.Fatalf("round trip mismatch")
		}
	})
}

func BenchmarkAppendPushRequest(b *testing.B) {
	streams := manyStreams(10, 100)
	var lineBytes int
	for _, s := range streams {
		for _, e := range s.Entries {
			lineBytes += len(e.Line)
		}
	}
	buf := make([]byte, 0, PushRequestSize(streams))
	var sn []byte
	b.SetBytes(int64(lineBytes))
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendPushRequest(buf[:0], streams)
		sn, _ = Compress(sn, buf)
	}
}
