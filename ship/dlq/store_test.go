package dlq

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/logcapturer/log_capturer_go/ship"
	"github.com/logcapturer/log_capturer_go/state"
)

// The store implements the shipper's hand-off.
var _ ship.DeadLetterer = (*Store)(nil)

func TestDeadLetterIsDurableAndReadable(t *testing.T) {
	e := newEnv(t, nil)
	base := time.Now()
	l := letter("loki", "line_too_long", "a", 10, 5, base)
	e.deadLetter(l)
	e.reopen()

	ls := e.s.Letters(Filter{})
	if len(ls) != 1 {
		t.Fatalf("letters = %+v", ls)
	}
	got := ls[0]
	if got.Sink != "loki" || got.Reason != "line_too_long" || got.First != 10 || got.Last != 14 ||
		got.Lines != 5 || got.Attempts != 1 || got.Status != state.DLQPending || got.Detail != "entry too long" ||
		got.MinTime != base.UnixNano() || got.MaxTime != base.Add(4*time.Millisecond).UnixNano() {
		t.Fatalf("letter = %+v", got)
	}
	info, err := os.Stat(filepath.Join(e.cfg.Dir, got.File))
	if err != nil || info.Size() != got.Bytes {
		t.Fatalf("file %s: %v (size vs index %d)", got.File, err, got.Bytes)
	}
	entries, err := e.s.Entries(got.ID)
	if err != nil {
		t.Fatal(err)
	}
	for i, en := range entries {
		if !bytes.Equal(en.Line, l.Entries[i].Line) || en.Index != l.Entries[i].Index || en.Time != l.Entries[i].Time {
			t.Fatalf("entry %d = %+v, want %+v", i, en, l.Entries[i])
		}
	}
	if _, err := e.s.Entries(999); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Entries(999) = %v, want ErrNotFound", err)
	}
	if len(e.s.Repairs()) != 0 {
		t.Fatalf("clean reopen repaired: %+v", e.s.Repairs())
	}
}

func TestDeadLetterSplitsByEntryReason(t *testing.T) {
	e := newEnv(t, nil)
	l := letter("loki", "rejected", "m", 100, 6, time.Now())
	l.Entries[1].Reason = "too_old"
	l.Entries[3].Reason = "too_old"
	l.Entries[5].Reason = "line_too_long"
	e.deadLetter(l)

	want := map[string]struct {
		lines       int
		first, last uint64
	}{
		"rejected":      {3, 100, 104},
		"too_old":       {2, 101, 103},
		"line_too_long": {1, 105, 105},
	}
	ls := e.s.Letters(Filter{})
	if len(ls) != 3 {
		t.Fatalf("%d letters, want 3: %+v", len(ls), ls)
	}
	for _, got := range ls {
		w, ok := want[got.Reason]
		if !ok || got.Lines != w.lines || got.First != w.first || got.Last != w.last {
			t.Errorf("letter %+v, want %+v", got, w)
		}
	}
	st := e.s.Stats()
	if st.Pending.Letters != 3 || st.Pending.Lines != 6 || st.ByReason["too_old"].Lines != 2 ||
		st.BySink["loki"].Letters != 3 || st.Oldest == nil || st.Newest == nil {
		t.Fatalf("stats = %+v", st)
	}
	if got := e.metric("logcapturer_dlq_lines_total", map[string]string{"reason": "too_old"}); got != 2 {
		t.Errorf("lines_total{too_old} = %v, want 2", got)
	}
	if got := e.metric("logcapturer_dlq_bytes", nil); got != float64(st.Pending.Bytes) || got == 0 {
		t.Errorf("dlq_bytes = %v, want %d", got, st.Pending.Bytes)
	}
	if got := e.s.Letters(Filter{Reason: "too_old"}); len(got) != 1 {
		t.Errorf("filter by reason: %+v", got)
	}
}

