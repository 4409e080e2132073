package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

const buildTimeout = 5 * time.Minute

// The agent binary is built once per test binary, on first use, so that
// `go test -short` builds nothing.
var build struct {
	once sync.Once
	dir  string
	bin  string
	err  error
}

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		if build.dir != "" {
			_ = os.RemoveAll(build.dir)
		}
		os.Exit(code)
	}))
}

// agentBinary returns the path of a freshly built logcapturer. A build
// failure fails the test: an end-to-end test that cannot build the agent
// must not pass by skipping.
func agentBinary(t *testing.T) string {
	t.Helper()
	build.once.Do(func() {
		build.dir, build.err = os.MkdirTemp("", "logcapturer-e2e-")
		if build.err != nil {
			return
		}
		build.bin = filepath.Join(build.dir, "logcapturer")
		ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
		defer cancel()
		// The test runs in e2e/; the module root is its parent. The agent is
		// built without -race even when the test binary has it.
		cmd := exec.CommandContext(ctx, "go", "build", "-o", build.bin, "./cmd/logcapturer")
		cmd.Dir = ".."
		out, err := cmd.CombinedOutput()
		if err != nil {
			build.err = fmt.Errorf("go build ./cmd/logcapturer: %w\n%s", err, out)
		}
	})
	if build.err != nil {
		t.Fatalf("e2e: %v", build.err)
	}
	return build.bin
}
