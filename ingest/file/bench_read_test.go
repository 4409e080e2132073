package file

// Benchmarks of the file source's per-line path on real files (issue #3):
// reading, framing, framing + multiline assembly, and the whole tailer into
// a real WAL with fsync on. Every figure is printed, never asserted on time:
//
//	go test -run XXX -bench 'BenchmarkIngest' -count 3 ./ingest/file/
//
// Each corpus is a generated file of about brCorpusBytes (override with
// LC_BENCH_READ_MIB) written to a temp dir before timing. Metrics: ns/line,
// allocs/line and B/line over every line of the file (every goroutine's
// allocations count, as testing's allocs/op do), lines/entry for multiline,
// and for TailerWAL cpu-ns/line: the process's user+system CPU over the
// timed windows (/proc/self/stat, 10 ms ticks) per line; divided by 1000 it
// is CPU-seconds per million lines, the unit of DESIGN.md's CPU target.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/logcapturer/log_capturer_go/ingest/multiline"
	"github.com/logcapturer/log_capturer_go/wal"
	"github.com/logcapturer/log_capturer_go/wal/record"
)

// brCorpusBytes is the default size of each generated corpus.
const brCorpusBytes = 16 << 20

// brCorpus is one generated file on disk.
type brCorpus struct {
	name   string // plain, sip, java, mysql_slow
	preset string // multiline preset for its format; "" for plain
	path   string
	size   int64
	lines  int
}

// brCorpora writes every corpus into dir.
func brCorpora(b *testing.B, dir string) []brCorpus {
	b.Helper()
	size := int64(brCorpusBytes)
	if v := os.Getenv("LC_BENCH_READ_MIB"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 4096 {
			b.Fatalf("LC_BENCH_READ_MIB=%q: want 1..4096", v)
		}
		size = int64(n) << 20
	}
	gens := []struct {
		name, preset string
		gen          func(g *brGen, w *bufio.Writer)
	}{
		{"plain", "", (*brGen).plain},
		{"sip", multiline.PresetSIP, (*brGen).sip},
		{"java", multiline.PresetJava, (*brGen).java},
		{"mysql_slow", multiline.PresetMySQLSlow, (*brGen).mysqlSlow},
	}
	out := make([]brCorpus, 0, len(gens))
	for _, g := range gens {
		c := brCorpus{name: g.name, preset: g.preset, path: filepath.Join(dir, g.name+".log")}
		f, err := os.Create(c.path)
		if err != nil {
			b.Fatal(err)
		}
		cw := &brCountWriter{w: f}
		w := bufio.NewWriterSize(cw, 1<<20)
		gen := &brGen{seed: 1, t: time.Date(2026, 11, 26, 20, 11, 40, 0, time.UTC)}
		for int64(w.Buffered())+cw.n < size {
			g.gen(gen, w)
		}
		if err := w.Flush(); err != nil {
			b.Fatal(err)
		}
		if err := f.Close(); err != nil {
			b.Fatal(err)
		}
		c.size, c.lines = cw.n, cw.lines
		out = append(out, c)
	}
	return out
}

// brCountWriter counts bytes and newlines on their way to the file.
type brCountWriter struct {
	w     io.Writer
	n     int64
	lines int
}

func (c *brCountWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	for _, x := range p[:n] {
		if x == '\n' {
			c.lines++
		}
	}
	return n, err
}

// brGen generates realistic text deterministically (splitmix64).
type brGen struct {
	seed uint64
	t    time.Time
	pid  int
	id   int
}

