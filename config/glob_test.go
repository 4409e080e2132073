package config

import (
	"path/filepath"
	"testing"
)

func TestCheckGlob(t *testing.T) {
	tests := map[string]bool{ // pattern -> valid
		"/var/log/*.log": true, "/srv/**/*.log": true, "*.gz": true, "a?c": true,
		"[abc]": true, "[^a-z]": true, `[\]]`: true, `\*`: true, "[a-]": false,
		"[": false, "x*[z": false, "[]": false, "[]a]": false, "a[b-": false,
		`a\`: false, "[^]": false, "[a-z": false, "[-a]": false,
	}
	for p, valid := range tests {
		t.Run(p, func(t *testing.T) {
			err := checkGlob(p)
			if (err == nil) != valid {
				t.Fatalf("checkGlob(%q) = %v, want valid=%v", p, err, valid)
			}
		})
	}
}

// Whatever filepath.Match rejects, checkGlob must reject too; and a pattern
// checkGlob accepts must never make Match fail.
func FuzzCheckGlob(f *testing.F) {
	for _, s := range []string{"/var/log/*.log", "[a-z]", "x*[z", `\`, "[^]", "[]a]", "a[b-c]d"} {
		f.Add(s, "a")
	}
	f.Fuzz(func(t *testing.T, pattern, name string) {
		_, merr := filepath.Match(pattern, name)
		cerr := checkGlob(pattern)
		if merr != nil && cerr == nil {
			t.Fatalf("Match(%q, %q) = %v but checkGlob accepted it", pattern, name, merr)
		}
		if cerr == nil {
			if _, err := filepath.Match(pattern, pattern); err != nil {
				t.Fatalf("checkGlob accepted %q but Match fails: %v", pattern, err)
			}
		}
	})
}