func TestDeadLetterFailureKeepsNothing(t *testing.T) {
	e := newEnv(t, nil)
	// The directory turns into a file: every write fails.
	if err := os.RemoveAll(e.cfg.Dir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(e.cfg.Dir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	err := e.s.DeadLetter(context.Background(), letter("loki", "r", "f", 1, 3, time.Now()))
	if err == nil {
		t.Fatal("DeadLetter succeeded without a directory")
	}
	if ls := e.s.Letters(Filter{}); len(ls) != 0 {
		t.Fatalf("failed hand-off left letters: %+v", ls)
	}
	if idx, _, _ := e.st.DLQLetters(); len(idx) != 0 {
		t.Fatalf("failed hand-off left index records: %+v", idx)
	}
	if got := e.metric("logcapturer_dlq_write_errors_total", nil); got != 1 {
		t.Errorf("write errors = %v", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := e.s.DeadLetter(ctx, letter("loki", "r", "f", 1, 1, time.Now())); !errors.Is(err, context.Canceled) {
		t.Errorf("DeadLetter with a cancelled ctx = %v", err)
	}
}

func TestEmptyLetterIgnored(t *testing.T) {
	e := newEnv(t, nil)
	if err := e.s.DeadLetter(context.Background(), ship.Letter{Sink: "loki", Reason: "r", First: 1, Last: 2}); err != nil {
		t.Fatal(err)
	}
	if ls := e.s.Letters(Filter{}); len(ls) != 0 {
		t.Fatalf("letters = %+v", ls)
	}
}

// TestOpenRepairs stages each crash window between a letter file and its
// index record and checks Open repairs it and counts it.
func TestOpenRepairs(t *testing.T) {
	tests := map[string]struct {
		stage       func(t *testing.T, e *env, l state.DLQLetter)
		kind        string
		wantLetters int // pending after repair
		lostLines   int
	}{
		"file without index": {
			stage: func(t *testing.T, e *env, l state.DLQLetter) {
				if err := e.st.DeleteDLQLetters(l.ID); err != nil {
					t.Fatal(err)
				}
			},
			kind: "orphan_file", wantLetters: 1,
		},
		"index without file": {
			stage: func(t *testing.T, e *env, l state.DLQLetter) {
				if err := os.Remove(filepath.Join(e.cfg.Dir, l.File)); err != nil {
					t.Fatal(err)
				}
			},
			kind: "missing_file", wantLetters: 0, lostLines: 4,
		},
		"temporary file": {
			stage: func(t *testing.T, e *env, l state.DLQLetter) {
				if err := os.WriteFile(filepath.Join(e.cfg.Dir, fileName(99)+tmpSuffix), []byte("half"), 0o600); err != nil {
					t.Fatal(err)
				}
			},
			kind: "tmp_file", wantLetters: 1,
		},
		"truncated file": {
			stage: func(t *testing.T, e *env, l state.DLQLetter) {
				if err := os.Truncate(filepath.Join(e.cfg.Dir, l.File), l.Bytes-5); err != nil {
					t.Fatal(err)
				}
			},
			kind: "bad_file", wantLetters: 0, lostLines: 4,
		},
		"orphan garbage file": {
			stage: func(t *testing.T, e *env, l state.DLQLetter) {
				if err := os.WriteFile(filepath.Join(e.cfg.Dir, fileName(77)), []byte("garbage"), 0o600); err != nil {
					t.Fatal(err)
				}
			},
			kind: "bad_file", wantLetters: 1,
		},
		"reprocessed, file left": {
			stage: func(t *testing.T, e *env, l state.DLQLetter) {
				l.Status = state.DLQReprocessed
				if err := e.st.PutDLQLetters(l); err != nil {
					t.Fatal(err)
				}
			},
			kind: "stale_file", wantLetters: 0,
		},
		"corrupt index record": {
			stage: func(t *testing.T, e *env, l state.DLQLetter) {
				// A status no binary writes: the record no longer decodes.
				bad := state.DLQLetter{ID: l.ID, Status: 9}
				if err := e.st.PutDLQLetters(bad); err != nil {
					t.Fatal(err)
				}
			},
			kind: "bad_index", wantLetters: 1, // indexed again from the file
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, nil)
			e.deadLetter(letter("loki", "r", "c", 1, 4, time.Now()))
			l := e.s.Letters(Filter{})[0]
			tc.stage(t, e, l)
			e.reopen()

			reps := e.s.Repairs()
			found := false
			for _, r := range reps {
				found = found || r.Kind == tc.kind
			}
			if !found {
				t.Fatalf("repairs = %+v, want kind %s", reps, tc.kind)
			}
			if got := e.metric("logcapturer_dlq_repairs_total", map[string]string{"kind": tc.kind}); got < 1 {
				t.Errorf("repairs_total{%s} = %v", tc.kind, got)
			}
			if got := len(e.s.Letters(Filter{Pending: true})); got != tc.wantLetters {
				t.Fatalf("pending letters = %d, want %d", got, tc.wantLetters)
			}
			if got := e.metric("logcapturer_dlq_lost_lines_total", nil); got != float64(tc.lostLines) {
				t.Errorf("lost lines = %v, want %d", got, tc.lostLines)
			}
			// Index and files agree now: a second open repairs nothing.
			e.reopen()
			if reps := e.s.Repairs(); len(reps) != 0 {
				t.Fatalf("second open repaired again: %+v", reps)
			}
			for _, pl := range e.s.Letters(Filter{Pending: true}) {
				if _, err := e.s.Entries(pl.ID); err != nil {
					t.Errorf("letter %d unreadable after repair: %v", pl.ID, err)
				}
			}
			// New letters never take a repaired letter's id.
			e.deadLetter(letter("loki", "r", "n", 9, 1, time.Now()))
			ls := e.s.Letters(Filter{})
			if last := ls[len(ls)-1]; last.ID <= l.ID {
				t.Errorf("new letter id %d reuses an old id (<= %d)", last.ID, l.ID)
			}
		})
	}
}
