package loki

import (
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/logcapturer/log_capturer_go/wal/record"
)

// Loki's discard reasons (grafana/loki pkg/validation/validate.go). They are
// also the DLQ reasons of entries Loki, or the agent's own check of Loki's
// limits, rejects.
const (
	ReasonLineTooLong           = "line_too_long"
	ReasonTooOld                = "greater_than_max_sample_age"
	ReasonTooNew                = "too_far_in_future"
	ReasonOutOfOrder            = "out_of_order"
	ReasonTooFarBehind          = "too_far_behind"
	ReasonInvalidLabels         = "invalid_labels"
	ReasonMissingLabels         = "missing_labels"
	ReasonTooManyLabels         = "max_label_names_per_series"
	ReasonLabelNameTooLong      = "label_name_too_long"
	ReasonLabelValueTooLong     = "label_value_too_long"
	ReasonDuplicateLabelNames   = "duplicate_label_names"
	ReasonMissingEnforcedLabels = "missing_enforced_labels"
	ReasonMetadataDisallowed    = "disallowed_structured_metadata"
	ReasonMetadataTooLarge      = "structured_metadata_too_large"
	ReasonMetadataTooMany       = "structured_metadata_too_many"
	ReasonStreamLimit           = "stream_limit"
	ReasonStreamRateLimit       = "per_stream_rate_limit"
	ReasonRateLimited           = "rate_limited"
	// ReasonOther is an ingester rejection whose reason text is not known.
	ReasonOther = "rejected"
)

// Scope says which streams an error body speaks for.
type Scope uint8

const (
	// ScopeUnknown: nothing could be learnt from the body.
	ScopeUnknown Scope = iota
	// ScopeRequest: the distributor's validation errors, which cover every
	// stream of the request; whatever they do not name was stored.
	ScopeRequest
	// ScopeStream: an ingester error, which names the failures of one
	// stream only (Loki returns the last stream's error); the fate of the
	// request's other streams is unknown.
	ScopeStream
)

// Rejection is one failure an error body names.
type Rejection struct {
	Reason string // one of the Reason* constants
	// Stream is the stream selector as Loki printed it ("" when not named);
	// Labels is it parsed, nil when it could not be (an invalid_labels
	// stream, for one). Loki may have added service_name.
	Stream string
	Labels []record.Label
	// WholeStream: every entry of the stream was rejected (a label error,
	// the stream limit).
	WholeStream bool
	// Time is the entry's timestamp (Unix ns) when HasTime. When TimeExact
	// is false Loki printed it to the second (RFC 3339) and the entry lies
	// in [Time, Time+1s).
	Time      int64
	HasTime   bool
	TimeExact bool
	// LineLen is the entry's line length (line_too_long), or -1.
	LineLen int
	// MetadataBytes and MetadataCount identify an entry by its structured
	// metadata (too large, too many), or are -1. For
	// disallowed_structured_metadata every entry with metadata is meant.
	MetadataBytes, MetadataCount int
	// Count is how many entries this item stands for: Loki groups identical
	// messages as "N errors like: ...".
	Count int
	// Text is the message, for humans.
	Text string
}

// Rejections is what an error body says about which entries were rejected.
type Rejections struct {
	Items []Rejection
	Scope Scope
	// Complete: every failure the body stands for is itemised, identifiable
	// and nothing was left unparsed (an ingester body lists at most 10
	// entries but counts them all in "total ignored").
	Complete bool
	// Total is the ingester's "total ignored" count, 0 when absent.
	Total int
}

// IsStreamLimit reports whether a 429 body is the max-streams limit, which
// retrying cannot fix, rather than a rate limit, which it can.
func IsStreamLimit(body string) bool {
	return strings.Contains(body, "Maximum active stream limit exceeded") ||
		strings.Contains(body, "streams limit") ||
		strings.Contains(body, "stream limit exceeded")
}

