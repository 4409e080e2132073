package e2e

import "syscall"

// sysProcAttr kills an agent when the test binary dies without running its
// cleanups (panic, timeout), so no orphan keeps the ports and the data dir.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
