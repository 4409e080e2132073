package file

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// fileKey is the identity of an open file on this host: device and inode.
// It alone is not a source id, because inodes are reused.
type fileKey struct {
	dev, ino uint64
}

const idPrefix = "file:"

// formatID renders a source id: file:<dev>:<inode>:<generation hex>, then,
// when the generation's head is known, :<n hex>-<hash hex> of its first n
// bytes. The head in the id lets a position recovered from the WAL alone
// (written after the last checkpoint, so without meta) still be checked
// against the file's content.
func formatID(k fileKey, gen uint64, head fingerprint) string {
	id := idPrefix + strconv.FormatUint(k.dev, 10) + ":" + strconv.FormatUint(k.ino, 10) + ":" + strconv.FormatUint(gen, 16)
	if head.n > 0 {
		id += ":" + strconv.FormatUint(uint64(head.n), 16) + "-" + hex.EncodeToString(head.sum[:])
	}
	return id
}

// parseID is the inverse of formatID; ok is false for ids of other sources.
func parseID(id string) (k fileKey, gen uint64, head fingerprint, ok bool) {
	rest, found := strings.CutPrefix(id, idPrefix)
	if !found {
		return fileKey{}, 0, fingerprint{}, false
	}
	parts := strings.Split(rest, ":")
	if len(parts) != 3 && len(parts) != 4 {
		return fileKey{}, 0, fingerprint{}, false
	}
	var err1, err2, err3 error
	k.dev, err1 = strconv.ParseUint(parts[0], 10, 64)
	k.ino, err2 = strconv.ParseUint(parts[1], 10, 64)
	gen, err3 = strconv.ParseUint(parts[2], 16, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return fileKey{}, 0, fingerprint{}, false
	}
	if len(parts) == 4 {
		ns, sum, cut := strings.Cut(parts[3], "-")
		n, err := strconv.ParseUint(ns, 16, 32)
		b, err2 := hex.DecodeString(sum)
		if !cut || err != nil || err2 != nil || n == 0 || len(b) != len(head.sum) {
			return fileKey{}, 0, fingerprint{}, false
		}
		head.n = uint32(n)
		copy(head.sum[:], b)
	}
	return k, gen, head, true
}

// markBytes is how many bytes before a position its mark covers. Enough to
// span the end of a line or two, so that a file rewritten with other content
// almost never has the same bytes there.
const markBytes = 128

// fingerprint is a hash of n bytes of a file: its head (the first n bytes),
// or its mark (the n bytes just before a position). n == 0 means none.
type fingerprint struct {
	n   uint32
	sum [16]byte
}

// computeFingerprint hashes the first min(limit, size) bytes of f.
func computeFingerprint(f *os.File, limit int) (fingerprint, error) {
	buf := make([]byte, limit)
	n, err := f.ReadAt(buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return fingerprint{}, fmt.Errorf("fingerprint: %w", err)
	}
	return fingerprintOf(buf[:n]), nil
}

func fingerprintOf(b []byte) fingerprint {
	if len(b) == 0 {
		return fingerprint{}
	}
	s := sha256.Sum256(b)
	fp := fingerprint{n: uint32(len(b))}
	copy(fp.sum[:], s[:16])
	return fp
}

// matchesFile reports whether f's first fp.n bytes still hash to fp. A file
// shorter than fp.n does not match: its head is not the one we saw.
func (fp fingerprint) matchesFile(f *os.File) (bool, error) {
	if fp.n == 0 {
		return true, nil
	}
	buf := make([]byte, fp.n)
	n, err := f.ReadAt(buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return false, fmt.Errorf("fingerprint: %w", err)
	}
	if n < len(buf) {
		return false, nil
	}
	return fingerprintOf(buf) == fp, nil
}

// readMark returns the min(off, markBytes) bytes of f just before off; ok is
// false when f is shorter than off.
func readMark(f *os.File, off uint64, buf []byte) (b []byte, ok bool, err error) {
	n := min(off, markBytes)
	if uint64(cap(buf)) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	got, err := f.ReadAt(buf, int64(off-n))
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, false, fmt.Errorf("mark: %w", err)
	}
	return buf, got == len(buf), nil
}

// markAt is the mark of f at off: the hash of the bytes just before it.
// ok is false when f is shorter than off.
func markAt(f *os.File, off uint64) (fingerprint, bool, error) {
	var arr [markBytes]byte
	b, ok, err := readMark(f, off, arr[:0])
	if err != nil || !ok {
		return fingerprint{}, ok, err
	}
	return fingerprintOf(b), true, nil
}