var (
	// RFC 3339 as Loki's validator prints it (seconds), or with a fraction.
	reRFC3339 = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})`)
	// Go's time.Time.String(), as the ingester prints entry timestamps.
	reGoTime    = regexp.MustCompile(`^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d+)? [+-]\d{4} [A-Za-z0-9+\-]+`)
	reGrouped   = regexp.MustCompile(`^(\d+) errors like: `)
	reTrailer   = regexp.MustCompile(`^user '[^']*', total ignored: (\d+) out of (\d+) for stream: `)
	reOldTotal  = regexp.MustCompile(`^total ignored: (\d+) out of (\d+)`)
	reRPCPrefix = regexp.MustCompile(`^rpc error: code = [^ ]+ desc = `)
)

// ParseRejections reads a Loki error body (a 400, or a 429 of the stream
// limit) and returns the rejections it names. truncated says the body was
// cut short (Result.TextTruncated); the result is then never Complete.
// It never fails: what it cannot read makes the result incomplete.
func ParseRejections(body string, truncated bool) Rejections {
	p := &rejParser{s: strings.TrimSpace(body), complete: !truncated}
	p.s = reRPCPrefix.ReplaceAllString(p.s, "")
	p.run()
	r := Rejections{Items: p.items, Scope: p.scope, Total: p.total, Complete: p.complete}
	listed := 0
	for _, it := range r.Items {
		listed += it.Count
	}
	if len(r.Items) == 0 || (r.Total > 0 && listed != r.Total) {
		r.Complete = false
	}
	if r.Scope == ScopeStream {
		// The ingester trailer names the stream for the lines above it.
		for i := range r.Items {
			if r.Items[i].Stream == "" {
				r.Items[i].Stream, r.Items[i].Labels = p.trailerStream, p.trailerLabels
			}
		}
	}
	for _, it := range r.Items {
		if it.Stream == "" {
			r.Complete = false
		}
	}
	return r
}

type rejParser struct {
	s        string
	items    []Rejection
	scope    Scope
	total    int
	complete bool

	trailerStream string
	trailerLabels []record.Label
}

func (p *rejParser) run() {
	for len(p.s) > 0 {
		p.s = strings.TrimLeft(p.s, " \n\r\t;,")
		if p.s == "" {
			return
		}
		count := 1
		if m := reGrouped.FindStringSubmatch(p.s); m != nil {
			count, _ = strconv.Atoi(m[1])
			p.s = p.s[len(m[0]):]
		}
		if !p.message(count) {
			p.complete = false
			p.skip()
		}
	}
}

// skip drops text up to the next message separator.
func (p *rejParser) skip() {
	i := strings.IndexAny(p.s, ";\n")
	if i < 0 {
		p.s = ""
		return
	}
	p.s = p.s[i+1:]
}

func (p *rejParser) setScope(sc Scope) {
	if p.scope == ScopeUnknown {
		p.scope = sc
	} else if p.scope != sc {
		// Both kinds in one body: treat it as the narrower one.
		p.scope = ScopeStream
	}
}

func (p *rejParser) add(r Rejection) {
	if r.Count <= 0 {
		r.Count = 1
	}
	if r.LineLen == 0 && r.Reason != ReasonLineTooLong {
		r.LineLen = -1
	}
	if r.MetadataBytes == 0 && r.Reason != ReasonMetadataTooLarge {
		r.MetadataBytes = -1
	}
	if r.MetadataCount == 0 && r.Reason != ReasonMetadataTooMany {
		r.MetadataCount = -1
	}
	p.items = append(p.items, r)
}

