package dlq

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/logcapturer/log_capturer_go/state"
)

func TestExpireByRetention(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Retention = time.Hour })
	e.deadLetter(letter("loki", "old", "a", 1, 3, time.Now()))
	e.clock.Add(40 * time.Minute)
	e.deadLetter(letter("loki", "young", "b", 4, 2, time.Now()))
	e.clock.Add(30 * time.Minute) // first is 70 min old, second 30

	rep, err := e.s.Expire()
	if err != nil {
		t.Fatal(err)
	}
	if rep.ByRetention != 1 || rep.ByMaxBytes != 0 || rep.Lines != 3 {
		t.Fatalf("report = %+v", rep)
	}
	ls := e.s.Letters(Filter{})
	if len(ls) != 1 || ls[0].Reason != "young" {
		t.Fatalf("left = %+v", ls)
	}
	if got := e.metric("logcapturer_dlq_expired_lines_total", map[string]string{"cause": "retention", "reason": "old", "sink": "loki"}); got != 3 {
		t.Errorf("expired lines = %v, want 3", got)
	}
	if got := e.metric("logcapturer_dlq_expired_letters_total", map[string]string{"cause": "retention"}); got != 1 {
		t.Errorf("expired letters = %v, want 1", got)
	}
	files, _ := filepath.Glob(filepath.Join(e.cfg.Dir, "*"+fileSuffix))
	if len(files) != 1 {
		t.Errorf("files left: %v", files)
	}
	// The expiry is durable.
	e.reopen()
	if ls := e.s.Letters(Filter{}); len(ls) != 1 || len(e.s.Repairs()) != 0 {
		t.Fatalf("after reopen: %+v, repairs %+v", ls, e.s.Repairs())
	}
}

func TestExpireByMaxBytesOldestFirst(t *testing.T) {
	// One letter of 40 lines is about 1 KiB; the bound holds three.
	var size int64
	{
		probe := newEnv(t, nil)
		probe.deadLetter(letter("loki", "r", "p", 1, 40, time.Now()))
		size = probe.s.Letters(Filter{})[0].Bytes
	}
	e := newEnv(t, func(c *Config) { c.MaxBytes = 3*size + size/2 })
	for i := range 5 {
		e.deadLetter(letter("loki", "r", "p", uint64(1+40*i), 40, time.Now()))
	}
	// Enforced at each hand-off, not only at the next tick.
	ls := e.s.Letters(Filter{})
	if len(ls) != 3 {
		t.Fatalf("%d letters held, want 3", len(ls))
	}
	if ls[0].First != 81 {
		t.Fatalf("kept %+v, want the three newest", ls)
	}
	if got := e.metric("logcapturer_dlq_expired_lines_total", map[string]string{"cause": "max_bytes"}); got != 80 {
		t.Errorf("expired lines = %v, want 80", got)
	}
	if st := e.s.Stats(); st.Pending.Bytes > e.cfg.MaxBytes || st.Pending.Letters != 3 {
		t.Errorf("stats = %+v", st)
	}
	// A smaller bound after a restart (config change) is applied by Expire.
	e.cfg.MaxBytes = size + size/2 // letters differ by a few bytes (their indexes)
	e.reopen()
	rep, err := e.s.Expire()
	if err != nil || rep.ByMaxBytes != 2 || rep.Lines != 80 {
		t.Fatalf("Expire = %+v, %v", rep, err)
	}
}

func TestExpireForgetsReprocessedAndRequests(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Retention = time.Hour; c.RequestTTL = 2 * time.Hour })
	e.deadLetter(letter("loki", "r", "a", 1, 2, time.Now()))
	l := e.s.Letters(Filter{})[0]
	l.Status = state.DLQReprocessed
	if err := e.st.PutDLQLetters(l); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(e.cfg.Dir, l.File)); err != nil {
		t.Fatal(err)
	}
	if err := e.st.PutDLQRequest(state.DLQRequest{ID: "r1", Status: state.DLQRequestDone,
		CreatedUnixNano: e.clock.Now().UnixNano(), ExpiresUnixNano: e.clock.Now().Add(2 * time.Hour).UnixNano()}); err != nil {
		t.Fatal(err)
	}
	e.reopen()
	e.clock.Add(90 * time.Minute)
	rep, err := e.s.Expire()
	if err != nil || rep.Forgotten != 1 || rep.ByRetention != 0 || rep.Requests != 0 {
		t.Fatalf("Expire = %+v, %v", rep, err)
	}
	if got := e.metric("logcapturer_dlq_expired_lines_total", nil); got != 0 {
		t.Errorf("a reprocessed letter counted as lost: %v", got)
	}
	e.clock.Add(time.Hour)
	if rep, err := e.s.Expire(); err != nil || rep.Requests != 1 {
		t.Fatalf("Expire = %+v, %v", rep, err)
	}
	if _, ok, _ := e.st.DLQRequest("r1"); ok {
		t.Fatal("request id kept past its TTL")
	}
}

func TestRunExpiresUntilCancelled(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Retention = time.Minute; c.CheckInterval = 5 * time.Millisecond })
	e.deadLetter(letter("loki", "r", "a", 1, 2, time.Now()))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.s.Run(ctx) }()
	e.clock.Add(2 * time.Minute)
	deadline := time.Now().Add(10 * time.Second)
	for len(e.s.Letters(Filter{})) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("Run did not expire the letter")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
