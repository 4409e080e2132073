package mariadb

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// InstallCommand installs what Start needs on Debian and Ubuntu.
const InstallCommand = "apt-get install mariadb-server mariadb-client"

const (
	installTimeout = 2 * time.Minute
	readyTimeout   = 60 * time.Second
	stopTimeout    = 30 * time.Second
	clientTimeout  = 2 * time.Minute
	logTailLines   = 40
)

// Server is a mariadbd process owned by one test.
type Server struct {
	// Dir holds everything: the datadir, the socket, the logs.
	Dir      string
	DataDir  string
	Socket   string
	Port     int
	SlowLog  string
	ErrorLog string

	t      testing.TB
	client string
	cmd    *exec.Cmd
	done   chan struct{} // closed when the process has exited
	err    error         // cmd.Wait's result, valid after done
	once   sync.Once
}

// binaries are the programs Start runs.
type binaries struct{ server, installDB, client string }

// findBinary returns the first of names found in PATH or in the
// directories Debian installs MariaDB into.
func findBinary(names ...string) string {
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
		for _, dir := range []string{"/usr/sbin", "/usr/bin", "/usr/local/mysql/bin"} {
			p := filepath.Join(dir, n)
			if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
				return p
			}
		}
	}
	return ""
}

func findBinaries(t testing.TB) binaries {
	t.Helper()
	b := binaries{
		server:    findBinary("mariadbd", "mysqld"),
		installDB: findBinary("mariadb-install-db", "mysql_install_db"),
		client:    findBinary("mariadb", "mysql"),
	}
	if b.server == "" || b.installDB == "" || b.client == "" {
		msg := fmt.Sprintf("MariaDB not found (server %q, install-db %q, client %q); install it with: %s",
			b.server, b.installDB, b.client, InstallCommand)
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return b
}

// Start installs a fresh datadir, starts mariadbd with the slow log on for
// every statement, and waits until it answers. The server is stopped when
// the test ends; if the test failed, the tail of its error log is logged.
func Start(t testing.TB) *Server {
	t.Helper()
	b := findBinaries(t)
	dir := t.TempDir()
	s := &Server{
		Dir:      dir,
		DataDir:  filepath.Join(dir, "data"),
		Socket:   filepath.Join(dir, "mysqld.sock"),
		SlowLog:  filepath.Join(dir, "slow.log"),
		ErrorLog: filepath.Join(dir, "error.log"),
		t:        t,
		client:   b.client,
		done:     make(chan struct{}),
	}
	// mariadbd refuses to run as root unless told to.
	var asRoot []string
	if os.Geteuid() == 0 {
		asRoot = []string{"--user=root"}
	}
	ctx, cancel := context.WithTimeout(context.Background(), installTimeout)
	defer cancel()
	install := exec.CommandContext(ctx, b.installDB, append([]string{"--no-defaults",
		"--datadir=" + s.DataDir, "--auth-root-authentication-method=normal"}, asRoot...)...)
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("mariadb: %s: %v\n%s", b.installDB, err, out)
	}

	port, err := freePort()
	if err != nil {
		t.Fatalf("mariadb: %v", err)
	}
	s.Port = port
	s.cmd = exec.Command(b.server, append([]string{"--no-defaults",
		"--datadir=" + s.DataDir,
		"--bind-address=127.0.0.1", fmt.Sprintf("--port=%d", port),
		"--socket=" + s.Socket, "--pid-file=" + filepath.Join(dir, "mysqld.pid"),
		"--skip-grant-tables", "--skip-log-bin", "--innodb-buffer-pool-size=16M",
		"--log-error=" + s.ErrorLog,
		"--slow-query-log=1", "--long-query-time=0", "--slow-query-log-file=" + s.SlowLog,
	}, asRoot...)...)
	s.cmd.SysProcAttr = sysProcAttr()
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("mariadb: start %s: %v", b.server, err)
	}
	go func() {
		s.err = s.cmd.Wait()
		close(s.done)
	}()
	// Cleanups run last-in first-out: stop first, then show the log.
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("mariadb error log (last %d lines of %s):\n%s", logTailLines, s.ErrorLog, tail(s.ErrorLog, logTailLines))
		}
	})
	t.Cleanup(s.Stop)
	s.waitReady()
	return s
}

// waitReady polls with "SELECT 1" until the server answers; the server
// exiting first fails the test.
func (s *Server) waitReady() {
	s.t.Helper()
	deadline := time.Now().Add(readyTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := s.Exec(ctx, "SELECT 1;")
		cancel()
		if err == nil {
			return
		}
		select {
		case <-s.done:
			s.t.Fatalf("mariadb: exited at start: %v\n%s", s.err, tail(s.ErrorLog, logTailLines))
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("mariadb: not ready after %v: %v\n%s", readyTimeout, err, tail(s.ErrorLog, logTailLines))
		}
	}
}

// Exec runs sql through the mariadb client on the socket, as root, with
// comments kept, and returns the client's output. ctx bounds it (and
// clientTimeout does when ctx has no deadline).
func (s *Server) Exec(ctx context.Context, sql string) ([]byte, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, clientTimeout)
		defer cancel()
	}
	c := exec.CommandContext(ctx, s.client, "--no-defaults", "--comments", "--batch",
		"--socket="+s.Socket, "--user=root", "--connect-timeout=2")
	c.Stdin = strings.NewReader(sql)
	out, err := c.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("mariadb client: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return out, nil
}

// Stop sends SIGTERM and waits for the exit, SIGKILL after 30 s (reported
// as a test error). Once it returns, every slow-log entry is on disk.
// Stopping a stopped server does nothing.
func (s *Server) Stop() {
	s.once.Do(func() {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(stopTimeout):
			_ = s.cmd.Process.Kill()
			<-s.done
			s.t.Errorf("mariadb: did not stop within %v of SIGTERM; killed", stopTimeout)
		}
	})
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
