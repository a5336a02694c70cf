package testproc

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// ErrStopTimedOut is returned by Stop when the process did not exit within
// its limit after SIGTERM, and was killed.
var ErrStopTimedOut = errors.New("did not stop within the limit after SIGTERM; killed")

// Config says which process to start and where its output goes.
type Config struct {
	// Path is the executable, Args its arguments (without its name).
	Path string
	Args []string
	// Env is its environment; nil gives it this process's.
	Env []string
	// Name names it in errors and logs (e.g. "node-1").
	Name string
	// LogFile, when set, receives what it writes to stdout and stderr,
	// appended (the file is created when missing; a process started again
	// under the same name adds to it). Lines, WaitLine and WaitJoined read
	// it.
	LogFile string
	// OnLine, when set, is called with each line it writes to stdout or
	// stderr, without the newline, in order and from one goroutine; a last
	// line without a newline is passed when it exits. The slice is valid
	// during the call only.
	OnLine func(line []byte)
	// ParentDeathSignal is the signal the kernel sends it when the process
	// that started it dies, however it dies (SIGKILL included): SIGKILL
	// when zero. bam demo asks for SIGTERM, so that its nodes release their
	// leases. Linux only: elsewhere nothing is sent.
	ParentDeathSignal syscall.Signal
}

// Proc is a process started by Start. Its methods may be called from any
// goroutine.
type Proc struct {
	name    string
	log     string
	cmd     *exec.Cmd
	started time.Time
	done    chan struct{} // closed once it has exited and its output is written
	err     error         // what Wait returned; set before done is closed
}

// Start starts the process and returns once it runs.
func Start(cfg Config) (*Proc, error) {
	cmd := exec.Command(cfg.Path, cfg.Args...)
	cmd.Env = cfg.Env
	dieWithParent(cmd, cmp.Or(cfg.ParentDeathSignal, syscall.SIGKILL))
	var file *os.File
	if cfg.LogFile != "" {
		f, err := os.OpenFile(cfg.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, fmt.Errorf("start %s: %w", cfg.Name, err)
		}
		file = f
	}
	var lines *lineWriter
	switch {
	case cfg.OnLine != nil:
		// A pipe, read here: the lines are seen as they are written.
		lines = &lineWriter{onLine: cfg.OnLine}
		if file != nil {
			lines.file = file
		}
		cmd.Stdout, cmd.Stderr = lines, lines
	case file != nil:
		// The process writes to the file itself.
		cmd.Stdout, cmd.Stderr = file, file
	}
	p := &Proc{name: cfg.Name, log: cfg.LogFile, cmd: cmd, done: make(chan struct{})}
	p.started = time.Now()
	if err := cmd.Start(); err != nil {
		if file != nil {
			file.Close()
		}
		return nil, fmt.Errorf("start %s: %w", cfg.Name, err)
	}
	go func() {
		err := cmd.Wait() // after its output is copied to lines
		if lines != nil {
			lines.flush()
		}
		if file != nil {
			file.Close()
		}
		p.err = err
		close(p.done)
	}()
	return p, nil
}

// Name is the process's name (Config.Name).
func (p *Proc) Name() string { return p.name }

// Pid is the process's id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Started is when Start started it (taken just before).
func (p *Proc) Started() time.Time { return p.started }

// LogFile is where its output goes ("" when Config.LogFile was not set).
func (p *Proc) LogFile() string { return p.log }

// Done is closed once the process has exited and its output is written.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Err is how the process exited, once Done is closed: nil for status 0,
// else an *exec.ExitError ("signal: killed", "exit status 1").
func (p *Proc) Err() error {
	select {
	case <-p.done:
		return p.err
	default:
		return nil
	}
}

// Signal sends sig to the process; os.ErrProcessDone once it has exited.
func (p *Proc) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Wait waits up to limit for the process to exit, and reports whether it
// did.
func (p *Proc) Wait(limit time.Duration) bool {
	t := time.NewTimer(limit)
	defer t.Stop()
	select {
	case <-p.done:
		return true
	case <-t.C:
		return false
	}
}

// Stop stops the process as an operator would: SIGCONT first (a paused
// process acts on no signal but SIGKILL), then SIGTERM, and waits up to
// limit for it to exit; past limit it is killed and Stop returns
// ErrStopTimedOut. Otherwise it returns how the process exited (Err); for
// one that had exited before, how it did.
func (p *Proc) Stop(limit time.Duration) error {
	p.resume()
	_ = p.Signal(syscall.SIGTERM)
	if p.Wait(limit) {
		return p.err
	}
	p.Kill()
	return fmt.Errorf("%s: %w", p.name, ErrStopTimedOut)
}

// Kill sends SIGKILL (after SIGCONT, so that a paused process dies too)
// and waits until the process has exited.
func (p *Proc) Kill() {
	p.resume()
	_ = p.Signal(os.Kill)
	<-p.done
}
