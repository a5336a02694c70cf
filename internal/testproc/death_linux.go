package testproc

import (
	"os/exec"
	"syscall"
)

// dieWithParent makes the kernel send the child sig when the process that
// started it dies, however it dies (SIGKILL included), so that a test, a
// benchmark or a demo killed or cut off by a closed pipe (`bam demo |
// head`) leaves no bam serve behind.
func dieWithParent(c *exec.Cmd, sig syscall.Signal) {
	if c.SysProcAttr == nil {
		c.SysProcAttr = &syscall.SysProcAttr{}
	}
	c.SysProcAttr.Pdeathsig = sig
}
