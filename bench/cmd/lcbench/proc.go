package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// userHZ is the unit of utime and stime in /proc/PID/stat (fixed at 100 by
// the Linux ABI, whatever the kernel's internal HZ).
const userHZ = 100

// child is a process the bench started. Every child is registered with a
// reaper so that it is killed whatever way the bench ends.
type child struct {
	name string
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	err  error         // Wait's result, valid after done
	out  *os.File      // stdout and stderr
}

// reaper kills every child still running when the bench ends (normal exit,
// error, panic or signal).
type reaper struct {
	mu       sync.Mutex
	children map[*child]bool
}

func newReaper() *reaper { return &reaper{children: map[*child]bool{}} }

// start runs bin with args, output to logPath. The child also gets SIGKILL
// from the kernel if the bench dies without cleaning up.
func (r *reaper) start(name, logPath string, env []string, bin string, args ...string) (*child, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("%s: log: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("%s: start %s: %w", name, bin, err)
	}
	c := &child{name: name, cmd: cmd, done: make(chan struct{}), out: f}
	r.mu.Lock()
	r.children[c] = true
	r.mu.Unlock()
	go func() {
		c.err = cmd.Wait()
		_ = f.Close()
		close(c.done)
		r.mu.Lock()
		delete(r.children, c)
		r.mu.Unlock()
	}()
	return c, nil
}

// killAll kills every running child and waits (bounded) for each to exit.
func (r *reaper) killAll() {
	r.mu.Lock()
	var cs []*child
	for c := range r.children {
		cs = append(cs, c)
	}
	r.mu.Unlock()
	for _, c := range cs {
		_ = c.cmd.Process.Kill()
	}
	for _, c := range cs {
		select {
		case <-c.done:
		case <-time.After(10 * time.Second):
			fmt.Fprintf(os.Stderr, "lcbench: %s (pid %d) did not exit after SIGKILL\n", c.name, c.cmd.Process.Pid)
		}
	}
}

func (c *child) pid() int { return c.cmd.Process.Pid }

func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// Usage is what the kernel accounted to a process over its whole life.
type Usage struct {
	CPU    time.Duration // user + system
	User   time.Duration
	System time.Duration
	MaxRSS int64 // bytes
}

// stop sends SIGTERM and waits up to grace for the exit, then SIGKILL. It
// returns the exact lifetime usage from wait4's rusage.
func (c *child) stop(grace time.Duration) (Usage, error) {
	if !c.exited() {
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
	}
	var killed bool
	select {
	case <-c.done:
	case <-time.After(grace):
		killed = true
		_ = c.cmd.Process.Kill()
		select {
		case <-c.done:
		case <-time.After(10 * time.Second):
			return Usage{}, fmt.Errorf("%s: did not exit after SIGKILL", c.name)
		}
	}
	ps := c.cmd.ProcessState
	var u Usage
	if ps != nil {
		u.User, u.System = ps.UserTime(), ps.SystemTime()
		u.CPU = u.User + u.System
		if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
			u.MaxRSS = ru.Maxrss * 1024 // KiB on Linux
		}
	}
	if killed {
		return u, fmt.Errorf("%s: no exit %v after SIGTERM; killed", c.name, grace)
	}
	var ee *exec.ExitError
	if c.err != nil && !errors.As(c.err, &ee) {
		return u, fmt.Errorf("%s: %w", c.name, c.err)
	}
	if ps != nil && !ps.Success() {
		return u, fmt.Errorf("%s: exited with %v", c.name, ps)
	}
	return u, nil
}

// ProcSample is a point-in-time reading of /proc for a running process.
type ProcSample struct {
	CPU   time.Duration // utime + stime so far
	RSS   int64         // VmRSS, bytes
	HWM   int64         // VmHWM (peak RSS so far), bytes
	Taken time.Time
}

