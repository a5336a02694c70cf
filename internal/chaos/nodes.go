package chaos

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/bam-dev/bam/internal/chaos/check"
	"github.com/bam-dev/bam/internal/faultproxy"
	"github.com/bam-dev/bam/internal/pool"
	"github.com/bam-dev/bam/internal/testproc"
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

	mu   sync.Mutex
	proc *testproc.Proc // the current process; nil before the first start
}

// start starts the process; the node must not be running.
func (n *nodeProc) start() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc != nil && !n.proc.Exited() {
		return fmt.Errorf("node %s already runs", n.name)
	}
	p, err := testproc.Start(testproc.Config{
		Path: n.bam, Name: "node " + n.name, LogFile: n.logPath,
		Args:   append([]string{"serve", "--store", n.storeURL, "--name", n.name, "--log-format", "json"}, n.extra...),
		Env:    append(os.Environ(), alertSecretEnv+"="+alertSecret),
		OnLine: func(line []byte) { n.claims.record(line, n.name) },
		// The nodes die with the harness, even when it is killed.
		ParentDeathSignal: syscall.SIGKILL,
	})
	if err != nil {
		return err
	}
	n.proc = p
	return nil
}

// running returns the current process, nil when the node does not run.
func (n *nodeProc) running() *testproc.Proc {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc == nil || n.proc.Exited() {
		return nil
	}
	return n.proc
}

// signal sends sig to the running process; false when it does not run.
func (n *nodeProc) signal(sig syscall.Signal) bool {
	p := n.running()
	return p != nil && p.Signal(sig) == nil
}

// kill sends SIGKILL (after SIGCONT, so that a paused node dies too) and
// waits for the process to be gone.
func (n *nodeProc) kill() {
	if p := n.running(); p != nil {
		p.Kill()
	}
}

// stop asks the node to stop cleanly (SIGTERM) and kills it if it has not
// exited within limit.
func (n *nodeProc) stop(limit time.Duration) (clean bool) {
	p := n.running()
	return p == nil || !errors.Is(p.Stop(limit), testproc.ErrStopTimedOut)
}

func (n *nodeProc) isRunning() bool { return n.running() != nil }

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

// claimMessages are the messages of a node's claims (pool.ClaimLogMessages).
var claimMessages = func() map[string]bool {
	m := map[string]bool{}
	for _, msg := range pool.ClaimLogMessages {
		m[msg] = true
	}
	return m
}()

// record records the claims in a log line of the node process name, and
// the node's id.
func (c *claimLog) record(line []byte, name string) {
	var l struct {
		Time      time.Time   `json:"time"`
		Msg       string      `json:"msg"`
		Node      string      `json:"node"`
		Source    string      `json:"source"`
		Partition json.Number `json:"partition"`
		Epoch     int64       `json:"epoch"`
	}
	if json.Unmarshal(line, &l) != nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
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
