package dlq

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/logcapturer/log_capturer_go/ship"
	"github.com/logcapturer/log_capturer_go/wal/record"
)

// Letter file layout (integers are varints, strings are uvarint length and
// bytes; the CRC is little-endian):
//
//	magic     4 bytes "LCDL"
//	version   byte    (fileVersion = 1)
//	crc32c    uint32  of everything after it
//	id        uvarint
//	created   varint  Unix nanoseconds
//	first     uvarint ; last uvarint   (WAL range)
//	attempts  uvarint
//	flags     byte    (bit 0: partially accepted)
//	sink, reason, detail               string
//	n         uvarint number of entries
//	n × index uvarint WAL index of each entry (0: unknown)
//	payload   uvarint length ; a wal/record payload holding the n entries
//
// Nothing may follow the payload. The header repeats what the bbolt index
// holds so that a file whose index record was lost is indexed again at Open
// instead of being dropped.

const (
	fileMagic   = "LCDL"
	fileVersion = 1
	headerSize  = 4 + 1 + 4
	fileSuffix  = ".letter"
	tmpSuffix   = ".tmp"
	// corruptDir (inside the DLQ directory) keeps letter files that could
	// not be decoded, for a human to look at.
	corruptDir = "corrupt"

	flagPartiallyAccepted byte = 1 << 0
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrBadFile is wrapped by every error about a letter file that cannot be
// decoded.
var ErrBadFile = errors.New("dlq: bad letter file")

// fileHeader is the letter's metadata as written in its file.
type fileHeader struct {
	ID                uint64
	Created           int64
	First, Last       uint64
	Attempts          int
	PartiallyAccepted bool
	Sink, Reason      string
	Detail            string
}

// letterFile is a decoded letter file. Payload aliases the file's bytes.
type letterFile struct {
	fileHeader
	Indexes []uint64
	Payload []byte
}

func fileName(id uint64) string { return fmt.Sprintf("%020d%s", id, fileSuffix) }

// parseFileName returns the id of a letter file name.
func parseFileName(name string) (uint64, bool) {
	base, ok := strings.CutSuffix(name, fileSuffix)
	if !ok || len(base) != 20 {
		return 0, false
	}
	id, err := strconv.ParseUint(base, 10, 64)
	if err != nil || id == 0 {
		return 0, false
	}
	return id, true
}

// encodeLetter builds a letter file from entries (all of them, in order).
func encodeLetter(h fileHeader, entries []ship.DeadEntry) []byte {
	b := record.NewBuilder()
	for _, e := range entries {
		b.Add(e.Source, e.Labels, e.Offset, e.Time, e.Flags, e.Metadata, e.Line)
	}
	payload := b.AppendTo(nil)

	body := make([]byte, 0, len(payload)+64+len(h.Sink)+len(h.Reason)+len(h.Detail)+len(entries)*4)
	body = binary.AppendUvarint(body, h.ID)
	body = binary.AppendVarint(body, h.Created)
	body = binary.AppendUvarint(body, h.First)
	body = binary.AppendUvarint(body, h.Last)
	body = binary.AppendUvarint(body, uint64(max(h.Attempts, 0)))
	var flags byte
	if h.PartiallyAccepted {
		flags |= flagPartiallyAccepted
	}
	body = append(body, flags)
	for _, s := range []string{h.Sink, h.Reason, h.Detail} {
		body = binary.AppendUvarint(body, uint64(len(s)))
		body = append(body, s...)
	}
	body = binary.AppendUvarint(body, uint64(len(entries)))
	for _, e := range entries {
		body = binary.AppendUvarint(body, e.Index)
	}
	body = binary.AppendUvarint(body, uint64(len(payload)))
	body = append(body, payload...)

	out := make([]byte, 0, headerSize+len(body))
	out = append(out, fileMagic...)
	out = append(out, fileVersion)
	out = binary.LittleEndian.AppendUint32(out, crc32.Checksum(body, castagnoli))
	return append(out, body...)
}

// fileReader decodes with bounds checks; the first failure sticks.
type fileReader struct {
	b   []byte
	pos int
	err error
}

func (r *fileReader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: "+format, append([]any{ErrBadFile}, args...)...)
	}
}

func (r *fileReader) uvarint(what string) uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b[r.pos:])
	if n <= 0 {
		r.fail("bad %s at byte %d", what, r.pos)
		return 0
	}
	r.pos += n
	return v
}

func (r *fileReader) varint(what string) int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b[r.pos:])
	if n <= 0 {
		r.fail("bad %s at byte %d", what, r.pos)
		return 0
	}
	r.pos += n
	return v
}

