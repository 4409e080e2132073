package loki

import (
	"bytes"
	"context"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/golang/snappy"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// captured is what the test server saw of one request.
type captured struct {
	method, path, query string
	header              http.Header
	contentLength       int64
	body                []byte
}

// recorder is an httptest server that records requests and answers with
// the handler's status.
type recorder struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []captured
}

func newRecorder(t *testing.T, answer http.HandlerFunc) *recorder {
	t.Helper()
	r := &recorder{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.reqs = append(r.reqs, captured{
			method: req.Method, path: req.URL.Path, query: req.URL.RawQuery,
			header: req.Header.Clone(), contentLength: req.ContentLength, body: body,
		})
		r.mu.Unlock()
		answer(w, req)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *recorder) last(t *testing.T) captured {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.reqs) == 0 {
		t.Fatal("server saw no request")
	}
	return r.reqs[len(r.reqs)-1]
}

func newClient(t *testing.T, cfg ClientConfig) *Client {
	t.Helper()
	c, err := NewClient(cfg)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

func goldenBody(t *testing.T) []byte {
	t.Helper()
	b, err := Compress(nil, AppendPushRequest(nil, goldenStreams()))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func respond(status int, body string, header ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

func TestPushClassification(t *testing.T) {
	now := time.Date(2025, 8, 1, 12, 0, 0, 0, time.UTC)
	longBody := "a" + strings.Repeat("é", 1000) // one line; byte 1024 splits an é
	tests := map[string]struct {
		handler    http.HandlerFunc
		class      Class
		status     int
		retryAfter time.Duration
		body       string
		err        string // exact Err.Error(), "" for nil
	}{
		"204 no content":        {respond(204, ""), Ack, 204, 0, "", ""},
		"200 with body":         {respond(200, "fine\n"), Ack, 200, 0, "fine", ""},
		"260 blocked ingestion": {respond(260, "ingestion blocked\n"), Ack, 260, 0, "ingestion blocked", ""},
		"400 first line only": {
			respond(400, "entry with timestamp 2025 ignored, reason: 'entry too far behind'\nuser 'x', total ignored: 1 out of 1\n"),
			Permanent, 400, 0, "entry with timestamp 2025 ignored, reason: 'entry too far behind'",
			"loki: server returned HTTP status 400 Bad Request (400): entry with timestamp 2025 ignored, reason: 'entry too far behind'",
		},
		"401": {respond(401, "no org id"), Permanent, 401, 0, "no org id",
			"loki: server returned HTTP status 401 Unauthorized (401): no org id"},
		"403": {respond(403, ""), Permanent, 403, 0, "",
			"loki: server returned HTTP status 403 Forbidden (403)"},
		"404": {respond(404, "404 page not found"), Permanent, 404, 0, "404 page not found",
			"loki: server returned HTTP status 404 Not Found (404): 404 page not found"},
		"413": {respond(413, "request too large"), Permanent, 413, 0, "request too large",
			"loki: server returned HTTP status 413 Request Entity Too Large (413): request too large"},
		"429 without retry-after": {respond(429, "Ingestion rate limit exceeded"), Retry, 429, 0, "Ingestion rate limit exceeded",
			"loki: server returned HTTP status 429 Too Many Requests (429): Ingestion rate limit exceeded"},
		"429 retry-after seconds": {respond(429, "slow down", "Retry-After", "7"), Retry, 429, 7 * time.Second, "slow down",
			"loki: server returned HTTP status 429 Too Many Requests (429): slow down"},
		"429 retry-after http-date": {respond(429, "", "Retry-After", now.Add(90*time.Second).Format(http.TimeFormat)),
			Retry, 429, 90 * time.Second, "", "loki: server returned HTTP status 429 Too Many Requests (429)"},
		"429 retry-after in the past": {respond(429, "", "Retry-After", now.Add(-time.Hour).Format(http.TimeFormat)),
			Retry, 429, 0, "", "loki: server returned HTTP status 429 Too Many Requests (429)"},
		"429 retry-after garbage": {respond(429, "", "Retry-After", "soon"), Retry, 429, 0, "",
			"loki: server returned HTTP status 429 Too Many Requests (429)"},
		"500": {respond(500, "rpc error: code = Unavailable\n"), Retry, 500, 0, "rpc error: code = Unavailable",
			"loki: server returned HTTP status 500 Internal Server Error (500): rpc error: code = Unavailable"},
		"502": {respond(502, ""), Retry, 502, 0, "", "loki: server returned HTTP status 502 Bad Gateway (502)"},
		"503 with retry-after": {respond(503, "unavailable", "Retry-After", "120"), Retry, 503, 2 * time.Minute, "unavailable",
			"loki: server returned HTTP status 503 Service Unavailable (503): unavailable"},
		"400 ignores retry-after": {respond(400, "bad", "Retry-After", "5"), Permanent, 400, 0, "bad",
			"loki: server returned HTTP status 400 Bad Request (400): bad"},
		"redirect not followed": {respond(302, "", "Location", "/elsewhere"), Permanent, 302, 0, "",
			"loki: server returned HTTP status 302 Found (302)"},
		"long body cut on a rune": {respond(400, longBody), Permanent, 400, 0, "a" + strings.Repeat("é", 511),
			"loki: server returned HTTP status 400 Bad Request (400): a" + strings.Repeat("é", 511)},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv := newRecorder(t, tt.handler)
			c := newClient(t, ClientConfig{URL: srv.URL})
			c.now = func() time.Time { return now }
			res := c.Push(t.Context(), goldenBody(t))
			if res.Class != tt.class || res.Status != tt.status || res.RetryAfter != tt.retryAfter || res.Body != tt.body {
				t.Fatalf("Push = {class %v status %d retryAfter %v body %q}; want {%v %d %v %q}",
					res.Class, res.Status, res.RetryAfter, res.Body, tt.class, tt.status, tt.retryAfter, tt.body)
			}
			if len(res.Body) > maxBodyLine || !utf8.ValidString(res.Body) {
				t.Fatalf("Body is %d bytes, valid UTF-8 %v", len(res.Body), utf8.ValidString(res.Body))
			}
			switch {
			case tt.err == "" && res.Err != nil:
				t.Fatalf("Err = %v; want nil", res.Err)
			case tt.err != "":
				if res.Err == nil || res.Err.Error() != tt.err {
					t.Fatalf("Err = %v;\nwant %s", res.Err, tt.err)
				}
				var se *StatusError
				if !errors.As(res.Err, &se) || se.Status != tt.status {
					t.Fatalf("Err %v is not a *StatusError with status %d", res.Err, tt.status)
				}
			}
		})
	}
}

func TestPushRequestShape(t *testing.T) {
	body := goldenBody(t)
	tests := map[string]struct {
		cfg        ClientConfig
		wantHeader map[string]string // "" means absent
		wantQuery  string
	}{
		"defaults": {
			cfg: ClientConfig{},
			wantHeader: map[string]string{
				"Content-Type": "application/x-protobuf", "Content-Encoding": "",
				"X-Scope-Orgid": "", "Authorization": "", "User-Agent": DefaultUserAgent,
			},
		},
		"tenant": {
			cfg:        ClientConfig{TenantID: "team-a"},
			wantHeader: map[string]string{"X-Scope-Orgid": "team-a"},
		},
		"basic auth": {
			cfg:        ClientConfig{BasicAuthUser: "alice", BasicAuthPassword: "pa:ss"},
			wantHeader: map[string]string{"Authorization": "Basic YWxpY2U6cGE6c3M="},
		},
		"bearer": {
			cfg:        ClientConfig{BearerToken: "tok123"},
			wantHeader: map[string]string{"Authorization": "Bearer tok123"},
		},
		"user agent and extra headers": {
			cfg: ClientConfig{UserAgent: "agent/1.0", Headers: map[string]string{"x-extra": "1", "X-Other": "two"}},
			wantHeader: map[string]string{
				"User-Agent": "agent/1.0", "X-Extra": "1", "X-Other": "two",
			},
		},
		"query string kept": {
			cfg:       ClientConfig{},
			wantQuery: "disable_message_parsing=1",
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv := newRecorder(t, respond(204, ""))
			cfg := tt.cfg
			cfg.URL = srv.URL
			if tt.wantQuery != "" {
				cfg.URL = srv.URL + "/loki/api/v1/push?" + tt.wantQuery
			}
			c := newClient(t, cfg)
			if res := c.Push(t.Context(), body); res.Class != Ack {
				t.Fatalf("Push = %+v; want Ack", res)
			}
			got := srv.last(t)
			if got.method != http.MethodPost || got.path != PushPath || got.query != tt.wantQuery {
				t.Fatalf("request %s %s?%s; want POST %s?%s", got.method, got.path, got.query, PushPath, tt.wantQuery)
			}
			for k, want := range tt.wantHeader {
				if v := got.header.Get(k); v != want {
					t.Errorf("header %s = %q; want %q", k, v, want)
				}
			}
			if got.contentLength != int64(len(body)) {
				t.Errorf("Content-Length = %d; want %d", got.contentLength, len(body))
			}
			pb, err := snappy.Decode(nil, got.body)
			if err != nil {
				t.Fatalf("body is not snappy block data: %v", err)
			}
			if !bytes.Equal(pb, mustHex(t, goldenProto)) {
				t.Fatalf("body decodes to %x; want %s", pb, goldenProto)
			}
		})
	}
}

