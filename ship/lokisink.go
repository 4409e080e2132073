package ship

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/logcapturer/log_capturer_go/ship/loki"
	"github.com/logcapturer/log_capturer_go/wal/record"
)

// LokiSinkConfig configures a LokiSink.
type LokiSinkConfig struct {
	// Labels are added to every stream; a label of the record with the
	// same name wins over them.
	Labels map[string]string
	// Limits are checked before sending (Check).
	Limits LokiLimits
}

// LokiSink pushes batches to Loki as snappy-compressed protobuf. It
// implements Checker with the configured limits, and turns Loki's partial
// rejections (a 400 after storing the valid entries, a stream-limit 429)
// into a *RejectedError naming the rejected entries.
type LokiSink struct {
	client *loki.Client
	extra  []record.Label
	limits LokiLimits

	mu    sync.Mutex
	cache map[string]*streamInfo // record stream key -> as sent

	bufs sync.Pool // *lokiBufs
}

// streamInfo is a stream as sent: its labels merged with the extra labels,
// and what Loki's label rules say about them.
type streamInfo struct {
	key    string
	labels []record.Label
	reason string
	detail string
}

type lokiBufs struct {
	streams []loki.Stream
	entries []loki.Entry
	proto   []byte
	snappy  []byte
}

// maxLabelCache bounds the memory of merged label keys.
const maxLabelCache = 10000

// NewLokiSink wraps a client.
func NewLokiSink(client *loki.Client, cfg LokiSinkConfig) *LokiSink {
	s := &LokiSink{client: client, limits: cfg.Limits, cache: map[string]*streamInfo{}}
	for k, v := range cfg.Labels {
		s.extra = append(s.extra, record.Label{Name: k, Value: v})
	}
	return s
}

// Name implements Sink.
func (s *LokiSink) Name() string { return "loki" }

func (s *LokiSink) stream(ls *record.LabelSet) *streamInfo {
	key := ls.String()
	s.mu.Lock()
	defer s.mu.Unlock()
	if in, ok := s.cache[key]; ok {
		return in
	}
	merged := ls
	if len(s.extra) > 0 {
		labels := append([]record.Label(nil), ls.Labels()...)
		for _, e := range s.extra {
			if _, ok := ls.Get(e.Name); !ok {
				labels = append(labels, e)
			}
		}
		merged = record.NewLabelSet(labels)
	}
	in := &streamInfo{key: merged.String(), labels: merged.Labels()}
	in.reason, in.detail = s.limits.checkLabels(merged.Labels())
	if len(s.cache) >= maxLabelCache {
		clear(s.cache)
	}
	s.cache[key] = in
	return in
}

// CheckStream implements Checker: Loki's label rules, applied to the
// labels as sent (extra labels included).
func (s *LokiSink) CheckStream(labels *record.LabelSet) (reason, detail string) {
	in := s.stream(labels)
	return in.reason, in.detail
}

// CheckEntry implements Checker: line size, age window, structured metadata.
func (s *LokiSink) CheckEntry(e *Entry, now time.Time) (reason, detail string) {
	return s.limits.checkEntry(e, now)
}

// Send implements Sink.
func (s *LokiSink) Send(ctx context.Context, b *Batch) error {
	bufs, _ := s.bufs.Get().(*lokiBufs)
	if bufs == nil {
		bufs = &lokiBufs{}
	}
	defer s.bufs.Put(bufs)
	streams := bufs.streams[:0]
	entries := bufs.entries[:0]
	for _, st := range b.Streams {
		for _, e := range st.Entries {
			entries = append(entries, loki.Entry{Time: e.Time, Line: e.Line, Metadata: e.Metadata})
		}
		streams = append(streams, loki.Stream{Labels: s.stream(st.Labels).key})
	}
	// Slice entries only after appending finished: the backing array may move.
	off := 0
	for i, st := range b.Streams {
		streams[i].Entries = entries[off : off+len(st.Entries)]
		off += len(st.Entries)
	}
	bufs.streams, bufs.entries = streams, entries
	bufs.proto = loki.AppendPushRequest(bufs.proto[:0], streams)
	body, err := loki.Compress(bufs.snappy, bufs.proto)
	if err != nil {
		clear(streams)
		clear(entries)
		return &PermanentError{Reason: "too_large", Err: err}
	}
	bufs.snappy = body
	res := s.client.Push(ctx, body)
	clear(streams)
	clear(entries)
	switch res.Class {
	case loki.Ack:
		return nil
	case loki.Retry:
		if res.Status == 429 && loki.IsStreamLimit(res.Text) {
			// New streams over the tenant's limit: retrying cannot help, and
			// the other streams of the request were stored.
			return identify(b, s.keys(b), res, loki.ReasonStreamLimit)
		}
		return &RetryError{Reason: retryReason(res), Status: res.Status, RetryAfter: res.RetryAfter, Err: res.Err}
	default:
		if res.Status == 400 {
			return identify(b, s.keys(b), res, "")
		}
		return &PermanentError{Reason: fmt.Sprintf("http_%d", res.Status), Status: res.Status, Err: res.Err}
	}
}

