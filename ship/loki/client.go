package loki

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Defaults for ClientConfig.
const (
	DefaultTimeout     = 10 * time.Second
	DefaultConcurrency = 4
	DefaultUserAgent   = "log_capturer_go"
)

const (
	// maxBodyLine bounds the response line kept for messages (as Promtail).
	maxBodyLine = 1024
	// maxDrain bounds how much of a response is read so the connection can
	// be reused; a longer body costs one connection, not unbounded reading.
	// It is also the most of an error body kept in Result.Text.
	maxDrain = 64 << 10
	// maxRetryAfter bounds a parsed Retry-After so arithmetic cannot overflow.
	maxRetryAfter = 24 * time.Hour
)

// ErrConfig is wrapped by every ClientConfig.Validate error.
var ErrConfig = errors.New("loki: invalid client config")

// ClientConfig configures a Client. Zero values mean the defaults.
type ClientConfig struct {
	// URL is the push URL or a base URL (see NormalizeURL). Userinfo in it
	// is used as basic auth when no other auth is set, and is stripped.
	URL string
	// TenantID is sent as X-Scope-OrgID when not empty.
	TenantID string
	// Timeout bounds one push, response included (default 10s).
	Timeout time.Duration
	// Concurrency is how many pushes may run at once; it sizes the idle
	// connection pool so that each can reuse a connection (default 4).
	Concurrency int

	BasicAuthUser     string
	BasicAuthPassword string
	BearerToken       string

	// CAFile holds PEM certificates that replace the system roots.
	CAFile string
	// InsecureSkipVerify disables TLS certificate checks. Tests only.
	InsecureSkipVerify bool

	// UserAgent defaults to DefaultUserAgent.
	UserAgent string
	// Headers are added to every request. They may not replace the headers
	// the client owns (see Validate).
	Headers map[string]string
}

// reservedHeaders are set by the client itself; Headers may not override
// them, so that a config cannot break the wire format or leak auth twice.
var reservedHeaders = [...]string{
	"Content-Type", "Content-Encoding", "Content-Length", "Transfer-Encoding",
	"Host", "Authorization", "X-Scope-Orgid", "Connection",
}

// Validate checks the configuration without touching the network or disk.
// Messages never include secrets or the URL's userinfo.
func (c ClientConfig) Validate() error {
	_, err := c.resolve()
	return err
}

// resolved is a validated ClientConfig with defaults applied.
type resolved struct {
	url         *url.URL // without userinfo
	timeout     time.Duration
	concurrency int
	auth        string // Authorization header value, or ""
	header      http.Header
}

func (c ClientConfig) resolve() (*resolved, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrConfig}, args...)...)
	}
	norm, err := NormalizeURL(c.URL)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	u, err := url.Parse(norm)
	if err != nil { // cannot happen: NormalizeURL just parsed it
		return nil, bad("url: %v", errors.Unwrap(err))
	}
	r := &resolved{url: u, timeout: c.Timeout, concurrency: c.Concurrency}
	if r.timeout == 0 {
		r.timeout = DefaultTimeout
	}
	if r.timeout < 0 {
		return nil, bad("negative timeout")
	}
	if r.concurrency == 0 {
		r.concurrency = DefaultConcurrency
	}
	if r.concurrency < 0 {
		return nil, bad("negative concurrency")
	}

	if r.auth, err = authHeader(u, c.BasicAuthUser, c.BasicAuthPassword, c.BearerToken); err != nil {
		return nil, err
	}

	r.header = make(http.Header, 4+len(c.Headers))
	for name, value := range c.Headers {
		if !validHeaderName(name) {
			return nil, bad("header name %q is not a valid token", name)
		}
		if !validHeaderValue(value) {
			return nil, bad("header %q has control characters in its value", name)
		}
		canon := http.CanonicalHeaderKey(name)
		for _, res := range reservedHeaders {
			if canon == res {
				return nil, bad("header %q is set by the client; use the dedicated setting", canon)
			}
		}
		r.header.Set(canon, value)
	}
	if !validHeaderValue(c.TenantID) {
		return nil, bad("tenant id has control characters")
	}
	if strings.Contains(c.TenantID, "|") {
		return nil, bad("tenant id %q: a push goes to exactly one tenant", c.TenantID)
	}
	ua := c.UserAgent
	if ua == "" {
		ua = DefaultUserAgent
	}
	if !validHeaderValue(ua) {
		return nil, bad("user agent has control characters")
	}
	r.header.Set("Content-Type", "application/x-protobuf")
	r.header.Set("User-Agent", ua)
	if c.TenantID != "" {
		r.header.Set("X-Scope-OrgID", c.TenantID)
	}
	if r.auth != "" {
		r.header.Set("Authorization", r.auth)
	}
	return r, nil
}

