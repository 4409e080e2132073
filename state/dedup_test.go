package state

import (
	"errors"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

type dedupChunk struct {
	at   time.Time
	keys []uint64
}

func loadAll(t *testing.T, s *Store, sink string, since time.Time) []dedupChunk {
	t.Helper()
	var out []dedupChunk
	if err := s.LoadDedup(sink, since, func(at time.Time, keys []uint64) {
		out = append(out, dedupChunk{at, keys})
	}); err != nil {
		t.Fatalf("load: %v", err)
	}
	return out
}

func seqKeys(from, n int) []uint64 {
	k := make([]uint64, n)
	for i := range k {
		k[i] = uint64(from + i)
	}
	return k
}

func TestDedupSaveLoad(t *testing.T) {
	base := time.Unix(1_700_000_000, 0)
	tests := map[string]struct {
		saves []dedupChunk // saved in order, expiring nothing
		since time.Time
		want  []int // number of keys per loaded chunk
	}{
		"nothing saved":       {since: base, want: nil},
		"all within the span": {saves: []dedupChunk{{base, seqKeys(1, 3)}, {base.Add(time.Second), seqKeys(4, 2)}}, since: base, want: []int{3, 2}},
		"older ones skipped":  {saves: []dedupChunk{{base, seqKeys(1, 3)}, {base.Add(time.Second), seqKeys(4, 2)}}, since: base.Add(time.Millisecond), want: []int{2}},
		"large save chunked": {saves: []dedupChunk{{base, seqKeys(1, dedupChunkKeys+5)}}, since: base,
			want: []int{dedupChunkKeys, 5}},
		"empty save stores nothing": {saves: []dedupChunk{{base, nil}}, since: base, want: nil},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			path := testPath(t)
			s := mustOpen(t, path, Options{NoSync: true})
			for _, c := range tt.saves {
				if err := s.SaveDedup("loki", c.at, c.keys, time.Time{}); err != nil {
					t.Fatal(err)
				}
			}
			check := func(s *Store) {
				got := loadAll(t, s, "loki", tt.since)
				if len(got) != len(tt.want) {
					t.Fatalf("loaded %d chunks, want %d", len(got), len(tt.want))
				}
				next := 0
				for i, c := range got {
					if len(c.keys) != tt.want[i] {
						t.Fatalf("chunk %d has %d keys, want %d", i, len(c.keys), tt.want[i])
					}
					if c.at.Before(tt.since) {
						t.Fatalf("chunk %d saved at %v, before %v", i, c.at, tt.since)
					}
					if next == 0 {
						next = int(c.keys[0])
					}
					if !slices.Equal(c.keys, seqKeys(next, len(c.keys))) {
						t.Fatalf("chunk %d keys out of order", i)
					}
					next += len(c.keys)
				}
			}
			check(s)
			// Durable across reopen.
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			check(mustOpen(t, path, Options{NoSync: true}))
		})
	}
}

func TestDedupExpiryAndSinks(t *testing.T) {
	s := mustOpen(t, testPath(t), Options{NoSync: true})
	base := time.Unix(1_700_000_000, 0)
	for i := range 5 {
		if err := s.SaveDedup("loki", base.Add(time.Duration(i)*time.Minute), seqKeys(10*i, 2), time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SaveDedup("file", base, seqKeys(100, 1), time.Time{}); err != nil {
		t.Fatal(err)
	}
	// Saving at +5m with expire at +3m drops the saves of 0, 1 and 2 minutes.
	if err := s.SaveDedup("loki", base.Add(5*time.Minute), seqKeys(50, 1), base.Add(3*time.Minute)); err != nil {
		t.Fatal(err)
	}
	got := loadAll(t, s, "loki", time.Time{})
	if len(got) != 3 || got[0].keys[0] != 30 || got[2].keys[0] != 50 {
		t.Fatalf("after expiry: %+v", got)
	}
	if f := loadAll(t, s, "file", time.Time{}); len(f) != 1 || f[0].keys[0] != 100 {
		t.Fatalf("other sink touched: %+v", f)
	}
	if u := loadAll(t, s, "unknown", time.Time{}); u != nil {
		t.Fatalf("unknown sink: %+v", u)
	}
}

func TestDedupFailures(t *testing.T) {
	t.Run("invalid sink name", func(t *testing.T) {
		s := mustOpen(t, testPath(t), Options{NoSync: true})
		if err := s.SaveDedup("", time.Now(), seqKeys(1, 1), time.Time{}); err == nil {
			t.Fatal("empty sink name accepted")
		}
	})
	t.Run("closed", func(t *testing.T) {
		s := mustOpen(t, testPath(t), Options{NoSync: true})
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := s.SaveDedup("loki", time.Now(), seqKeys(1, 1), time.Time{}); !errors.Is(err, ErrClosed) {
			t.Fatalf("save after close: %v", err)
		}
		if err := s.LoadDedup("loki", time.Time{}, func(time.Time, []uint64) {}); !errors.Is(err, ErrClosed) {
			t.Fatalf("load after close: %v", err)
		}
	})
	t.Run("corrupt value", func(t *testing.T) {
		path := testPath(t)
		s := mustOpen(t, path, Options{NoSync: true})
		if err := s.SaveDedup("loki", time.Unix(1, 0), seqKeys(1, 2), time.Time{}); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		rawUpdate(t, path, func(tx *bolt.Tx) error {
			return tx.Bucket([]byte(bucketDedup)).Bucket([]byte("loki")).Put(dedupKey(time.Unix(2, 0), 0), []byte{1, 2, 3})
		})
		s = mustOpen(t, path, Options{NoSync: true})
		err := s.LoadDedup("loki", time.Time{}, func(time.Time, []uint64) {})
		var ce *CorruptError
		if !errors.As(err, &ce) || !errors.Is(err, ErrCorrupt) {
			t.Fatalf("corrupt value: %v", err)
		}
	})
}
