package loki

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/logcapturer/log_capturer_go/wal/record"
)

// Probing asks the receiver which lines it already stores. After a crash, a
// shipper does not know the fate of the requests it had in flight: the
// receiver may have stored them without the answer being read. A Prober
// looks them up, one stream at a time, over the exact time range of the
// lines in question, and matches rows on (timestamp to the nanosecond, line
// bytes), counting multiplicity: two identical lines in question and one
// stored row make one line present, not two. Rows of other streams (a
// selector also matches streams with more labels) never count.
//
// A probe can only err towards "not present" (a line sent again, a
// duplicate), never towards "present" without a stored row of the same
// stream, timestamp and bytes: a receiver that rewrites lines (VictoriaLogs
// parses JSON-looking lines unless disable_message_parsing=1) or drops
// empty ones only costs duplicates.

// ProbeEntry is one line in question. Hash is HashLine of the line as
// pushed; Probe sets Present. A Delivered entry is a line known to be
// stored with the same time and bytes as a line in question (a twin): it
// takes a matching row before any other entry does, so that its row is
// never taken for the line in question.
type ProbeEntry struct {
	Time      int64
	Hash      uint64
	Delivered bool
	Present   bool
}

// ProbeStream is the lines in question of one stream. Labels are the
// stream's labels as pushed (extra sink labels included).
type ProbeStream struct {
	Labels  []record.Label
	Entries []ProbeEntry
}

// HashLine is the line hash of ProbeEntry.
func HashLine(line []byte) uint64 { return xxhash.Sum64(line) }

// Prober tells which lines a receiver stores. Implementations are safe for
// concurrent use and start no goroutines.
type Prober interface {
	// Prepare is called once before a round of Probe calls: a receiver
	// that buffers fresh rows makes them searchable (VictoriaLogs'
	// force_flush). An error is not fatal; probing goes on.
	Prepare(ctx context.Context) error
	// Probe sets Present on the entries of s that the receiver stores,
	// and clears it on the others. On error some entries may already be
	// set; those are right (a retry starts over, so that one stored row
	// never counts for two entries).
	Probe(ctx context.Context, s *ProbeStream) error
}

// ErrProbe is wrapped by every error of a probe that reached the receiver
// and got an answer it could not use (status, format, too many rows).
var ErrProbe = errors.New("loki: probe")

// ProbeStatusError is a non-2xx answer to a probe (it wraps ErrProbe).
type ProbeStatusError struct {
	Status int
	Msg    string
}

func (e *ProbeStatusError) Error() string { return e.Msg }
func (e *ProbeStatusError) Unwrap() error { return ErrProbe }

// Retryable reports whether a probe error may go away by itself: a
// transport error or timeout (the receiver is down or restarting), a 429
// or a 5xx. A bad answer or another status will not.
func Retryable(err error) bool {
	if err == nil || errors.Is(err, ErrNotProbeable) {
		return false
	}
	var se *ProbeStatusError
	if errors.As(err, &se) {
		return se.Status == http.StatusTooManyRequests || se.Status >= 500
	}
	return !errors.Is(err, ErrProbe) && !errors.Is(err, ErrConfig)
}

// ErrNotProbeable is returned for a stream whose lines cannot be looked up
// (no label with a value to select it by). Its lines count as not present.
var ErrNotProbeable = errors.New("loki: stream cannot be probed")

// Defaults for ProberConfig.
const (
	DefaultProbeTimeout = 30 * time.Second
	DefaultPageLimit    = 1000
	// maxProbeBody bounds one error body kept for messages.
	maxProbeBody = 4 << 10
)

// ProberConfig configures a prober. Zero values mean the defaults.
type ProberConfig struct {
	// URL is the receiver's base URL for queries (http://loki:3100,
	// http://victorialogs:9428); a path prefix is kept. Userinfo is used
	// as basic auth when no other auth is set, and is stripped.
	URL string
	// TenantID is the push tenant: X-Scope-OrgID for Loki; for
	// VictoriaLogs "A" or "A:P", sent as the AccountID and ProjectID
	// headers (the select API ignores X-Scope-OrgID).
	TenantID string

	BasicAuthUser     string
	BasicAuthPassword string
	BearerToken       string
	CAFile            string
	// InsecureSkipVerify disables TLS certificate checks. Tests only.
	InsecureSkipVerify bool

	// Timeout bounds one request (default 30s).
	Timeout time.Duration
	// PageLimit is the entries asked per Loki query_range request
	// (default 1000, below Loki's max_entries_limit_per_query of 5000).
	PageLimit int
	UserAgent string
}