func TestPushUserinfoBecomesBasicAuth(t *testing.T) {
	srv := newRecorder(t, respond(204, ""))
	u := strings.Replace(srv.URL, "http://", "http://bob:s3cret@", 1)
	c := newClient(t, ClientConfig{URL: u})
	if strings.Contains(c.URL(), "s3cret") || strings.Contains(c.URL(), "bob") {
		t.Fatalf("URL() = %q leaks userinfo", c.URL())
	}
	if res := c.Push(t.Context(), goldenBody(t)); res.Class != Ack {
		t.Fatalf("Push = %+v", res)
	}
	req, _ := http.NewRequest(http.MethodGet, "/", nil)
	req.Header = srv.last(t).header
	user, pass, ok := req.BasicAuth()
	if !ok || user != "bob" || pass != "s3cret" {
		t.Fatalf("basic auth = %q %q %v; want bob s3cret", user, pass, ok)
	}
}

func TestPushFreshBodyEachCall(t *testing.T) {
	srv := newRecorder(t, respond(503, "again"))
	c := newClient(t, ClientConfig{URL: srv.URL})
	body := goldenBody(t)
	for i := range 3 {
		if res := c.Push(t.Context(), body); res.Class != Retry {
			t.Fatalf("push %d: %+v", i, res)
		}
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	for i, r := range srv.reqs {
		if !bytes.Equal(r.body, body) {
			t.Fatalf("request %d body %x; want %x", i, r.body, body)
		}
	}
	if len(srv.reqs) != 3 {
		t.Fatalf("server saw %d requests; want 3 (Push must not retry)", len(srv.reqs))
	}
}

func TestPushReusesConnections(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(respond(400, strings.Repeat("x", 20_000)+"\n"+strings.Repeat("y", 20_000)))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	c := newClient(t, ClientConfig{URL: srv.URL})
	for i := range 5 {
		if res := c.Push(t.Context(), goldenBody(t)); res.Class != Permanent {
			t.Fatalf("push %d: %+v", i, res)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("5 sequential pushes opened %d connections; want 1 (body not drained?)", n)
	}
}

func TestPushTransportFailures(t *testing.T) {
	t.Run("hanging server times out", func(t *testing.T) {
		release := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-release:
			}
		}))
		t.Cleanup(srv.Close)
		t.Cleanup(func() { close(release) })
		c := newClient(t, ClientConfig{URL: srv.URL, Timeout: 100 * time.Millisecond})
		res := c.Push(t.Context(), goldenBody(t))
		var ne net.Error
		if res.Class != Retry || res.Status != 0 || !errors.As(res.Err, &ne) || !ne.Timeout() {
			t.Fatalf("Push = %+v; want Retry with a timeout error", res)
		}
	})
	t.Run("server closes the connection", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				_ = conn.Close()
			}
		}))
		t.Cleanup(srv.Close)
		c := newClient(t, ClientConfig{URL: srv.URL})
		res := c.Push(t.Context(), goldenBody(t))
		if res.Class != Retry || res.Status != 0 || res.Err == nil {
			t.Fatalf("Push = %+v; want Retry with an error", res)
		}
	})
	t.Run("connection refused", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		_ = l.Close()
		c := newClient(t, ClientConfig{URL: "http://joe:hunter2@" + addr + "/?token=qsecret"})
		res := c.Push(t.Context(), goldenBody(t))
		if res.Class != Retry || res.Err == nil {
			t.Fatalf("Push = %+v; want Retry", res)
		}
		for _, secret := range []string{"hunter2", "joe", "qsecret"} {
			if strings.Contains(res.Err.Error(), secret) {
				t.Fatalf("error %q leaks %q", res.Err, secret)
			}
		}
	})
	t.Run("canceled context", func(t *testing.T) {
		srv := newRecorder(t, respond(204, ""))
		c := newClient(t, ClientConfig{URL: srv.URL})
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		res := c.Push(ctx, goldenBody(t))
		if res.Class != Retry || !errors.Is(res.Err, context.Canceled) {
			t.Fatalf("Push = %+v; want Retry wrapping context.Canceled", res)
		}
	})
	t.Run("truncated response", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			conn, buf, err := w.(http.Hijacker).Hijack()
			if err != nil {
				return
			}
			_, _ = buf.WriteString("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 100\r\n\r\npartial")
			_ = buf.Flush()
			_ = conn.Close()
		}))
		t.Cleanup(srv.Close)
		c := newClient(t, ClientConfig{URL: srv.URL})
		res := c.Push(t.Context(), goldenBody(t))
		if res.Class != Retry || res.Status != 503 || res.Body != "partial" {
			t.Fatalf("Push = %+v; want Retry 503 with the partial body", res)
		}
	})
}