// authHeader returns the Authorization value for the configured basic
// auth, bearer token or userinfo of u (which it strips from u), or "".
func authHeader(u *url.URL, user, pass, bearer string) (string, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrConfig}, args...)...)
	}
	if u.User != nil {
		if user != "" || pass != "" || bearer != "" {
			return "", bad("url carries credentials and basic auth or a bearer token is also set")
		}
		user = u.User.Username()
		pass, _ = u.User.Password()
		u.User = nil
	}
	auth := ""
	switch {
	case user != "" && bearer != "":
		return "", bad("both basic auth and a bearer token are set")
	case user == "" && pass != "":
		return "", bad("basic auth password set without a user")
	case user != "":
		auth = "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
	case bearer != "":
		auth = "Bearer " + bearer
	}
	if !validHeaderValue(auth) {
		return "", bad("auth credentials contain control characters")
	}
	return auth, nil
}

// newTransport builds the HTTP transport of a client: TLS roots from
// caFile (PEM) when set, an idle pool sized for concurrency, no gzip.
func newTransport(timeout time.Duration, concurrency int, caFile string, insecure bool) (*http.Transport, error) {
	tlsCfg := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: insecure, //nolint:gosec // explicit opt-in for tests
	}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("loki: read ca file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: ca file %s holds no PEM certificate", ErrConfig, caFile)
		}
		tlsCfg.RootCAs = pool
	}
	dialer := &net.Dialer{Timeout: min(timeout, 10*time.Second), KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		TLSClientConfig:       tlsCfg,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          max(100, concurrency),
		MaxIdleConnsPerHost:   concurrency,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		// Responses are tiny; asking for gzip would only cost CPU.
		DisableCompression: true,
	}, nil
}

// Client pushes encoded requests to one Loki endpoint. It is safe for
// concurrent use and starts no goroutines of its own (idle connections are
// owned by its transport; Close releases them).
type Client struct {
	url       string // the full push URL, userinfo stripped
	redacted  string // for messages
	header    http.Header
	http      *http.Client
	transport *http.Transport
	now       func() time.Time
}

// NewClient validates cfg, loads the CA file and builds the HTTP client.
func NewClient(cfg ClientConfig) (*Client, error) {
	r, err := cfg.resolve()
	if err != nil {
		return nil, err
	}
	tr, err := newTransport(r.timeout, r.concurrency, cfg.CAFile, cfg.InsecureSkipVerify)
	if err != nil {
		return nil, err
	}
	return &Client{
		url:      r.url.String(),
		redacted: redactURL(r.url),
		header:   r.header,
		http: &http.Client{
			Transport: tr,
			Timeout:   r.timeout,
			// A redirected POST becomes a GET for 301-303; report the 3xx
			// instead of silently losing the body.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		transport: tr,
		now:       time.Now,
	}, nil
}

// URL returns the push URL without userinfo or query, for logs.
func (c *Client) URL() string { return c.redacted }

// Close releases idle connections. Pushes still running are not affected.
func (c *Client) Close() { c.transport.CloseIdleConnections() }

// Class says what the sender should do with a batch after a push.
type Class uint8

const (
	// Ack: the server took the request (any 2xx). Loki's 260 (ingestion
	// blocked) is an ack too: the data was deliberately dropped and
	// retrying cannot help; Result.Status tells it apart.
	Ack Class = iota + 1
	// Retry: a transport error, a timeout, 429 or 5xx. The batch may have
	// been partly or wholly ingested (a timeout after the server read it),
	// so a retry may duplicate.
	Retry
	// Permanent: any other status (4xx, 3xx, 1xx). Loki may have ingested
	// the valid entries of a 400 already; retrying only duplicates or fails.
	Permanent
)

func (c Class) String() string {
	switch c {
	case Ack:
		return "ack"
	case Retry:
		return "retry"
	case Permanent:
		return "permanent"
	}
	return "Class(" + strconv.Itoa(int(c)) + ")"
}

// Result is the outcome of one push.
type Result struct {
	Status     int   // HTTP status, 0 for a transport error
	Err        error // nil for Ack
	Class      Class
	RetryAfter time.Duration // from Retry-After, 0 if absent
	Body       string        // first line of the response body, ≤1024 bytes
	// Text is the response body of a non-2xx answer, at most 64 KiB, for
	// parsing which entries Loki rejected (ParseRejections). TextTruncated
	// says the body was longer.
	Text          string
	TextTruncated bool
}

// StatusError is Result.Err for a non-2xx response.
type StatusError struct {
	Status     int
	StatusText string // e.g. "400 Bad Request"
	Body       string // first line of the body
}

func (e *StatusError) Error() string {
	if e.Body == "" {
		return fmt.Sprintf("loki: server returned HTTP status %s (%d)", e.StatusText, e.Status)
	}
	return fmt.Sprintf("loki: server returned HTTP status %s (%d): %s", e.StatusText, e.Status, e.Body)
}

// Push sends body, a snappy-compressed PushRequest, in one POST. It never
// retries: the caller owns the retry loop and uses Result.Class. When ctx
// ends the result is Retry with an error wrapping ctx's error.
func (c *Client) Push(ctx context.Context, body []byte) Result {
	// A fresh reader per call: Content-Length is known and a retry never
	// sees a half-consumed body.
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return Result{Class: Permanent, Err: fmt.Errorf("loki: build request: %w", err)}
	}
	req.Header = c.header.Clone()

	resp, err := c.http.Do(req)
	if err != nil {
		// url.Error carries the request URL (query and, with Go's
		// redaction, the user name); report the cause only.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return Result{Class: Retry, Err: fmt.Errorf("loki: push to %s: %w", c.redacted, err)}
	}
	res := Result{Status: resp.StatusCode, Class: Classify(resp.StatusCode)}
	if res.Class == Ack {
		res.Body = readFirstLine(resp)
		_ = resp.Body.Close()
		return res
	}
	res.Text, res.TextTruncated = readText(resp)
	_ = resp.Body.Close()
	line := firstLine([]byte(res.Text))
	res.Body = line
	res.Err = &StatusError{Status: resp.StatusCode, StatusText: statusText(resp), Body: line}
	if res.Class == Retry {
		res.RetryAfter = ParseRetryAfter(resp.Header.Get("Retry-After"), c.now())
	}
	return res
}

