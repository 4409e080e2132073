package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// AgentDiag is context read from the agent at the end of a run: what its
// own metrics and /proc say about where the time and memory went.
type AgentDiag struct {
	HeapInuse  float64 // go_memstats_heap_inuse_bytes
	GCCycles   float64 // go_gc_duration_seconds_count
	Fsyncs     float64 // logcapturer_wal_fsyncs_total
	Batches    float64 // logcapturer_ship_batches_total
	ReadBytes  int64   // rchar: bytes read through syscalls (file + WAL segments)
	WriteBytes int64   // wchar: bytes written through syscalls (WAL, state, sockets excluded)
}

var diagMetrics = map[string]func(*AgentDiag, float64){
	"go_memstats_heap_inuse_bytes":   func(d *AgentDiag, v float64) { d.HeapInuse = v },
	"go_gc_duration_seconds_count":   func(d *AgentDiag, v float64) { d.GCCycles = v },
	"logcapturer_wal_fsyncs_total":   func(d *AgentDiag, v float64) { d.Fsyncs += v },
	"logcapturer_ship_batches_total": func(d *AgentDiag, v float64) { d.Batches += v },
}

// diagnose scrapes /metrics and /proc/PID/io. Missing pieces stay zero.
func (a *agent) diagnose(ctx context.Context) AgentDiag {
	var d AgentDiag
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.api+"/metrics", nil); err == nil {
		if resp, err := a.http.Do(req); err == nil {
			sc := bufio.NewScanner(io.LimitReader(resp.Body, 8<<20))
			sc.Buffer(make([]byte, 64<<10), 1<<20)
			for sc.Scan() {
				line := sc.Text()
				if strings.HasPrefix(line, "#") {
					continue
				}
				name, rest, ok := strings.Cut(line, " ")
				if i := strings.IndexByte(name, '{'); i >= 0 {
					// Labels may hold spaces; the value is the last field.
					name = name[:i]
					rest = line[strings.LastIndexByte(line, ' ')+1:]
				}
				set, known := diagMetrics[name]
				if !ok || !known {
					continue
				}
				if v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64); err == nil {
					set(&d, v)
				}
			}
			resp.Body.Close()
		}
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", a.proc.pid())); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			k, v, _ := strings.Cut(l, ":")
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			switch k {
			case "rchar":
				d.ReadBytes = n
			case "wchar":
				d.WriteBytes = n
			}
		}
	}
	return d
}
