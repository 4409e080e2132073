package state

import (
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Every bucket and key of the file is declared here and nowhere else.

// SchemaVersion is the layout this binary writes. Opening a file that records
// a newer version fails with ErrSchemaTooNew.
const SchemaVersion uint32 = 1

// DefaultFileName is the file name the agent uses inside its data directory.
const DefaultFileName = "state.db"

const (
	// bucketMeta holds file-wide values (keyed by the key* constants below).
	bucketMeta = "meta"
	// bucketPositions: source id -> encoded Position.
	bucketPositions = "positions"
	// bucketCursors: shipper name -> uint64 big-endian WAL index.
	bucketCursors = "cursors"
	// bucketDLQ holds the DLQ index in two nested buckets (created on first
	// write, see dlq.go): bucketDLQLetters and bucketDLQRequests.
	bucketDLQ = "dlq"
	// bucketDLQLetters (in dlq): letter id (uint64 big-endian, from the
	// bucket's sequence, so ids are never reused) -> encoded DLQLetter.
	bucketDLQLetters = "letters"
	// bucketDLQRequests (in dlq): reprocess request id -> encoded DLQRequest.
	bucketDLQRequests = "requests"
	// bucketDedup holds, per sink, the recently acknowledged dedup keys (ship.DedupStore).
	bucketDedup = "dedup"
)

const (
	// keySchemaVersion (in meta): uint32 big-endian.
	keySchemaVersion = "schema_version"
	// keyPositionsWALIndex (in meta): uint64 big-endian, the WAL index the
	// positions checkpoint covers; recovery scans the WAL from there.
	keyPositionsWALIndex = "positions_wal_index"
)

// schemaBuckets lists every bucket created on open (a function, not a
// package variable, so nothing can modify it).
func schemaBuckets() []string {
	return []string{bucketMeta, bucketPositions, bucketCursors, bucketDLQ, bucketDedup}
}

// initSchema creates missing buckets and checks or stamps the schema version.
func initSchema(tx *bolt.Tx) error {
	for _, name := range schemaBuckets() {
		if _, err := tx.CreateBucketIfNotExists([]byte(name)); err != nil {
			return fmt.Errorf("create bucket %q: %w", name, err)
		}
	}
	meta := tx.Bucket([]byte(bucketMeta))
	raw := meta.Get([]byte(keySchemaVersion))
	if raw == nil {
		return meta.Put([]byte(keySchemaVersion), binary.BigEndian.AppendUint32(nil, SchemaVersion))
	}
	if len(raw) != 4 {
		return &CorruptError{Bucket: bucketMeta, Key: keySchemaVersion,
			Err: fmt.Errorf("%w: %d bytes, want 4", ErrCorrupt, len(raw))}
	}
	switch v := binary.BigEndian.Uint32(raw); {
	case v == 0:
		return &CorruptError{Bucket: bucketMeta, Key: keySchemaVersion,
			Err: fmt.Errorf("%w: version 0", ErrCorrupt)}
	case v > SchemaVersion:
		return fmt.Errorf("%w: file has version %d, this binary supports up to %d "+
			"(run a newer logcapturer, or move the file aside to start fresh)",
			ErrSchemaTooNew, v, SchemaVersion)
	}
	// Migrations from older versions go here once a second version exists.
	return nil
}

// bucket returns a bucket that initSchema created; its absence means the
// file was changed behind our back.
func bucket(tx *bolt.Tx, name string) (*bolt.Bucket, error) {
	b := tx.Bucket([]byte(name))
	if b == nil {
		return nil, fmt.Errorf("%w: bucket %q missing", ErrCorrupt, name)
	}
	return b, nil
}

// decodeUint64 reads an 8-byte big-endian value, naming its place on error.
func decodeUint64(bucketName string, key, v []byte) (uint64, error) {
	if len(v) != 8 {
		return 0, &CorruptError{Bucket: bucketName, Key: string(key),
			Err: fmt.Errorf("%w: %d bytes, want 8", ErrCorrupt, len(v))}
	}
	return binary.BigEndian.Uint64(v), nil
}
