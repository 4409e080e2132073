package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
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
// are skipped: tidwall resolves the latter itself when it opens.
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
