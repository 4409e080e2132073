package victorialogs

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// InstallCommand installs the VictoriaLogs version the tests are written for.
const InstallCommand = "go install github.com/VictoriaMetrics/VictoriaLogs/app/victoria-logs@v1.52.1"

// BinaryEnv names the environment variable that overrides the binary path.
const BinaryEnv = "VICTORIA_LOGS_BIN"

// Binary returns the path of the victoria-logs binary: $VICTORIA_LOGS_BIN,
// else victoria-logs in PATH, else $(go env GOPATH)/bin/victoria-logs. When
// none exists it skips the test, or fails it when $CI is set, so that a CI
// run can never pass by skipping the real receiver.
func Binary(t testing.TB) string {
	t.Helper()
	path, tried := findBinary()
	if path != "" {
		return path
	}
	msg := "victoria-logs not found (tried " + strings.Join(tried, ", ") + "); install it with: " + InstallCommand
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

func findBinary() (string, []string) {
	var tried []string
	if p := os.Getenv(BinaryEnv); p != "" {
		// An explicit path that is wrong is an error worth seeing, so do
		// not fall back silently.
		if isExecutable(p) {
			return p, nil
		}
		return "", []string{"$" + BinaryEnv + "=" + p}
	}
	if p, err := exec.LookPath("victoria-logs"); err == nil {
		return p, nil
	}
	tried = append(tried, "$PATH")
	p := filepath.Join(goPath(), "bin", "victoria-logs")
	if isExecutable(p) {
		return p, nil
	}
	return "", append(tried, p)
}

// goPath returns the first GOPATH entry, as `go install` uses it.
func goPath() string {
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		if p := firstPath(strings.TrimSpace(string(out))); p != "" {
			return p
		}
	}
	if p := firstPath(os.Getenv("GOPATH")); p != "" {
		return p
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	return filepath.Join(home, "go")
}

func firstPath(list string) string {
	for _, p := range filepath.SplitList(list) {
		if p != "" {
			return p
		}
	}
	return ""
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}
