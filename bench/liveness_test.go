package bench

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bam-dev/bam/internal/store"
	"github.com/bam-dev/bam/internal/testpg"
)

// BenchmarkLivenessLoss counts the sessions that move when liveness locks
// vanish from nodes that live (internal/pool/doc.go, "Death verdicts"):
//
//   - lock-reset: the store backend holding one node's liveness lock is
//     ended (pg_terminate_backend, as a proxy recycling the connection
//     would). Target: 0 moves.
//   - restart: the PostgreSQL server is restarted (pg_ctl restart -m fast):
//     every node's lock vanishes at once while heartbeats are fresh.
//     Target: 0 moves when every node reconnects within the lease TTL.
//   - sigkill, the baseline: one node is SIGKILLed, and its sessions move,
//     once each.
//
// Two `bam serve` nodes with the default settings share 8 sessions (the
// writer's source of 2 partitions and an idle one of 6) on a PostgreSQL
// server of the benchmark's own (internal/pgserver), so that it may
// restart it. Each repetition starts from a balanced pool (4 sessions
// each, every lock held), strikes, waits until every live node holds its
// lock again, then a lease TTL and a second more (any lease not renewed
// meanwhile has expired and been claimed), then for the pool to balance
// again, and counts the claims: the sum of the sessions' epoch increases
// (a session taken away and handed back counts 2). relock_ms is the time
// from the strike until every live node's lock is held again; for sigkill,
// failover_ms is the time until the survivor holds all 8 sessions.
//
// BAM_BENCH_BAM runs another build of bam (for the figures before a
// change); BAM_BENCH_REPS sets the repetitions (default 5).
func BenchmarkLivenessLoss(b *testing.B) {
	for _, fault := range []string{"lock-reset", "restart", "sigkill"} {
		b.Run(fault, func(b *testing.B) { benchLivenessLoss(b, fault) })
	}
}

const (
	livenessSessions = 8
	defaultLeaseTTL  = 3 * time.Second
)

func benchLivenessLoss(b *testing.B, fault string) {
	b.StopTimer()
	var moves []float64
	var relock, failover, down []time.Duration
	for range b.N {
		server, url := testpg.NewServer(b)
		c := newClusterAt(b, "postgres", url)
		c.bam("source", "add", "idle", "--kind", "buffer", "--partitions", fmt.Sprint(livenessSessions-procPartitions))
		nodes := []*proc{c.start(), c.start()}
		for _, n := range nodes {
			n.waitJoined(b)
		}
		for range reps() {
			c.waitEvenlyOwned(nodes)
			before := c.epochs()
			var t0 time.Time
			switch fault {
			case "lock-reset":
				t0 = time.Now()
				if n := c.resetLock(nodes[0].id); n != 1 {
					b.Fatalf("ended %d backends holding %s's liveness lock, want 1", n, nodes[0].Name())
				}
			case "restart":
				t0 = time.Now()
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				err := server.Restart(ctx, "fast")
				cancel()
				if err != nil {
					b.Fatal(err)
				}
				down = append(down, time.Since(t0))
			case "sigkill":
				victim := nodes[0]
				t0 = victim.signal(b, syscall.SIGKILL)
				survivor := nodes[1]
				c.mon.waitFor(b, t0, 30*time.Second, "the survivor to own every session", func(o observation) bool {
					return len(o.owned()[survivor.id]) == livenessSessions
				})
				failover = append(failover, time.Since(t0))
				victim.wait(b, 10*time.Second)
				nodes = nodes[1:]
			}
			relock = append(relock, c.waitLocked(nodes, t0))
			time.Sleep(defaultLeaseTTL + time.Second)
			c.waitEvenlyOwned(nodes)
			m := moved(before, c.epochs())
			moves = append(moves, float64(m))
			b.Logf("%s: %d sessions moved; every lock held again %v after the strike", fault, m, relock[len(relock)-1].Round(time.Millisecond))
			if fault == "sigkill" {
				n := c.start()
				n.waitJoined(b)
				nodes = append(nodes, n)
			}
			// The node that takes the next fault changes each time.
			nodes = append(nodes[1:], nodes[0])
		}
	}
	b.ReportMetric(0, "ns/op")
	mean, most := 0.0, 0.0
	for _, m := range moves {
		mean += m / float64(len(moves))
		most = max(most, m)
	}
	b.ReportMetric(mean, "moves_mean")
	b.ReportMetric(most, "moves_max")
	b.ReportMetric(livenessSessions, "sessions")
	med, mx := medianMax(relock)
	b.ReportMetric(med, "relock_median_ms")
	b.ReportMetric(mx, "relock_max_ms")
	if len(failover) > 0 {
		med, mx := medianMax(failover)
		b.ReportMetric(med, "failover_median_ms")
		b.ReportMetric(mx, "failover_max_ms")
	}
	if len(down) > 0 {
		med, _ := medianMax(down)
		b.ReportMetric(med, "restart_median_ms")
	}
	b.ReportMetric(float64(len(moves)), "reps")
}