func (g *brGen) rnd() uint64 {
	g.seed += 0x9e3779b97f4a7c15
	x := g.seed
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

func (g *brGen) n(k int) int { return int(g.rnd() % uint64(k)) }

func (g *brGen) tick() { g.t = g.t.Add(time.Duration(g.n(40)) * time.Millisecond) }

var (
	brPaths   = []string{"/api/v1/orders", "/api/v1/cart", "/api/v1/items", "/login", "/api/v1/payments", "/healthz"}
	brMethods = []string{"GET", "POST", "PUT", "GET", "GET", "DELETE"}
	brUA      = []string{"Yealink SIP-T46S 66.86.0.15", "Grandstream GXP2170 1.0.11.23", "Linphone/5.2.0 (belle-sip/5.2.0)", "Zoiper rv2.10.19.7", "FreeSWITCH-mod_sofia/1.10.11"}
	brNames   = []string{"Alice", "Bob", "Carol", "Dave", "Erin", "Frank"}
)

// plain is one ~170 B key=value line, like lcbench's backlog.
func (g *brGen) plain(w *bufio.Writer) {
	g.tick()
	i := g.n(len(brPaths))
	fmt.Fprintf(w, "%s level=info svc=checkout host=web-%d method=%s path=%s status=%d dur_ms=%d trace=%016x msg=%q\n",
		g.t.Format(time.RFC3339Nano), g.n(8), brMethods[i], brPaths[i], []int{200, 200, 201, 204, 404, 500}[g.n(6)], g.n(997), g.rnd(), "request served")
}

// sip is one OpenSIPS call as logged to stderr (log_stderror=yes) by a
// script that prints each message with xlog("$mb"): the INVITE with its
// SDP, routing debug lines, 180, 200 with SDP, ACK and BYE.
func (g *brGen) sip(w *bufio.Writer) {
	g.id++
	pid := 2410 + g.n(8)
	callID := fmt.Sprintf("%08x%06x@10.0.%d.%d", g.rnd()>>32, g.id, g.n(4), 2+g.n(250))
	caller, callee := 1000+g.n(900), 1000+g.n(900)
	name := brNames[g.n(len(brNames))]
	ua := brUA[g.n(len(brUA))]
	src := fmt.Sprintf("10.0.%d.%d", g.n(4), 2+g.n(250))
	dst := fmt.Sprintf("10.0.9.%d", 2+g.n(60))
	tag, totag := g.rnd()>>24, g.rnd()>>40
	cseq := 1 + g.n(60000)
	prefix := func(p int) string {
		g.tick()
		return g.t.Format("Jan _2 15:04:05") + " [" + strconv.Itoa(p) + "] "
	}
	sdp := func(user string, ip string, port int) {
		sess := g.rnd() >> 34
		fmt.Fprintf(w, "v=0\no=%s %d %d IN IP4 %s\ns=SDP data\nc=IN IP4 %s\nt=0 0\nm=audio %d RTP/AVP 0 8 101\na=rtpmap:0 PCMU/8000\na=rtpmap:8 PCMA/8000\na=rtpmap:101 telephone-event/8000\na=fmtp:101 0-15\na=ptime:20\na=sendrecv\n",
			user, sess, sess, ip, ip, 10000+2*g.n(10000))
	}
	fmt.Fprintf(w, "%sINFO:script: [%s] new INVITE from udp:%s:5060:\n", prefix(pid), callID, src)
	fmt.Fprintf(w, "INVITE sip:%d@sbc.example.com SIP/2.0\nVia: SIP/2.0/UDP %s:5060;branch=z9hG4bK%x;rport\nMax-Forwards: 70\nTo: <sip:%d@sbc.example.com>\nFrom: \"%s\" <sip:%d@sbc.example.com>;tag=%x\nCall-ID: %s\nCSeq: %d INVITE\nContact: <sip:%d@%s:5060;transport=udp>\nAllow: INVITE, ACK, CANCEL, BYE, NOTIFY, REFER, OPTIONS, UPDATE, PRACK\nSupported: replaces, timer\nUser-Agent: %s\nContent-Type: application/sdp\nContent-Length: %d\n\n",
		callee, src, g.rnd()>>20, callee, name, caller, tag, callID, cseq, caller, src, ua, 230+g.n(40))
	sdp(name, src, 0)
	fmt.Fprintf(w, "\n%sDBG:tm:t_lookup_request: start searching: hash=%d, isACK=0\n", prefix(pid), g.n(65536))
	fmt.Fprintf(w, "%sDBG:tm:t_lookup_request: no transaction found\n", prefix(pid))
	fmt.Fprintf(w, "%sINFO:script: [%s] relaying to sip:%d@%s:5060\n", prefix(pid), callID, callee, dst)
	rpid := 2410 + g.n(8)
	for _, st := range []string{"180 Ringing", "200 OK"} {
		fmt.Fprintf(w, "%sINFO:script: [%s] reply %s from udp:%s:5060:\n", prefix(rpid), callID, st[:3], dst)
		fmt.Fprintf(w, "SIP/2.0 %s\nVia: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK%x.0\nVia: SIP/2.0/UDP %s:5060;received=%s;branch=z9hG4bK%x;rport=5060\nTo: <sip:%d@sbc.example.com>;tag=%x\nFrom: \"%s\" <sip:%d@sbc.example.com>;tag=%x\nCall-ID: %s\nCSeq: %d INVITE\nContact: <sip:%d@%s:5060>\n",
			st, g.rnd()>>36, src, src, g.rnd()>>20, callee, totag, name, caller, tag, callID, cseq, callee, dst)
		if st == "200 OK" {
			fmt.Fprintf(w, "Content-Type: application/sdp\nContent-Length: %d\n\n", 230+g.n(40))
			sdp("callee", dst, 0)
			fmt.Fprintln(w)
		} else {
			fmt.Fprintf(w, "Content-Length: 0\n\n\n")
		}
	}
	fmt.Fprintf(w, "%sINFO:script: [%s] ACK from udp:%s:5060\n", prefix(pid), callID, src)
	if g.n(10) == 0 {
		fmt.Fprintf(w, "%sWARNING:core:utimer_ticker: utimer task <tm-utimer> already scheduled %d ms ago (now %d ms), delaying execution\n", prefix(2409), 100+g.n(200), g.n(1<<20))
	}
	fmt.Fprintf(w, "%sINFO:script: [%s] new BYE from udp:%s:5060:\n", prefix(pid), callID, src)
	fmt.Fprintf(w, "BYE sip:%d@%s:5060 SIP/2.0\nVia: SIP/2.0/UDP %s:5060;branch=z9hG4bK-%x;rport\nMax-Forwards: 70\nRoute: <sip:10.0.0.5;lr;did=%x>\nTo: <sip:%d@sbc.example.com>;tag=%x\nFrom: \"%s\" <sip:%d@sbc.example.com>;tag=%x\nCall-ID: %s\nCSeq: %d BYE\nContent-Length: 0\n\n",
		callee, dst, src, g.rnd()>>20, g.rnd()>>40, callee, totag, name, caller, tag, callID, cseq+1)
	fmt.Fprintf(w, "%sINFO:acc:acc_log_request: ACC: call ended: method=BYE from_tag=%x to_tag=%x call_id=%s code=200 reason=OK duration=%d\n", prefix(pid), tag, totag, callID, g.n(900))
}

var (
	brJavaLoggers = []string{"com.example.billing.InvoiceService", "com.example.billing.TariffLoader", "com.example.api.OrderController", "org.hibernate.engine.jdbc.spi.SqlExceptionHelper"}
	brJavaExc     = []string{"java.lang.IllegalStateException: cannot load tariffs", "java.lang.NullPointerException: Cannot invoke \"com.example.billing.Customer.getId()\" because \"customer\" is null", "org.springframework.dao.DataIntegrityViolationException: could not execute statement; SQL [n/a]; constraint [uk_invoice_number]", "java.util.concurrent.TimeoutException: request timed out after 30000 ms"}
	brJavaCause   = []string{"java.io.FileNotFoundException: /etc/billing/tariffs.csv (No such file or directory)", "java.sql.SQLIntegrityConstraintViolationException: Duplicate entry 'INV-2026-004211' for key 'uk_invoice_number'", "java.net.SocketTimeoutException: Read timed out"}
	brJavaFrames  = []string{
		"com.example.billing.InvoiceService.create(InvoiceService.java:%d)",
		"com.example.billing.TariffLoader.load(TariffLoader.java:%d)",
		"com.example.api.OrderController.checkout(OrderController.java:%d)",
		"org.springframework.aop.framework.ReflectiveMethodInvocation.proceed(ReflectiveMethodInvocation.java:%d)",
		"org.springframework.transaction.interceptor.TransactionInterceptor.invoke(TransactionInterceptor.java:%d)",
		"org.springframework.web.servlet.FrameworkServlet.service(FrameworkServlet.java:%d)",
		"jakarta.servlet.http.HttpServlet.service(HttpServlet.java:%d)",
		"org.apache.catalina.core.ApplicationFilterChain.doFilter(ApplicationFilterChain.java:%d)",
		"org.apache.catalina.core.StandardWrapperValve.invoke(StandardWrapperValve.java:%d)",
		"org.apache.coyote.http11.Http11Processor.service(Http11Processor.java:%d)",
		"org.apache.tomcat.util.net.NioEndpoint$SocketProcessor.doRun(NioEndpoint.java:%d)",
		"java.base/java.util.concurrent.ThreadPoolExecutor.runWorker(ThreadPoolExecutor.java:%d)",
		"java.base/java.lang.Thread.run(Thread.java:%d)",
	}
)

// java is a logback event: mostly one-line INFO events, one in four an
// ERROR/WARN followed by a stack trace (frames, sometimes a cause with
// "... N more", sometimes a suppressed exception).
func (g *brGen) java(w *bufio.Writer) {
	g.tick()
	ts := g.t.Format("2006-01-02 15:04:05.000")
	thread := fmt.Sprintf("http-nio-8080-exec-%d", 1+g.n(200))
	lg := brJavaLoggers[g.n(len(brJavaLoggers))]
	if g.n(4) != 0 {
		fmt.Fprintf(w, "%s INFO  [%s] %s - order %d accepted for customer %d in %d ms\n", ts, thread, lg, g.rnd()>>40, g.n(1e6), g.n(900))
		return
	}
	lvl := "ERROR"
	if g.n(3) == 0 {
		lvl = "WARN "
	}
	fmt.Fprintf(w, "%s %s [%s] %s - request %d failed\n", ts, lvl, thread, lg, g.rnd()>>40)
	fmt.Fprintln(w, brJavaExc[g.n(len(brJavaExc))])
	frames := 8 + g.n(40)
	for i := range frames {
		fmt.Fprintf(w, "\tat "+brJavaFrames[(i+g.n(3))%len(brJavaFrames)]+"\n", 20+g.n(900))
	}
	if g.n(2) == 0 {
		fmt.Fprintf(w, "Caused by: %s\n", brJavaCause[g.n(len(brJavaCause))])
		for range 2 + g.n(5) {
			fmt.Fprintf(w, "\tat "+brJavaFrames[g.n(len(brJavaFrames))]+"\n", 20+g.n(900))
		}
		fmt.Fprintf(w, "\t... %d more\n", frames-2)
	}
	if g.n(8) == 0 {
		fmt.Fprintf(w, "\tSuppressed: java.io.IOException: close failed\n\t\tat com.example.billing.TariffLoader.close(TariffLoader.java:%d)\n\t\t... %d more\n", 20+g.n(900), frames)
	}
}

var (
	brSQLTables = []string{"orders", "order_items", "customers", "invoices", "payments", "cdr"}
	brSQLUsers  = []string{"app[app] @ localhost []", "billing[billing] @ [10.0.4.21]", "report[report] @ reports.internal [10.0.7.3]"}
)

// mysqlSlow is one MariaDB slow-log entry (log_slow_verbosity=query_plan,
// explain sometimes): "# Time:" only when the second changed, the header
// comments, "use db;" sometimes, SET timestamp, a statement over 1-8 lines.
func (g *brGen) mysqlSlow(w *bufio.Writer) {
	prev := g.t.Unix()
	g.t = g.t.Add(time.Duration(g.n(1500)) * time.Millisecond)
	if g.t.Unix() != prev {
		fmt.Fprintf(w, "# Time: %s\n", g.t.Format("060102 15:04:05"))
	}
	qt := float64(g.n(5_000_000)) / 1e6
	fmt.Fprintf(w, "# User@Host: %s\n# Thread_id: %d  Schema: shop  QC_hit: No\n# Query_time: %.6f  Lock_time: %.6f  Rows_sent: %d  Rows_examined: %d\n# Rows_affected: %d  Bytes_sent: %d\n",
		brSQLUsers[g.n(len(brSQLUsers))], 10+g.n(5000), qt, float64(g.n(2000))/1e6, g.n(500), g.n(2_000_000), g.n(3), 11+g.n(60000))
	t1, t2 := brSQLTables[g.n(len(brSQLTables))], brSQLTables[g.n(len(brSQLTables))]
	if g.n(3) == 0 {
		fmt.Fprintf(w, "#\n# explain: id\tselect_type\ttable\ttype\tpossible_keys\tkey\tkey_len\tref\trows\tr_rows\tfiltered\tr_filtered\tExtra\n# explain: 1\tSIMPLE\t%s\tALL\tNULL\tNULL\tNULL\tNULL\t%d\t%d.00\t100.00\t%d.00\tUsing where\n#\n", t1, g.n(2_000_000), g.n(2_000_000), g.n(100))
	}
	if g.n(5) == 0 {
		fmt.Fprintln(w, "use `shop`;")
	}
	fmt.Fprintf(w, "SET timestamp=%d;\n", g.t.Unix())
	switch g.n(3) {
	case 0:
		fmt.Fprintf(w, "SELECT o.id, o.customer_id, o.total, o.created_at FROM %s o WHERE o.customer_id = %d AND o.created_at > '2026-11-%02d 00:00:00' ORDER BY o.created_at DESC LIMIT 50;\n", t1, g.n(1e6), 1+g.n(26))
	case 1:
		fmt.Fprintf(w, "SELECT c.id, c.name, SUM(i.amount) AS total\n  FROM %s c\n  JOIN %s i ON i.customer_id = c.id\n WHERE i.status IN ('open', 'overdue')\n   AND i.due_date < NOW() - INTERVAL %d DAY\n GROUP BY c.id, c.name\n HAVING total > %d\n ORDER BY total DESC;\n", t1, t2, g.n(90), g.n(10000))
	default:
		fmt.Fprintf(w, "UPDATE %s SET status = 'shipped', updated_at = NOW()\n WHERE id IN (SELECT order_id FROM %s WHERE batch_id = %d);\n", t1, t2, g.n(1e6))
	}
}

// brReport reports the per-line metrics of a benchmark whose every op
// processed lines lines. m0 is the MemStats read right before the loop.
func brReport(b *testing.B, lines int, m0 *runtime.MemStats) {
	var m1 runtime.MemStats
	runtime.ReadMemStats(&m1)
	brReportAllocs(b, lines, m1.Mallocs-m0.Mallocs, m1.TotalAlloc-m0.TotalAlloc)
}

func brReportAllocs(b *testing.B, lines int, mallocs, allocBytes uint64) {
	total := float64(b.N) * float64(lines)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/total, "ns/line")
	b.ReportMetric(float64(mallocs)/total, "allocs/line")
	b.ReportMetric(float64(allocBytes)/total, "B/line")
	b.ReportMetric(total/b.Elapsed().Seconds(), "lines/s")
}