// message parses one message at the start of p.s and consumes it.
func (p *rejParser) message(count int) bool {
	s := p.s
	switch {
	case strings.HasPrefix(s, "entry for stream '"):
		rest := s[len("entry for stream '"):]
		raw, labels, rest, ok := scanQuotedLabels(rest)
		if !ok {
			return false
		}
		r := Rejection{Stream: raw, Labels: labels, Count: count}
		switch {
		case strings.HasPrefix(rest, " has timestamp too old: "):
			rest = rest[len(" has timestamp too old: "):]
			if !parseTime(&r, &rest) {
				return false
			}
			r.Reason = ReasonTooOld
			if after, ok := strings.CutPrefix(rest, ", oldest acceptable timestamp is: "); ok {
				var dummy Rejection
				if parseTime(&dummy, &after) {
					rest = after
				}
			}
		case strings.HasPrefix(rest, " has timestamp too new: "):
			rest = rest[len(" has timestamp too new: "):]
			if !parseTime(&r, &rest) {
				return false
			}
			r.Reason = ReasonTooNew
		case strings.HasPrefix(rest, " has "):
			// "has %d label names; limit %d"
			var n int
			var ok bool
			if n, rest, ok = scanInt(rest[len(" has "):]); !ok || !strings.HasPrefix(rest, " label names; limit ") {
				return false
			}
			_ = n
			if _, rest, ok = scanInt(rest[len(" label names; limit "):]); !ok {
				return false
			}
			r.Reason, r.WholeStream = ReasonTooManyLabels, true
		default:
			return false
		}
		r.Text = s[:len(s)-len(rest)]
		p.s = rest
		p.add(r)
		p.setScope(ScopeRequest)
		return true

	case strings.HasPrefix(s, "Max entry size '"):
		// Max entry size '%d' bytes exceeded for stream '%s' while adding an entry with length '%d' bytes
		rest := s[len("Max entry size '"):]
		_, rest, ok := scanInt(rest)
		if !ok || !strings.HasPrefix(rest, "' bytes exceeded for stream '") {
			return false
		}
		raw, labels, rest, ok := scanQuotedLabels(rest[len("' bytes exceeded for stream '"):])
		if !ok || !strings.HasPrefix(rest, " while adding an entry with length '") {
			return false
		}
		n, rest, ok := scanInt(rest[len(" while adding an entry with length '"):])
		if !ok || !strings.HasPrefix(rest, "' bytes") {
			return false
		}
		rest = rest[len("' bytes"):]
		p.add(Rejection{Reason: ReasonLineTooLong, Stream: raw, Labels: labels, LineLen: n, Count: count, Text: s[:len(s)-len(rest)]})
		p.s = rest
		p.setScope(ScopeRequest)
		return true

	case strings.HasPrefix(s, "stream '"):
		raw, labels, rest, ok := scanQuotedLabels(s[len("stream '"):])
		if !ok {
			return false
		}
		r := Rejection{Stream: raw, Labels: labels, Count: count}
		switch {
		case strings.HasPrefix(rest, " has label name too long: '"):
			r.Reason, r.WholeStream = ReasonLabelNameTooLong, true
			rest = skipQuotedTail(rest[len(" has label name too long: '"):])
		case strings.HasPrefix(rest, " has label value too long: '"):
			r.Reason, r.WholeStream = ReasonLabelValueTooLong, true
			rest = skipQuotedTail(rest[len(" has label value too long: '"):])
		case strings.HasPrefix(rest, " has duplicate label name: '"):
			r.Reason, r.WholeStream = ReasonDuplicateLabelNames, true
			rest = skipQuotedTail(rest[len(" has duplicate label name: '"):])
		case strings.HasPrefix(rest, " includes structured metadata, but this feature is disallowed."):
			r.Reason = ReasonMetadataDisallowed
			rest = skipToEnd(rest, "to enable it.")
		case strings.HasPrefix(rest, " has structured metadata too large: '"):
			n, after, ok := scanInt(rest[len(" has structured metadata too large: '"):])
			if !ok {
				return false
			}
			r.Reason, r.MetadataBytes = ReasonMetadataTooLarge, n
			rest = skipToEnd(after, "to increase it.")
		case strings.HasPrefix(rest, " has too many structured metadata labels: '"):
			n, after, ok := scanInt(rest[len(" has too many structured metadata labels: '"):])
			if !ok {
				return false
			}
			r.Reason, r.MetadataCount = ReasonMetadataTooMany, n
			rest = skipToEnd(after, "to increase it.")
		default:
			return false
		}
		r.Text = s[:len(s)-len(rest)]
		p.s = rest
		p.add(r)
		p.setScope(ScopeRequest)
		return true

	case strings.HasPrefix(s, "Error parsing labels '"):
		// The labels are what we sent, verbatim, and unparsable by
		// definition: find the end by the fixed text that follows.
		rest := s[len("Error parsing labels '"):]
		i := strings.Index(rest, "' with error: ")
		if i < 0 {
			return false
		}
		raw := rest[:i]
		rest = rest[i+len("' with error: "):]
		j := strings.IndexAny(rest, ";\n")
		if j < 0 {
			j = len(rest)
		}
		rest = rest[j:]
		p.add(Rejection{Reason: ReasonInvalidLabels, Stream: raw, WholeStream: true, Count: count, Text: s[:len(s)-len(rest)]})
		p.s = rest
		p.setScope(ScopeRequest)
		return true

	case strings.HasPrefix(s, "missing required labels "):
		i := strings.Index(s, " for stream ")
		if i < 0 {
			return false
		}
		raw, labels, rest, ok := scanLabels(s[i+len(" for stream "):])
		if !ok {
			return false
		}
		p.add(Rejection{Reason: ReasonMissingEnforcedLabels, Stream: raw, Labels: labels, WholeStream: true, Count: count, Text: s[:len(s)-len(rest)]})
		p.s = rest
		p.setScope(ScopeRequest)
		return true

	case strings.HasPrefix(s, "Maximum active stream limit exceeded when trying to create stream "):
		raw, labels, rest, ok := scanLabels(s[len("Maximum active stream limit exceeded when trying to create stream "):])
		if !ok {
			return false
		}
		rest = skipToEnd(rest, "user: '")
		if i := strings.IndexByte(rest, '\''); i >= 0 {
			rest = rest[i+1:]
		}
		p.add(Rejection{Reason: ReasonStreamLimit, Stream: raw, Labels: labels, WholeStream: true, Count: count, Text: s[:len(s)-len(rest)]})
		p.s = rest
		p.setScope(ScopeStream)
		return true

	case strings.HasPrefix(s, "entry with timestamp "):
		return p.ingesterEntry(count)

	case reTrailer.MatchString(s):
		m := reTrailer.FindStringSubmatch(s)
		p.total, _ = strconv.Atoi(m[1])
		raw, labels, rest, ok := scanLabels(s[len(m[0]):])
		if !ok {
			return false
		}
		p.trailerStream, p.trailerLabels = raw, labels
		p.s = rest
		p.setScope(ScopeStream)
		return true

	case reOldTotal.MatchString(s):
		m := reOldTotal.FindStringSubmatch(s)
		p.total, _ = strconv.Atoi(m[1])
		p.s = s[len(m[0]):]
		p.setScope(ScopeStream)
		return true
	}
	return false
}

