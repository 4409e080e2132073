package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// envMap is an injected environment.
func envMap(kv ...string) func(string) (string, bool) {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// loadYAML writes content to a fresh config file and loads it with env.
func loadYAML(t *testing.T, content string, env ...string) (*Config, string, error) {
	t.Helper()
	p := writeFile(t, t.TempDir(), "config.yaml", content)
	c, err := Load(LoadOptions{ConfigFile: p, Env: envMap(env...)})
	return c, p, err
}

func mustLoadYAML(t *testing.T, content string, env ...string) *Config {
	t.Helper()
	c, _, err := loadYAML(t, content, env...)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return c
}

// wantErr fails unless err is non-nil and its text holds every fragment.
func wantErr(t *testing.T, err error, fragments ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("want an error containing %q, got nil", fragments)
	}
	for _, f := range fragments {
		if !strings.Contains(err.Error(), f) {
			t.Errorf("error does not contain %q:\n%v", f, err)
		}
	}
}

func countErrors(err error) int {
	if err == nil {
		return 0
	}
	var j interface{ Unwrap() []error }
	if errors.As(err, &j) {
		return len(j.Unwrap())
	}
	return 1
}
