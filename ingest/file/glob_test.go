package file

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestMatchPath(t *testing.T) {
	tests := map[string]struct {
		pattern, path string
		want          bool
	}{
		"plain star":              {"/var/log/*.log", "/var/log/syslog.log", true},
		"star stops at slash":     {"/var/log/*.log", "/var/log/a/b.log", false},
		"doublestar zero dirs":    {"/var/log/**/*.log", "/var/log/a.log", true},
		"doublestar many dirs":    {"/var/log/**/*.log", "/var/log/a/b/c/d.log", true},
		"doublestar wrong suffix": {"/var/log/**/*.log", "/var/log/a/b/c/d.txt", false},
		"doublestar at end":       {"/var/log/**", "/var/log/a/b", true},
		"doublestar in middle":    {"/srv/**/logs/*.log", "/srv/x/y/logs/app.log", true},
		"doublestar needs logs":   {"/srv/**/logs/*.log", "/srv/x/y/app.log", false},
		"repeated doublestar":     {"/a/**/**/**/b", "/a/b", true},
		"class":                   {"/var/log/app[0-9].log", "/var/log/app7.log", true},
		"question":                {"/var/log/app?.log", "/var/log/app12.log", false},
		"literal":                 {"/var/log/messages", "/var/log/messages", true},
		"unclean path":            {"/var/log/*.log", "/var/log/./x.log", true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := matchPath(tc.pattern, tc.path); got != tc.want {
				t.Fatalf("matchPath(%q, %q) = %v, want %v", tc.pattern, tc.path, got, tc.want)
			}
		})
	}
}

func TestStaticPrefix(t *testing.T) {
	tests := map[string]struct{ pattern, want string }{
		"glob in name":     {"/var/log/*.log", "/var/log"},
		"doublestar":       {"/var/log/**/x.log", "/var/log"},
		"glob in dir":      {"/var/*/app/x.log", "/var"},
		"literal file":     {"/var/log/messages", "/var/log"},
		"root glob":        {"/*.log", "/"},
		"relative pattern": {"*.log", "."},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := staticPrefix(tc.pattern); got != tc.want {
				t.Fatalf("staticPrefix(%q) = %q, want %q", tc.pattern, got, tc.want)
			}
		})
	}
}

func TestExcluded(t *testing.T) {
	tests := map[string]struct {
		patterns []string
		path     string
		want     bool
	}{
		"base name":       {[]string{"*.gz"}, "/var/log/a.log.1.gz", true},
		"full path":       {[]string{"/var/log/secret/*"}, "/var/log/secret/x.log", true},
		"full doublestar": {[]string{"/var/**/debug.log"}, "/var/log/app/debug.log", true},
		"no match":        {[]string{"*.gz", "/tmp/*"}, "/var/log/a.log", false},
		"none":            {nil, "/var/log/a.log", false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := excluded(tc.patterns, tc.path); got != tc.want {
				t.Fatalf("excluded(%q, %q) = %v, want %v", tc.patterns, tc.path, got, tc.want)
			}
		})
	}
}

func touch(t *testing.T, path string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestExpandPattern(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{"a.log", "b.txt", "sub/c.log", "sub/deep/d.log", "sub/deep/e.txt", "other/f.log"} {
		touch(t, filepath.Join(dir, p))
	}
	// A symlinked directory is not descended by "**" (no loops).
	if err := os.Symlink(dir, filepath.Join(dir, "sub", "loop")); err != nil {
		t.Fatal(err)
	}
	rel := func(ps []string) []string {
		out := make([]string, len(ps))
		for i, p := range ps {
			out[i], _ = filepath.Rel(dir, p)
		}
		return out
	}
	tests := map[string]struct {
		pattern string
		want    []string
	}{
		"star":              {"*.log", []string{"a.log"}},
		"doublestar":        {"**/*.log", []string{"a.log", "other/f.log", "sub/c.log", "sub/deep/d.log"}},
		"doublestar subdir": {"sub/**/*.txt", []string{"sub/deep/e.txt"}},
		"missing dir":       {"nope/**/*.log", []string{}},
		"dirs not files":    {"**/deep", []string{}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := rel(expandPattern(filepath.Join(dir, tc.pattern)))
			if !slices.Equal(got, tc.want) {
				t.Fatalf("expandPattern(%q) = %q, want %q", tc.pattern, got, tc.want)
			}
		})
	}
}