// ingesterEntry parses "entry with timestamp T ignored, reason: 'R'," or
// the older "... reason: 'R' for stream: {...},".
func (p *rejParser) ingesterEntry(count int) bool {
	s := p.s
	rest := s[len("entry with timestamp "):]
	r := Rejection{Count: count}
	if !parseTime(&r, &rest) || !strings.HasPrefix(rest, " ignored, reason: '") {
		return false
	}
	rest = rest[len(" ignored, reason: '"):]
	// The reason may quote a stream itself (the per-stream rate limit), so
	// it ends at the fixed text that follows it, not at the next quote.
	var reason string
	if i := strings.Index(rest, "' for stream: "); i >= 0 && !strings.Contains(rest[:i], "',\n") {
		reason = rest[:i]
		raw, labels, after, ok := scanLabels(rest[i+len("' for stream: "):])
		if !ok {
			return false
		}
		r.Stream, r.Labels = raw, labels
		rest = after
	} else if i := strings.Index(rest, "',"); i >= 0 {
		reason = rest[:i]
		rest = rest[i+2:]
	} else {
		return false
	}
	switch {
	case strings.Contains(reason, "out of order"):
		r.Reason = ReasonOutOfOrder
	case strings.Contains(reason, "too far behind"):
		r.Reason = ReasonTooFarBehind
	case strings.Contains(reason, "Per stream rate limit exceeded"):
		r.Reason = ReasonStreamRateLimit
	default:
		r.Reason = ReasonOther
	}
	r.Text = s[:len(s)-len(rest)]
	p.s = rest
	p.add(r)
	p.setScope(ScopeStream)
	return true
}

