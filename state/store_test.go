package state

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

func testPath(t *testing.T) string {
	t.Helper()
	return filepath.Join(t.TempDir(), DefaultFileName)
}

func mustOpen(t *testing.T, path string, opts Options) *Store {
	t.Helper()
	s, err := Open(path, opts, zerolog.Nop())
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// metricValue reads a counter (or a histogram's sample count) from reg.
func metricValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		m := mf.GetMetric()[0]
		if h := m.GetHistogram(); h != nil {
			return float64(h.GetSampleCount())
		}
		return m.GetCounter().GetValue()
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}

// rawUpdate edits the closed file directly with bbolt, as corruption or an
// older/newer binary would.
func rawUpdate(t *testing.T, path string, fn func(tx *bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(fn); err != nil {
		t.Fatal(err)
	}
}

func TestRoundTripAcrossReopen(t *testing.T) {
	path := testPath(t)
	s := mustOpen(t, path, Options{})
	s.SetPosition("file:a", Position{Offset: 10, WALIndex: 3, UpdatedUnixNano: 99, Meta: []byte("fp-a")})
	s.SetPosition("file:gone", Position{Offset: 1})
	s.SetCursor("loki", 7)
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The second batch is committed by Close alone.
	s.SetPosition("docker:b", Position{Offset: 20, WALIndex: 4})
	s.DeletePosition("file:gone")
	s.SetPositionsWALIndex(4)
	s.SetCursor("loki", 8)
	s.SetCursor("file", 2)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = mustOpen(t, path, Options{})
	pos, err := s.Positions()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Position{
		"file:a":   {Offset: 10, WALIndex: 3, UpdatedUnixNano: 99, Meta: []byte("fp-a")},
		"docker:b": {Offset: 20, WALIndex: 4},
	}
	if len(pos) != len(want) {
		t.Fatalf("positions = %+v, want %+v", pos, want)
	}
	for k, w := range want {
		if !equalPosition(pos[k], w) {
			t.Errorf("position %q = %+v, want %+v", k, pos[k], w)
		}
	}
	if idx, err := s.PositionsWALIndex(); err != nil || idx != 4 {
		t.Errorf("PositionsWALIndex = %d, %v; want 4", idx, err)
	}
	curs, err := s.Cursors()
	if err != nil {
		t.Fatal(err)
	}
	if len(curs) != 2 || curs["loki"] != 8 || curs["file"] != 2 {
		t.Errorf("cursors = %v", curs)
	}
	if idx, ok, err := s.Cursor("loki"); err != nil || !ok || idx != 8 {
		t.Errorf("Cursor(loki) = %d, %t, %v", idx, ok, err)
	}
	if idx, ok, err := s.Cursor("never"); err != nil || ok || idx != 0 {
		t.Errorf("Cursor(never) = %d, %t, %v; want 0, false, nil", idx, ok, err)
	}
}

func TestEmptyStoreReads(t *testing.T) {
	s := mustOpen(t, testPath(t), Options{})
	pos, err := s.Positions()
	if err != nil || pos == nil || len(pos) != 0 {
		t.Errorf("Positions = %v, %v; want empty non-nil map", pos, err)
	}
	curs, err := s.Cursors()
	if err != nil || curs == nil || len(curs) != 0 {
		t.Errorf("Cursors = %v, %v; want empty non-nil map", curs, err)
	}
	if idx, err := s.PositionsWALIndex(); err != nil || idx != 0 {
		t.Errorf("PositionsWALIndex = %d, %v", idx, err)
	}
}

func TestCoalescing(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := mustOpen(t, testPath(t), Options{Registerer: reg})
	for i := range 1000 {
		s.SetPosition("file:a", Position{Offset: uint64(i), Meta: []byte{byte(i)}})
		s.SetPosition("file:b", Position{Offset: uint64(2 * i)})
		s.SetCursor("loki", uint64(i))
		s.SetPositionsWALIndex(uint64(i))
	}
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := metricValue(t, reg, "logcapturer_state_commits_total"); got != 1 {
		t.Fatalf("commits = %v, want 1", got)
	}
	// Nothing pending: no empty transaction.
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := metricValue(t, reg, "logcapturer_state_commits_total"); got != 1 {
		t.Fatalf("commits after empty flush = %v, want 1", got)
	}
	if got := metricValue(t, reg, "logcapturer_state_commit_duration_seconds"); got != 1 {
		t.Fatalf("duration samples = %v, want 1", got)
	}
	pos, err := s.Positions()
	if err != nil {
		t.Fatal(err)
	}
	if !equalPosition(pos["file:a"], Position{Offset: 999, Meta: []byte{byte(999 % 256)}}) ||
		pos["file:b"].Offset != 1998 {
		t.Fatalf("latest values not kept: %+v", pos)
	}
	if idx, _, _ := s.Cursor("loki"); idx != 999 {
		t.Fatalf("cursor = %d, want 999", idx)
	}
	if idx, _ := s.PositionsWALIndex(); idx != 999 {
		t.Fatalf("wal index = %d, want 999", idx)
	}
}

func TestSetDeleteOrder(t *testing.T) {
	type op struct {
		del bool
		off uint64
	}
	tests := map[string]struct {
		committed bool // a position exists on disk before the batch
		ops       []op
		wantOK    bool
		wantOff   uint64
	}{
		"set then delete":               {ops: []op{{off: 5}, {del: true}}},
		"delete then set":               {ops: []op{{del: true}, {off: 6}}, wantOK: true, wantOff: 6},
		"delete committed":              {committed: true, ops: []op{{del: true}}},
		"delete missing":                {ops: []op{{del: true}}},
		"overwrite committed":           {committed: true, ops: []op{{off: 9}}, wantOK: true, wantOff: 9},
		"delete committed then set":     {committed: true, ops: []op{{del: true}, {off: 3}}, wantOK: true, wantOff: 3},
		"set delete set delete set":     {ops: []op{{off: 1}, {del: true}, {off: 2}, {del: true}, {off: 4}}, wantOK: true, wantOff: 4},
		"committed untouched by others": {committed: true, wantOK: true, wantOff: 100},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s := mustOpen(t, testPath(t), Options{})
			ctx := context.Background()
			if tc.committed {
				s.SetPosition("k", Position{Offset: 100})
				if err := s.Flush(ctx); err != nil {
					t.Fatal(err)
				}
			}
			for _, o := range tc.ops {
				if o.del {
					s.DeletePosition("k")
				} else {
					s.SetPosition("k", Position{Offset: o.off})
				}
			}
			s.SetPosition("other", Position{Offset: 1})
			if err := s.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			pos, err := s.Positions()
			if err != nil {
				t.Fatal(err)
			}
			p, ok := pos["k"]
			if ok != tc.wantOK || p.Offset != tc.wantOff {
				t.Fatalf("k = %+v, present %t; want offset %d, present %t", p, ok, tc.wantOff, tc.wantOK)
			}
		})
	}
}

