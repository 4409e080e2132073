package state

import (
	"errors"
	"fmt"
)

var (
	// ErrLocked means another process (or another Store in this process)
	// holds the file.
	ErrLocked = errors.New("another logcapturer instance is using this data directory")
	// ErrSchemaTooNew means the file was written by a newer schema version.
	ErrSchemaTooNew = errors.New("schema version is newer than this binary supports")
	// ErrCorrupt is wrapped by every error about a value or bucket that cannot
	// be decoded.
	ErrCorrupt = errors.New("corrupt value")
	// ErrClosed is returned by operations on a closed Store.
	ErrClosed = errors.New("state: store is closed")
	// ErrRunning is returned by Run when another Run is active.
	ErrRunning = errors.New("state: Run is already running")
)

// CorruptError names the value that could not be decoded, so a caller can
// report it or drop just that key.
type CorruptError struct {
	Bucket string
	Key    string
	Err    error // wraps ErrCorrupt
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("state: bucket %q key %q: %v", e.Bucket, e.Key, e.Err)
}

func (e *CorruptError) Unwrap() error { return e.Err }
