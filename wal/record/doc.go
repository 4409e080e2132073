// Package record encodes and decodes the payload of one WAL entry: a batch of
// captured lines.
//
// The WAL itself moves opaque bytes (package wal frames them with a version
// byte and a CRC32C). This package gives those bytes meaning. One payload holds
// many lines so that the per-entry costs (framing, checksum, fsync accounting)
// are shared, and it interns source identities and label sets: a stream's
// labels are written once per entry, not once per line.
//
// Payload layout (all integers are unsigned varints unless noted):
//
//	format      byte   (FormatV1)
//	base_time   varint nanoseconds since the Unix epoch (zig-zag)
//	n_sources   ; n_sources × string              source identities
//	n_labelsets ; n_labelsets × (n_pairs ; n_pairs × (string name, string value))
//	n_records   ; n_records × record
//
//	record:
//	  source     index into the source table
//	  labelset   index into the label-set table
//	  offset     end offset of the line in its source (for position recovery)
//	  time_delta varint (zig-zag) nanoseconds relative to base_time
//	  flags      byte (FlagTruncated, FlagPartial, FlagEscaped, FlagMeta)
//	  [meta]     present when FlagMeta: n_pairs ; pairs (structured metadata)
//	  line       string
//
//	string = length ; bytes
//
// Decoding never trusts a length: every read is bounds-checked and a
// malformed payload yields ErrMalformed, never a panic.
package record
