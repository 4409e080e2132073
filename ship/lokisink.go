package ship

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"

	"github.com/logcapturer/log_capturer_go/ship/loki"
	"github.com/logcapturer/log_capturer_go/wal/record"
)

// LokiSink pushes batches to Loki as snappy-compressed protobuf.
type LokiSink struct {
	client *loki.Client
	extra  []record.Label

	mu    sync.Mutex
	cache map[string]string // record stream key -> key with the extra labels

	bufs sync.Pool // *lokiBufs
}

type lokiBufs struct {
	streams []loki.Stream
	entries []loki.Entry
	proto   []byte
	snappy  []byte
}

// maxLabelCache bounds the memory of merged label keys.
const maxLabelCache = 10000

// NewLokiSink wraps a client. extra labels are added to every stream; a
// label of the record with the same name wins over them.
func NewLokiSink(client *loki.Client, extra map[string]string) *LokiSink {
	s := &LokiSink{client: client, cache: map[string]string{}}
	for k, v := range extra {
		s.extra = append(s.extra, record.Label{Name: k, Value: v})
	}
	return s
}

// Name implements Sink.
func (s *LokiSink) Name() string { return "loki" }

func (s *LokiSink) streamKey(ls *record.LabelSet) string {
	key := ls.String()
	if len(s.extra) == 0 {
		return key
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if k, ok := s.cache[key]; ok {
		return k
	}
	merged := append([]record.Label(nil), ls.Labels()...)
	for _, e := range s.extra {
		if _, ok := ls.Get(e.Name); !ok {
			merged = append(merged, e)
		}
	}
	k := record.NewLabelSet(merged).String()
	if len(s.cache) >= maxLabelCache {
		clear(s.cache)
	}
	s.cache[key] = k
	return k
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
		streams = append(streams, loki.Stream{Labels: s.streamKey(st.Labels)})
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
		return &RetryError{Reason: retryReason(res), RetryAfter: res.RetryAfter, Err: res.Err}
	default:
		return &PermanentError{Reason: fmt.Sprintf("http_%d", res.Status), Err: res.Err}
	}
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
