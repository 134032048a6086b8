//go:build !linux

package testredis

import "syscall"

// sysProcAttr: outside Linux there is no parent-death signal; Stop, run by
// the test's cleanup, is what ends the server.
func sysProcAttr() *syscall.SysProcAttr { return nil }
