package wal

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// CorruptDir is the sub-directory of the WAL directory that receives the
// bytes cut off a damaged tail.
const CorruptDir = "corrupt"

// Repair describes one tail repair done at open.
type Repair struct {
	Segment     string
	Offset      int64 // where the segment was cut
	BadBytes    int64 // how many bytes were moved aside
	KeptEntries int   // good entries kept in that segment
	Index       uint64
	Reason      string
	SavedAs     string // file holding the bad bytes
}

// repairTail checks the last segment entry by entry and cuts it at the first
// torn or corrupt entry. The bytes cut are kept in corrupt/ for inspection.
// Only the last segment can be torn by a crash: tidwall fsyncs a segment
// before it starts the next one. Damage elsewhere is reported by Verify.
func repairTail(dir string) (*Repair, error) {
	segs, err := listSegments(dir)
	if err != nil || len(segs) == 0 {
		return nil, err
	}
	last := segs[len(segs)-1]
	res, err := scanSegment(last, nil)
	if err != nil {
		return nil, err
	}
	if res.Bad == nil {
		return nil, nil
	}
	rep := &Repair{
		Segment:     last.Name,
		Offset:      res.GoodEnd,
		BadBytes:    res.Bytes - res.GoodEnd,
		KeptEntries: res.Entries,
		Index:       res.BadIndex,
		Reason:      res.Bad.Error(),
	}
	if err := os.MkdirAll(filepath.Join(dir, CorruptDir), 0o750); err != nil {
		return nil, fmt.Errorf("wal: repair: %w", err)
	}
	rep.SavedAs = filepath.Join(dir, CorruptDir, fmt.Sprintf("%s.%d.bad", last.Name, res.GoodEnd))
	if err := saveTail(last.Path, res.GoodEnd, rep.SavedAs); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(last.Path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("wal: repair: open %s: %w", last.Name, err)
	}
	defer f.Close()
	if err := f.Truncate(res.GoodEnd); err != nil {
		return nil, fmt.Errorf("wal: repair: truncate %s at %d: %w", last.Name, res.GoodEnd, err)
	}
	if err := f.Sync(); err != nil {
		return nil, fmt.Errorf("wal: repair: sync %s: %w", last.Name, err)
	}
	if err := syncDir(dir); err != nil {
		return nil, err
	}
	return rep, nil
}

// saveTail copies the bytes of path from offset on into dst and fsyncs it.
func saveTail(path string, offset int64, dst string) error {
	src, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("wal: repair: %w", err)
	}
	defer src.Close()
	if _, err := src.Seek(offset, io.SeekStart); err != nil {
		return fmt.Errorf("wal: repair: %w", err)
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o640)
	if err != nil {
		return fmt.Errorf("wal: repair: %w", err)
	}
	if _, err := io.Copy(out, src); err != nil {
		out.Close()
		return fmt.Errorf("wal: repair: save bad bytes: %w", err)
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return fmt.Errorf("wal: repair: %w", err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("wal: repair: %w", err)
	}
	return syncDir(filepath.Dir(dst))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("wal: sync dir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("wal: sync dir %s: %w", dir, err)
	}
	return nil
}