// Prober adapts p, which looks up streams by their labels as pushed, to
// the shipper's recovery probe, which knows them as recorded: the sink's
// extra labels are added the way Send adds them.
func (s *LokiSink) Prober(p loki.Prober) Prober { return lokiProber{sink: s, p: p} }

type lokiProber struct {
	sink *LokiSink
	p    loki.Prober
}

func (lp lokiProber) Prepare(ctx context.Context) error { return lp.p.Prepare(ctx) }

func (lp lokiProber) Probe(ctx context.Context, labels *record.LabelSet, entries []loki.ProbeEntry) error {
	return lp.p.Probe(ctx, &loki.ProbeStream{Labels: lp.sink.stream(labels).labels, Entries: entries})
}

// keys returns the label strings sent for b.Streams.
func (s *LokiSink) keys(b *Batch) []string {
	keys := make([]string, len(b.Streams))
	for i, st := range b.Streams {
		keys[i] = s.stream(st.Labels).key
	}
	return keys
}

// identify maps the rejections a Loki body names onto the entries of b.
// keys are the label strings sent for b.Streams. reason, when set,
// overrides the reason of every rejection.
func identify(b *Batch, keys []string, res loki.Result, reason string) *RejectedError {
	rj := loki.ParseRejections(res.Text, res.TextTruncated)
	out := &RejectedError{Status: res.Status, Err: res.Err}
	byKey := make(map[string]int, len(keys))
	for i, k := range keys {
		byKey[k] = i
	}
	claimed := make([][]bool, len(b.Streams))
	named := make([]bool, len(b.Streams))
	sure := rj.Complete
	for _, it := range rj.Items {
		si, ok := findStream(byKey, &it)
		if !ok {
			sure = false
			continue
		}
		named[si] = true
		st := b.Streams[si]
		if claimed[si] == nil {
			claimed[si] = make([]bool, len(st.Entries))
		}
		var cands []int
		for ei := range st.Entries {
			if !claimed[si][ei] && matches(&it, &st.Entries[ei]) {
				cands = append(cands, ei)
			}
		}
		if !it.WholeStream && len(cands) != it.Count {
			// Cannot tell which of the candidates Loki meant.
			sure = false
			continue
		}
		r := it.Reason
		if reason != "" {
			r = reason
		}
		for _, ei := range cands {
			claimed[si][ei] = true
			out.Rejected = append(out.Rejected, Rejection{Stream: si, Entry: ei, Reason: r})
		}
	}
	for si := range b.Streams {
		switch {
		case !sure || rj.Scope == loki.ScopeUnknown:
			out.Uncertain = append(out.Uncertain, si)
		case rj.Scope == loki.ScopeStream && !named[si]:
			// An ingester names one stream's failures only.
			out.Uncertain = append(out.Uncertain, si)
		}
	}
	return out
}

// findStream finds the batch stream a rejection names: by the text sent,
// else by its labels (Loki renders them its own way and may have added
// service_name).
func findStream(byKey map[string]int, it *loki.Rejection) (int, bool) {
	if si, ok := byKey[it.Stream]; ok {
		return si, true
	}
	if it.Labels == nil {
		return 0, false
	}
	if si, ok := byKey[record.NewLabelSet(it.Labels).String()]; ok {
		return si, true
	}
	without := make([]record.Label, 0, len(it.Labels))
	for _, l := range it.Labels {
		if l.Name != "service_name" {
			without = append(without, l)
		}
	}
	if len(without) < len(it.Labels) {
		if si, ok := byKey[record.NewLabelSet(without).String()]; ok {
			return si, true
		}
	}
	return 0, false
}

// matches reports whether e fits what a rejection says of its entry.
func matches(it *loki.Rejection, e *Entry) bool {
	if it.WholeStream {
		return true
	}
	known := false
	if it.HasTime {
		known = true
		if it.TimeExact && e.Time != it.Time {
			return false
		}
		if !it.TimeExact && (e.Time < it.Time || e.Time >= it.Time+int64(time.Second)) {
			return false
		}
	}
	if it.LineLen >= 0 {
		known = true
		if len(e.Line) != it.LineLen {
			return false
		}
	}
	if it.MetadataBytes >= 0 {
		known = true
		if metadataBytes(e.Metadata) != it.MetadataBytes {
			return false
		}
	}
	if it.MetadataCount >= 0 {
		known = true
		if len(e.Metadata) != it.MetadataCount {
			return false
		}
	}
	if it.Reason == loki.ReasonMetadataDisallowed {
		known = true
		if len(e.Metadata) == 0 {
			return false
		}
	}
	return known
}

func retryReason(res loki.Result) string {
	switch {
	case res.Status == 429:
		return "429"
	case res.Status >= 500:
		return "5xx"
	}
	var ne net.Error
	if errors.Is(res.Err, context.DeadlineExceeded) || (errors.As(res.Err, &ne) && ne.Timeout()) {
		return "timeout"
	}
	return "network"
}