// Classify maps an HTTP status to a Class (PROTOCOLS.md A6).
func Classify(status int) Class {
	switch {
	case status >= 200 && status < 300:
		return Ack
	case status == http.StatusTooManyRequests, status >= 500 && status < 600:
		return Retry
	}
	return Permanent
}

func statusText(resp *http.Response) string {
	if resp.Status != "" {
		return resp.Status
	}
	return strconv.Itoa(resp.StatusCode) + " " + http.StatusText(resp.StatusCode)
}

// readFirstLine returns the first line of resp's body (at most maxBodyLine
// bytes) and drains up to maxDrain bytes so the connection can go back to
// the pool.
func readFirstLine(resp *http.Response) string {
	if resp.ContentLength == 0 {
		return ""
	}
	buf := make([]byte, maxBodyLine)
	n, _ := io.ReadFull(resp.Body, buf)
	_, _ = io.CopyN(io.Discard, resp.Body, maxDrain)
	return firstLine(buf[:n])
}

// readText reads up to maxDrain bytes of resp's body as valid UTF-8 and
// reports whether more followed (the rest is not read: the connection is
// then not reused, which is rare and cheap).
func readText(resp *http.Response) (string, bool) {
	if resp.ContentLength == 0 {
		return "", false
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxDrain+1))
	truncated := len(b) > maxDrain
	if truncated {
		b = trimPartialRune(b[:maxDrain])
	}
	return strings.ToValidUTF8(string(b), "\uFFFD"), truncated
}

// firstLine returns the first line of b, at most maxBodyLine bytes, trimmed
// and valid UTF-8.
func firstLine(b []byte) string {
	if len(b) >= maxBodyLine {
		b = b[:maxBodyLine]
		if bytes.IndexByte(b, '\n') < 0 {
			b = trimPartialRune(b)
		}
	}
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		b = b[:i]
	}
	return strings.ToValidUTF8(strings.TrimSpace(string(b)), "\uFFFD")
}

// trimPartialRune drops a multi-byte rune cut short at the end of b.
func trimPartialRune(b []byte) []byte {
	for k := 1; k <= utf8.UTFMax && k <= len(b); k++ {
		if utf8.RuneStart(b[len(b)-k]) {
			if !utf8.FullRune(b[len(b)-k:]) {
				return b[:len(b)-k]
			}
			break
		}
	}
	return b
}

// ParseRetryAfter parses a Retry-After value, either delay-seconds or an
// HTTP-date, relative to now. Absent, malformed or past values give 0;
// values are capped at 24h.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if v[0] >= '0' && v[0] <= '9' {
		secs, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			var nerr *strconv.NumError
			if errors.As(err, &nerr) && errors.Is(nerr.Err, strconv.ErrRange) {
				return maxRetryAfter
			}
			return 0
		}
		if secs >= uint64(maxRetryAfter/time.Second) {
			return maxRetryAfter
		}
		return time.Duration(secs) * time.Second
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0
	}
	d := t.Sub(now)
	if d <= 0 {
		return 0
	}
	return min(d, maxRetryAfter)
}

// validHeaderName reports whether s is an RFC 7230 token.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

// validHeaderValue rejects control characters (CR/LF would let a config
// value inject headers; net/http would refuse them later with an error
// that echoes the value).
func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}
