package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// Machine describes where the bench ran.
type Machine struct {
	CPUs       int
	CPUModel   string
	MemTotal   string
	Kernel     string
	DataDir    string
	FS         string // type, device and mount point of DataDir
	GoVersion  string
	VLVersion  string
	AgentBuild string
}

func describeMachine(dataDir string) Machine {
	m := Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), DataDir: dataDir}
	m.CPUModel = firstField("/proc/cpuinfo", "model name")
	if mem := firstField("/proc/meminfo", "MemTotal"); mem != "" {
		var kb int64
		if _, err := fmt.Sscanf(mem, "%d kB", &kb); err == nil {
			m.MemTotal = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	m.FS = filesystemOf(dataDir)
	return m
}

func firstField(path, key string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// filesystemOf finds the mount holding path in /proc/self/mountinfo (the
// longest mount point that prefixes it).
func filesystemOf(path string) string {
	abs, err := filepath.EvalSymlinks(path)
	if err != nil {
		abs = path
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	best, desc := "", "unknown"
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// id parent major:minor root mountpoint options [optional...] - fstype source superopts
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		pf, qf := strings.Fields(pre), strings.Fields(post)
		if len(pf) < 5 || len(qf) < 2 {
			continue
		}
		mp := unescapeMount(pf[4])
		if !under(abs, mp) || len(mp) < len(best) {
			continue
		}
		best = mp
		desc = fmt.Sprintf("%s on %s (mounted at %s)", qf[0], qf[1], mp)
	}
	return desc
}

func under(path, mp string) bool {
	if mp == "/" {
		return true
	}
	return path == mp || strings.HasPrefix(path, mp+"/")
}

func unescapeMount(s string) string {
	r := strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`)
	return r.Replace(s)
}