// meta is what a position carries besides its offset. Encoded, it is the
// opaque Meta of ingest.SavedPosition.
type meta struct {
	path   string      // where the file was last seen
	stream string      // the filename label of its lines ("" = path)
	fp     fingerprint // its head
	mark   fingerprint // the bytes just before markOff
	// markOff is where mark was taken: the position's offset when the meta
	// was written. A position recovered from the WAL tail may be further on;
	// the bytes before markOff still identify the content.
	markOff uint64
	seen    int64 // unix ns when it was last seen at its stream path
	// rotated: the file had left its stream path (renamed or deleted) when
	// the meta was written, even if path still names it.
	rotated bool
}

// streamPath is the filename label of the file's lines.
func (m meta) streamPath() string {
	if m.stream != "" {
		return m.stream
	}
	return m.path
}

const (
	metaV1 byte = 1 // path, head
	metaV2 byte = 2 // path, stream, head, mark, seen
)

// errBadMeta is returned for Meta bytes that cannot be decoded.
var errBadMeta = errors.New("file: malformed position meta")

// encode renders version 2: version byte, uvarint path length, path,
// uvarint stream length, stream, uvarint head length, 16-byte head hash,
// uvarint mark length, 16-byte mark hash, uvarint mark offset, varint seen,
// flags byte (1: rotated).
func (m meta) encode() []byte {
	b := make([]byte, 0, 1+binary.MaxVarintLen64*5+len(m.path)+len(m.stream)+32)
	b = append(b, metaV2)
	b = binary.AppendUvarint(b, uint64(len(m.path)))
	b = append(b, m.path...)
	stream := m.stream
	if stream == m.path {
		stream = ""
	}
	b = binary.AppendUvarint(b, uint64(len(stream)))
	b = append(b, stream...)
	b = binary.AppendUvarint(b, uint64(m.fp.n))
	b = append(b, m.fp.sum[:]...)
	b = binary.AppendUvarint(b, uint64(m.mark.n))
	b = append(b, m.mark.sum[:]...)
	b = binary.AppendUvarint(b, m.markOff)
	b = binary.AppendVarint(b, m.seen)
	var flags byte
	if m.rotated {
		flags |= 1
	}
	return append(b, flags)
}

func decodeMeta(b []byte) (meta, error) {
	var m meta
	if len(b) == 0 || (b[0] != metaV1 && b[0] != metaV2) {
		return m, fmt.Errorf("%w: version", errBadMeta)
	}
	v2 := b[0] == metaV2
	b = b[1:]
	str := func(what string) (string, error) {
		l, n := binary.Uvarint(b)
		if n <= 0 || l > uint64(len(b)-n) {
			return "", fmt.Errorf("%w: %s", errBadMeta, what)
		}
		s := string(b[n : n+int(l)])
		b = b[n+int(l):]
		return s, nil
	}
	hash := func(what string) (fingerprint, error) {
		l, n := binary.Uvarint(b)
		if n <= 0 || l > 1<<31 {
			return fingerprint{}, fmt.Errorf("%w: %s length", errBadMeta, what)
		}
		b = b[n:]
		if len(b) < 16 {
			return fingerprint{}, fmt.Errorf("%w: %s hash", errBadMeta, what)
		}
		fp := fingerprint{n: uint32(l)}
		copy(fp.sum[:], b[:16])
		b = b[16:]
		return fp, nil
	}
	var err error
	if m.path, err = str("path"); err != nil {
		return meta{}, err
	}
	if v2 {
		if m.stream, err = str("stream"); err != nil {
			return meta{}, err
		}
		if m.stream == m.path {
			m.stream = ""
		}
	}
	if m.fp, err = hash("fingerprint"); err != nil {
		return meta{}, err
	}
	if v2 {
		if m.mark, err = hash("mark"); err != nil {
			return meta{}, err
		}
		off, n := binary.Uvarint(b)
		if n <= 0 {
			return meta{}, fmt.Errorf("%w: mark offset", errBadMeta)
		}
		m.markOff, b = off, b[n:]
		seen, n := binary.Varint(b)
		if n <= 0 {
			return meta{}, fmt.Errorf("%w: seen", errBadMeta)
		}
		m.seen, b = seen, b[n:]
		if len(b) == 0 || b[0] > 1 {
			return meta{}, fmt.Errorf("%w: flags", errBadMeta)
		}
		m.rotated, b = b[0] == 1, b[1:]
	}
	if len(b) != 0 {
		return meta{}, fmt.Errorf("%w: trailing bytes", errBadMeta)
	}
	return m, nil
}
