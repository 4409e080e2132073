package loki

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
)

// QueryRangePath is Loki's range query endpoint, under the base URL.
const QueryRangePath = "/loki/api/v1/query_range"

// maxQueryBody bounds one query response read into memory.
const maxQueryBody = 128 << 20

// LokiProber probes a Grafana Loki with GET /loki/api/v1/query_range: the
// stream selector built from the labels, start and end in nanoseconds (end
// exclusive, as Loki documents it), direction=forward, PageLimit entries a
// page, paginating while a page comes back full. It asks for
// categorize-labels (X-Loki-Response-Encoding-Flags), so that Loki 3 keeps
// structured metadata out of the stream labels; a stream matches when its
// labels are exactly the pushed ones, plus the service_name Loki may add.
type LokiProber struct {
	*prober
}

var _ Prober = (*LokiProber)(nil)

// NewLokiProber validates cfg and builds the HTTP client. It starts nothing.
func NewLokiProber(cfg ProberConfig) (*LokiProber, error) {
	p, err := newProber(cfg)
	if err != nil {
		return nil, err
	}
	if cfg.TenantID != "" {
		p.header.Set("X-Scope-OrgID", cfg.TenantID)
	}
	p.header.Set("X-Loki-Response-Encoding-Flags", "categorize-labels")
	return &LokiProber{prober: p}, nil
}

// Prepare implements Prober: an acknowledged push is searchable in Loki
// right away (the ingesters answer queries), so there is nothing to do.
func (p *LokiProber) Prepare(context.Context) error { return nil }

// queryRangeResponse is the part of Loki's answer the probe reads.
type queryRangeResponse struct {
	Status string `json:"status"`
	Data   struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Stream map[string]string `json:"stream"`
			// [ns as a string, line, optional categorized labels]
			Values [][]json.RawMessage `json:"values"`
		} `json:"result"`
	} `json:"data"`
}

// Probe implements Prober.
func (p *LokiProber) Probe(ctx context.Context, s *ProbeStream) error {
	want := wantLabels(s.Labels)
	if len(want) == 0 {
		return ErrNotProbeable
	}
	m := newMatcher(s.Entries)
	if m.empty() {
		return nil
	}
	sel := selector(want, false)
	start, end := m.min, m.max+1
	// carried counts the matching rows at start that the previous page
	// returned already: a page may stop in the middle of a nanosecond, and
	// the next one starts at it again.
	var carried map[probeKey]int
	for !m.empty() {
		page, err := p.queryRange(ctx, sel, start, end)
		if err != nil {
			return err
		}
		n, last := 0, start
		rows := make([]row, 0, p.limit)
		for _, st := range page.Data.Result {
			same := sameLabels(st.Stream, want, true)
			for _, v := range st.Values {
				r, err := parseLokiValue(v)
				if err != nil {
					return err
				}
				if err := m.count(); err != nil {
					return err
				}
				n++
				last = max(last, r.time)
				if same {
					rows = append(rows, r)
				}
			}
		}
		atLast := map[probeKey]int{}
		for _, r := range rows {
			k := probeKey{r.time, HashLine(r.line)}
			if r.time == last {
				atLast[k]++
			}
			if r.time == start && carried[k] > 0 {
				carried[k]--
				continue
			}
			m.see(r.time, r.line)
		}
		if n < p.limit {
			return nil
		}
		if last == start {
			return fmt.Errorf("%w: more than %d entries at one nanosecond (%d)", ErrProbe, p.limit, start)
		}
		start, carried = last, atLast
	}
	return nil
}

// row is one stored entry of a probe answer.
type row struct {
	time int64
	line []byte
}

// parseLokiValue reads ["<ns>", "<line>"(, {...})].
func parseLokiValue(v []json.RawMessage) (row, error) {
	if len(v) < 2 || len(v) > 3 {
		return row{}, fmt.Errorf("%w: a value has %d elements, want 2 or 3", ErrProbe, len(v))
	}
	var ts, line string
	if err := json.Unmarshal(v[0], &ts); err != nil {
		return row{}, fmt.Errorf("%w: timestamp: %v", ErrProbe, err)
	}
	n, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return row{}, fmt.Errorf("%w: timestamp %q: %v", ErrProbe, ts, err)
	}
	if err := json.Unmarshal(v[1], &line); err != nil {
		return row{}, fmt.Errorf("%w: line: %v", ErrProbe, err)
	}
	return row{time: n, line: []byte(line)}, nil
}

// queryRange asks for one page of [start, end).
func (p *LokiProber) queryRange(ctx context.Context, sel string, start, end int64) (*queryRangeResponse, error) {
	q := url.Values{
		"query":     {sel},
		"start":     {strconv.FormatInt(start, 10)},
		"end":       {strconv.FormatInt(end, 10)},
		"limit":     {strconv.Itoa(p.limit)},
		"direction": {"forward"},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.endpoint(QueryRangePath)+"?"+q.Encode(), nil)
	if err != nil {
		return nil, fmt.Errorf("loki: probe: build request: %w", err)
	}
	resp, err := p.do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxQueryBody+1))
	if err != nil {
		return nil, fmt.Errorf("loki: probe %s: read answer: %w", p.redacted, err)
	}
	if len(body) > maxQueryBody {
		return nil, fmt.Errorf("%w: answer over %d bytes", ErrProbe, maxQueryBody)
	}
	var out queryRangeResponse
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, fmt.Errorf("%w: answer is not query_range JSON: %v", ErrProbe, err)
	}
	if out.Status != "success" {
		return nil, fmt.Errorf("%w: status %q", ErrProbe, out.Status)
	}
	if out.Data.ResultType != "streams" {
		return nil, fmt.Errorf("%w: resultType %q, want streams", ErrProbe, out.Data.ResultType)
	}
	return &out, nil
}
