package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bam-dev/bam/internal/testproc"
)

// A node paused (SIGSTOP) inside a transaction keeps what the transaction
// holds. On SQLite that is the database's only write lock: nobody, not the
// peer that should take over, not the application appending events, can
// write until the node resumes (a documented limit, docs/OPERATIONS.md).
// On PostgreSQL it is the transaction's row locks, until the server ends
// the idle transaction (idle_in_transaction_session_timeout, 2 s). The
// paused benchmark therefore tells pauses inside a transaction from the
// others.

// pauseProbes is how many random pauses BenchmarkFailoverPaused makes per
// cluster, before its measured repetitions, only to count how many land
// inside a transaction: each stops a node for a few milliseconds.
const pauseProbes = 100

// pauseStats counts random pauses and those that landed inside a (write)
// transaction.
type pauseStats struct {
	pauses, inTx int
}

func (s *pauseStats) add(inTx bool) {
	s.pauses++
	if inTx {
		s.inTx++
	}
}

func (s pauseStats) pct() float64 {
	if s.pauses == 0 {
		return 0
	}
	return 100 * float64(s.inTx) / float64(s.pauses)
}

// pause SIGSTOPs p, waits until every thread of it has stopped, and
// reports when the signal was sent and whether p was stopped inside a
// transaction: on SQLite holding the WAL write lock, on PostgreSQL with one
// of its backends idle in transaction.
func (c *cluster) pause(p *proc) (at time.Time, inTx bool) {
	c.b.Helper()
	at = p.signal(c.b, syscall.SIGSTOP)
	pid := p.Pid()
	if !waitStopped(pid, 2*time.Second) {
		c.b.Logf("%s (pid %d): not every thread stopped within 2s of SIGSTOP", p.Name(), pid)
	}
	switch c.driver {
	case "sqlite":
		return at, holdsSQLiteWriteLock(c.b, pid, strings.TrimPrefix(c.url, "sqlite:"))
	case "postgres":
		// A statement sent just before the stop still runs and, if it
		// ends its transaction, commits: give the server a moment so that
		// only a transaction the stopped client must continue is counted.
		time.Sleep(20 * time.Millisecond)
		return at, c.pgIdleInTx(pid)
	}
	return at, false
}

// pauseOutsideWriteTx pauses p; on SQLite it resumes and pauses again, at a
// random moment a few milliseconds later, until p was stopped outside a
// write transaction. It returns the time of the pause that stayed, whether
// that pause is inside a transaction (PostgreSQL only: there the server
// ends the transaction), and whether the first pause landed inside one.
func (c *cluster) pauseOutsideWriteTx(p *proc) (at time.Time, inTx, firstInTx bool) {
	c.b.Helper()
	for attempt := 1; ; attempt++ {
		at, inTx = c.pause(p)
		if attempt == 1 {
			firstInTx = inTx
		}
		if c.driver != "sqlite" || !inTx {
			return at, inTx, firstInTx
		}
		if attempt == 50 {
			c.b.Fatalf("%s was inside a SQLite write transaction at each of 50 pauses", p.Name())
		}
		p.signal(c.b, syscall.SIGCONT)
		time.Sleep(time.Duration(5+rand.IntN(30)) * time.Millisecond)
	}
}

// probePauses pauses the nodes, taking turns, n times at random moments 10
// to 50 ms apart, resuming each at once, and counts the pauses that landed
// inside a transaction.
func (c *cluster) probePauses(nodes []*proc, n int, stats *pauseStats) {
	c.b.Helper()
	for i := range n {
		time.Sleep(time.Duration(10+rand.IntN(40)) * time.Millisecond)
		p := nodes[i%len(nodes)]
		_, inTx := c.pause(p)
		p.signal(c.b, syscall.SIGCONT)
		stats.add(inTx)
	}
}

// waitStopped waits until every thread of pid is in the stopped state
// ('T'): SIGSTOP is delivered asynchronously, and a thread still running
// could take or drop a lock after the check.
func waitStopped(pid int, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	dir := fmt.Sprintf("/proc/%d/task", pid)
	for {
		tasks, err := os.ReadDir(dir)
		if err != nil {
			return false
		}
		all := len(tasks) > 0
		for _, t := range tasks {
			b, err := os.ReadFile(filepath.Join(dir, t.Name(), "stat"))
			if err != nil {
				all = false
				break
			}
			// "tid (comm) S ...": the state follows the last ')'.
			s := string(b)
			if i := strings.LastIndexByte(s, ')'); i < 0 || i+2 >= len(s) || s[i+2] != 'T' {
				all = false
				break
			}
		}
		if all {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(200 * time.Microsecond)
	}
}

// holdsSQLiteWriteLock reports whether pid holds the WAL write lock of a
// SQLite database (see testproc.HoldsSQLiteWriteLock).
func holdsSQLiteWriteLock(b testing.TB, pid int, db string) bool {
	b.Helper()
	held, err := testproc.HoldsSQLiteWriteLock(pid, db)
	if err != nil {
		b.Fatal(err)
	}
	return held
}

// pgIdleInTx reports whether one of pid's connections to the cluster's
// database has a backend idle in transaction: the process stopped between
// the statements of a transaction, holding its locks.
func (c *cluster) pgIdleInTx(pid int) bool {
	c.b.Helper()
	ports := tcpPorts(pid)
	if len(ports) == 0 {
		return false
	}
	var n int
	err := c.pgConn().QueryRow(context.Background(), `
		SELECT count(*) FROM pg_stat_activity
		WHERE datname = current_database() AND state LIKE 'idle in transaction%' AND client_port = ANY($1)`,
		ports).Scan(&n)
	if err != nil {
		c.b.Fatal(err)
	}
	return n > 0
}

// tcpPorts returns the local ports of pid's TCP sockets.
func tcpPorts(pid int) []int32 {
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return nil
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if ino, ok := strings.CutPrefix(l, "socket:["); err == nil && ok {
			inodes[strings.TrimSuffix(ino, "]")] = true
		}
	}
	var ports []int32
	for _, table := range []string{"tcp", "tcp6"} {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, table))
		if err != nil {
			continue
		}
		// "sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ..."
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 10 || !inodes[f[9]] {
				continue
			}
			_, hexPort, ok := strings.Cut(f[1], ":")
			if port, err := strconv.ParseInt(hexPort, 16, 32); ok && err == nil {
				ports = append(ports, int32(port))
			}
		}
	}
	return ports
}

// pgConn returns the cluster's connection to its PostgreSQL database,
// opened on first use, to read pg_stat_activity.
func (c *cluster) pgConn() *pgx.Conn {
	c.b.Helper()
	if c.pg == nil {
		conn, err := pgx.Connect(context.Background(), c.url)
		if err != nil {
			c.b.Fatal(err)
		}
		c.pg = conn
		c.b.Cleanup(func() { _ = conn.Close(context.Background()) })
	}
	return c.pg
}
