package api

import (
	"net/http"
	"strings"
	"testing"
)

func FuzzDecodeReprocess(f *testing.F) {
	for _, s := range []string{"", "{}", `{"sink":"loki","ids":[1,2],"limit":3,"dry_run":true}`, `{"limit":-1}`, `{} {}`, `{"x":1}`, "[", "null"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, status, err := decodeReprocess(strings.NewReader(string(body)))
		if err != nil {
			if status != http.StatusBadRequest && status != http.StatusRequestEntityTooLarge {
				t.Fatalf("error %v with status %d", err, status)
			}
			return
		}
		if status != 0 || req.Limit < 0 {
			t.Fatalf("accepted %+v with status %d", req, status)
		}
	})
}

func FuzzBearerToken(f *testing.F) {
	for _, s := range []string{"", "Bearer abc", "bearer  abc ", "Basic abc", "Bearer", "Bearer ", "BEARER x y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		token, ok := bearerToken(header)
		if !ok {
			if token != "" {
				t.Fatalf("rejected header %q but returned token %q", header, token)
			}
			return
		}
		if token == "" || token != strings.TrimSpace(token) {
			t.Fatalf("header %q gave token %q", header, token)
		}
		if !strings.Contains(header, token) {
			t.Fatalf("token %q not from header %q", token, header)
		}
	})
}