func TestValuesAreCopied(t *testing.T) {
	s := mustOpen(t, testPath(t), Options{})
	meta := []byte("original")
	s.SetPosition("k", Position{Meta: meta})
	copy(meta, "CHANGED!")
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	pos, err := s.Positions()
	if err != nil {
		t.Fatal(err)
	}
	if string(pos["k"].Meta) != "original" {
		t.Fatalf("meta = %q: the caller's buffer was not copied", pos["k"].Meta)
	}
	// A value read out must survive later transactions.
	got := pos["k"].Meta
	for i := range 50 {
		s.SetPosition("k", Position{Meta: bytes.Repeat([]byte{byte(i)}, 4096)})
		s.SetPosition(strings.Repeat("x", i+1), Position{Meta: bytes.Repeat([]byte{'z'}, 4096)})
		if err := s.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if string(got) != "original" {
		t.Fatalf("meta read earlier changed to %q", got)
	}
}

func TestOpenLocked(t *testing.T) {
	path := testPath(t)
	first := mustOpen(t, path, Options{})
	_, err := Open(path, Options{OpenTimeout: 100 * time.Millisecond}, zerolog.Nop())
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second open: err = %v, want ErrLocked", err)
	}
	msg := err.Error()
	if !strings.Contains(msg, "another logcapturer instance is using this data directory") ||
		!strings.Contains(msg, path) {
		t.Fatalf("message %q does not explain the lock or name the path", msg)
	}
	// The failed attempt must not have broken the first instance or its lock.
	first.SetCursor("loki", 1)
	if err := first.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path, Options{OpenTimeout: 100 * time.Millisecond}, zerolog.Nop()); !errors.Is(err, ErrLocked) {
		t.Fatalf("third open: err = %v, want ErrLocked", err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	again := mustOpen(t, path, Options{OpenTimeout: 100 * time.Millisecond})
	if idx, ok, err := again.Cursor("loki"); err != nil || !ok || idx != 1 {
		t.Fatalf("Cursor after reopen = %d, %t, %v", idx, ok, err)
	}
}

func TestOpenFailures(t *testing.T) {
	tests := map[string]struct {
		setup   func(t *testing.T) string // returns the path to open
		opts    Options
		wantErr error // nil: any error
	}{
		"negative open timeout": {
			setup: testPath, opts: Options{OpenTimeout: -time.Second},
		},
		"negative flush interval": {
			setup: testPath, opts: Options{FlushInterval: -time.Second},
		},
		"not a bbolt file": {
			setup: func(t *testing.T) string {
				p := testPath(t)
				if err := os.WriteFile(p, bytes.Repeat([]byte("garbage!"), 2048), 0o600); err != nil {
					t.Fatal(err)
				}
				return p
			},
		},
		"short garbage file": {
			setup: func(t *testing.T) string {
				p := testPath(t)
				if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
					t.Fatal(err)
				}
				return p
			},
		},
		"parent is a file": {
			setup: func(t *testing.T) string {
				f := filepath.Join(t.TempDir(), "file")
				if err := os.WriteFile(f, nil, 0o600); err != nil {
					t.Fatal(err)
				}
				return filepath.Join(f, DefaultFileName)
			},
		},
		"path is a directory": {
			setup: func(t *testing.T) string { return t.TempDir() },
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s, err := Open(tc.setup(t), tc.opts, zerolog.Nop())
			if err == nil {
				_ = s.Close()
				t.Fatal("open succeeded")
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if !strings.HasPrefix(err.Error(), "state: ") {
				t.Fatalf("err %q lacks the package prefix", err)
			}
		})
	}
}

func TestOpenCreatesParentDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	mustOpen(t, filepath.Join(dir, DefaultFileName), Options{})
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !fi.IsDir() || fi.Mode().Perm()&^0o750 != 0 {
		t.Fatalf("data dir mode = %v, want at most 0750", fi.Mode())
	}
}

func TestSchema(t *testing.T) {
	u32 := func(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
	tests := map[string]struct {
		version []byte // nil: delete the key
		wantErr error
	}{
		"current":     {version: u32(SchemaVersion)},
		"absent":      {version: nil},
		"newer":       {version: u32(SchemaVersion + 1), wantErr: ErrSchemaTooNew},
		"much newer":  {version: u32(1 << 31), wantErr: ErrSchemaTooNew},
		"zero":        {version: u32(0), wantErr: ErrCorrupt},
		"three bytes": {version: []byte{0, 0, 1}, wantErr: ErrCorrupt},
		"eight bytes": {version: make([]byte, 8), wantErr: ErrCorrupt},
		"empty value": {version: []byte{}, wantErr: ErrCorrupt},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			path := testPath(t)
			s := mustOpen(t, path, Options{})
			s.SetCursor("loki", 5)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			rawUpdate(t, path, func(tx *bolt.Tx) error {
				b := tx.Bucket([]byte(bucketMeta))
				if tc.version == nil {
					return b.Delete([]byte(keySchemaVersion))
				}
				return b.Put([]byte(keySchemaVersion), tc.version)
			})
			s, err := Open(path, Options{}, zerolog.Nop())
			if tc.wantErr != nil {
				if err == nil {
					_ = s.Close()
				}
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				if !strings.Contains(err.Error(), path) {
					t.Fatalf("err %q does not name the file", err)
				}
				assertVersion(t, path, tc.version) // refused, never rewritten
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if idx, _, err := s.Cursor("loki"); err != nil || idx != 5 {
				t.Fatalf("data lost: cursor %d, %v", idx, err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			assertVersion(t, path, u32(SchemaVersion))
		})
	}
}

func assertVersion(t *testing.T, path string, want []byte) {
	t.Helper()
	rawUpdate(t, path, func(tx *bolt.Tx) error {
		got := tx.Bucket([]byte(bucketMeta)).Get([]byte(keySchemaVersion))
		if !bytes.Equal(got, want) {
			t.Errorf("schema_version on disk = %x, want %x", got, want)
		}
		return nil
	})
}

func TestOpenCreatesMissingBuckets(t *testing.T) {
	path := testPath(t)
	rawUpdate(t, path, func(tx *bolt.Tx) error { // an empty bbolt file
		_, err := tx.CreateBucket([]byte(bucketCursors))
		return err
	})
	s := mustOpen(t, path, Options{})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	rawUpdate(t, path, func(tx *bolt.Tx) error {
		for _, name := range schemaBuckets() {
			if tx.Bucket([]byte(name)) == nil {
				t.Errorf("bucket %q not created", name)
			}
		}
		return nil
	})
}

func TestCorruptValues(t *testing.T) {
	type read func(s *Store) error
	positions := func(s *Store) error { _, err := s.Positions(); return err }
	cursors := func(s *Store) error { _, err := s.Cursors(); return err }
	cursor := func(name string) read {
		return func(s *Store) error { _, _, err := s.Cursor(name); return err }
	}
	walIndex := func(s *Store) error { _, err := s.PositionsWALIndex(); return err }

	tests := map[string]struct {
		bucket, key string
		value       []byte
		reads       []read
	}{
		"position empty":          {bucketPositions, "file:bad", []byte{}, []read{positions}},
		"position unknown format": {bucketPositions, "file:bad", []byte{9, 1, 2, 3}, []read{positions}},
		"position truncated":      {bucketPositions, "file:bad", []byte{1, 0x80}, []read{positions}},
		"position trailing":       {bucketPositions, "file:bad", []byte{1, 0, 0, 0, 0, 7}, []read{positions}},
		"position meta too long":  {bucketPositions, "file:bad", []byte{1, 0, 0, 0, 50, 'x'}, []read{positions}},
		"position json":           {bucketPositions, "file:bad", []byte(`{"offset":1}`), []read{positions}},
		"cursor short":            {bucketCursors, "loki-bad", []byte{1, 2, 3}, []read{cursors, cursor("loki-bad")}},
		"cursor long":             {bucketCursors, "loki-bad", make([]byte, 9), []read{cursors, cursor("loki-bad")}},
		"cursor empty":            {bucketCursors, "loki-bad", []byte{}, []read{cursors, cursor("loki-bad")}},
		"wal index short":         {bucketMeta, keyPositionsWALIndex, []byte{1}, []read{walIndex}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			path := testPath(t)
			s := mustOpen(t, path, Options{})
			s.SetPosition("file:good", Position{Offset: 1})
			s.SetCursor("loki", 1)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			rawUpdate(t, path, func(tx *bolt.Tx) error {
				return tx.Bucket([]byte(tc.bucket)).Put([]byte(tc.key), tc.value)
			})
			s = mustOpen(t, path, Options{})
			for i, r := range tc.reads {
				err := r(s)
				var ce *CorruptError
				if !errors.As(err, &ce) || !errors.Is(err, ErrCorrupt) {
					t.Fatalf("read %d: err = %v, want a *CorruptError", i, err)
				}
				if ce.Bucket != tc.bucket || ce.Key != tc.key {
					t.Fatalf("read %d: error names %q/%q, want %q/%q", i, ce.Bucket, ce.Key, tc.bucket, tc.key)
				}
				if !strings.Contains(err.Error(), tc.key) {
					t.Fatalf("read %d: message %q does not name the key", i, err)
				}
			}
			// The caller can drop the bad key and carry on.
			if tc.bucket == bucketPositions {
				s.DeletePosition(tc.key)
				if err := s.Flush(context.Background()); err != nil {
					t.Fatal(err)
				}
				pos, err := s.Positions()
				if err != nil || len(pos) != 1 || pos["file:good"].Offset != 1 {
					t.Fatalf("after delete: %v, %v", pos, err)
				}
			}
		})
	}
}

func TestCommitFailureKeepsPending(t *testing.T) {
	path := testPath(t)
	reg := prometheus.NewRegistry()
	s := mustOpen(t, path, Options{Registerer: reg})
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	// A real bbolt failure: the file may not grow, and the batch needs it to.
	s.db.MaxSize = int(fi.Size())
	big := bytes.Repeat([]byte{'m'}, MaxMetaBytes)
	for _, k := range []string{"a", "b", "c", "d"} {
		s.SetPosition(k, Position{Offset: 1, Meta: big})
	}
	s.SetCursor("loki", 10)
	s.SetPositionsWALIndex(10)

	err = s.Flush(context.Background())
	if !errors.Is(err, berrors.ErrMaxSizeReached) {
		t.Fatalf("flush: err = %v, want ErrMaxSizeReached", err)
	}
	if got := metricValue(t, reg, "logcapturer_state_commit_errors_total"); got != 1 {
		t.Fatalf("commit errors = %v, want 1", got)
	}
	if got := metricValue(t, reg, "logcapturer_state_commits_total"); got != 0 {
		t.Fatalf("commits = %v, want 0", got)
	}
	if pos, err := s.Positions(); err != nil || len(pos) != 0 {
		t.Fatalf("failed commit left %v, %v", pos, err)
	}
	// Newer changes recorded after the failure win over the retried ones.
	s.SetPosition("b", Position{Offset: 2, Meta: []byte("small")})
	s.SetCursor("loki", 11)

	s.db.MaxSize = 0
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = mustOpen(t, path, Options{})
	pos, err := s.Positions()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Position{
		"a": {Offset: 1, Meta: big}, "b": {Offset: 2, Meta: []byte("small")},
		"c": {Offset: 1, Meta: big}, "d": {Offset: 1, Meta: big},
	}
	if len(pos) != len(want) {
		t.Fatalf("got %d positions, want %d", len(pos), len(want))
	}
	for k, w := range want {
		if !equalPosition(pos[k], w) {
			t.Errorf("position %q = offset %d, %d meta bytes; want offset %d, %d", k,
				pos[k].Offset, len(pos[k].Meta), w.Offset, len(w.Meta))
		}
	}
	if idx, _, _ := s.Cursor("loki"); idx != 11 {
		t.Errorf("cursor = %d, want 11", idx)
	}
	if idx, _ := s.PositionsWALIndex(); idx != 10 {
		t.Errorf("wal index = %d, want 10", idx)
	}
}

func TestCloseWithFailingCommit(t *testing.T) {
	path := testPath(t)
	s := mustOpen(t, path, Options{})
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	s.db.MaxSize = int(fi.Size())
	for _, k := range []string{"a", "b", "c", "d"} {
		s.SetPosition(k, Position{Meta: make([]byte, MaxMetaBytes)})
	}
	if err := s.Close(); !errors.Is(err, berrors.ErrMaxSizeReached) {
		t.Fatalf("close: err = %v, want the commit error", err)
	}
	// Closed all the same: the file is free for the next instance.
	s2 := mustOpen(t, path, Options{OpenTimeout: 100 * time.Millisecond})
	if pos, err := s2.Positions(); err != nil || len(pos) != 0 {
		t.Fatalf("positions = %v, %v", pos, err)
	}
}

func TestRejectedChanges(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := mustOpen(t, testPath(t), Options{Registerer: reg})
	tooLong := strings.Repeat("k", bolt.MaxKeySize+1)
	s.SetPosition("", Position{Offset: 1})
	s.SetPosition(tooLong, Position{Offset: 1})
	s.SetPosition("big-meta", Position{Meta: make([]byte, MaxMetaBytes+1)})
	s.DeletePosition("")
	s.SetCursor("", 1)
	s.SetCursor(tooLong, 1)
	if got := metricValue(t, reg, "logcapturer_state_rejected_changes_total"); got != 6 {
		t.Fatalf("rejected = %v, want 6", got)
	}
	// Nothing valid pending: no commit at all.
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := metricValue(t, reg, "logcapturer_state_commits_total"); got != 0 {
		t.Fatalf("commits = %v, want 0", got)
	}
	// A valid change still goes through.
	s.SetPosition("ok", Position{Offset: 3})
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	pos, err := s.Positions()
	if err != nil || len(pos) != 1 || pos["ok"].Offset != 3 {
		t.Fatalf("positions = %v, %v", pos, err)
	}
}

func TestClosed(t *testing.T) {
	s := mustOpen(t, testPath(t), Options{})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	ctx := context.Background()
	checks := map[string]func() error{
		"Positions":         func() error { _, err := s.Positions(); return err },
		"Cursors":           func() error { _, err := s.Cursors(); return err },
		"Cursor":            func() error { _, _, err := s.Cursor("x"); return err },
		"PositionsWALIndex": func() error { _, err := s.PositionsWALIndex(); return err },
		"Run":               func() error { return s.Run(ctx) },
		"Flush with pending": func() error {
			s.SetCursor("late", 1)
			return s.Flush(ctx)
		},
	}
	for name, fn := range checks {
		t.Run(name, func(t *testing.T) {
			if err := fn(); !errors.Is(err, ErrClosed) {
				t.Fatalf("err = %v, want ErrClosed", err)
			}
		})
	}
}

func TestMetricsReusedOnReopen(t *testing.T) {
	reg := prometheus.NewRegistry()
	path := testPath(t)
	s := mustOpen(t, path, Options{Registerer: reg})
	s.SetCursor("a", 1)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = mustOpen(t, path, Options{Registerer: reg})
	s.SetCursor("a", 2)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got := metricValue(t, reg, "logcapturer_state_commits_total"); got != 2 {
		t.Fatalf("commits = %v, want 2 across both stores", got)
	}

	// A foreign collector under our name is an error, not a panic.
	clash := prometheus.NewRegistry()
	clash.MustRegister(prometheus.NewGauge(prometheus.GaugeOpts{Name: "logcapturer_state_commits_total"}))
	if _, err := Open(testPath(t), Options{Registerer: clash}, zerolog.Nop()); err == nil {
		t.Fatal("open with a clashing metric succeeded")
	}
}

// CommitCursor is durable on return (a reader sees it without Flush), fails
// like a commit when the disk refuses it, keeps the value pending for the
// next commit, and refuses a name bbolt cannot store.
func TestCommitCursor(t *testing.T) {
	path := testPath(t)
	s := mustOpen(t, path, Options{})
	ctx := context.Background()
	if err := s.CommitCursor(ctx, "ship/loki/dispatched", 42); err != nil {
		t.Fatal(err)
	}
	if idx, ok, err := s.Cursor("ship/loki/dispatched"); err != nil || !ok || idx != 42 {
		t.Fatalf("cursor = %d, %v, %v; want 42 committed", idx, ok, err)
	}

	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	s.db.MaxSize = int(fi.Size())
	for _, k := range []string{"a", "b", "c", "d"} {
		s.SetPosition(k, Position{Meta: make([]byte, MaxMetaBytes)})
	}
	if err := s.CommitCursor(ctx, "ship/loki/dispatched", 43); !errors.Is(err, berrors.ErrMaxSizeReached) {
		t.Fatalf("commit on a full file: err = %v, want ErrMaxSizeReached", err)
	}
	if idx, _, _ := s.Cursor("ship/loki/dispatched"); idx != 42 {
		t.Fatalf("after a failed commit the stored mark is %d, want 42", idx)
	}
	s.db.MaxSize = 0
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if idx, _, _ := s.Cursor("ship/loki/dispatched"); idx != 43 {
		t.Fatalf("the failed value was not kept pending: mark %d, want 43", idx)
	}

	if err := s.CommitCursor(ctx, "", 1); err == nil {
		t.Fatal("an empty name was accepted")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.CommitCursor(ctx, "ship/loki/dispatched", 44); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: err = %v, want ErrClosed", err)
	}
}