// QueryBaseURL derives the query base URL of a receiver from its push URL
// (as NormalizeURL accepts it): the push path is cut off, with the query
// string. kind is "loki" (…/loki/api/v1/push) or "victorialogs"
// (…/insert/loki/api/v1/push). Userinfo is kept: it carries the same
// credentials. Errors never echo the URL.
func QueryBaseURL(pushURL, kind string) (string, error) {
	norm, err := NormalizeURL(pushURL)
	if err != nil {
		return "", err
	}
	u, err := url.Parse(norm)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadURL, errors.Unwrap(err))
	}
	var suffix string
	switch kind {
	case "loki":
		suffix = PushPath
	case "victorialogs":
		suffix = "/insert" + PushPath
	default:
		return "", fmt.Errorf("%w: unknown receiver kind %q", ErrConfig, kind)
	}
	p := strings.TrimSuffix(u.Path, "/")
	if !strings.HasSuffix(p, suffix) {
		return "", fmt.Errorf("%w: the push path does not end in %s; set the query URL explicitly", ErrBadURL, suffix)
	}
	u.Path, u.RawPath = strings.TrimSuffix(p, suffix), ""
	u.RawQuery, u.Fragment, u.RawFragment = "", "", ""
	return u.String(), nil
}

// prober is what both probers share: base URL, headers, HTTP client.
type prober struct {
	base     *url.URL // without userinfo
	redacted string
	header   http.Header
	http     *http.Client
	tr       *http.Transport
	limit    int
}

func newProber(cfg ProberConfig) (*prober, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrConfig}, args...)...)
	}
	raw := strings.TrimSpace(cfg.URL)
	u, err := url.Parse(raw)
	if err != nil || raw == "" {
		return nil, bad("probe url is not a valid URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, bad("probe url: scheme must be http or https")
	}
	if u.Host == "" || u.Hostname() == "" {
		return nil, bad("probe url: missing host")
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath, u.RawQuery, u.Fragment, u.RawFragment = "", "", "", ""
	auth, err := authHeader(u, cfg.BasicAuthUser, cfg.BasicAuthPassword, cfg.BearerToken)
	if err != nil {
		return nil, err
	}
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = DefaultProbeTimeout
	}
	if timeout < 0 {
		return nil, bad("negative probe timeout")
	}
	limit := cfg.PageLimit
	if limit == 0 {
		limit = DefaultPageLimit
	}
	if limit < 0 {
		return nil, bad("negative page limit")
	}
	ua := cfg.UserAgent
	if ua == "" {
		ua = DefaultUserAgent
	}
	if !validHeaderValue(ua) || !validHeaderValue(cfg.TenantID) {
		return nil, bad("user agent or tenant id has control characters")
	}
	h := http.Header{}
	h.Set("User-Agent", ua)
	if auth != "" {
		h.Set("Authorization", auth)
	}
	tr, err := newTransport(timeout, 2, cfg.CAFile, cfg.InsecureSkipVerify)
	if err != nil {
		return nil, err
	}
	return &prober{
		base:     u,
		redacted: redactURL(u),
		header:   h,
		http: &http.Client{Transport: tr, Timeout: timeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		tr:    tr,
		limit: limit,
	}, nil
}

// URL returns the base URL without userinfo, for logs.
func (p *prober) URL() string { return p.redacted }

// Close releases idle connections.
func (p *prober) Close() { p.tr.CloseIdleConnections() }

// endpoint returns the base URL joined with path.
func (p *prober) endpoint(path string) string {
	u := *p.base
	u.Path += path
	return u.String()
}

// do sends req with the prober's headers and returns the response of a
// 2xx answer; any other status is an ErrProbe error carrying the body's
// first line.
func (p *prober) do(req *http.Request) (*http.Response, error) {
	for k, v := range p.header {
		req.Header[k] = v
	}
	resp, err := p.http.Do(req)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return nil, fmt.Errorf("loki: probe %s: %w", p.redacted, err)
	}
	if resp.StatusCode/100 != 2 {
		text, _ := readText(resp)
		_ = resp.Body.Close()
		line := firstLine([]byte(text[:min(len(text), maxProbeBody)]))
		return nil, &ProbeStatusError{Status: resp.StatusCode,
			Msg: fmt.Sprintf("%v: %s%s: HTTP %d: %s", ErrProbe, p.redacted, req.URL.Path, resp.StatusCode, line)}
	}
	return resp, nil
}

