//go:build linux

package testredis

import "syscall"

// sysProcAttr makes the kernel SIGKILL redis-server if the test binary dies
// without running its cleanups (a panic, or go test's -timeout), so no server
// outlives the test run. Pdeathsig fires when the thread that started the
// child exits; Go only ends threads whose goroutine exits while locked to
// them, which nothing here does.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
