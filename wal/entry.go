package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// entryVersion is the framing version written today.
const entryVersion byte = 1

// entryHeaderSize is the version byte plus the CRC32C.
const entryHeaderSize = 5

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrChecksum reports an entry whose CRC does not match its payload.
var ErrChecksum = errors.New("wal: checksum mismatch")

// ErrVersion reports an entry with an unknown framing version.
var ErrVersion = errors.New("wal: unknown entry version")

// frame appends the framed entry (version, CRC32C LE, payload) to dst.
func frame(dst, payload []byte) []byte {
	return frameWithCRC(dst, payload, checksum(payload))
}

func checksum(payload []byte) uint32 { return crc32.Checksum(payload, castagnoli) }

func frameWithCRC(dst, payload []byte, crc uint32) []byte {
	dst = append(dst, entryVersion)
	dst = binary.LittleEndian.AppendUint32(dst, crc)
	return append(dst, payload...)
}

// unframe checks an entry's header and CRC and returns its payload, which
// aliases data.
func unframe(data []byte) ([]byte, error) {
	if len(data) < entryHeaderSize {
		return nil, fmt.Errorf("%w: entry of %d bytes is shorter than its header", ErrChecksum, len(data))
	}
	if data[0] != entryVersion {
		return nil, fmt.Errorf("%w: %d", ErrVersion, data[0])
	}
	payload := data[entryHeaderSize:]
	if crc32.Checksum(payload, castagnoli) != binary.LittleEndian.Uint32(data[1:5]) {
		return nil, ErrChecksum
	}
	return payload, nil
}

// diskSize is the number of bytes tidwall/wal writes for a framed entry of n
// bytes: a uvarint length and the bytes.
func diskSize(n int) int64 {
	var tmp [binary.MaxVarintLen64]byte
	return int64(binary.PutUvarint(tmp[:], uint64(n)) + n)
}

// CorruptionErr locates a damaged entry.
type CorruptionErr struct {
	Segment string // file name of the segment
	Index   uint64 // index of the first damaged entry
	Offset  int64  // byte offset of that entry in the segment, -1 if unknown
	Next    uint64 // the first index a reader may resume from
	Err     error
}

func (e *CorruptionErr) Error() string {
	return fmt.Sprintf("wal: corrupt entry %d in segment %s at byte %d: %v", e.Index, e.Segment, e.Offset, e.Err)
}

func (e *CorruptionErr) Unwrap() error { return e.Err }