// brReadAll reads path from 0 to EOF with ReadAt into a buffer of the
// source's read size (as the tailer does) and hands every chunk to fn.
func brReadAll(path string, buf []byte, fn func([]byte) error) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var off int64
	for {
		n, err := f.ReadAt(buf, off)
		if n > 0 {
			if ferr := fn(buf[:n]); ferr != nil {
				return off, ferr
			}
			off += int64(n)
		}
		if errors.Is(err, io.EOF) {
			return off, nil
		}
		if err != nil {
			return off, err
		}
	}
}

// BenchmarkIngestRead measures, per corpus: "read" (open + ReadAt of the
// whole file with the source's read buffer), "frame" (read + the source's
// framer) and "multiline" (read + framer + the multiline assembler with the
// corpus's preset).
func BenchmarkIngestRead(b *testing.B) {
	cfg := DefaultConfig()
	corpora := brCorpora(b, b.TempDir())
	buf := make([]byte, cfg.ReadBufferBytes)
	for _, c := range corpora {
		b.Run(c.name+"/read", func(b *testing.B) {
			b.SetBytes(c.size)
			b.ReportAllocs()
			var m0 runtime.MemStats
			runtime.ReadMemStats(&m0)
			b.ResetTimer()
			for b.Loop() {
				n, err := brReadAll(c.path, buf, func([]byte) error { return nil })
				if err != nil || n != c.size {
					b.Fatalf("read %d of %d bytes: %v", n, c.size, err)
				}
			}
			b.StopTimer()
			brReport(b, c.lines, &m0)
		})
		b.Run(c.name+"/frame", func(b *testing.B) {
			var lines, nb int
			emit := func(line []byte, _ uint64, _ record.Flags) error {
				lines++
				nb += len(line)
				return nil
			}
			b.SetBytes(c.size)
			b.ReportAllocs()
			var m0 runtime.MemStats
			runtime.ReadMemStats(&m0)
			b.ResetTimer()
			for b.Loop() {
				lines = 0
				fr := newFramer(cfg.MaxLineBytes, 0)
				if _, err := brReadAll(c.path, buf, func(p []byte) error { return fr.feed(p, emit) }); err != nil {
					b.Fatal(err)
				}
				if err := fr.flush(emit); err != nil {
					b.Fatal(err)
				}
				if lines != c.lines {
					b.Fatalf("framed %d lines, want %d", lines, c.lines)
				}
			}
			b.StopTimer()
			brReport(b, c.lines, &m0)
		})
		if c.preset == "" {
			continue
		}
		b.Run(c.name+"/multiline", func(b *testing.B) {
			var lines, entries int
			var asm *multiline.Assembler
			var now time.Time
			emitEntry := func(entry []byte, _ uint64, _ record.Flags) error {
				entries++
				return nil
			}
			emit := func(line []byte, end uint64, flags record.Flags) error {
				lines++
				return asm.Add(line, end, flags, now, emitEntry)
			}
			b.SetBytes(c.size)
			b.ReportAllocs()
			var m0 runtime.MemStats
			runtime.ReadMemStats(&m0)
			b.ResetTimer()
			for b.Loop() {
				lines, entries = 0, 0
				var err error
				if asm, err = multiline.New(multiline.Config{Preset: c.preset}); err != nil {
					b.Fatal(err)
				}
				fr := newFramer(cfg.MaxLineBytes, 0)
				if _, err := brReadAll(c.path, buf, func(p []byte) error {
					now = time.Now() // once per read, as the tailer stamps a chunk
					return fr.feed(p, emit)
				}); err != nil {
					b.Fatal(err)
				}
				if err := fr.flush(emit); err != nil {
					b.Fatal(err)
				}
				if err := asm.FlushAll(emitEntry); err != nil {
					b.Fatal(err)
				}
				if lines != c.lines || entries == 0 {
					b.Fatalf("framed %d lines into %d entries, want %d lines", lines, entries, c.lines)
				}
			}
			b.StopTimer()
			brReport(b, c.lines, &m0)
			b.ReportMetric(float64(lines)/float64(entries), "lines/entry")
		})
	}
}

