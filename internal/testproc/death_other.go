//go:build !linux

package testproc

import (
	"os/exec"
	"syscall"
)

// dieWithParent does nothing where the kernel cannot signal a child when
// its parent dies: bam demo stops its nodes itself on SIGINT, SIGTERM and a
// closed output pipe, but not on SIGKILL; a test's cleanup kills its nodes.
func dieWithParent(*exec.Cmd, syscall.Signal) {}
