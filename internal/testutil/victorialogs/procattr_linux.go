package victorialogs

import "syscall"

// sysProcAttr kills victoria-logs when the test binary dies without running
// its cleanups (a panic, a timeout, go test killed), so no orphan keeps the
// port and the data dir.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
