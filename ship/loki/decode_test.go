package loki

import (
	"errors"
	"reflect"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/logcapturer/log_capturer_go/wal/record"
)

func TestDecodePushRequestRoundTrip(t *testing.T) {
	streams := sampleStreams()
	pb := AppendPushRequest(nil, streams)
	body, err := Compress(nil, pb)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := Decompress(body, len(pb))
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodePushRequest(raw)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(normalize(got), normalize(streams)) {
		t.Fatalf("round trip mismatch:\n got %+v\nwant %+v", got, streams)
	}
}

func TestDecodePushRequestErrors(t *testing.T) {
	entry := func(fields ...[]byte) []byte {
		var b []byte
		for _, f := range fields {
			b = append(b, f...)
		}
		return b
	}
	bytesField := func(num protowire.Number, v []byte) []byte {
		return protowire.AppendBytes(protowire.AppendTag(nil, num, protowire.BytesType), v)
	}
	varintField := func(num protowire.Number, v uint64) []byte {
		return protowire.AppendVarint(protowire.AppendTag(nil, num, protowire.VarintType), v)
	}
	request := func(e []byte) []byte {
		return bytesField(fieldRequestStreams, entry(bytesField(fieldStreamLabels, []byte(`{a="b"}`)), bytesField(fieldStreamEntries, e)))
	}
	ts := bytesField(fieldEntryTimestamp, varintField(fieldTimestampSeconds, 5))
	tests := map[string]struct {
		pb   []byte
		ok   bool
		want int64
	}{
		"valid":              {pb: request(entry(ts, bytesField(fieldEntryLine, []byte("x")))), ok: true, want: 5e9},
		"unknown field":      {pb: append(request(entry(ts)), varintField(9, 1)...), ok: true, want: 5e9},
		"no timestamp":       {pb: request(entry(bytesField(fieldEntryLine, []byte("x"))))},
		"nanos out of range": {pb: request(entry(bytesField(fieldEntryTimestamp, varintField(fieldTimestampNanos, 2e9))))},
		"truncated":          {pb: request(entry(ts))[:5]},
		"wrong wire type":    {pb: varintField(fieldRequestStreams, 1)},
		"bad tag":            {pb: []byte{0xff}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := DecodePushRequest(tt.pb)
			if tt.ok != (err == nil) {
				t.Fatalf("err %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			if tt.ok && got[0].Entries[0].Time != tt.want {
				t.Fatalf("time %d, want %d", got[0].Entries[0].Time, tt.want)
			}
		})
	}
	if _, err := Decompress([]byte{0xff, 0xff, 0xff, 0xff, 0x0f}, 1<<20); !errors.Is(err, ErrMalformed) {
		t.Fatalf("hostile length: %v", err)
	}
	big, _ := Compress(nil, make([]byte, 4096))
	if _, err := Decompress(big, 1024); !errors.Is(err, ErrMalformed) {
		t.Fatalf("over limit: %v", err)
	}
}

// FuzzDecodePushRequest: the decoder never panics, and what it accepts
// re-encodes to something it decodes the same way.
func FuzzDecodePushRequest(f *testing.F) {
	// Small seeds: the mutator works byte by byte.
	f.Add(AppendPushRequest(nil, []Stream{{Labels: `{a="b"}`, Entries: []Entry{
		{Time: 1_700_000_000_123_456_789, Line: []byte("line"), Metadata: []record.Label{{Name: "k", Value: "v"}}},
		{Time: -1, Line: []byte{0xff}},
	}}}))
	f.Add([]byte{0x0a, 0x00})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, pb []byte) {
		streams, err := DecodePushRequest(pb)
		if err != nil {
			return
		}
		again, err := DecodePushRequest(AppendPushRequest(nil, streams))
		if err != nil {
			t.Fatalf("re-encoded request does not decode: %v", err)
		}
		if !reflect.DeepEqual(normalize(again), normalize(streams)) {
			t.Fatal("re-encoding changed the request")
		}
	})
}
