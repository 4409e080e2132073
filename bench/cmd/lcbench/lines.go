package main

import (
	"bytes"
	"strconv"
)

// LineBytes is the size of one generated line on disk, newline included.
const LineBytes = 170

// Fixed layout of the head of every line, so the receiver can read the
// sequence number and the write time without scanning:
//
//	seq=0000000042 ts=1700000000123456789 level=info ...
const (
	seqPrefix = "seq="
	seqDigits = 10
	tsPrefix  = " ts="
	tsDigits  = 19
	tsAt      = len(seqPrefix) + seqDigits + len(tsPrefix)
	headLen   = tsAt + tsDigits
)

var (
	paths    = []string{"/api/v1/orders", "/api/v1/cart", "/api/v1/items", "/login", "/api/v1/payments", "/healthz"}
	methods  = []string{"GET", "POST", "PUT", "GET", "GET", "DELETE"}
	statuses = []int{200, 200, 201, 200, 204, 404, 500, 200}
	msgs     = []string{"request served", "order accepted", "cache miss", "upstream slow", "user logged in"}
)

// splitmix64 gives the filler fields some entropy, so compression sees
// realistic rather than perfectly repetitive text.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// appendLine appends one LineBytes-long line (with its newline) carrying seq
// and the write time ts (Unix nanoseconds).
func appendLine(dst []byte, seq uint64, ts int64) []byte {
	start := len(dst)
	dst = append(dst, seqPrefix...)
	dst = appendPadded(dst, seq, seqDigits)
	dst = append(dst, tsPrefix...)
	dst = appendPadded(dst, uint64(ts), tsDigits)
	r := splitmix64(seq)
	i := int(r % uint64(len(paths)))
	dst = append(dst, " level=info svc=checkout host=web-0"...)
	dst = strconv.AppendUint(dst, r>>8%8, 10)
	dst = append(dst, " method="...)
	dst = append(dst, methods[i]...)
	dst = append(dst, " path="...)
	dst = append(dst, paths[i]...)
	dst = append(dst, " status="...)
	dst = strconv.AppendInt(dst, int64(statuses[r>>12%uint64(len(statuses))]), 10)
	dst = append(dst, " dur_ms="...)
	dst = strconv.AppendUint(dst, r>>16%997, 10)
	dst = append(dst, " trace="...)
	dst = strconv.AppendUint(dst, splitmix64(r), 16)
	dst = append(dst, ` msg="`...)
	dst = append(dst, msgs[r>>24%uint64(len(msgs))]...)
	dst = append(dst, '"')
	// Pad (or cut) to the fixed size.
	body := LineBytes - 1
	for len(dst)-start < body {
		dst = append(dst, '.')
	}
	dst = dst[:start+body]
	return append(dst, '\n')
}

func appendPadded(dst []byte, v uint64, width int) []byte {
	var buf [20]byte
	s := strconv.AppendUint(buf[:0], v, 10)
	for i := len(s); i < width; i++ {
		dst = append(dst, '0')
	}
	return append(dst, s...)
}

// parseLine reads the sequence number and write time from a generated line
// (without its newline). ok is false for anything else.
func parseLine(line []byte) (seq uint64, ts int64, ok bool) {
	if len(line) < headLen || !bytes.HasPrefix(line, []byte(seqPrefix)) ||
		string(line[len(seqPrefix)+seqDigits:tsAt]) != tsPrefix {
		return 0, 0, false
	}
	seq, ok = parseDigits(line[len(seqPrefix) : len(seqPrefix)+seqDigits])
	if !ok {
		return 0, 0, false
	}
	t, ok := parseDigits(line[tsAt:headLen])
	if !ok || t > 1<<63-1 {
		return 0, 0, false
	}
	return seq, int64(t), true
}

func parseDigits(b []byte) (uint64, bool) {
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + uint64(c-'0')
	}
	return v, true
}
