package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// segmentFile is one segment on disk, named by the index of its first entry
// as 20 decimal digits (tidwall/wal's naming).
type segmentFile struct {
	First uint64
	Name  string
	Path  string
	Size  int64
}

func segmentName(index uint64) string { return fmt.Sprintf("%020d", index) }

// listSegments returns the segment files of dir in index order. Files that
// are not segments (the corrupt/ directory, tidwall's .START/.END leftovers)
// are skipped: open resolves the latter first (resolveTransient).
func listSegments(dir string) ([]segmentFile, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("wal: list segments: %w", err)
	}
	var segs []segmentFile
	for _, de := range des {
		name := de.Name()
		if de.IsDir() || len(name) != 20 {
			continue
		}
		first, err := strconv.ParseUint(name, 10, 64)
		if err != nil || first == 0 {
			continue
		}
		info, err := de.Info()
		if err != nil {
			return nil, fmt.Errorf("wal: stat segment %s: %w", name, err)
		}
		segs = append(segs, segmentFile{First: first, Name: name, Path: filepath.Join(dir, name), Size: info.Size()})
	}
	sort.Slice(segs, func(i, j int) bool { return segs[i].First < segs[j].First })
	return segs, nil
}

// resolveTransient finishes a front or back truncation that tidwall/wal (which
// wrote this directory before the log wrote its segments itself) left half
// done: NNNN.START holds the new first segment, every segment before it is
// to be removed; NNNN.END holds the new last segment, every segment after it
// is to be removed. It mirrors tidwall's own clean-up at open. The log never
// creates these names itself.
func resolveTransient(dir string) error {
	des, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("wal: list segments: %w", err)
	}
	type file struct {
		index      uint64
		name       string
		start, end bool
	}
	var files []file // in name order, as os.ReadDir returns them
	startAt, endAt := -1, -1
	for _, de := range des {
		name := de.Name()
		if de.IsDir() || len(name) < 20 {
			continue
		}
		index, err := strconv.ParseUint(name[:20], 10, 64)
		if err != nil || index == 0 {
			continue
		}
		start := len(name) == 26 && strings.HasSuffix(name, ".START")
		end := len(name) == 24 && strings.HasSuffix(name, ".END")
		if len(name) != 20 && !start && !end {
			continue
		}
		if start {
			startAt = len(files)
		} else if end && endAt == -1 {
			endAt = len(files)
		}
		files = append(files, file{index: index, name: name, start: start, end: end})
	}
	if startAt == -1 && endAt == -1 {
		return nil
	}
	if startAt != -1 && endAt != -1 {
		return fmt.Errorf("wal: both %s and %s exist: the directory is inconsistent", files[startAt].name, files[endAt].name)
	}
	remove := func(f file) error {
		if err := os.Remove(filepath.Join(dir, f.name)); err != nil {
			return fmt.Errorf("wal: finish truncation: %w", err)
		}
		return nil
	}
	finish := func(f file) error {
		from := filepath.Join(dir, f.name)
		if err := os.Rename(from, filepath.Join(dir, f.name[:20])); err != nil {
			return fmt.Errorf("wal: finish truncation: %w", err)
		}
		return nil
	}
	if startAt != -1 {
		for _, f := range files[:startAt] {
			if err := remove(f); err != nil {
				return err
			}
		}
		if err := finish(files[startAt]); err != nil {
			return err
		}
	} else {
		for i := len(files) - 1; i > endAt; i-- {
			if err := remove(files[i]); err != nil {
				return err
			}
		}
		// The segment before END with the same first index is the one END
		// replaces; the rename below overwrites it.
		if err := finish(files[endAt]); err != nil {
			return err
		}
	}
	return syncDir(dir)
}

// scanResult describes one pass over a segment's bytes.
type scanResult struct {
	Entries  int    // complete, checksummed entries
	GoodEnd  int64  // byte offset just past the last good entry
	Bytes    int64  // file size
	BadIndex uint64 // index of the first bad entry, when Bad != nil
	Bad      error  // why scanning stopped early; nil when the whole file is good
}

// errTorn reports an entry cut short: its length runs past the end of file.
var errTorn = errors.New("wal: torn entry")

// scanSegment walks the entries of one segment file, checking framing and
// CRC, and calls fn (if not nil) with each good entry's index and payload.
// An error from fn stops the scan and is returned as is.
func scanSegment(seg segmentFile, fn func(index uint64, offset int64, payload []byte) error) (scanResult, error) {
	data, err := os.ReadFile(seg.Path)
	if err != nil {
		return scanResult{}, fmt.Errorf("wal: read segment %s: %w", seg.Name, err)
	}
	res := scanResult{Bytes: int64(len(data))}
	pos := 0
	index := seg.First
	for pos < len(data) {
		size, n := binary.Uvarint(data[pos:])
		if n <= 0 {
			res.Bad, res.BadIndex = fmt.Errorf("%w: unreadable length", errTorn), index
			break
		}
		if size > uint64(len(data)-pos-n) {
			res.Bad, res.BadIndex = fmt.Errorf("%w: length %d runs past end of file", errTorn, size), index
			break
		}
		payload, err := unframe(data[pos+n : pos+n+int(size)])
		if err != nil {
			res.Bad, res.BadIndex = err, index
			break
		}
		if fn != nil {
			if err := fn(index, int64(pos), payload); err != nil {
				return res, err
			}
		}
		pos += n + int(size)
		res.Entries++
		res.GoodEnd = int64(pos)
		index++
	}
	return res, nil
}