// brCheckpointer discards positions: the benchmark reads each file once.
type brCheckpointer struct{}

func (brCheckpointer) SetPosition(string, uint64, uint64, []byte) {}
func (brCheckpointer) DeletePosition(string)                      {}

// BenchmarkIngestTailerWAL runs the whole file source (New + Run, one file,
// default configuration, polling) into a real wal.Log in a temp dir with
// fsync on (the WAL's defaults, as the agent uses them), timed until the
// source's acknowledged position reaches the end of the file: every line
// framed, encoded, appended and fsynced. "nosync" is the same with the
// WAL's fsync off, for reference. Setting up and closing the WAL is not
// timed; starting the source is.
func BenchmarkIngestTailerWAL(b *testing.B) {
	corpora := brCorpora(b, b.TempDir())
	type variant struct {
		c      brCorpus
		noSync bool
	}
	var vs []variant
	for _, c := range corpora {
		vs = append(vs, variant{c: c})
	}
	vs = append(vs, variant{c: corpora[0], noSync: true})
	for _, v := range vs {
		name := v.c.name + "/fsync"
		if v.noSync {
			name = v.c.name + "/nosync"
		}
		b.Run(name, func(b *testing.B) {
			dir := b.TempDir()
			b.SetBytes(v.c.size)
			b.ReportAllocs()
			var entries uint64
			var timed brAllocs
			for i := 0; b.Loop(); i++ {
				b.StopTimer()
				es, err := brTailOnce(b, filepath.Join(dir, fmt.Sprintf("wal-%d", i)), v.c, v.noSync, &timed)
				if err != nil {
					b.Fatal(err)
				}
				entries += es
				b.StartTimer() // b.Loop needs it running
			}
			b.StopTimer()
			brReportAllocs(b, v.c.lines, timed.mallocs, timed.bytes)
			if timed.cpuOK {
				// CPU-seconds per million lines = cpu-ns/line / 1000.
				b.ReportMetric(float64(timed.cpu.Nanoseconds())/(float64(b.N)*float64(v.c.lines)), "cpu-ns/line")
			}
			b.ReportMetric(float64(v.c.lines)*float64(b.N)/float64(max(entries, 1)), "lines/wal-entry")
		})
	}
}

