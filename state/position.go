package state

import (
	"encoding/binary"
	"fmt"
)

// MaxMetaBytes bounds Position.Meta. A source needs a fingerprint and an
// identity, not a blob; the bound also keeps one oversized value from
// failing every commit that carries it.
const MaxMetaBytes = 64 << 10

const positionFormatV1 byte = 1

// Position is a source's checkpoint. State gives meaning to none of it except
// through the encoding: Offset and Meta belong to the source, WALIndex is the
// WAL entry the offset was captured in.
type Position struct {
	Offset          uint64
	WALIndex        uint64
	UpdatedUnixNano int64
	Meta            []byte
}

// appendPosition appends the encoding of p (layout in doc.go) to dst.
func appendPosition(dst []byte, p Position) []byte {
	dst = append(dst, positionFormatV1)
	dst = binary.AppendUvarint(dst, p.Offset)
	dst = binary.AppendUvarint(dst, p.WALIndex)
	dst = binary.AppendVarint(dst, p.UpdatedUnixNano)
	dst = binary.AppendUvarint(dst, uint64(len(p.Meta)))
	return append(dst, p.Meta...)
}

// decodePosition decodes b. The result never aliases b (Meta is copied), so b
// may be memory owned by a bbolt transaction. Errors wrap ErrCorrupt.
func decodePosition(b []byte) (Position, error) {
	var p Position
	if len(b) == 0 {
		return p, fmt.Errorf("%w: empty position", ErrCorrupt)
	}
	if b[0] != positionFormatV1 {
		return p, fmt.Errorf("%w: unknown position format %d", ErrCorrupt, b[0])
	}
	pos := 1
	uvarint := func(what string) (uint64, error) {
		v, n := binary.Uvarint(b[pos:])
		if n <= 0 {
			return 0, fmt.Errorf("%w: bad %s varint at byte %d", ErrCorrupt, what, pos)
		}
		pos += n
		return v, nil
	}
	var err error
	if p.Offset, err = uvarint("offset"); err != nil {
		return Position{}, err
	}
	if p.WALIndex, err = uvarint("wal_index"); err != nil {
		return Position{}, err
	}
	updated, n := binary.Varint(b[pos:])
	if n <= 0 {
		return Position{}, fmt.Errorf("%w: bad updated varint at byte %d", ErrCorrupt, pos)
	}
	p.UpdatedUnixNano = updated
	pos += n
	metaLen, err := uvarint("meta_len")
	if err != nil {
		return Position{}, err
	}
	if metaLen > MaxMetaBytes {
		return Position{}, fmt.Errorf("%w: meta length %d over %d", ErrCorrupt, metaLen, MaxMetaBytes)
	}
	if rest := uint64(len(b) - pos); metaLen != rest {
		if metaLen > rest {
			return Position{}, fmt.Errorf("%w: meta length %d, only %d bytes left", ErrCorrupt, metaLen, rest)
		}
		return Position{}, fmt.Errorf("%w: %d trailing bytes", ErrCorrupt, rest-metaLen)
	}
	if metaLen > 0 {
		p.Meta = append([]byte(nil), b[pos:]...)
	}
	return p, nil
}