// waitEvenlyOwned waits until the nodes hold the sessions evenly, each
// under a live lease, and every node holds its liveness lock; then lets
// the pool run for a balance round or two.
func (c *cluster) waitEvenlyOwned(nodes []*proc) {
	c.b.Helper()
	each := livenessSessions / len(nodes)
	c.mon.waitFor(c.b, time.Now(), 30*time.Second, "the sessions to be evenly owned", func(o observation) bool {
		owned := o.owned()
		for _, n := range nodes {
			if len(owned[n.id]) != each {
				return false
			}
		}
		return true
	})
	c.waitLocked(nodes, time.Now())
	time.Sleep(1200 * time.Millisecond)
}

// waitLocked waits until every node holds its liveness lock, and returns
// how long after since that was first seen.
func (c *cluster) waitLocked(nodes []*proc, since time.Time) time.Duration {
	c.b.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		held, err := c.lockHolders()
		all := err == nil
		for _, n := range nodes {
			all = all && held[n.id]
		}
		if all {
			return time.Since(since)
		}
		if time.Now().After(deadline) {
			c.b.Fatalf("waited 30s for every node to hold its liveness lock (last error: %v)", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// livenessLocks joins the nodes to the advisory locks held on their keys.
const livenessLocks = `
	FROM bam_nodes AS n
	JOIN pg_locks AS l ON l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
	  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
	  AND l.classid::bigint = (n.lock_key >> 32) & 4294967295
	  AND l.objid::bigint = n.lock_key & 4294967295`

// lockHolders returns the ids of the nodes whose liveness lock is held,
// on a connection of its own (the store may just have restarted).
func (c *cluster) lockHolders() (map[string]bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.url)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, `SELECT n.id`+livenessLocks)
	if err != nil {
		return nil, err
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, id := range ids {
		out[id] = true
	}
	return out, nil
}

// resetLock ends the backend that holds the node's liveness lock and
// returns how many it ended.
func (c *cluster) resetLock(nodeID string) int {
	c.b.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, c.url)
	if err != nil {
		c.b.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(pg_terminate_backend(l.pid))`+livenessLocks+` WHERE n.id = $1`, nodeID).Scan(&n); err != nil {
		c.b.Fatal(err)
	}
	return n
}

// epochs reads every session's epoch, retrying while the store is down.
func (c *cluster) epochs() map[store.SessionID]int64 {
	c.b.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ss, err := c.st.Sessions(context.Background())
		if err == nil {
			out := map[store.SessionID]int64{}
			for _, s := range ss {
				out[s.SessionID] = s.Epoch
			}
			return out
		}
		if time.Now().After(deadline) {
			c.b.Fatalf("read the sessions: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// moved counts the claims between two readings of the epochs.
func moved(before, after map[store.SessionID]int64) int64 {
	var n int64
	for id, e := range after {
		n += e - before[id]
	}
	return n
}