func writeCA(t *testing.T, srv *httptest.Server) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ca.pem")
	data := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPushTLS(t *testing.T) {
	srv := httptest.NewTLSServer(respond(204, ""))
	t.Cleanup(srv.Close)
	ca := writeCA(t, srv)

	t.Run("verified with ca file", func(t *testing.T) {
		c := newClient(t, ClientConfig{URL: srv.URL, CAFile: ca})
		if res := c.Push(t.Context(), goldenBody(t)); res.Class != Ack {
			t.Fatalf("Push = %+v", res)
		}
	})
	t.Run("unknown authority fails by default", func(t *testing.T) {
		c := newClient(t, ClientConfig{URL: srv.URL})
		res := c.Push(t.Context(), goldenBody(t))
		if res.Class != Retry || res.Err == nil || !strings.Contains(res.Err.Error(), "certificate") {
			t.Fatalf("Push = %+v; want a certificate error", res)
		}
	})
	t.Run("insecure skip verify", func(t *testing.T) {
		c := newClient(t, ClientConfig{URL: srv.URL, InsecureSkipVerify: true})
		if res := c.Push(t.Context(), goldenBody(t)); res.Class != Ack {
			t.Fatalf("Push = %+v", res)
		}
	})
	t.Run("missing ca file", func(t *testing.T) {
		if _, err := NewClient(ClientConfig{URL: srv.URL, CAFile: filepath.Join(t.TempDir(), "none.pem")}); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("NewClient = %v; want not-exist", err)
		}
	})
	t.Run("ca file without certificates", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "bad.pem")
		if err := os.WriteFile(p, []byte("not pem"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := NewClient(ClientConfig{URL: srv.URL, CAFile: p}); !errors.Is(err, ErrConfig) {
			t.Fatalf("NewClient = %v; want ErrConfig", err)
		}
	})
}