func (r *fileReader) bytes(what string) []byte {
	n := r.uvarint(what + " length")
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)-r.pos) {
		r.fail("%s of %d bytes, only %d left", what, n, len(r.b)-r.pos)
		return nil
	}
	out := r.b[r.pos : r.pos+int(n) : r.pos+int(n)]
	r.pos += int(n)
	return out
}

// decodeLetter checks a letter file's framing and CRC and decodes it,
// including every record of its payload, so that a file it accepts can be
// sent. It never panics on any input.
func decodeLetter(data []byte) (*letterFile, error) {
	if len(data) < headerSize {
		return nil, fmt.Errorf("%w: %d bytes, shorter than the header", ErrBadFile, len(data))
	}
	if !bytes.Equal(data[:4], []byte(fileMagic)) {
		return nil, fmt.Errorf("%w: bad magic", ErrBadFile)
	}
	if data[4] != fileVersion {
		return nil, fmt.Errorf("%w: unknown version %d", ErrBadFile, data[4])
	}
	body := data[headerSize:]
	if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(data[5:9]) {
		return nil, fmt.Errorf("%w: checksum mismatch", ErrBadFile)
	}
	r := &fileReader{b: body}
	lf := &letterFile{}
	lf.ID = r.uvarint("id")
	lf.Created = r.varint("created")
	lf.First = r.uvarint("first")
	lf.Last = r.uvarint("last")
	attempts := r.uvarint("attempts")
	if r.err == nil && attempts > 1<<31 {
		r.fail("attempts %d out of range", attempts)
	}
	lf.Attempts = int(attempts)
	if r.err == nil {
		if r.pos >= len(body) {
			r.fail("missing flags")
		} else {
			flags := body[r.pos]
			r.pos++
			if flags&^flagPartiallyAccepted != 0 {
				r.fail("unknown flags %#x", flags)
			}
			lf.PartiallyAccepted = flags&flagPartiallyAccepted != 0
		}
	}
	lf.Sink = string(r.bytes("sink"))
	lf.Reason = string(r.bytes("reason"))
	lf.Detail = string(r.bytes("detail"))
	n := r.uvarint("entry count")
	// Every index takes at least one byte.
	if r.err == nil && n > uint64(len(body)-r.pos) {
		r.fail("entry count %d larger than the file", n)
	}
	if r.err == nil {
		lf.Indexes = make([]uint64, 0, n)
		for i := uint64(0); i < n && r.err == nil; i++ {
			lf.Indexes = append(lf.Indexes, r.uvarint("entry index"))
		}
	}
	lf.Payload = r.bytes("payload")
	if r.err == nil && r.pos != len(body) {
		r.fail("%d trailing bytes", len(body)-r.pos)
	}
	if r.err != nil {
		return nil, r.err
	}
	if lf.ID == 0 {
		return nil, fmt.Errorf("%w: id 0", ErrBadFile)
	}
	got := 0
	if err := record.Each(lf.Payload, func(*record.Record) error { got++; return nil }); err != nil {
		return nil, fmt.Errorf("%w: payload: %w", ErrBadFile, err)
	}
	if uint64(got) != n {
		return nil, fmt.Errorf("%w: payload holds %d entries, header says %d", ErrBadFile, got, n)
	}
	return lf, nil
}

// entries decodes the letter's entries. Their byte slices alias the file's
// bytes.
func (lf *letterFile) entries() ([]ship.DeadEntry, error) {
	out := make([]ship.DeadEntry, 0, len(lf.Indexes))
	i := 0
	err := record.Each(lf.Payload, func(r *record.Record) error {
		if i >= len(lf.Indexes) {
			return fmt.Errorf("%w: more entries than indexes", ErrBadFile)
		}
		var meta []record.Label
		if len(r.Metadata) > 0 {
			meta = append([]record.Label(nil), r.Metadata...)
		}
		out = append(out, ship.DeadEntry{Labels: r.Labels, Time: r.Time, Line: r.Line, Metadata: meta,
			Flags: r.Flags, Source: r.Source, Offset: r.Offset, Index: lf.Indexes[i]})
		i++
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// writeFileAtomic writes data to dir/name through a temporary file that is
// fsynced and renamed. The directory is not synced: the caller syncs it
// once for all the files it wrote.
func writeFileAtomic(dir, name string, data []byte, noSync bool) error {
	tmp := filepath.Join(dir, name+tmpSuffix)
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o640)
	if err != nil {
		return err
	}
	_, werr := f.Write(data)
	if werr == nil && !noSync {
		werr = f.Sync()
	}
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return nil
}

// syncDir makes renames and removals in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	return errors.Join(err, d.Close())
}
