package loki

import (
	"errors"
	"slices"

	"github.com/klauspost/compress/s2"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/logcapturer/log_capturer_go/wal/record"
)

// Field numbers of Loki's logproto push schema (PROTOCOLS.md A2). The schema
// is a wire fact; no Loki code is imported.
const (
	fieldRequestStreams protowire.Number = 1 // PushRequest.streams

	fieldStreamLabels  protowire.Number = 1 // StreamAdapter.labels
	fieldStreamEntries protowire.Number = 2 // StreamAdapter.entries

	fieldEntryTimestamp protowire.Number = 1 // EntryAdapter.timestamp
	fieldEntryLine      protowire.Number = 2 // EntryAdapter.line
	fieldEntryMetadata  protowire.Number = 3 // EntryAdapter.structuredMetadata

	fieldPairName  protowire.Number = 1 // LabelPairAdapter.name
	fieldPairValue protowire.Number = 2 // LabelPairAdapter.value

	fieldTimestampSeconds protowire.Number = 1 // google.protobuf.Timestamp.seconds
	fieldTimestampNanos   protowire.Number = 2 // google.protobuf.Timestamp.nanos
)

// Every tag used here has a field number below 16, so it is one byte.
const tagSize = 1

// ErrTooLarge is returned by Compress for input snappy cannot encode.
var ErrTooLarge = errors.New("loki: request too large to compress")

// Entry is one log line of a stream.
type Entry struct {
	Time     int64 // Unix nanoseconds
	Line     []byte
	Metadata []record.Label // Loki structured metadata
}

// Stream is a label set and its entries, in the order they are sent.
type Stream struct {
	Labels  string // the stream selector, e.g. {a="b", c="d"} (record.LabelSet.String)
	Entries []Entry
}

// AppendPushRequest appends the protobuf encoding of a logproto.PushRequest
// holding streams to dst and returns the extended slice.
//
// The output is canonical proto3: empty strings are omitted, the timestamp
// is always written (Loki treats it as non-nullable). The format, hash and
// parsed fields are never written.
func AppendPushRequest(dst []byte, streams []Stream) []byte {
	for i := range streams {
		s := &streams[i]
		n := streamSize(s)
		dst = slices.Grow(dst, tagSize+protowire.SizeBytes(n))
		dst = protowire.AppendTag(dst, fieldRequestStreams, protowire.BytesType)
		dst = protowire.AppendVarint(dst, uint64(n))
		dst = appendStream(dst, s)
	}
	return dst
}

// PushRequestSize returns the length AppendPushRequest will append.
func PushRequestSize(streams []Stream) int {
	n := 0
	for i := range streams {
		n += tagSize + protowire.SizeBytes(streamSize(&streams[i]))
	}
	return n
}

// Compress snappy-encodes src in the block format Loki expects (not the
// framed stream format). It reuses dst's storage when large enough; the
// result never aliases src.
//
// It uses klauspost/compress/s2's Snappy-compatible encoder: the same block
// format (any snappy decoder reads it, the golden test checks it) at a
// fraction of the CPU of github.com/golang/snappy.
func Compress(dst, src []byte) ([]byte, error) {
	n := s2.MaxEncodedLen(len(src))
	if n < 0 {
		return nil, ErrTooLarge
	}
	if cap(dst) < n {
		dst = make([]byte, n)
	}
	return s2.EncodeSnappy(dst[:n], src), nil
}

func appendStream(dst []byte, s *Stream) []byte {
	dst = appendString(dst, fieldStreamLabels, s.Labels)
	for i := range s.Entries {
		e := &s.Entries[i]
		dst = protowire.AppendTag(dst, fieldStreamEntries, protowire.BytesType)
		dst = protowire.AppendVarint(dst, uint64(entrySize(e)))
		dst = appendEntry(dst, e)
	}
	return dst
}

func appendEntry(dst []byte, e *Entry) []byte {
	sec, nanos := splitTime(e.Time)
	dst = protowire.AppendTag(dst, fieldEntryTimestamp, protowire.BytesType)
	dst = protowire.AppendVarint(dst, uint64(timestampSize(sec, nanos)))
	if sec != 0 {
		dst = protowire.AppendTag(dst, fieldTimestampSeconds, protowire.VarintType)
		dst = protowire.AppendVarint(dst, uint64(sec))
	}
	if nanos != 0 {
		dst = protowire.AppendTag(dst, fieldTimestampNanos, protowire.VarintType)
		dst = protowire.AppendVarint(dst, uint64(nanos))
	}
	if len(e.Line) > 0 {
		dst = protowire.AppendTag(dst, fieldEntryLine, protowire.BytesType)
		dst = protowire.AppendBytes(dst, e.Line)
	}
	for _, m := range e.Metadata {
		dst = protowire.AppendTag(dst, fieldEntryMetadata, protowire.BytesType)
		dst = protowire.AppendVarint(dst, uint64(pairSize(m)))
		dst = appendString(dst, fieldPairName, m.Name)
		dst = appendString(dst, fieldPairValue, m.Value)
	}
	return dst
}

func appendString(dst []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return dst
	}
	dst = protowire.AppendTag(dst, num, protowire.BytesType)
	return protowire.AppendString(dst, s)
}

func streamSize(s *Stream) int {
	n := stringSize(s.Labels)
	for i := range s.Entries {
		n += tagSize + protowire.SizeBytes(entrySize(&s.Entries[i]))
	}
	return n
}

func entrySize(e *Entry) int {
	n := tagSize + protowire.SizeBytes(timestampSize(splitTime(e.Time)))
	if len(e.Line) > 0 {
		n += tagSize + protowire.SizeBytes(len(e.Line))
	}
	for _, m := range e.Metadata {
		n += tagSize + protowire.SizeBytes(pairSize(m))
	}
	return n
}

func pairSize(l record.Label) int {
	return stringSize(l.Name) + stringSize(l.Value)
}

func stringSize(s string) int {
	if s == "" {
		return 0
	}
	return tagSize + protowire.SizeBytes(len(s))
}

func timestampSize(sec int64, nanos int32) int {
	n := 0
	if sec != 0 {
		n += tagSize + protowire.SizeVarint(uint64(sec))
	}
	if nanos != 0 {
		n += tagSize + protowire.SizeVarint(uint64(nanos))
	}
	return n
}

// splitTime converts Unix nanoseconds to a google.protobuf.Timestamp, whose
// nanos must be in [0, 1e9) even before the epoch.
func splitTime(ns int64) (sec int64, nanos int32) {
	sec, rem := ns/1e9, ns%1e9
	if rem < 0 {
		sec--
		rem += 1e9
	}
	return sec, int32(rem)
}
