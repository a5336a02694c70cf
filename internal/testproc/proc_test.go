//go:build unix

package testproc

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/testwait"
)

// helperEnv makes the test binary act as the process a test starts, in
// the mode the variable names.
const helperEnv = "TESTPROC_HELPER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		helper(mode)
		return
	}
	os.Exit(m.Run())
}

// helper is the started process: it writes lines and behaves on signals as
// mode says.
func helper(mode string) {
	switch mode {
	case "lines":
		fmt.Println("one")
		fmt.Fprintln(os.Stderr, "two")
		fmt.Printf(`{"time":"2026-11-25T10:00:00.5Z","msg":%q,"node":"n-1"}`+"\n", joinedMsg)
		fmt.Print("last, without a newline")
		os.Exit(0)
	case "stops":
		term := make(chan os.Signal, 1)
		signal.Notify(term, syscall.SIGTERM)
		fmt.Println("ready")
		<-term
		os.Exit(0)
	case "ignores-term":
		signal.Ignore(syscall.SIGTERM)
		fmt.Println("ready")
		// Not select {}: with no other goroutine, the runtime calls that
		// a deadlock and exits (under -race it did not notice).
		for {
			time.Sleep(time.Hour)
		}
	case "parent":
		child, err := Start(Config{Path: os.Args[0], Env: append(os.Environ(), helperEnv+"=stops"), Name: "child"})
		if err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		fmt.Println("child", child.Pid())
		select {}
	}
	os.Exit(2)
}

// startHelper starts the test binary in mode, its lines collected.
func startHelper(t *testing.T, mode string) (*Proc, *collected) {
	t.Helper()
	c := &collected{}
	p := StartTest(t, Config{Path: os.Args[0], Env: append(os.Environ(), helperEnv+"="+mode), Name: mode, OnLine: c.add})
	return p, c
}

type collected struct {
	mu    sync.Mutex
	lines []string
}

func (c *collected) add(line []byte) {
	c.mu.Lock()
	c.lines = append(c.lines, string(line))
	c.mu.Unlock()
}

func (c *collected) get() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.lines)
}

// waitLine waits for the process to write line.
func (c *collected) waitLine(t *testing.T, line string) {
	t.Helper()
	testwait.Until(t, 20*time.Second, fmt.Sprintf("the line %q", line), func() bool { return slices.Contains(c.get(), line) })
}

// TestOutput: stdout and stderr go, in order, to the log file as written
// and to OnLine a line at a time, the last line too when it has no
// newline; WaitJoined reads the node's id and the time of its line.
func TestOutput(t *testing.T) {
	p, c := startHelper(t, "lines")
	if !p.Wait(20 * time.Second) {
		t.Fatal("the process did not exit")
	}
	if err := p.Err(); err != nil {
		t.Fatalf("exit: %v", err)
	}
	want := []string{"one", "two", `{"time":"2026-11-25T10:00:00.5Z","msg":"node joined the pool","node":"n-1"}`, "last, without a newline"}
	if got := c.get(); !slices.Equal(got, want) {
		t.Errorf("lines %q, want %q", got, want)
	}
	b, err := os.ReadFile(p.LogFile())
	if err != nil {
		t.Fatal(err)
	}
	if got := string(b); got != strings.Join(want, "\n") {
		t.Errorf("log file %q", got)
	}
	id, at, err := p.WaitJoined(time.Second)
	if err != nil || id != "n-1" || !at.Equal(time.Date(2026, 11, 25, 10, 0, 0, 5e8, time.UTC)) {
		t.Errorf("WaitJoined: %q %v %v", id, at, err)
	}
	// A line it never wrote: the wait ends at once, the process having
	// exited, and says so.
	if _, err := p.WaitLine(time.Minute, "a line it never writes", func(l map[string]any) bool { return l["msg"] == "never" }); err == nil ||
		!strings.Contains(err.Error(), "exited") {
		t.Errorf("WaitLine for a line never written: %v", err)
	}
}

// TestLogFileIsAppended: a process started again under the same log file
// adds to it, as a chaos node restarted after a kill does.
func TestLogFileIsAppended(t *testing.T) {
	log := filepath.Join(t.TempDir(), "node.log")
	for range 2 {
		p := StartTest(t, Config{Path: os.Args[0], Env: append(os.Environ(), helperEnv+"=lines"), Name: "lines", LogFile: log})
		p.Wait(20 * time.Second)
	}
	lines, err := LogLines(log)
	if err != nil || len(lines) != 2 {
		t.Fatalf("JSON lines of two runs: %d, %v", len(lines), err)
	}
}

// TestStop: SIGTERM stops a process that acts on it, with its exit status;
// one that ignores it is killed at the limit and Stop says so.
func TestStop(t *testing.T) {
	p, c := startHelper(t, "stops")
	c.waitLine(t, "ready")
	if err := p.Stop(20 * time.Second); err != nil {
		t.Errorf("Stop of a process that stops on SIGTERM: %v", err)
	}

	p, c = startHelper(t, "ignores-term")
	c.waitLine(t, "ready")
	start := time.Now()
	err := p.Stop(300 * time.Millisecond)
	if !errors.Is(err, ErrStopTimedOut) || !p.Exited() {
		t.Errorf("Stop of a process that ignores SIGTERM: %v, exited %v; want ErrStopTimedOut and gone", err, p.Exited())
	}
	if took := time.Since(start); took < 300*time.Millisecond {
		t.Errorf("killed after %v, before the limit", took)
	}
}

// TestPauseResumeKill: a paused process is stopped (state T) until
// resumed; Kill ends a paused one too.
func TestPauseResumeKill(t *testing.T) {
	p, c := startHelper(t, "stops")
	c.waitLine(t, "ready")
	if err := p.Pause(); err != nil {
		t.Fatal(err)
	}
	waitStopped(t, p.Pid(), true)
	if err := p.Resume(); err != nil {
		t.Fatal(err)
	}
	waitStopped(t, p.Pid(), false)
	if err := p.Pause(); err != nil {
		t.Fatal(err)
	}
	waitStopped(t, p.Pid(), true)
	p.Kill()
	if !p.Exited() || Running(p.Pid()) {
		t.Fatal("Kill returned and the paused process runs")
	}
	if err := p.Signal(syscall.SIGTERM); !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("a signal to an exited process: %v", err)
	}
}

// waitStopped waits for the process to be stopped (state T in
// /proc/PID/stat) or not, as want says: a signal is delivered
// asynchronously.
func waitStopped(t *testing.T, pid int, want bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			t.Skipf("no /proc: %v", err)
		}
		s := string(stat)
		if f := strings.Fields(s[strings.LastIndex(s, ")")+1:]); len(f) > 0 && (f[0] == "T") == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d not stopped=%v within 10 s: %s", pid, want, stat)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestChildDiesWithParent: a process started here ends when the process
// that started it is killed with SIGKILL, which runs no cleanup of its own.
func TestChildDiesWithParent(t *testing.T) {
	parent, c := startHelper(t, "parent")
	deadline := time.Now().Add(20 * time.Second)
	child := 0
	for child == 0 {
		for _, l := range c.get() {
			if n, ok := strings.CutPrefix(l, "child "); ok {
				child, _ = strconv.Atoi(n)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the parent started no child: %q", c.get())
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Cleanup(func() { _ = syscall.Kill(child, syscall.SIGKILL) })
	parent.Kill()
	testwait.Until(t, 20*time.Second, fmt.Sprintf("the child (pid %d) to end after its parent was killed", child), func() bool { return !Running(child) })
}
