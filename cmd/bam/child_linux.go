package main

import (
	"os/exec"
	"syscall"
)

// dieWithParent makes the kernel send the child SIGTERM when the process
// that started it dies, however it dies (SIGKILL included), so that a demo
// killed or cut off by a closed pipe (`bam demo | head`) leaves no bam
// serve behind; SIGTERM lets the node release its leases and leave.
func dieWithParent(c *exec.Cmd) {
	if c.SysProcAttr == nil {
		c.SysProcAttr = &syscall.SysProcAttr{}
	}
	c.SysProcAttr.Pdeathsig = syscall.SIGTERM
}
