package multiline

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// findBinary returns the first of names found in PATH or in the sbin/bin
// directories Debian installs MariaDB into.
func findBinary(names ...string) string {
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
		for _, dir := range []string{"/usr/sbin", "/usr/bin", "/usr/local/mysql/bin"} {
			p := filepath.Join(dir, n)
			if st, err := os.Stat(p); err == nil && !st.IsDir() {
				return p
			}
		}
	}
	return ""
}

func freeLoopbackPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// The multi-line statement of the workload: a '#' comment line inside it
// must not split it, and it must arrive whole, in one entry.
const multiLineQuery = `SELECT /* slowlog-multiline-marker */ c.name,
       COUNT(o.id) AS orders,
       SUM(o.total) AS revenue
  FROM customers c
  LEFT JOIN orders o ON o.customer_id = c.id
# only real customers
 WHERE c.id > 0 -- skip the sentinel row
 GROUP BY c.name
 ORDER BY revenue DESC;`

// TestMariaDBSlowLog runs a private MariaDB (loopback, temp datadir) with the
// slow log on for every statement, runs a workload through the mariadb
// client, and checks that the mysql_slow preset makes exactly one entry of
// each slow-log entry.
func TestMariaDBSlowLog(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a MariaDB server")
	}
	server := findBinary("mariadbd", "mysqld")
	installDB := findBinary("mariadb-install-db", "mysql_install_db")
	client := findBinary("mariadb", "mysql")
	if server == "" || installDB == "" || client == "" {
		t.Skip("MariaDB binaries not found (apt-get install mariadb-server mariadb-client)")
	}
	dir := t.TempDir()
	datadir := filepath.Join(dir, "data")
	sock := filepath.Join(dir, "mysqld.sock")
	slowLog := filepath.Join(dir, "slow.log")
	errLog := filepath.Join(dir, "error.log")
	var asRoot []string
	if os.Geteuid() == 0 {
		asRoot = []string{"--user=root"}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	install := exec.CommandContext(ctx, installDB, append([]string{"--no-defaults",
		"--datadir=" + datadir, "--auth-root-authentication-method=normal"}, asRoot...)...)
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", installDB, err, out)
	}

	port := freeLoopbackPort(t)
	srv := exec.Command(server, append([]string{"--no-defaults",
		"--datadir=" + datadir,
		"--bind-address=127.0.0.1", fmt.Sprintf("--port=%d", port),
		"--socket=" + sock, "--pid-file=" + filepath.Join(dir, "mysqld.pid"),
		"--skip-grant-tables", "--skip-log-bin", "--innodb-buffer-pool-size=16M",
		"--log-error=" + errLog,
		"--slow-query-log=1", "--long-query-time=0", "--slow-query-log-file=" + slowLog,
	}, asRoot...)...)
	if err := srv.Start(); err != nil {
		t.Fatalf("start %s: %v", server, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- srv.Wait() }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		_ = srv.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = srv.Process.Kill()
			<-exited
			t.Error("MariaDB did not stop within 30s of SIGTERM; killed")
		}
	}
	t.Cleanup(stop)

	mysql := func(sql string) ([]byte, error) {
		c := exec.CommandContext(ctx, client, "--no-defaults", "--comments", "--batch",
			"--socket="+sock, "--user=root", "--connect-timeout=2")
		c.Stdin = strings.NewReader(sql)
		return c.CombinedOutput()
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, err := mysql("SELECT 1;")
		if err == nil {
			break
		}
		select {
		case werr := <-exited:
			exited <- werr
			stopped = true
			log, _ := os.ReadFile(errLog)
			t.Fatalf("MariaDB exited at start: %v\n%s", werr, log)
		default:
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(errLog)
			t.Fatalf("MariaDB not ready after 60s: %v\n%s", err, log)
		}
		time.Sleep(100 * time.Millisecond)
	}

	var w strings.Builder
	w.WriteString("CREATE DATABASE shop;\nUSE shop;\n")
	w.WriteString("CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(64) NOT NULL);\n")
	w.WriteString("CREATE TABLE orders (id INT AUTO_INCREMENT PRIMARY KEY, customer_id INT NOT NULL, total DECIMAL(10,2), note TEXT, KEY (customer_id));\n")
	statements := 4
	for i := 1; i <= 20; i++ {
		fmt.Fprintf(&w, "INSERT INTO customers VALUES (%d, 'customer %d');\n", i, i)
		fmt.Fprintf(&w, "INSERT INTO orders (customer_id, total, note) VALUES (%d, %d.50, 'note;%d'), (%d, 1.25, NULL);\n", i, i*3, i, i)
		fmt.Fprintf(&w, "SELECT name FROM customers WHERE id = %d;\n", i)
		statements += 3
	}
	w.WriteString("SELECT SLEEP(1.1);\n") // the next entries get a new "# Time:" line
	w.WriteString(multiLineQuery + "\n")
	w.WriteString("SELECT 42 /* slowlog-comment-marker */;\n")
	w.WriteString("-- a comment line before a statement\nUPDATE orders SET total = total * 2 WHERE customer_id = 3;\n")
	w.WriteString("INSERT INTO orders (customer_id, total, note) VALUES (1, 9.99, 'two\nlines');\n")
	w.WriteString("USE mysql;\nSELECT COUNT(*) FROM user;\nUSE shop;\nDELETE FROM orders WHERE total < 2;\n")
	statements += 10
	if out, err := mysql(w.String()); err != nil {
		t.Fatalf("workload: %v\n%s", err, out)
	}
	stop() // every entry is on disk once mysqld has exited
	if t.Failed() {
		return
	}

	data, err := os.ReadFile(slowLog)
	if err != nil {
		t.Fatal(err)
	}
	lines := frame(data)
	if !bytes.HasSuffix(data, []byte("\n")) {
		t.Fatalf("slow log does not end with a newline")
	}
	es := assemble(t, Config{Preset: PresetMySQLSlow}, lines)
	checkLossless(t, lines, es)
	checkSlow(t, es)

	queryTimeLines := 0
	for _, l := range lines {
		if bytes.HasPrefix(l.text, []byte("# Query_time: ")) {
			queryTimeLines++
		}
	}
	var withQT, withTime, withUserHost int
	var multi, comment []string
	for _, e := range es {
		n := strings.Count("\n"+e.text, "\n# Query_time: ")
		if n == 0 {
			continue
		}
		withQT++
		if n != 1 {
			t.Errorf("entry with %d Query_time lines:\n%s", n, e.text)
		}
		switch {
		case strings.HasPrefix(e.text, "# Time: "):
			withTime++
		case strings.HasPrefix(e.text, "# User@Host: "):
			withUserHost++
		}
		if strings.Contains(e.text, "slowlog-multiline-marker") {
			multi = append(multi, e.text)
		}
		if strings.Contains(e.text, "slowlog-comment-marker") {
			comment = append(comment, e.text)
		}
	}
	t.Logf("slow log: %d lines, %d Query_time lines, %d entries (%d with # Time:, %d from # User@Host:)",
		len(lines), queryTimeLines, len(es), withTime, withUserHost)
	if withQT != queryTimeLines {
		t.Errorf("%d entries hold a Query_time line, the log has %d", withQT, queryTimeLines)
	}
	if queryTimeLines < statements {
		t.Errorf("only %d slow-log entries for %d statements", queryTimeLines, statements)
	}
	if withTime == 0 || withUserHost == 0 {
		t.Errorf("workload did not exercise both entry heads: %d with # Time:, %d with # User@Host:", withTime, withUserHost)
	}
	if len(multi) != 1 || !strings.HasSuffix(multi[0], "\n"+multiLineQuery) {
		t.Errorf("multi-line statement not in exactly one entry ending with it: %q", multi)
	}
	if len(comment) != 1 || !strings.HasSuffix(comment[0], "\nSELECT 42 /* slowlog-comment-marker */;") {
		t.Errorf("commented statement not in exactly one entry: %q", comment)
	}
	for _, e := range es {
		if strings.Contains(e.text, "'two") && !strings.Contains(e.text, "'two\nlines');") {
			t.Errorf("statement with a newline in a string split: %q", e.text)
		}
	}
	if err := ctx.Err(); err != nil {
		t.Errorf("test ran out of time: %v", err)
	}
}
