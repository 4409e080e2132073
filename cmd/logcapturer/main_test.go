package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/logcapturer/log_capturer_go/config"
	"github.com/logcapturer/log_capturer_go/state"
	"github.com/logcapturer/log_capturer_go/wal"
	"github.com/logcapturer/log_capturer_go/wal/record"
)

// writeWAL creates a WAL in dataDir/wal with entries payloads of perEntry
// lines from source "src", offsets 100, 200, ...
func writeWAL(t *testing.T, dataDir string, entries, perEntry int) {
	t.Helper()
	cfg := wal.Defaults()
	cfg.SegmentSize = 64 << 10
	cfg.MaxEntryBytes = 32 << 10
	cfg.SyncInterval = time.Millisecond
	l, err := wal.Open(filepath.Join(dataDir, "wal"), cfg, zerolog.Nop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	ls := record.NewLabelSet([]record.Label{{Name: "job", Value: "t"}})
	var wg sync.WaitGroup
	off := uint64(0)
	for e := 0; e < entries; e++ {
		b := record.NewBuilder()
		for i := 0; i < perEntry; i++ {
			off += 100
			b.Add("src", ls, off, time.Now().UnixNano(), 0, nil, []byte(fmt.Sprintf("entry %d line %d %s", e, i, strings.Repeat("x", 60))))
		}
		wg.Add(1)
		if err := l.Append(ctx, b.AppendTo(nil), func(_ uint64, err error) {
			if err != nil {
				t.Errorf("append: %v", err)
			}
			wg.Done()
		}); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func run(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := runMain(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestWALVerifyReportsDamageWithSegmentAndIndex(t *testing.T) {
	dir := t.TempDir()
	writeWAL(t, dir, 600, 5)
	if code, out, _ := run("wal", "verify", "--data-dir", dir); code != 0 || !strings.HasPrefix(out, "OK:") {
		t.Fatalf("clean WAL: code %d out %q", code, out)
	}
	segs, err := wal.Segments(filepath.Join(dir, "wal"))
	if err != nil || len(segs) < 3 {
		t.Fatalf("segments %v %v", len(segs), err)
	}
	mid := segs[1]
	path := filepath.Join(dir, "wal", mid.Name)
	data, _ := os.ReadFile(path)
	data[len(data)/2] ^= 0x40
	if err := os.WriteFile(path, data, 0o640); err != nil {
		t.Fatal(err)
	}
	code, out, _ := run("wal", "verify", "--data-dir", dir)
	if code != 1 || !strings.Contains(out, "DAMAGED segment="+mid.Name+" index=") {
		t.Fatalf("damaged WAL: code %d out %q", code, out)
	}
	code, out, _ = run("wal", "verify", "--data-dir", dir, "--json")
	var rep struct {
		Problems []string `json:"problems"`
	}
	if code != 1 || json.Unmarshal([]byte(out), &rep) != nil || len(rep.Problems) != 1 || !strings.Contains(rep.Problems[0], mid.Name) {
		t.Fatalf("json: code %d out %q", code, out)
	}
}

func TestWALLsStatsDump(t *testing.T) {
	dir := t.TempDir()
	writeWAL(t, dir, 20, 3)
	code, out, errs := run("wal", "ls", "--data-dir", dir)
	if code != 0 || !strings.Contains(out, "00000000000000000001") {
		t.Fatalf("ls: %d %q %q", code, out, errs)
	}
	code, out, _ = run("wal", "stats", "--data-dir", dir, "--json")
	var st walStatsOut
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || st.Entries != 20 || st.Records != 60 || st.LastOffset["src"] != 6000 {
		t.Fatalf("stats: %d %+v", code, st)
	}
	code, out, _ = run("wal", "dump", "--data-dir", dir, "--from", "20", "--lines")
	if code != 0 || strings.Count(out, "\n") != 3 || !strings.HasPrefix(out, "entry 19 line 0") {
		t.Fatalf("dump --lines: %d %q", code, out)
	}
	code, out, _ = run("wal", "dump", "--data-dir", dir, "--limit", "1", "--json")
	if code != 0 || strings.Count(out, "\n") != 3 || !strings.Contains(out, `"labels":{"job":"t"}`) {
		t.Fatalf("dump --json: %d %q", code, out)
	}
	if code, _, _ := run("wal", "nope", "--data-dir", dir); code != 2 {
		t.Fatalf("unknown subcommand: %d", code)
	}
	if code, _, _ := run("wal", "ls"); code != 2 {
		t.Fatalf("missing --data-dir: %d", code)
	}
	if code, _, _ := run("wal", "ls", "--data-dir", filepath.Join(dir, "missing")); code != 1 {
		t.Fatalf("missing dir: %d", code)
	}
}

func TestConfigCheck(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("wal:\n  segmnt_size: 1MiB\n"), 0o600)
	code, _, errs := run("config", "check", bad)
	if code != 1 || !strings.Contains(errs, bad) || !strings.Contains(errs, "wal.segmnt_size") {
		t.Fatalf("bad config: %d %q", code, errs)
	}
	code, out, _ := run("config", "check", "../../configs/config.yaml")
	if code != 0 || !strings.HasPrefix(out, "OK:") {
		t.Fatalf("shipped config: %d %q", code, out)
	}
}

func TestUnknownCommandAndVersion(t *testing.T) {
	if code, _, _ := run("bogus"); code != 2 {
		t.Fatal("unknown command must exit 2")
	}
	if code, out, _ := run("version"); code != 0 || !strings.HasPrefix(out, "logcapturer ") {
		t.Fatal("version")
	}
	if code, _, _ := run(); code != 2 {
		t.Fatal("no args must exit 2")
	}
}

// TestRecoverPositionsFromWALTail: the bbolt checkpoint is behind the WAL
// (a crash before the state commit); recovery takes the later of the two.
func TestRecoverPositionsFromWALTail(t *testing.T) {
	dir := t.TempDir()
	writeWAL(t, dir, 10, 2) // offsets up to 2000 for "src", entries 1..10
	st, err := state.Open(filepath.Join(dir, state.DefaultFileName), state.Options{}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	// Checkpoint says: src at 800 (entry 4), and another source the WAL never saw.
	st.SetPosition("src", state.Position{Offset: 800, WALIndex: 4, Meta: []byte("m")})
	st.SetPosition("other", state.Position{Offset: 55, WALIndex: 2})
	st.SetPositionsWALIndex(4)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.DataDir = dir
	cfg.Files.Enabled = false
	cfg.Server.Listen, cfg.Server.MetricsListen = "127.0.0.1:0", "127.0.0.1:0"
	a, err := newAgent(cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer a.closeAll()
	// newAgent already recovered once; do it again to inspect the result.
	saved, ckpt, err := a.recoverPositions()
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(saved, func(i, j int) bool { return saved[i].ID < saved[j].ID })
	if ckpt != 4 || len(saved) != 2 {
		t.Fatalf("ckpt %d saved %+v", ckpt, saved)
	}
	if s := saved[1]; s.ID != "src" || s.Offset != 2000 || s.WALIndex != 10 || string(s.Meta) != "m" {
		t.Fatalf("src recovered as %+v, want offset 2000 from WAL entry 10 with the checkpoint's meta", s)
	}
	if s := saved[0]; s.ID != "other" || s.Offset != 55 {
		t.Fatalf("other recovered as %+v", s)
	}
}

// TestSecondInstanceFailsFast: two agents on one data_dir.
func TestSecondInstanceFailsFast(t *testing.T) {
	dir := t.TempDir()
	cfg := config.Default()
	cfg.DataDir = dir
	cfg.Files.Enabled = false
	cfg.Server.Listen, cfg.Server.MetricsListen = "127.0.0.1:0", "127.0.0.1:0"
	a, err := newAgent(cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer a.closeAll()
	start := time.Now()
	_, err = newAgent(cfg, zerolog.Nop())
	if err == nil || !strings.Contains(err.Error(), "another logcapturer instance") {
		t.Fatalf("second instance: %v", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Fatalf("second instance took %v to fail", time.Since(start))
	}
}
