//go:build unix

package testproc

import (
	"os"
	"strconv"
	"strings"
	"syscall"
)

// Pause stops the process with SIGSTOP: it runs no instruction until
// Resume, as a machine frozen or a process swapped out.
func (p *Proc) Pause() error { return p.Signal(syscall.SIGSTOP) }

// Resume lets a paused process run again (SIGCONT).
func (p *Proc) Resume() error { return p.Signal(syscall.SIGCONT) }

func (p *Proc) resume() { _ = p.Resume() }

// Running reports whether the process pid lives and is not a zombie
// waiting to be reaped (read from /proc where there is one).
func Running(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true // no /proc: the signal answered
	}
	// pid (comm) state ...: the state follows the last ')'.
	s := string(stat)
	fields := strings.Fields(s[strings.LastIndex(s, ")")+1:])
	return len(fields) == 0 || fields[0] != "Z"
}