// probeKey identifies a row for matching.
type probeKey struct {
	time int64
	hash uint64
}

// matcher marks entries present as matching rows arrive, one entry per row.
type matcher struct {
	entries  []ProbeEntry
	byKey    map[probeKey][]int // entry indices not yet matched
	min, max int64
	rows     int // rows seen, of any stream
	maxRows  int
}

func newMatcher(entries []ProbeEntry) *matcher {
	m := &matcher{entries: entries, byKey: make(map[probeKey][]int, len(entries))}
	for i := range entries {
		entries[i].Present = false
		e := entries[i]
		if i == 0 || e.Time < m.min {
			m.min = e.Time
		}
		if i == 0 || e.Time > m.max {
			m.max = e.Time
		}
	}
	// Delivered entries first: they take the first matching rows.
	for _, delivered := range []bool{true, false} {
		for i, e := range entries {
			if e.Delivered == delivered {
				k := probeKey{e.Time, e.Hash}
				m.byKey[k] = append(m.byKey[k], i)
			}
		}
	}
	// The range holds the entries in question and whatever else the stream
	// stored meanwhile; a range ten times fuller than expected means
	// timestamps far apart (a clock jump) and is not worth reading.
	m.maxRows = max(10*len(entries), 10_000)
	return m
}

func (m *matcher) empty() bool { return len(m.byKey) == 0 }

// count notes one row read; it fails past maxRows.
func (m *matcher) count() error {
	m.rows++
	if m.rows > m.maxRows {
		return fmt.Errorf("%w: more than %d rows in the time range of %d lines", ErrProbe, m.maxRows, len(m.entries))
	}
	return nil
}

// see matches one stored row of the stream.
func (m *matcher) see(ts int64, line []byte) {
	k := probeKey{ts, HashLine(line)}
	idx := m.byKey[k]
	if len(idx) == 0 {
		return
	}
	m.entries[idx[0]].Present = true
	if len(idx) == 1 {
		delete(m.byKey, k)
	} else {
		m.byKey[k] = idx[1:]
	}
}

// wantLabels returns the labels a stored stream must have: those with a
// value (receivers drop empty ones), by name.
func wantLabels(ls []record.Label) map[string]string {
	out := make(map[string]string, len(ls))
	for _, l := range ls {
		if l.Value != "" {
			out[l.Name] = l.Value
		}
	}
	return out
}

// selector renders a stream selector both LogQL and LogsQL accept:
// {"name"="value", ...} with Go-quoted strings, names sorted. LogQL wants
// bare names, LogsQL accepts both, so quoteNames is for LogsQL only.
func selector(want map[string]string, quoteNames bool) string {
	names := make([]string, 0, len(want))
	for n := range want {
		names = append(names, n)
	}
	slices.Sort(names)
	var b strings.Builder
	b.WriteByte('{')
	for i, n := range names {
		if i > 0 {
			b.WriteString(", ")
		}
		if quoteNames {
			b.WriteString(strconv.Quote(n))
		} else {
			b.WriteString(n)
		}
		b.WriteByte('=')
		b.WriteString(strconv.Quote(want[n]))
	}
	b.WriteByte('}')
	return b.String()
}

// sameLabels reports whether got is exactly want, except, when
// serviceName is set, for a service_name Loki 3 adds on its own when want
// has none.
func sameLabels(got, want map[string]string, serviceName bool) bool {
	extra := 0
	for k, v := range got {
		w, ok := want[k]
		switch {
		case ok && w == v:
		case !ok && serviceName && k == "service_name":
			extra++
		default:
			return false
		}
	}
	return len(got)-extra == len(want)
}
