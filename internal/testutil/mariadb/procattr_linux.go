package mariadb

import "syscall"

// sysProcAttr kills mariadbd when the test binary dies without running its
// cleanups, so no orphan keeps the port and the datadir.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
