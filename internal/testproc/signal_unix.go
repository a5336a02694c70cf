//go:build unix

package testproc

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Pause stops the process with SIGSTOP: it runs no instruction until
// Resume, as a machine frozen or a process swapped out. It returns once
// every thread of the process is stopped (where /proc tells, for at most a
// second): a signal is delivered asynchronously, and a caller that looks
// at what the process holds (HoldsSQLiteWriteLock) must not look before
// it stopped taking things.
func (p *Proc) Pause() error {
	if err := p.Signal(syscall.SIGSTOP); err != nil {
		return err
	}
	waitAllStopped(p.Pid(), time.Second)
	return nil
}

// waitAllStopped waits until every thread of pid is stopped (state T in
// /proc/PID/task/*/stat), or limit passes, or /proc cannot tell.
func waitAllStopped(pid int, limit time.Duration) {
	dir := "/proc/" + strconv.Itoa(pid) + "/task"
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		tasks, err := os.ReadDir(dir)
		if err != nil {
			return // no /proc, or the process is gone
		}
		stopped := true
		for _, t := range tasks {
			stat, err := os.ReadFile(dir + "/" + t.Name() + "/stat")
			if err != nil {
				continue // the thread ended
			}
			s := string(stat)
			fields := strings.Fields(s[strings.LastIndex(s, ")")+1:])
			if len(fields) > 0 && fields[0] != "T" && fields[0] != "t" {
				stopped = false
				break
			}
		}
		if stopped {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

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
