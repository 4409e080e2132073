package record

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// FormatV1 is the only payload format written today.
const FormatV1 byte = 1

// Flags describe what happened to a line on its way in.
type Flags uint8

const (
	// FlagTruncated marks a line cut at the configured maximum line size.
	FlagTruncated Flags = 1 << iota
	// FlagPartial marks a line emitted without its terminator (for example
	// flushed at shutdown or at a multiline timeout).
	FlagPartial
	// FlagEscaped marks a line whose invalid UTF-8 was escaped or replaced.
	FlagEscaped
	// FlagMeta says structured metadata follows (internal to the encoding).
	FlagMeta
)

// ErrMalformed is returned for a payload that cannot be decoded.
var ErrMalformed = errors.New("record: malformed payload")

// Label is one name/value pair.
type Label struct {
	Name, Value string
}

// LabelSet is an immutable, sorted set of labels with its Loki stream
// selector rendered once. Build it with NewLabelSet and share the pointer:
// encoders intern by pointer.
type LabelSet struct {
	labels []Label
	key    string
}

// NewLabelSet sorts a copy of labels by name and renders the stream key.
func NewLabelSet(labels []Label) *LabelSet {
	ls := make([]Label, len(labels))
	copy(ls, labels)
	sort.Slice(ls, func(i, j int) bool { return ls[i].Name < ls[j].Name })
	return &LabelSet{labels: ls, key: renderKey(ls)}
}

// Labels returns the sorted labels. The slice must not be modified.
func (s *LabelSet) Labels() []Label { return s.labels }

// String returns the Loki stream selector, e.g. {a="b", c="d"}: labels
// sorted by name, values Go-quoted, joined by ", ".
func (s *LabelSet) String() string { return s.key }

// Get returns the value of the named label.
func (s *LabelSet) Get(name string) (string, bool) {
	for _, l := range s.labels {
		if l.Name == name {
			return l.Value, true
		}
	}
	return "", false
}

func renderKey(ls []Label) string {
	var b strings.Builder
	b.WriteByte('{')
	for i, l := range ls {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(l.Name)
		b.WriteByte('=')
		b.WriteString(fmt.Sprintf("%q", l.Value))
	}
	b.WriteByte('}')
	return b.String()
}

// Record is one captured line as decoded from a payload. Line, Source and
// the metadata slices alias the payload buffer: copy them to keep them past
// the buffer's life.
type Record struct {
	Source   string
	Labels   *LabelSet
	Offset   uint64
	Time     int64 // Unix nanoseconds
	Flags    Flags
	Metadata []Label
	Line     []byte
}

// Builder accumulates records into one payload. The zero value is not
// usable; call NewBuilder. A Builder is not safe for concurrent use.
type Builder struct {
	sources   []string
	srcIndex  map[string]uint32
	lastSrc   string
	lastSrcIx uint32
	hasLast   bool

	sets     []*LabelSet
	setIndex map[*LabelSet]uint32

	baseTime int64
	n        int
	lines    int // bytes of line data, for callers that cap entries
	body     []byte
}

// NewBuilder returns an empty builder.
func NewBuilder() *Builder {
	return &Builder{srcIndex: map[string]uint32{}, setIndex: map[*LabelSet]uint32{}}
}

// Reset empties the builder, keeping its buffers.
func (b *Builder) Reset() {
	b.sources = b.sources[:0]
	clear(b.srcIndex)
	b.hasLast = false
	b.sets = b.sets[:0]
	clear(b.setIndex)
	b.n = 0
	b.baseTime = 0
	b.lines = 0
	b.body = b.body[:0]
}

// Len is the number of records added since the last Reset.
func (b *Builder) Len() int { return b.n }

// Size approximates the encoded payload size in bytes.
func (b *Builder) Size() int { return len(b.body) + 64 }

// Add appends one line. labels must not be nil.
func (b *Builder) Add(source string, labels *LabelSet, offset uint64, ts int64, flags Flags, meta []Label, line []byte) {
	if b.n == 0 {
		b.baseTime = ts
	}
	var si uint32
	if b.hasLast && source == b.lastSrc {
		si = b.lastSrcIx
	} else {
		var ok bool
		si, ok = b.srcIndex[source]
		if !ok {
			si = uint32(len(b.sources))
			b.sources = append(b.sources, source)
			b.srcIndex[source] = si
		}
		b.lastSrc, b.lastSrcIx, b.hasLast = source, si, true
	}
	li, ok := b.setIndex[labels]
	if !ok {
		li = uint32(len(b.sets))
		b.sets = append(b.sets, labels)
		b.setIndex[labels] = li
	}
	flags &^= FlagMeta
	if len(meta) > 0 {
		flags |= FlagMeta
	}
	body := b.body
	body = binary.AppendUvarint(body, uint64(si))
	body = binary.AppendUvarint(body, uint64(li))
	body = binary.AppendUvarint(body, offset)
	body = binary.AppendVarint(body, ts-b.baseTime)
	body = append(body, byte(flags))
	if len(meta) > 0 {
		body = appendPairs(body, meta)
	}
	body = binary.AppendUvarint(body, uint64(len(line)))
	body = append(body, line...)
	b.body = body
	b.n++
	b.lines += len(line)
}

// AppendTo appends the encoded payload to dst and returns it.
func (b *Builder) AppendTo(dst []byte) []byte {
	dst = append(dst, FormatV1)
	dst = binary.AppendVarint(dst, b.baseTime)
	dst = binary.AppendUvarint(dst, uint64(len(b.sources)))
	for _, s := range b.sources {
		dst = appendString(dst, s)
	}
	dst = binary.AppendUvarint(dst, uint64(len(b.sets)))
	for _, s := range b.sets {
		dst = appendPairs(dst, s.labels)
	}
	dst = binary.AppendUvarint(dst, uint64(b.n))
	return append(dst, b.body...)
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func appendPairs(dst []byte, ls []Label) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(ls)))
	for _, l := range ls {
		dst = appendString(dst, l.Name)
		dst = appendString(dst, l.Value)
	}
	return dst
}

// String lists the set flags, comma-separated.
func (f Flags) String() string {
	var parts []string
	if f&FlagTruncated != 0 {
		parts = append(parts, "truncated")
	}
	if f&FlagPartial != 0 {
		parts = append(parts, "partial")
	}
	if f&FlagEscaped != 0 {
		parts = append(parts, "escaped")
	}
	return strings.Join(parts, ",")
}
