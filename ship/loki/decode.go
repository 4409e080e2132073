package loki

import (
	"errors"
	"fmt"

	"github.com/golang/snappy"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/logcapturer/log_capturer_go/wal/record"
)

// ErrMalformed is wrapped by every decoding error.
var ErrMalformed = errors.New("loki: malformed push request")

// Decompress undoes Compress. It refuses a body that claims to decode to
// more than limit bytes, so a hostile length prefix cannot allocate without
// bound.
func Decompress(body []byte, limit int) ([]byte, error) {
	n, err := snappy.DecodedLen(body)
	if err != nil {
		return nil, fmt.Errorf("%w: snappy: %w", ErrMalformed, err)
	}
	if n > limit {
		return nil, fmt.Errorf("%w: decoded size %d over limit %d", ErrMalformed, n, limit)
	}
	out, err := snappy.Decode(nil, body)
	if err != nil {
		return nil, fmt.Errorf("%w: snappy: %w", ErrMalformed, err)
	}
	return out, nil
}

// DecodePushRequest parses an uncompressed logproto.PushRequest. Lines
// alias pb; labels and metadata are copied. Unknown fields are skipped, as
// protobuf readers do; a field of a known number with the wrong wire type,
// a truncated field or an entry without a timestamp is an error. It is the
// receiving side of AppendPushRequest, for test receivers and benchmarks.
func DecodePushRequest(pb []byte) ([]Stream, error) {
	var out []Stream
	err := walkFields(pb, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if num != fieldRequestStreams {
			return nil
		}
		if typ != protowire.BytesType {
			return fmt.Errorf("%w: PushRequest.streams has wire type %d", ErrMalformed, typ)
		}
		s, err := decodeStreamMsg(v)
		if err != nil {
			return err
		}
		out = append(out, s)
		return nil
	})
	return out, err
}

func decodeStreamMsg(b []byte) (Stream, error) {
	var s Stream
	err := walkFields(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		switch num {
		case fieldStreamLabels:
			if typ != protowire.BytesType {
				return fmt.Errorf("%w: Stream.labels has wire type %d", ErrMalformed, typ)
			}
			s.Labels = string(v)
		case fieldStreamEntries:
			if typ != protowire.BytesType {
				return fmt.Errorf("%w: Stream.entries has wire type %d", ErrMalformed, typ)
			}
			e, err := decodeEntryMsg(v)
			if err != nil {
				return err
			}
			s.Entries = append(s.Entries, e)
		}
		return nil
	})
	return s, err
}

func decodeEntryMsg(b []byte) (Entry, error) {
	var e Entry
	seenTS := false
	err := walkFields(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if num < fieldEntryTimestamp || num > fieldEntryMetadata {
			return nil
		}
		if typ != protowire.BytesType {
			return fmt.Errorf("%w: Entry field %d has wire type %d", ErrMalformed, num, typ)
		}
		switch num {
		case fieldEntryTimestamp:
			seenTS = true
			t, err := decodeTimestamp(v)
			e.Time = t
			return err
		case fieldEntryLine:
			e.Line = v
		case fieldEntryMetadata:
			var l record.Label
			err := walkFields(v, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
				if num != fieldPairName && num != fieldPairValue {
					return nil
				}
				if typ != protowire.BytesType {
					return fmt.Errorf("%w: LabelPair field %d has wire type %d", ErrMalformed, num, typ)
				}
				if num == fieldPairName {
					l.Name = string(v)
				} else {
					l.Value = string(v)
				}
				return nil
			})
			if err != nil {
				return err
			}
			e.Metadata = append(e.Metadata, l)
		}
		return nil
	})
	if err == nil && !seenTS {
		err = fmt.Errorf("%w: entry without timestamp", ErrMalformed)
	}
	return e, err
}

func decodeTimestamp(b []byte) (int64, error) {
	var sec, nanos int64
	err := walkFields(b, func(num protowire.Number, typ protowire.Type, _ []byte, x uint64) error {
		if num != fieldTimestampSeconds && num != fieldTimestampNanos {
			return nil
		}
		if typ != protowire.VarintType {
			return fmt.Errorf("%w: Timestamp field %d has wire type %d", ErrMalformed, num, typ)
		}
		if num == fieldTimestampSeconds {
			sec = int64(x)
			return nil
		}
		nanos = int64(int32(x))
		if nanos < 0 || nanos >= 1e9 {
			return fmt.Errorf("%w: timestamp nanos %d out of range", ErrMalformed, nanos)
		}
		return nil
	})
	// Wraps like splitTime's inverse for values beyond int64 nanoseconds.
	return sec*1e9 + nanos, err
}

// walkFields walks the fields of one message. Groups and fixed-width fields
// are skipped by protowire.
func walkFields(b []byte, fn func(protowire.Number, protowire.Type, []byte, uint64) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("%w: %w", ErrMalformed, protowire.ParseError(n))
		}
		b = b[n:]
		var (
			v []byte
			x uint64
		)
		switch typ {
		case protowire.BytesType:
			v, n = protowire.ConsumeBytes(b)
		case protowire.VarintType:
			x, n = protowire.ConsumeVarint(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return fmt.Errorf("%w: %w", ErrMalformed, protowire.ParseError(n))
		}
		b = b[n:]
		if err := fn(num, typ, v, x); err != nil {
			return err
		}
	}
	return nil
}
