package chaos

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/bam-dev/bam/internal/chaos/check"
	"github.com/bam-dev/bam/internal/faultproxy"
)

// nodeProc is one `bam serve` process of the pool, restartable under the
// same name. Its log lines go to a file (appended across restarts) and the
// claims in them to the run's history.
type nodeProc struct {
	name     string
	storeURL string            // through proxy, when there is one
	proxy    *faultproxy.Proxy // nil when the store is SQLite
	logPath  string
	bam      string
	extra    []string
	claims   *claimLog

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{} // closed when the current process has exited
	running bool
	paused  bool
	starts  int
}

// start starts the process; the node must not be running.
func (n *nodeProc) start() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.running {
		return fmt.Errorf("node %s already runs", n.name)
	}
	f, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	r, w, err := os.Pipe()
	if err != nil {
		f.Close()
		return err
	}
	args := append([]string{"serve", "--store", n.storeURL, "--name", n.name, "--log-format", "json"}, n.extra...)
	cmd := exec.Command(n.bam, args...)
	cmd.Stdout, cmd.Stderr = w, w
	// The nodes die with the harness, even when it is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		r.Close()
		w.Close()
		return fmt.Errorf("start node %s: %w", n.name, err)
	}
	w.Close()
	done := make(chan struct{})
	logged := make(chan struct{})
	go func() {
		n.claims.scan(r, f, n.name)
		r.Close()
		f.Close()
		close(logged)
	}()
	go func() {
		_ = cmd.Wait()
		<-logged
		n.mu.Lock()
		n.running, n.paused = false, false
		n.mu.Unlock()
		close(done)
	}()
	n.cmd, n.done, n.running, n.paused = cmd, done, true, false
	n.starts++
	return nil
}

// signal sends sig to the running process; false when it does not run.
func (n *nodeProc) signal(sig syscall.Signal) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.running {
		return false
	}
	if err := n.cmd.Process.Signal(sig); err != nil {
		return false
	}
	switch sig {
	case syscall.SIGSTOP:
		n.paused = true
	case syscall.SIGCONT:
		n.paused = false
	}
	return true
}

// kill sends SIGKILL (after SIGCONT, so that a paused node dies too) and
// waits for the process to be gone.
func (n *nodeProc) kill() {
	n.signal(syscall.SIGCONT)
	if n.signal(syscall.SIGKILL) {
		n.wait(time.Minute)
	}
}

// stop asks the node to stop cleanly (SIGTERM) and kills it if it has not
// exited within limit.
func (n *nodeProc) stop(limit time.Duration) (clean bool) {
	n.signal(syscall.SIGCONT)
	if !n.signal(syscall.SIGTERM) {
		return true
	}
	if n.wait(limit) {
		return true
	}
	n.kill()
	return false
}

func (n *nodeProc) wait(limit time.Duration) bool {
	n.mu.Lock()
	done := n.done
	n.mu.Unlock()
	if done == nil {
		return true
	}
	select {
	case <-done:
		return true
	case <-time.After(limit):
		return false
	}
}

func (n *nodeProc) isRunning() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.running
}

// claimLog collects, from every node's log, the sessions claimed and taken
// over, with the node id and epoch: the checker looks for two nodes under
// one epoch.
type claimLog struct {
	mu     sync.Mutex
	claims []check.Claim
	lines  map[string]int    // log lines by message, for the report
	names  map[string]string // node id → the name of its process
	ids    map[string]string // process name → the id it logged last
}

var claimMessages = map[string]bool{
	"session claimed":                          true,
	"session taken over from a dead node":      true,
	"session taken over from an expired lease": true,
}

// scan copies the log lines of the node process name to w and records
// their claims and the node's id.
func (c *claimLog) scan(r io.Reader, w io.Writer, name string) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		_, _ = w.Write(append(line, '\n'))
		var l struct {
			Time      time.Time   `json:"time"`
			Msg       string      `json:"msg"`
			Node      string      `json:"node"`
			Source    string      `json:"source"`
			Partition json.Number `json:"partition"`
			Epoch     int64       `json:"epoch"`
		}
		if json.Unmarshal(line, &l) != nil {
			continue
		}
		c.mu.Lock()
		if c.lines == nil {
			c.lines = map[string]int{}
		}
		c.lines[l.Msg]++
		if l.Node != "" {
			if c.names == nil {
				c.names, c.ids = map[string]string{}, map[string]string{}
			}
			c.names[l.Node], c.ids[name] = name, l.Node
		}
		if claimMessages[l.Msg] && l.Node != "" {
			p, _ := strconv.Atoi(l.Partition.String())
			c.claims = append(c.claims, check.Claim{At: l.Time, Session: sessionName(l.Source, p), Node: l.Node, Epoch: l.Epoch})
		}
		c.mu.Unlock()
	}
}

// idOf returns the id the node process name logged last ("" if none).
func (c *claimLog) idOf(name string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ids[name]
}

// nodeNames maps every node id seen to the name of its process.
func (c *claimLog) nodeNames() map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.names)
}

func (c *claimLog) snapshot() ([]check.Claim, map[string]int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	lines := make(map[string]int, len(c.lines))
	for k, v := range c.lines {
		lines[k] = v
	}
	return append([]check.Claim(nil), c.claims...), lines
}

func sessionName(source string, partition int) string {
	return source + "/" + strconv.Itoa(partition)
}
