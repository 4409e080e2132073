package wal

import (
	"errors"
	"fmt"
	"os"
)

// The functions in this file read a WAL directory directly, without opening
// tidwall/wal and without changing a byte, so they work while the daemon is
// stopped, on a torn tail, and on a copy sent by an operator.

// SegmentInfo summarises one segment file.
type SegmentInfo struct {
	Name    string `json:"name"`
	First   uint64 `json:"first_index"`
	Last    uint64 `json:"last_index"` // First-1 when the segment holds no good entry
	Entries int    `json:"entries"`
	Bytes   int64  `json:"bytes"`
	// Damage, if any: the first entry that failed framing or its checksum.
	Corrupt *CorruptionErr `json:"-"`
	Problem string         `json:"problem,omitempty"`
}

// Segments scans every segment of dir.
func Segments(dir string) ([]SegmentInfo, error) {
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("wal: %w", err)
	}
	segs, err := listSegments(dir)
	if err != nil {
		return nil, err
	}
	out := make([]SegmentInfo, 0, len(segs))
	for i, s := range segs {
		res, err := scanSegment(s, nil)
		if err != nil {
			return nil, err
		}
		info := SegmentInfo{Name: s.Name, First: s.First, Entries: res.Entries, Bytes: res.Bytes}
		info.Last = s.First + uint64(res.Entries) - 1
		if res.Bad != nil {
			next := res.BadIndex + 1
			if i+1 < len(segs) {
				next = segs[i+1].First
			}
			info.Corrupt = &CorruptionErr{Segment: s.Name, Index: res.BadIndex, Offset: res.GoodEnd, Next: next, Err: res.Bad}
			info.Problem = info.Corrupt.Error()
		}
		out = append(out, info)
	}
	return out, nil
}

// VerifyReport is the result of Verify.
type VerifyReport struct {
	Segments int              `json:"segments"`
	Entries  int              `json:"entries"`
	Bytes    int64            `json:"bytes"`
	Problems []*CorruptionErr `json:"-"`
	Messages []string         `json:"problems"`
}

// OK says whether nothing was found wrong.
func (r VerifyReport) OK() bool { return len(r.Problems) == 0 }

// Verify checks every entry of every segment (framing and CRC) and that the
// segments follow each other without gaps or overlaps.
func Verify(dir string) (VerifyReport, error) {
	infos, err := Segments(dir)
	if err != nil {
		return VerifyReport{}, err
	}
	rep := VerifyReport{Segments: len(infos), Messages: []string{}}
	for i, s := range infos {
		rep.Entries += s.Entries
		rep.Bytes += s.Bytes
		if s.Corrupt != nil {
			rep.Problems = append(rep.Problems, s.Corrupt)
		} else if i+1 < len(infos) && s.Last+1 != infos[i+1].First {
			rep.Problems = append(rep.Problems, &CorruptionErr{
				Segment: s.Name, Index: s.Last + 1, Offset: s.Bytes, Next: infos[i+1].First,
				Err: fmt.Errorf("segment ends at %d but the next starts at %d", s.Last, infos[i+1].First),
			})
		}
	}
	for _, p := range rep.Problems {
		rep.Messages = append(rep.Messages, p.Error())
	}
	return rep, nil
}

// errStop ends a Walk early without error.
var errStop = errors.New("stop")

// Walk calls fn with every good entry's payload from index from on, in
// order, until fn returns false. A damaged entry stops the walk of its
// segment with a *CorruptionErr passed to onCorrupt (which may be nil), and
// the walk goes on with the next segment.
func Walk(dir string, from uint64, fn func(index uint64, payload []byte) bool, onCorrupt func(*CorruptionErr)) error {
	segs, err := listSegments(dir)
	if err != nil {
		return err
	}
	for i, s := range segs {
		if i+1 < len(segs) && segs[i+1].First <= from {
			continue
		}
		res, err := scanSegment(s, func(index uint64, _ int64, payload []byte) error {
			if index < from {
				return nil
			}
			if !fn(index, payload) {
				return errStop
			}
			return nil
		})
		if errors.Is(err, errStop) {
			return nil
		}
		if err != nil {
			return err
		}
		if res.Bad != nil && onCorrupt != nil {
			next := res.BadIndex + 1
			if i+1 < len(segs) {
				next = segs[i+1].First
			}
			onCorrupt(&CorruptionErr{Segment: s.Name, Index: res.BadIndex, Offset: res.GoodEnd, Next: next, Err: res.Bad})
		}
	}
	return nil
}
