package dlq

import (
	"time"

	"github.com/logcapturer/log_capturer_go/ship"
	"github.com/logcapturer/log_capturer_go/wal/record"
)

// BatchBuilder groups entries by stream into a ship.Batch, keeping their
// order within each stream. The zero value is ready to use. Entries' byte
// slices are referenced, not copied: keep their buffers alive until the
// batch is sent.
type BatchBuilder struct {
	b     *ship.Batch
	index map[string]*ship.Stream
}

// Add appends one entry taken from WAL entry walIndex (0 if unknown).
func (bb *BatchBuilder) Add(walIndex uint64, e ship.Entry, labels *record.LabelSet) {
	if bb.b == nil {
		bb.b = &ship.Batch{Created: time.Now()}
		bb.index = map[string]*ship.Stream{}
	}
	if walIndex > 0 {
		if bb.b.First == 0 || walIndex < bb.b.First {
			bb.b.First = walIndex
		}
		bb.b.Last = max(bb.b.Last, walIndex)
	}
	key := labels.String()
	s, ok := bb.index[key]
	if !ok {
		s = &ship.Stream{Labels: labels}
		bb.index[key] = s
		bb.b.Streams = append(bb.b.Streams, s)
	}
	if e.Index == 0 {
		e.Index = walIndex
	}
	s.Entries = append(s.Entries, e)
	bb.b.Lines++
	bb.b.Bytes += len(e.Line)
}

// AddRecord appends a record decoded from WAL entry walIndex. Metadata is
// copied (a Decoder reuses it); the line is not.
func (bb *BatchBuilder) AddRecord(walIndex uint64, r *record.Record) {
	var meta []record.Label
	if len(r.Metadata) > 0 {
		meta = append([]record.Label(nil), r.Metadata...)
	}
	bb.Add(walIndex, ship.Entry{Time: r.Time, Line: r.Line, Metadata: meta, Flags: r.Flags, Source: r.Source, Offset: r.Offset}, r.Labels)
}

// AddDead appends a dead-lettered entry.
func (bb *BatchBuilder) AddDead(e ship.DeadEntry) {
	bb.Add(e.Index, ship.Entry{Time: e.Time, Line: e.Line, Metadata: e.Metadata, Flags: e.Flags, Source: e.Source, Offset: e.Offset}, e.Labels)
}

// Lines returns the number of lines added since the last Take.
func (bb *BatchBuilder) Lines() int {
	if bb.b == nil {
		return 0
	}
	return bb.b.Lines
}

// Bytes returns the line bytes added since the last Take.
func (bb *BatchBuilder) Bytes() int {
	if bb.b == nil {
		return 0
	}
	return bb.b.Bytes
}

// Take returns the batch built so far (nil if empty) and starts a new one.
func (bb *BatchBuilder) Take() *ship.Batch {
	b := bb.b
	bb.b, bb.index = nil, nil
	if b != nil && b.Last < b.First {
		b.Last = b.First
	}
	return b
}