func TestClientConfigValidate(t *testing.T) {
	tests := map[string]struct {
		cfg     ClientConfig
		wantMsg string // "" means valid
	}{
		"minimal":                {ClientConfig{URL: "http://127.0.0.1:3100"}, ""},
		"everything":             {ClientConfig{URL: "https://127.0.0.1/x", TenantID: "t1", Timeout: time.Second, Concurrency: 8, BasicAuthUser: "u", BasicAuthPassword: "p", UserAgent: "ua", Headers: map[string]string{"X-A": "b"}}, ""},
		"user without password":  {ClientConfig{URL: "http://127.0.0.1", BasicAuthUser: "u"}, ""},
		"empty url":              {ClientConfig{}, "empty"},
		"bad scheme":             {ClientConfig{URL: "ftp://127.0.0.1"}, "unsupported scheme"},
		"negative timeout":       {ClientConfig{URL: "http://127.0.0.1", Timeout: -1}, "negative timeout"},
		"negative concurrency":   {ClientConfig{URL: "http://127.0.0.1", Concurrency: -1}, "negative concurrency"},
		"basic and bearer":       {ClientConfig{URL: "http://127.0.0.1", BasicAuthUser: "u", BasicAuthPassword: "pw-secret", BearerToken: "tok-secret"}, "both basic auth and a bearer token"},
		"password without user":  {ClientConfig{URL: "http://127.0.0.1", BasicAuthPassword: "pw-secret"}, "password set without a user"},
		"userinfo and basic":     {ClientConfig{URL: "http://x:url-secret@127.0.0.1", BasicAuthUser: "u"}, "url carries credentials"},
		"userinfo and bearer":    {ClientConfig{URL: "http://x:url-secret@127.0.0.1", BearerToken: "tok-secret"}, "url carries credentials"},
		"bearer with newline":    {ClientConfig{URL: "http://127.0.0.1", BearerToken: "tok-secret\r\nX-Evil: 1"}, "control characters"},
		"reserved content-type":  {ClientConfig{URL: "http://127.0.0.1", Headers: map[string]string{"content-type": "application/json"}}, `"Content-Type" is set by the client`},
		"reserved encoding":      {ClientConfig{URL: "http://127.0.0.1", Headers: map[string]string{"Content-Encoding": "gzip"}}, "set by the client"},
		"reserved authorization": {ClientConfig{URL: "http://127.0.0.1", Headers: map[string]string{"authorization": "Bearer tok-secret"}}, "set by the client"},
		"reserved tenant":        {ClientConfig{URL: "http://127.0.0.1", Headers: map[string]string{"X-Scope-OrgID": "t"}}, "set by the client"},
		"header crlf value":      {ClientConfig{URL: "http://127.0.0.1", Headers: map[string]string{"X-A": "a\r\nb"}}, "control characters"},
		"header bad name":        {ClientConfig{URL: "http://127.0.0.1", Headers: map[string]string{"X A": "b"}}, "not a valid token"},
		"header empty name":      {ClientConfig{URL: "http://127.0.0.1", Headers: map[string]string{"": "b"}}, "not a valid token"},
		"multi tenant":           {ClientConfig{URL: "http://127.0.0.1", TenantID: "a|b"}, "exactly one tenant"},
		"tenant newline":         {ClientConfig{URL: "http://127.0.0.1", TenantID: "a\nb"}, "control characters"},
		"user agent newline":     {ClientConfig{URL: "http://127.0.0.1", UserAgent: "a\nb"}, "control characters"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.wantMsg == "" {
				if err != nil {
					t.Fatalf("Validate() = %v; want nil", err)
				}
				return
			}
			if err == nil || !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("Validate() = %v; want ErrConfig mentioning %q", err, tt.wantMsg)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Fatalf("error %q leaks a secret", err)
			}
			if _, nerr := NewClient(tt.cfg); nerr == nil {
				t.Fatal("NewClient accepted a config Validate rejects")
			}
		})
	}
}