// brAllocs sums the allocations and the process CPU of the timed windows.
type brAllocs struct {
	mallocs, bytes uint64
	cpu            time.Duration
	cpuOK          bool
}

// brProcCPU is this process's user+system CPU from /proc/self/stat (every
// goroutine, the WAL's fsyncs included); ok is false where there is none.
func brProcCPU() (time.Duration, bool) {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0, false
	}
	// Fields after the ")" that ends the command name: state is field 3,
	// utime and stime are fields 14 and 15, in clock ticks (USER_HZ, 100).
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, false
	}
	u, err1 := strconv.ParseUint(f[11], 10, 64)
	k, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return time.Duration(u+k) * 10 * time.Millisecond, true
}

// brTailOnce opens a WAL in walDir and starts its Run with the timer
// stopped, then starts the timer, runs a fresh Source over c until every
// byte is acknowledged, stops the timer and shuts both down.
func brTailOnce(b *testing.B, walDir string, c brCorpus, noSync bool, timed *brAllocs) (entries uint64, err error) {
	wcfg := wal.Defaults()
	wcfg.MaxSize = 64 << 30 // measure appends, not the disk budget
	wcfg.NoSync = noSync
	l, err := wal.Open(walDir, wcfg, zerolog.Nop(), nil)
	if err != nil {
		return 0, err
	}
	walCtx, walStop := context.WithCancel(context.Background())
	walDone := make(chan error, 1)
	go func() { walDone <- l.Run(walCtx) }()
	defer func() {
		walStop()
		if werr := <-walDone; werr != nil && err == nil {
			err = fmt.Errorf("wal run: %w", werr)
		}
		_ = os.RemoveAll(walDir)
	}()

	cfg := DefaultConfig()
	cfg.Include = []string{c.path}
	cfg.DisableNotify = true
	cfg.MaxEntryBytes = wcfg.MaxEntryBytes // as the agent wires them
	src, err := New(cfg, l, brCheckpointer{}, nil, zerolog.Nop(), nil)
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	srcDone := make(chan error, 1)

	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	cpu0, ok0 := brProcCPU()
	b.StartTimer()
	go func() { srcDone <- src.Run(ctx) }()
	deadline := time.Now().Add(5 * time.Minute) // bounded: ≥ 50 KiB/s or it is broken
	for {
		ps := src.Positions()
		if len(ps) == 1 && ps[0].AckedOffset == uint64(c.size) {
			break
		}
		if time.Now().After(deadline) {
			cancel()
			<-srcDone
			return 0, fmt.Errorf("source did not ack %s within 5 minutes: %+v", c.path, ps)
		}
		time.Sleep(200 * time.Microsecond)
	}
	b.StopTimer()
	cpu1, ok1 := brProcCPU()
	runtime.ReadMemStats(&m1)
	timed.mallocs += m1.Mallocs - m0.Mallocs
	timed.bytes += m1.TotalAlloc - m0.TotalAlloc
	timed.cpu += cpu1 - cpu0
	timed.cpuOK = ok0 && ok1

	cancel()
	if rerr := <-srcDone; rerr != nil && !errors.Is(rerr, context.Canceled) {
		return 0, fmt.Errorf("source run: %w", rerr)
	}
	if st := src.Stats(); st.LinesRead != uint64(c.lines) {
		return 0, fmt.Errorf("source read %d lines, want %d", st.LinesRead, c.lines)
	}
	return l.CommittedIndex(), nil
}
