package bench

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/store"
)

// BenchmarkFailover runs two `bam serve` nodes on one buffer source of two
// partitions (one session each) while a writer appends continuously, then
// SIGKILLs the owner of a session and measures the time from the kill until
// that session has committed a new batch under the other node (owner
// changed and checkpoint past the one it was claimed at, seen by reading
// the sessions every 5 ms). A fresh node replaces the dead one and the pool
// rebalances before the next repetition. The baseline is the longest a
// session went without a visible commit in the second before the kill: the
// floor of what the monitor can see.
//
// DESIGN.md's target: ≤ 1 s when the store sees the dead node's connection
// close, which a SIGKILL does.
func BenchmarkFailover(b *testing.B) {
	for _, driver := range []string{"postgres", "sqlite"} {
		b.Run(driver, func(b *testing.B) { benchFailover(b, driver, syscall.SIGKILL) })
	}
}

// BenchmarkFailoverPaused is BenchmarkFailover with SIGSTOP instead of
// SIGKILL: the paused node keeps its connections and its liveness lock, so
// its sessions move only when its leases expire (lease TTL 3 s by
// default). Target: ≤ 5 s.
//
// A node paused inside a transaction keeps what it holds. On SQLite that
// is the file's only write lock, and nobody can take over until the node
// resumes (a documented limit, docs/OPERATIONS.md), so the two cases are
// measured apart. First the cluster is paused pauseProbes times at random
// moments, each resumed at once, to count how often a random pause lands
// inside a transaction (SQLite: the process holds the WAL write lock;
// PostgreSQL: one of its backends is idle in transaction, which the server
// ends after 2 s). Then each measured repetition pauses the owner of a
// session: on SQLite, should the pause land inside a write transaction,
// the node is resumed and paused again a few milliseconds later until it
// stops outside one; on PostgreSQL every pause counts, inside a
// transaction or not. The first pause of each repetition also counts as a
// random pause. The node is SIGCONTed after each measurement; it may then
// take a session back (the pool rebalances), so no owner is expected
// afterwards, only a balanced pool.
func BenchmarkFailoverPaused(b *testing.B) {
	for _, driver := range []string{"postgres", "sqlite"} {
		b.Run(driver, func(b *testing.B) { benchFailover(b, driver, syscall.SIGSTOP) })
	}
}