func TestNewClientDefaults(t *testing.T) {
	c := newClient(t, ClientConfig{URL: "http://127.0.0.1:1"})
	if c.http.Timeout != DefaultTimeout {
		t.Errorf("Timeout = %v; want %v", c.http.Timeout, DefaultTimeout)
	}
	if c.transport.MaxIdleConnsPerHost < DefaultConcurrency {
		t.Errorf("MaxIdleConnsPerHost = %d; want ≥ %d", c.transport.MaxIdleConnsPerHost, DefaultConcurrency)
	}
	if c.transport.TLSClientConfig.InsecureSkipVerify {
		t.Error("TLS verification off by default")
	}
	c16 := newClient(t, ClientConfig{URL: "http://127.0.0.1:1", Concurrency: 16})
	if c16.transport.MaxIdleConnsPerHost < 16 {
		t.Errorf("MaxIdleConnsPerHost = %d; want ≥ 16", c16.transport.MaxIdleConnsPerHost)
	}
	if got := c.URL(); got != "http://127.0.0.1:1"+PushPath {
		t.Errorf("URL() = %q", got)
	}
}

func TestClassify(t *testing.T) {
	tests := map[int]Class{
		100: Permanent, 199: Permanent, 200: Ack, 204: Ack, 260: Ack, 299: Ack,
		300: Permanent, 304: Permanent, 400: Permanent, 404: Permanent, 408: Permanent,
		413: Permanent, 428: Permanent, 429: Retry, 430: Permanent, 499: Permanent,
		500: Retry, 503: Retry, 504: Retry, 599: Retry, 600: Permanent, 0: Permanent, -1: Permanent,
	}
	for status, want := range tests {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			if got := Classify(status); got != want {
				t.Fatalf("Classify(%d) = %v; want %v", status, got, want)
			}
		})
	}
	if s := Class(0).String(); s != "Class(0)" {
		t.Fatalf("Class(0).String() = %q", s)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2025, 8, 1, 12, 0, 0, 0, time.UTC)
	tests := map[string]struct {
		in   string
		want time.Duration
	}{
		"empty":             {"", 0},
		"seconds":           {"120", 2 * time.Minute},
		"zero":              {"0", 0},
		"spaces":            {"  3 ", 3 * time.Second},
		"negative":          {"-5", 0},
		"fraction":          {"1.5", 0},
		"huge seconds":      {"999999999999999999999999", 24 * time.Hour},
		"day and more":      {"90000", 24 * time.Hour},
		"imf-fixdate":       {"Fri, 01 Aug 2025 12:00:30 GMT", 30 * time.Second},
		"rfc850":            {"Friday, 01-Aug-25 12:01:00 GMT", time.Minute},
		"asctime":           {"Fri Aug  1 12:00:10 2025", 10 * time.Second},
		"date in the past":  {"Fri, 01 Aug 2025 11:00:00 GMT", 0},
		"date far ahead":    {"Fri, 01 Aug 2030 12:00:00 GMT", 24 * time.Hour},
		"garbage":           {"later", 0},
		"digits then words": {"5 seconds", 0},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			if got := ParseRetryAfter(tt.in, now); got != tt.want {
				t.Fatalf("ParseRetryAfter(%q) = %v; want %v", tt.in, got, tt.want)
			}
		})
	}
}

func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{"", "1", "99999999999999999999", "Fri, 01 Aug 2025 12:00:30 GMT", "-1", "1e9"} {
		f.Add(s)
	}
	now := time.Date(2025, 8, 1, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, v string) {
		d := ParseRetryAfter(v, now)
		if d < 0 || d > maxRetryAfter {
			t.Fatalf("ParseRetryAfter(%q) = %v out of [0, %v]", v, d, maxRetryAfter)
		}
	})
}

func TestTrimPartialRune(t *testing.T) {
	tests := map[string]struct{ in, want string }{
		"ascii":              {"abc", "abc"},
		"complete 2-byte":    {"aé", "aé"},
		"cut 2-byte":         {"a\xc3", "a"},
		"cut 3-byte":         {"a\xe6\x97", "a"},
		"cut 4-byte":         {"a\xf0\x9f\x9a", "a"},
		"complete 4-byte":    {"a🚀", "a🚀"},
		"stray continuation": {"a\x80", "a\x80"},
		"empty":              {"", ""},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			if got := string(trimPartialRune([]byte(tt.in))); got != tt.want {
				t.Fatalf("trimPartialRune(%q) = %q; want %q", tt.in, got, tt.want)
			}
		})
	}
}
