package record

import (
	"encoding/binary"
	"fmt"
)

// maxTable bounds the table sizes a payload may declare, so that a corrupt
// count cannot make the decoder allocate without limit.
const maxTable = 1 << 20

// Decoder walks the records of one payload without copying line bytes.
type Decoder struct {
	data     []byte
	pos      int
	baseTime int64
	sources  []string
	sets     []*LabelSet
	left     uint64
	err      error
}

// NewDecoder parses the payload header and tables. Records follow through
// Next. Strings in the tables are copied; lines are not.
func NewDecoder(data []byte) (*Decoder, error) {
	d := &Decoder{data: data}
	if len(data) == 0 || data[0] != FormatV1 {
		return nil, fmt.Errorf("%w: unknown format byte", ErrMalformed)
	}
	d.pos = 1
	d.baseTime = d.varint()
	ns := d.count()
	d.sources = make([]string, 0, min(ns, 64))
	for i := uint64(0); i < ns && d.err == nil; i++ {
		d.sources = append(d.sources, string(d.bytes()))
	}
	nl := d.count()
	d.sets = make([]*LabelSet, 0, min(nl, 64))
	for i := uint64(0); i < nl && d.err == nil; i++ {
		pairs := d.pairs()
		if d.err != nil {
			break
		}
		d.sets = append(d.sets, NewLabelSet(pairs))
	}
	d.left = d.count()
	if d.err != nil {
		return nil, d.err
	}
	return d, nil
}

// Len returns how many records remain.
func (d *Decoder) Len() int { return int(d.left) }

// Next decodes the next record into r. It returns false at the end or on
// error; Err tells which.
func (d *Decoder) Next(r *Record) bool {
	if d.left == 0 || d.err != nil {
		return false
	}
	si := d.uvarint()
	li := d.uvarint()
	r.Offset = d.uvarint()
	r.Time = d.baseTime + d.varint()
	fl := d.byte1()
	if d.err != nil {
		return false
	}
	if si >= uint64(len(d.sources)) || li >= uint64(len(d.sets)) {
		d.err = fmt.Errorf("%w: table index out of range", ErrMalformed)
		return false
	}
	r.Source = d.sources[si]
	r.Labels = d.sets[li]
	r.Flags = Flags(fl) &^ FlagMeta
	r.Metadata = r.Metadata[:0]
	if Flags(fl)&FlagMeta != 0 {
		r.Metadata = d.pairs()
	}
	r.Line = d.bytes()
	if d.err != nil {
		return false
	}
	d.left--
	if d.left == 0 && d.pos != len(d.data) {
		d.err = fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(d.data)-d.pos)
		return false
	}
	return true
}

// Err returns the first decoding error.
func (d *Decoder) Err() error { return d.err }

// Each decodes every record of data and calls fn for each. The record passed
// to fn is reused between calls.
func Each(data []byte, fn func(*Record) error) error {
	d, err := NewDecoder(data)
	if err != nil {
		return err
	}
	var r Record
	for d.Next(&r) {
		if err := fn(&r); err != nil {
			return err
		}
	}
	return d.Err()
}

func (d *Decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: bad %s at byte %d", ErrMalformed, what, d.pos)
	}
}

func (d *Decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.data[d.pos:])
	if n <= 0 {
		d.fail("varint")
		return 0
	}
	d.pos += n
	return v
}

func (d *Decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.data[d.pos:])
	if n <= 0 {
		d.fail("varint")
		return 0
	}
	d.pos += n
	return v
}

func (d *Decoder) count() uint64 {
	n := d.uvarint()
	// Every element takes at least one byte, so a count larger than the bytes
	// left is corrupt.
	if d.err == nil && (n > maxTable*64 || n > uint64(len(d.data)-d.pos)) {
		d.fail("count")
		return 0
	}
	return n
}

func (d *Decoder) byte1() byte {
	if d.err != nil {
		return 0
	}
	if d.pos >= len(d.data) {
		d.fail("byte")
		return 0
	}
	c := d.data[d.pos]
	d.pos++
	return c
}

func (d *Decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.data)-d.pos) {
		d.fail("length")
		return nil
	}
	b := d.data[d.pos : d.pos+int(n) : d.pos+int(n)]
	d.pos += int(n)
	return b
}

func (d *Decoder) pairs() []Label {
	n := d.count()
	if d.err != nil {
		return nil
	}
	out := make([]Label, 0, min(n, 64))
	for i := uint64(0); i < n && d.err == nil; i++ {
		name := string(d.bytes())
		value := string(d.bytes())
		out = append(out, Label{Name: name, Value: value})
	}
	return out
}
