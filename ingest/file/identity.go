package file

import (
	"crypto/sha256"
	"encoding/binary"
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

// formatID renders a source id: file:<dev>:<inode>:<generation hex>.
func formatID(k fileKey, gen uint64) string {
	return idPrefix + strconv.FormatUint(k.dev, 10) + ":" + strconv.FormatUint(k.ino, 10) + ":" + strconv.FormatUint(gen, 16)
}

// parseID is the inverse of formatID; ok is false for ids of other sources.
func parseID(id string) (k fileKey, gen uint64, ok bool) {
	rest, found := strings.CutPrefix(id, idPrefix)
	if !found {
		return fileKey{}, 0, false
	}
	parts := strings.Split(rest, ":")
	if len(parts) != 3 {
		return fileKey{}, 0, false
	}
	var err1, err2, err3 error
	k.dev, err1 = strconv.ParseUint(parts[0], 10, 64)
	k.ino, err2 = strconv.ParseUint(parts[1], 10, 64)
	gen, err3 = strconv.ParseUint(parts[2], 16, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return fileKey{}, 0, false
	}
	return k, gen, true
}

// fingerprint is a hash of a file's first n bytes.
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
	got := fingerprintOf(buf)
	return got == fp, nil
}

// meta is what a position carries besides its offset: where the file was last
// seen and the fingerprint of its head. Encoded, it is the opaque Meta of
// ingest.SavedPosition.
type meta struct {
	path string
	fp   fingerprint
}

const metaV1 byte = 1

// errBadMeta is returned for Meta bytes that cannot be decoded.
var errBadMeta = errors.New("file: malformed position meta")

// encode renders: version byte, uvarint path length, path, uvarint fp length,
// 16-byte fp hash.
func (m meta) encode() []byte {
	b := make([]byte, 0, 1+binary.MaxVarintLen64*2+len(m.path)+16)
	b = append(b, metaV1)
	b = binary.AppendUvarint(b, uint64(len(m.path)))
	b = append(b, m.path...)
	b = binary.AppendUvarint(b, uint64(m.fp.n))
	return append(b, m.fp.sum[:]...)
}

func decodeMeta(b []byte) (meta, error) {
	var m meta
	if len(b) == 0 || b[0] != metaV1 {
		return m, fmt.Errorf("%w: version", errBadMeta)
	}
	b = b[1:]
	pl, n := binary.Uvarint(b)
	if n <= 0 || pl > uint64(len(b)-n) {
		return m, fmt.Errorf("%w: path", errBadMeta)
	}
	m.path = string(b[n : n+int(pl)])
	b = b[n+int(pl):]
	fl, n := binary.Uvarint(b)
	if n <= 0 || fl > 1<<31 {
		return m, fmt.Errorf("%w: fingerprint length", errBadMeta)
	}
	b = b[n:]
	if len(b) != 16 {
		return m, fmt.Errorf("%w: fingerprint hash", errBadMeta)
	}
	m.fp.n = uint32(fl)
	copy(m.fp.sum[:], b)
	return m, nil
}
