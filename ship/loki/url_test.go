package loki

import (
	"errors"
	"net/url"
	"strings"
	"testing"
)

func TestNormalizeURL(t *testing.T) {
	tests := map[string]struct {
		in, want string
	}{
		"full push url":       {"http://loki:3100/loki/api/v1/push", "http://loki:3100/loki/api/v1/push"},
		"base without path":   {"http://loki:3100", "http://loki:3100/loki/api/v1/push"},
		"base with slash":     {"http://loki:3100/", "http://loki:3100/loki/api/v1/push"},
		"https":               {"https://logs.example.com", "https://logs.example.com/loki/api/v1/push"},
		"upper-case scheme":   {"HTTP://loki:3100", "http://loki:3100/loki/api/v1/push"},
		"victorialogs path":   {"http://127.0.0.1:9428/insert/loki/api/v1/push", "http://127.0.0.1:9428/insert/loki/api/v1/push"},
		"custom path kept":    {"http://gw/tenant1/push", "http://gw/tenant1/push"},
		"query kept on full":  {"http://vl:9428/insert/loki/api/v1/push?disable_message_parsing=1", "http://vl:9428/insert/loki/api/v1/push?disable_message_parsing=1"},
		"query kept on base":  {"http://loki:3100/?x=1&y=2", "http://loki:3100/loki/api/v1/push?x=1&y=2"},
		"query kept, no path": {"http://loki:3100?x=1", "http://loki:3100/loki/api/v1/push?x=1"},
		"fragment dropped":    {"http://loki:3100/#frag", "http://loki:3100/loki/api/v1/push"},
		"userinfo kept":       {"http://u:p@loki:3100", "http://u:p@loki:3100/loki/api/v1/push"},
		"ipv6 host":           {"http://[::1]:3100", "http://[::1]:3100/loki/api/v1/push"},
		"surrounding spaces":  {"  http://loki:3100  ", "http://loki:3100/loki/api/v1/push"},
		"escaped path kept":   {"http://gw/a%2Fb/push", "http://gw/a%2Fb/push"},
		"no port":             {"http://loki", "http://loki/loki/api/v1/push"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := NormalizeURL(tt.in)
			if err != nil || got != tt.want {
				t.Fatalf("NormalizeURL(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestNormalizeURLErrors(t *testing.T) {
	tests := map[string]struct {
		in, wantMsg string
	}{
		"empty":               {"", "empty"},
		"blank":               {"   ", "empty"},
		"ftp":                 {"ftp://loki/", `unsupported scheme "ftp"`},
		"unix":                {"unix:///var/run/loki.sock", "unsupported scheme"},
		"host:port only":      {"loki:3100", "unsupported scheme"},
		"no scheme":           {"//loki:3100/push", "missing scheme"},
		"relative path":       {"/loki/api/v1/push", "missing scheme"},
		"no host":             {"http:///loki/api/v1/push", "missing host"},
		"port without host":   {"http://:3100/", "missing host"},
		"opaque":              {"http:loki", "missing host"},
		"bad port":            {"http://loki:port/", "invalid port"},
		"control character":   {"http://loki/\x7f", "invalid control character"},
		"secret not echoed":   {"http://user:s3cret@loki:bad/", "invalid port"},
		"secret not echoed 2": {"ftp://user:s3cret@loki/", "unsupported scheme"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := NormalizeURL(tt.in)
			if err == nil {
				t.Fatalf("NormalizeURL(%q) = %q; want an error", tt.in, got)
			}
			if !errors.Is(err, ErrBadURL) {
				t.Fatalf("error %v does not wrap ErrBadURL", err)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("error %q; want it to mention %q", err, tt.wantMsg)
			}
			if strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "user") {
				t.Fatalf("error %q leaks userinfo", err)
			}
		})
	}
}

func FuzzNormalizeURL(f *testing.F) {
	for _, s := range []string{"http://loki:3100", "https://u:p@h/x?y#z", "loki:3100", "http://[::1", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out, err := NormalizeURL(in)
		if err != nil {
			return
		}
		u, perr := url.Parse(out)
		if perr != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" || u.Path == "" || u.Path == "/" {
			t.Fatalf("NormalizeURL(%q) = %q: not a usable push URL", in, out)
		}
		if again, err := NormalizeURL(out); err != nil || again != out {
			t.Fatalf("not idempotent: %q -> %q -> %q, %v", in, out, again, err)
		}
	})
}