func benchFailover(b *testing.B, driver string, sig syscall.Signal) {
	b.StopTimer()
	var took, floor []time.Duration
	// tookInTx are the measured pauses that landed inside a transaction
	// (PostgreSQL only; on SQLite they are retried).
	var tookInTx []time.Duration
	var random pauseStats
	// stuck counts the pauses after which the session did not move within
	// stuckAfter (twice the 5 s target). It should stay 0: a SQLite node
	// is only measured when paused outside a write transaction.
	stuck := 0
	stuckAfter := 10 * time.Second
	name := map[syscall.Signal]string{syscall.SIGKILL: "SIGKILL", syscall.SIGSTOP: "SIGSTOP"}[sig]
	for range b.N {
		c := newCluster(b, driver)
		n1 := c.start()
		n1.waitJoined(b)
		c.waitBalanced("node 1 to own both sessions", map[string]int{n1.id: 2}, 0)
		n2 := c.start()
		n2.waitJoined(b)
		c.waitBalanced("the pool to balance", map[string]int{n1.id: 1, n2.id: 1}, 1200*time.Millisecond)
		nodes := [2]*proc{n1, n2}
		if sig == syscall.SIGSTOP {
			var probes pauseStats
			c.probePauses(nodes[:], pauseProbes, &probes)
			random.pauses += probes.pauses
			random.inTx += probes.inTx
			b.Logf("%d of %d random pauses landed inside a transaction", probes.inTx, probes.pauses)
			c.waitBalanced("the pool to settle after the probes", map[string]int{n1.id: 1, n2.id: 1}, 1200*time.Millisecond)
		}
		for range reps() {
			// The nodes take turns: nodes is reordered after each repetition.
			victim, survivor := nodes[0], nodes[1]
			id := c.sessionOf(victim.id)
			first := time.Now()
			var t0 time.Time
			inTx := false
			if sig == syscall.SIGSTOP {
				var firstInTx bool
				t0, inTx, firstInTx = c.pauseOutsideWriteTx(victim)
				random.add(firstInTx)
			} else {
				t0 = victim.signal(b, sig)
			}
			done, ok := c.tryWaitCommitted(id, survivor, t0, stuckAfter)
			if !ok {
				// Only SIGSTOP gets here: see stuck above.
				stuck++
				b.Logf("SIGSTOP of %s (pid %d, inside a transaction: %v): session %s/%d did not move in %v; the paused process holds these locks:\n%s",
					victim.Name(), victim.Pid(), inTx, id.Source, id.Partition, stuckAfter, strings.Join(locksOf(victim.Pid()), "\n"))
				cont := victim.signal(b, syscall.SIGCONT)
				// Either node may commit it now: the resumed one, if it
				// still holds the lease, or the other.
				o := c.mon.waitFor(b, cont, 30*time.Second, "the session to commit after SIGCONT", committedAfter(c.mon, id, cont))
				b.Logf("after SIGCONT the session committed under %s %v later", o.sessions[id].Owner, o.at.Sub(cont).Round(time.Millisecond))
				nodes = [2]*proc{survivor, victim}
				// A longer settle keeps the stall out of the next baseline window.
				c.waitBalanced("the pool to balance again", map[string]int{survivor.id: 1, victim.id: 1}, 1500*time.Millisecond)
				continue
			}
			if inTx {
				tookInTx = append(tookInTx, done.Sub(t0))
			}
			took = append(took, done.Sub(t0))
			// The window ends at the first pause, before any retried one.
			floor = append(floor, c.mon.maxGap(id, first.Add(-time.Second), first))
			b.Logf("%s of %s (inside a transaction: %v): session %s/%d committed under %s after %v (longest gap before: %v)",
				name, victim.Name(), inTx, id.Source, id.Partition, survivor.Name(), done.Sub(t0).Round(time.Millisecond), floor[len(floor)-1].Round(time.Millisecond))
			if sig == syscall.SIGKILL {
				victim.wait(b, 10*time.Second)
				victim = c.start()
				victim.waitJoined(b)
			} else {
				victim.signal(b, syscall.SIGCONT)
			}
			nodes = [2]*proc{survivor, victim}
			// Which node holds which session afterwards is the pool's
			// choice: only the balance is waited for.
			c.waitBalanced("the pool to balance again", map[string]int{survivor.id: 1, victim.id: 1}, 1200*time.Millisecond)
		}
	}
	med, mx := medianMax(took)
	fmed, fmx := medianMax(floor)
	target := 1000.0
	if sig == syscall.SIGSTOP {
		target = 5000
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(med, "median_ms")
	b.ReportMetric(mx, "max_ms")
	b.ReportMetric(fmed, "steady_gap_median_ms")
	b.ReportMetric(fmx, "steady_gap_max_ms")
	b.ReportMetric(target, "target_ms")
	b.ReportMetric(float64(len(took)+stuck), "reps")
	if sig == syscall.SIGSTOP {
		b.ReportMetric(float64(stuck), "stuck")
		b.ReportMetric(float64(random.pauses), "random_pauses")
		b.ReportMetric(float64(random.inTx), "random_pauses_in_tx")
		b.ReportMetric(random.pct(), "in_tx_pct")
		if driver == "postgres" {
			_, imx := medianMax(tookInTx)
			b.ReportMetric(float64(len(tookInTx)), "reps_in_tx")
			b.ReportMetric(imx, "in_tx_max_ms")
		}
	}
}

// committedAfter is true of an observation in which the session, held
// under a live lease by any node, has a checkpoint past the one it had at
// t.
func committedAfter(m *monitor, id store.SessionID, t time.Time) func(observation) bool {
	var cp store.Position
	m.mu.Lock()
	for _, o := range m.obs {
		if !o.at.After(t) {
			cp = o.sessions[id].Checkpoint
		}
	}
	m.mu.Unlock()
	return func(o observation) bool {
		s := o.sessions[id]
		return s.Owner != "" && s.LeaseRemaining > 0 && cp.Less(s.Checkpoint)
	}
}
