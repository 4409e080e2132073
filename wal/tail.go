package wal

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
)

// The log writes its segment files itself, in the format tidwall/wal wrote
// before (FORMAT.md): entries back to back, each uvarint(len) || bytes, files
// named by their first index. tidwall kept the whole tail segment in memory
// and copied every entry into it (a growing slice, reallocated and copied
// again as it grew), into its batch, and rewrote a whole segment to drop the
// front of the log; here a payload goes from the caller's buffer to the file
// without a copy, readers read it back through the page cache, and delivered
// segments are simply unlinked.

// directWrite is the payload size from which a payload is written straight
// from the caller's buffer (one extra write call) instead of being copied
// into the write buffer with its neighbours.
const directWrite = 32 << 10

// writeBuf bounds the buffered bytes (headers and small payloads) before
// they are written out.
const writeBuf = 256 << 10

// maxFrameHeader is the largest header of an entry on disk: the uvarint
// length, the version byte and the CRC.
const maxFrameHeader = binary.MaxVarintLen64 + entryHeaderSize

// segment names one segment file in the log's list.
type segment struct {
	first uint64 // index of its first entry
	name  string
	path  string
}

func newSegment(dir string, first uint64) segment {
	name := segmentName(first)
	return segment{first: first, name: name, path: filepath.Join(dir, name)}
}

// commitPoint is what readers may see: every entry up to index, which ends
// in segment tailFirst at byte tailEnd. Entries of segments before tailFirst
// are complete and synced.
type commitPoint struct {
	index     uint64
	tailFirst uint64
	tailEnd   int64
}

// tailWriter appends entries to the last segment. Only the Run goroutine
// uses it (and open, recover and shutdown, which Run or Close call).
type tailWriter struct {
	f     *os.File
	seg   segment
	size  int64  // bytes in the tail segment
	last  uint64 // index of the last entry written
	buf   []byte // headers and small payloads not yet written
	fresh bool   // a segment file was created since the last directory sync
}

// appendEntry writes one framed entry (buffered, or directly for a large
// payload). The caller cycles the segment first when it is full.
func (w *tailWriter) appendEntry(payload []byte, crc uint32) error {
	w.buf = binary.AppendUvarint(w.buf, uint64(len(payload)+entryHeaderSize))
	w.buf = append(w.buf, entryVersion)
	w.buf = binary.LittleEndian.AppendUint32(w.buf, crc)
	if len(payload) >= directWrite {
		if err := w.flush(); err != nil {
			return err
		}
		if _, err := w.f.Write(payload); err != nil {
			return err
		}
	} else {
		w.buf = append(w.buf, payload...)
		if len(w.buf) >= writeBuf {
			if err := w.flush(); err != nil {
				return err
			}
		}
	}
	w.size += diskSize(len(payload) + entryHeaderSize)
	w.last++
	return nil
}

// flush writes the buffered bytes.
func (w *tailWriter) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	_, err := w.f.Write(w.buf)
	w.buf = w.buf[:0]
	return err
}

// cycle seals the tail segment (written out and, unless noSync, fsynced: a
// crash can then only tear the last segment) and starts the next one. The
// caller publishes the new segment list.
func (w *tailWriter) cycle(dir string, noSync bool) error {
	if err := w.flush(); err != nil {
		return err
	}
	if !noSync {
		if err := w.f.Sync(); err != nil {
			return fmt.Errorf("sync segment %s: %w", w.seg.name, err)
		}
	}
	if err := w.f.Close(); err != nil {
		return fmt.Errorf("close segment %s: %w", w.seg.name, err)
	}
	seg := newSegment(dir, w.last+1)
	f, err := os.OpenFile(seg.path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC|os.O_APPEND, 0o640)
	if err != nil {
		w.f = nil
		return fmt.Errorf("create segment %s: %w", seg.name, err)
	}
	w.f, w.seg, w.size, w.fresh = f, seg, 0, true
	return nil
}

// sync makes every written entry durable (and a new segment's name, when one
// appeared).
func (w *tailWriter) sync(dir string) error {
	if err := w.f.Sync(); err != nil {
		return err
	}
	if w.fresh {
		if err := syncDir(dir); err != nil {
			return err
		}
		w.fresh = false
	}
	return nil
}

// close syncs and closes the tail file.
func (w *tailWriter) close(noSync bool) error {
	if w.f == nil {
		return nil
	}
	err := w.flush()
	if err == nil && !noSync {
		err = w.f.Sync()
	}
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	w.f = nil
	return err
}