// sampleProc reads /proc/PID/stat and /proc/PID/status.
func sampleProc(pid int) (ProcSample, error) {
	s := ProcSample{Taken: time.Now()}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, fmt.Errorf("proc: %w", err)
	}
	// The command name may hold spaces; fields count from after its ')'.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return s, fmt.Errorf("proc: malformed stat of %d", pid)
	}
	f := strings.Fields(string(stat[i+1:]))
	// After ')': state is field 3 of stat(5); utime and stime are 14 and 15.
	if len(f) < 13 {
		return s, fmt.Errorf("proc: short stat of %d", pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return s, fmt.Errorf("proc: stat of %d: %w", pid, err)
	}
	s.CPU = time.Duration(ut+st) * time.Second / userHZ
	status, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, fmt.Errorf("proc: %w", err)
	}
	defer status.Close()
	sc := bufio.NewScanner(status)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		switch k {
		case "VmRSS":
			s.RSS = parseKB(v)
		case "VmHWM":
			s.HWM = parseKB(v)
		}
	}
	return s, sc.Err()
}

func parseKB(v string) int64 {
	f := strings.Fields(v)
	if len(f) == 0 {
		return 0
	}
	n, _ := strconv.ParseInt(f[0], 10, 64)
	return n * 1024
}

// selfCPU is the CPU time of the bench process so far (getrusage).
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// boxSample is a reading of the machine's CPU time, so that a run can
// tell how much of the box others used meanwhile (the machine may be
// shared).
type boxSample struct {
	stat    time.Duration // /proc/stat user + nice + system
	kthread map[int]int64 // kernel thread pid → utime + stime ticks
}

// sampleBox reads /proc/stat and every kernel thread's time.
func sampleBox() boxSample {
	s := boxSample{kthread: map[int]int64{}}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(b), "\n")
		if f := strings.Fields(line); len(f) >= 4 && f[0] == "cpu" {
			var ticks int64
			for _, v := range f[1:4] { // user, nice, system
				n, _ := strconv.ParseInt(v, 10, 64)
				ticks += n
			}
			s.stat = time.Duration(ticks) * time.Second / userHZ
		}
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return s
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 13 {
			continue
		}
		flags, _ := strconv.ParseUint(f[6], 10, 64) // field 9
		if flags&pfKthread == 0 {
			continue
		}
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		s.kthread[pid] = ut + st
	}
	return s
}

// pfKthread is PF_KTHREAD in the flags field of /proc/PID/stat.
const pfKthread = 0x00200000

// busySince is the CPU time user-space processes used since earlier:
// /proc/stat's user + nice + system minus the kernel threads' own time
// (writeback and journal threads work for whoever wrote, mostly us, and are
// not "someone else"; interrupts and steal are counted apart by /proc/stat).
// Kernel threads come and go, so they are compared pid by pid.
func (s boxSample) busySince(earlier boxSample) time.Duration {
	var kt int64
	for pid, t := range s.kthread {
		kt += t - earlier.kthread[pid]
	}
	return s.stat - earlier.stat - time.Duration(kt)*time.Second/userHZ
}

// otherLoad is the CPU used by processes other than ours over wall, in
// cores (never below zero: the tick counters are coarse).
func otherLoad(busy, ours, wall time.Duration) float64 {
	if wall <= 0 {
		return 0
	}
	return max(0, (busy-ours).Seconds()/wall.Seconds())
}

// waitQuiet waits, at most limit, until processes other than this one use
// less than busyWarn cores over a second. It returns the last load seen.
func waitQuiet(ctx context.Context, limit time.Duration) float64 {
	deadline := time.Now().Add(limit)
	for {
		b0, s0, t0 := sampleBox(), selfCPU(), time.Now()
		select {
		case <-ctx.Done():
			return 0
		case <-time.After(time.Second):
		}
		load := otherLoad(sampleBox().busySince(b0), selfCPU()-s0, time.Since(t0))
		if load < busyWarn || time.Now().After(deadline) {
			return load
		}
	}
}