// parseTime reads a timestamp at the start of *s in either of Loki's
// formats and advances *s past it.
func parseTime(r *Rejection, s *string) bool {
	if m := reRFC3339.FindString(*s); m != "" {
		t, err := time.Parse(time.RFC3339Nano, m)
		if err != nil {
			return false
		}
		r.Time, r.HasTime, r.TimeExact = t.UnixNano(), true, strings.Contains(m, ".")
		*s = (*s)[len(m):]
		return true
	}
	if m := reGoTime.FindString(*s); m != "" {
		t, err := time.Parse("2006-01-02 15:04:05.999999999 -0700 MST", m)
		if err != nil {
			return false
		}
		r.Time, r.HasTime, r.TimeExact = t.UnixNano(), true, true
		*s = (*s)[len(m):]
		return true
	}
	return false
}

func scanInt(s string) (int, string, bool) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 || i > 18 {
		return 0, s, false
	}
	n, err := strconv.Atoi(s[:i])
	return n, s[i:], err == nil
}

// scanQuotedLabels reads "{...}'" (a selector closed by a quote).
func scanQuotedLabels(s string) (raw string, labels []record.Label, rest string, ok bool) {
	raw, labels, rest, ok = scanLabels(s)
	if !ok || !strings.HasPrefix(rest, "'") {
		return "", nil, s, false
	}
	return raw, labels, rest[1:], true
}

// scanLabels reads a stream selector {a="b", c="d"} with Go-quoted values,
// as Prometheus' labels.String and record.LabelSet render it.
func scanLabels(s string) (raw string, labels []record.Label, rest string, ok bool) {
	if !strings.HasPrefix(s, "{") {
		return "", nil, s, false
	}
	i := 1
	for {
		if i < len(s) && s[i] == '}' {
			i++
			break
		}
		j := i
		for j < len(s) && s[j] != '=' && s[j] != '}' && s[j] != ',' {
			j++
		}
		if j >= len(s) || s[j] != '=' || j == i {
			return "", nil, s, false
		}
		name := strings.TrimSpace(s[i:j])
		q, err := strconv.QuotedPrefix(s[j+1:])
		if err != nil {
			return "", nil, s, false
		}
		value, err := strconv.Unquote(q)
		if err != nil {
			return "", nil, s, false
		}
		labels = append(labels, record.Label{Name: name, Value: value})
		i = j + 1 + len(q)
		if i < len(s) && s[i] == ',' {
			i++
			for i < len(s) && s[i] == ' ' {
				i++
			}
			continue
		}
		if i < len(s) && s[i] == '}' {
			i++
			break
		}
		return "", nil, s, false
	}
	return s[:i], labels, s[i:], true
}

// skipQuotedTail skips a free-text value closed by a quote: it ends at the
// first quote followed by the end of the body or a separator.
func skipQuotedTail(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] != '\'' {
			continue
		}
		after := s[i+1:]
		if after == "" || after[0] == '\n' || strings.HasPrefix(after, "; ") || strings.HasPrefix(after, ",\n") {
			return after
		}
	}
	return ""
}

// skipToEnd skips past marker, or to the next separator when absent.
func skipToEnd(s, marker string) string {
	if i := strings.Index(s, marker); i >= 0 {
		return s[i+len(marker):]
	}
	if i := strings.IndexAny(s, ";\n"); i >= 0 {
		return s[i:]
	}
	return ""
}
