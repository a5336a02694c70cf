package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/testproc"
	"github.com/bam-dev/bam/internal/testwait"
)

// TestDemoNodesDieWithIt: whatever ends the demo (SIGKILL, or the reader of
// its output going away, as with `bam demo | head -5`), the bam serve nodes
// it started end too. (They used to keep running, with parent 1.)
func TestDemoNodesDieWithIt(t *testing.T) {
	if testing.Short() {
		t.Skip("the demo starts real processes; skipped with -short")
	}
	for _, how := range []string{"SIGKILL", "closed pipe"} {
		t.Run(how, func(t *testing.T) {
			exe, err := os.Executable()
			if err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(exe, "demo", "--dir", filepath.Join(t.TempDir(), "demo"))
			cmd.Env = append(os.Environ(), runAsBam+"=1")
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan struct{})
			go func() { _ = cmd.Wait(); close(exited) }()
			t.Cleanup(func() {
				_ = cmd.Process.Kill()
				<-exited
			})

			pid := nodePID(t, out)
			switch how {
			case "SIGKILL":
				if err := cmd.Process.Kill(); err != nil {
					t.Fatal(err)
				}
			case "closed pipe":
				if err := out.(io.Closer).Close(); err != nil {
					t.Fatal(err)
				}
			}
			defer func() { // if the wait fails
				if testproc.Running(pid) {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}()
			testwait.Until(t, 30*time.Second, fmt.Sprintf("node-1 (pid %d) to end after the demo ended (%s)", pid, how), func() bool {
				return !testproc.Running(pid)
			})
		})
	}
}

// nodePID reads the demo's output until node-1 says it joined, and returns
// its process id.
func nodePID(t *testing.T, out io.Reader) int {
	t.Helper()
	joined := regexp.MustCompile(`^node-1 \| .*node joined the pool.* pid=(\d+)`)
	found := make(chan int, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if m := joined.FindStringSubmatch(sc.Text()); m != nil {
				pid, _ := strconv.Atoi(m[1])
				found <- pid
				return
			}
		}
		close(found)
	}()
	select {
	case pid, ok := <-found:
		if !ok {
			t.Fatal("the demo ended before node-1 joined")
		}
		return pid
	case <-time.After(30 * time.Second):
		t.Fatal("node-1 did not join within 30 s")
	}
	return 0
}
