package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/golang/snappy"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/encoding/protowire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// pushRequest hand-encodes a PushRequest with one stream per element of
// streams, each with a timestamp and some structured metadata to skip.
func pushRequest(streams ...[][]byte) []byte {
	var req []byte
	for _, lines := range streams {
		var s []byte
		s = protowire.AppendTag(s, 1, protowire.BytesType)
		s = protowire.AppendString(s, `{job="x"}`)
		for _, l := range lines {
			var e []byte
			var ts []byte
			ts = protowire.AppendTag(ts, 1, protowire.VarintType)
			ts = protowire.AppendVarint(ts, 1)
			e = protowire.AppendTag(e, 1, protowire.BytesType)
			e = protowire.AppendBytes(e, ts)
			e = protowire.AppendTag(e, 2, protowire.BytesType)
			e = protowire.AppendBytes(e, l)
			var pair []byte
			pair = protowire.AppendTag(pair, 1, protowire.BytesType)
			pair = protowire.AppendString(pair, "k")
			e = protowire.AppendTag(e, 3, protowire.BytesType)
			e = protowire.AppendBytes(e, pair)
			s = protowire.AppendTag(s, 2, protowire.BytesType)
			s = protowire.AppendBytes(s, e)
		}
		s = protowire.AppendTag(s, 3, protowire.VarintType)
		s = protowire.AppendVarint(s, 99)
		req = protowire.AppendTag(req, 1, protowire.BytesType)
		req = protowire.AppendBytes(req, s)
	}
	return req
}

func TestWalkPush(t *testing.T) {
	vector, _ := hex.DecodeString("0a120a077b613d2262227d12070a0208011201" + "78") // PROTOCOLS.md A2
	tests := map[string]struct {
		in      []byte
		want    []string
		wantErr bool
	}{
		"A2 test vector": {in: vector, want: []string{"x"}},
		"empty request":  {in: nil},
		"two streams":    {in: pushRequest([][]byte{[]byte("a"), []byte("b")}, [][]byte{[]byte("c")}), want: []string{"a", "b", "c"}},
		"empty line":     {in: pushRequest([][]byte{{}}), want: []string{""}},
		"truncated":      {in: vector[:len(vector)-1], wantErr: true},
		"bad tag":        {in: []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, wantErr: true},
		"length too big": {in: []byte{0x0a, 0x7f, 0x0a}, wantErr: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var got []string
			err := walkPush(tc.in, func(l []byte) { got = append(got, string(l)) })
			if tc.wantErr {
				if !errors.Is(err, errMalformed) {
					t.Fatalf("err = %v, want errMalformed", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("lines = %q, want %q", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("lines = %q, want %q", got, tc.want)
				}
			}
		})
	}
}

func FuzzWalkPush(f *testing.F) {
	f.Add(pushRequest([][]byte{appendLine(nil, 1, 2)}))
	f.Add([]byte{0x0a, 0x7f})
	f.Fuzz(func(t *testing.T, b []byte) {
		n := 0
		_ = walkPush(b, func(l []byte) { n += len(l) })
		if n > len(b) {
			t.Fatalf("walked %d line bytes out of a %d-byte message", n, len(b))
		}
	})
}

func TestBlackholeCounts(t *testing.T) {
	bh, err := newBlackhole()
	if err != nil {
		t.Fatal(err)
	}
	defer bh.Close()
	now := time.Now().UnixNano()
	line := func(seq uint64) []byte { l := appendLine(nil, seq, now); return l[:len(l)-1] }
	tl := bh.Reset(3, true)
	post := func(body []byte) int {
		t.Helper()
		req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, bh.PushURL(), bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post(snappy.Encode(nil, pushRequest([][]byte{line(0), line(1)}))); code != http.StatusNoContent {
		t.Fatalf("push: HTTP %d", code)
	}
	select {
	case <-tl.complete:
		t.Fatal("complete after 2 of 3 lines")
	default:
	}
	// A retry of the first batch, one new line, one foreign line.
	body := snappy.Encode(nil, pushRequest([][]byte{line(1), line(2), []byte("not ours"), line(7)}))
	if code := post(body); code != http.StatusNoContent {
		t.Fatalf("push: HTTP %d", code)
	}
	select {
	case <-tl.complete:
	default:
		t.Fatal("not complete after every line arrived")
	}
	s := tl.snapshot()
	if s.Unique != 3 || s.Dups != 1 || s.Foreign != 2 || s.Entries != 6 || s.Requests != 2 || s.Missing() != 0 {
		t.Fatalf("snapshot = %+v", s)
	}
	if lat := tl.Latencies(); len(lat) != 3 || lat[0] <= 0 || lat[2] <= 0 {
		t.Fatalf("latencies = %v", lat)
	}
	// Bad bodies are refused and change nothing.
	for name, b := range map[string][]byte{
		"framed snappy": append([]byte("\xff\x06\x00\x00sNaPpY"), 0),
		"not protobuf":  snappy.Encode(nil, []byte{0x0a, 0x7f}),
	} {
		if code := post(b); code != http.StatusBadRequest {
			t.Errorf("%s: HTTP %d, want 400", name, code)
		}
	}
	if s2 := tl.snapshot(); s2.Entries != s.Entries {
		t.Fatalf("a refused body was counted: %+v", s2)
	}
}
