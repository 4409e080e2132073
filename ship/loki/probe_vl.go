package loki

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// VictoriaLogs query endpoints, under the base URL.
const (
	LogsQLQueryPath = "/select/logsql/query"
	ForceFlushPath  = "/internal/force_flush"
)

// VictoriaLogsProber probes a VictoriaLogs that receives the Loki push:
// POST /select/logsql/query with the stream filter {"name"="value",...},
// start and end in RFC 3339 with nanoseconds (end exclusive), and
// "| fields _time, _stream, _msg". VictoriaLogs stores the pushed Loki
// labels as the stream fields, the timestamp as _time (nanoseconds,
// rendered as RFC 3339 with trailing zeros trimmed) and the line as _msg.
// A row counts when its _stream is exactly the pushed labels (empty values
// dropped, as VictoriaLogs drops them). Prepare calls /internal/force_flush
// so rows ingested in the last second are searchable.
type VictoriaLogsProber struct {
	*prober
}

var _ Prober = (*VictoriaLogsProber)(nil)

// NewVictoriaLogsProber validates cfg and builds the HTTP client. The
// tenant must be numeric ("12" or "12:34"), as VictoriaLogs' push requires.
// It starts nothing.
func NewVictoriaLogsProber(cfg ProberConfig) (*VictoriaLogsProber, error) {
	p, err := newProber(cfg)
	if err != nil {
		return nil, err
	}
	if cfg.TenantID != "" {
		account, project, err := VictoriaLogsTenant(cfg.TenantID)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrConfig, err)
		}
		p.header.Set("AccountID", strconv.FormatUint(uint64(account), 10))
		p.header.Set("ProjectID", strconv.FormatUint(uint64(project), 10))
	}
	return &VictoriaLogsProber{prober: p}, nil
}

// VictoriaLogsTenant parses a Loki tenant the way VictoriaLogs maps
// X-Scope-OrgID: "account" or "account:project", both uint32.
func VictoriaLogsTenant(s string) (account, project uint32, err error) {
	a, p, hasProject := strings.Cut(s, ":")
	av, err := strconv.ParseUint(a, 10, 32)
	if err != nil {
		return 0, 0, fmt.Errorf("victorialogs tenant %q: want a number or number:number", s)
	}
	var pv uint64
	if hasProject {
		if pv, err = strconv.ParseUint(p, 10, 32); err != nil {
			return 0, 0, fmt.Errorf("victorialogs tenant %q: want a number or number:number", s)
		}
	}
	return uint32(av), uint32(pv), nil
}

// Prepare implements Prober: force_flush makes freshly ingested rows
// searchable. A receiver that protects or lacks the endpoint (a cluster's
// vlselect) answers with an error, which the caller may ignore: the
// configured delay covers the same need more slowly.
func (p *VictoriaLogsProber) Prepare(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.endpoint(ForceFlushPath), nil)
	if err != nil {
		return fmt.Errorf("loki: probe: build request: %w", err)
	}
	resp, err := p.do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
	return resp.Body.Close()
}

// vlRow is one row of the answer (every value is a string).
type vlRow struct {
	Time   string `json:"_time"`
	Stream string `json:"_stream"`
	Msg    string `json:"_msg"`
}

// Probe implements Prober.
func (p *VictoriaLogsProber) Probe(ctx context.Context, s *ProbeStream) error {
	want := wantLabels(s.Labels)
	if len(want) == 0 {
		return ErrNotProbeable
	}
	m := newMatcher(s.Entries)
	if m.empty() {
		return nil
	}
	form := url.Values{
		"query": {selector(want, true) + " | fields _time, _stream, _msg"},
		"start": {formatNano(m.min)},
		"end":   {formatNano(m.max + 1)},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.endpoint(LogsQLQueryPath), strings.NewReader(form.Encode()))
	if err != nil {
		return fmt.Errorf("loki: probe: build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := p.do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(io.LimitReader(resp.Body, maxQueryBody))
	for {
		var r vlRow
		err := dec.Decode(&r)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: row %d: %v", ErrProbe, m.rows+1, err)
		}
		if err := m.count(); err != nil {
			return err
		}
		t, err := time.Parse(time.RFC3339Nano, r.Time)
		if err != nil {
			return fmt.Errorf("%w: row %d: _time %q: %v", ErrProbe, m.rows, r.Time, err)
		}
		got, ok := parseVLStream(r.Stream)
		if !ok {
			return fmt.Errorf("%w: row %d: _stream %q is not {name=\"value\",...}", ErrProbe, m.rows, r.Stream)
		}
		if sameLabels(got, want, false) {
			m.see(t.UnixNano(), []byte(r.Msg))
		}
	}
}

// formatNano renders ns as RFC 3339 with nanoseconds, in UTC.
func formatNano(ns int64) string { return time.Unix(0, ns).UTC().Format(time.RFC3339Nano) }

// parseVLStream parses VictoriaLogs' _stream: {name="value",...}, names
// bare, values Go-quoted.
func parseVLStream(s string) (map[string]string, bool) {
	if len(s) < 2 || s[0] != '{' || s[len(s)-1] != '}' {
		return nil, false
	}
	s = s[1 : len(s)-1]
	out := map[string]string{}
	for s != "" {
		name, rest, ok := strings.Cut(s, "=")
		if !ok || name == "" {
			return nil, false
		}
		q, err := strconv.QuotedPrefix(rest)
		if err != nil {
			return nil, false
		}
		v, err := strconv.Unquote(q)
		if err != nil {
			return nil, false
		}
		out[name] = v
		s = rest[len(q):]
		if s == "" {
			break
		}
		if s[0] != ',' {
			return nil, false
		}
		s = s[1:]
	}
	return out, true
}
