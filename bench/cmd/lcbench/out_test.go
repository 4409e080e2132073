package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteReportKeepsHandWrittenSections(t *testing.T) {
	path := filepath.Join(t.TempDir(), "RESULTS.md")
	if err := writeReport(path, "# run 1\n"); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if err := os.WriteFile(path, append([]byte("intro\n"), append(b, "\n## by hand\nkept\n"...)...), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := writeReport(path, "# run 2"); err != nil {
		t.Fatal(err)
	}
	b, _ = os.ReadFile(path)
	got := string(b)
	for _, want := range []string{"intro\n" + beginMarker + "# run 2\n" + endMarker, "## by hand\nkept\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("report lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "run 1") {
		t.Errorf("old generated text kept:\n%s", got)
	}

	// A file without markers keeps its text after the new region.
	plain := filepath.Join(t.TempDir(), "plain.md")
	if err := os.WriteFile(plain, []byte("notes\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := writeReport(plain, "gen\n"); err != nil {
		t.Fatal(err)
	}
	b, _ = os.ReadFile(plain)
	if string(b) != beginMarker+"gen\n"+endMarker+"\nnotes\n" {
		t.Errorf("got %q", b)
	}
}
