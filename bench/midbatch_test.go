package bench

import (
	"context"
	"net/url"
	"syscall"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/faultproxy"
)

// BenchmarkFailoverMidBatch measures the failover after a node is paused
// in the middle of sending a batch (DESIGN.md, "a lock held by a request
// that never finishes"), beside the failover after an ordinary pause, in
// the same cluster: two `bam serve` nodes on PostgreSQL with the default
// settings, one buffer source of two partitions, the writer appending
// continuously (plain updates: every batch is one pipelined request). The
// victim talks to the store through a fault proxy.
//
// Each repetition pauses the victim twice, the pool balanced in between:
//   - baseline: SIGSTOP, its link passing (BenchmarkFailoverPaused's case);
//   - mid-batch: the proxy forwards half of the first large chunk the
//     victim sends (a batch's request, faultproxy.BlackholeMidWrite) and
//     nothing more, and the victim is SIGSTOPped at once: the server has
//     run the batch's fence and waits for the rest, holding the session's
//     row, as after a pause or a cut in the middle of sending.
//
// Each time is from the pause until the session has committed under the
// other node. stalled_pct is the share of mid-batch pauses that did leave
// a backend of the victim active, waiting for the client, inside a
// transaction (checked 300 ms after the pause). Target: ≤ 5 s for both.
func BenchmarkFailoverMidBatch(b *testing.B) {
	b.StopTimer()
	var base, mid []time.Duration
	stalled, stuck := 0, 0
	const stuckAfter = 15 * time.Second
	for range b.N {
		c := newCluster(b, "postgres")
		n1, proxy := c.startProxied()
		n1.waitJoined(b)
		c.waitBalanced("node 1 to own both sessions", map[string]int{n1.id: 2}, 0)
		n2 := c.start()
		n2.waitJoined(b)
		c.waitBalanced("the pool to balance", map[string]int{n1.id: 1, n2.id: 1}, 1200*time.Millisecond)
		for range reps() {
			for _, midBatch := range []bool{false, true} {
				id := c.sessionOf(n1.id)
				var t0 time.Time
				if midBatch {
					tripped := proxy.BlackholeMidWrite(midBatchWire)
					select {
					case <-tripped:
					case <-time.After(10 * time.Second):
						b.Fatalf("the victim sent no batch of %d bytes or more in 10s", midBatchWire)
					}
					t0 = n1.signal(b, syscall.SIGSTOP)
					time.Sleep(300 * time.Millisecond)
					if c.pgStalled(n1.id) {
						stalled++
					}
				} else {
					t0 = n1.signal(b, syscall.SIGSTOP)
				}
				done, ok := c.tryWaitCommitted(id, n2, t0, stuckAfter)
				what := map[bool]string{false: "pause", true: "pause mid-batch"}[midBatch]
				if !ok {
					stuck++
					b.Logf("%s: session %s/%d did not move in %v", what, id.Source, id.Partition, stuckAfter)
				} else if midBatch {
					mid = append(mid, done.Sub(t0))
				} else {
					base = append(base, done.Sub(t0))
				}
				b.Logf("%s of node 1: session %s/%d committed under node 2 after %v", what, id.Source, id.Partition, done.Sub(t0).Round(time.Millisecond))
				n1.signal(b, syscall.SIGCONT)
				proxy.SetMode(faultproxy.Pass) // resets the held link: node 1 reconnects
				c.waitBalanced("the pool to balance again", map[string]int{n1.id: 1, n2.id: 1}, 1200*time.Millisecond)
			}
		}
	}
	bmed, bmx := medianMax(base)
	mmed, mmx := medianMax(mid)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(bmed, "pause_median_ms")
	b.ReportMetric(bmx, "pause_max_ms")
	b.ReportMetric(mmed, "midbatch_median_ms")
	b.ReportMetric(mmx, "midbatch_max_ms")
	b.ReportMetric(5000, "target_ms")
	b.ReportMetric(float64(len(mid)+len(base)+stuck), "pauses")
	b.ReportMetric(float64(stuck), "stuck")
	if n := len(mid); n > 0 {
		b.ReportMetric(100*float64(stalled)/float64(n), "stalled_pct")
	}
}

// midBatchWire is the size of a chunk the victim sends that BenchmarkFailoverMidBatch takes
// for a batch's request (the benchmark's batches of updates over 500
// instances are larger; other requests are smaller, save the first use of
// a statement on a connection).
const midBatchWire = 1500

// startProxied starts a node that reaches the store through a fault proxy
// of its own, closed when the benchmark ends.
func (c *cluster) startProxied() (*proc, *faultproxy.Proxy) {
	c.b.Helper()
	u, err := url.Parse(c.url)
	if err != nil {
		c.b.Fatal(err)
	}
	proxy, err := faultproxy.Listen("127.0.0.1:0", u.Host)
	if err != nil {
		c.b.Fatal(err)
	}
	c.b.Cleanup(func() { _ = proxy.Close() })
	u.Host = proxy.Addr()
	return c.startWith(u.String()), proxy
}

// pgStalled reports whether a backend of the node is in the middle of a
// request inside a transaction: active, waiting for the client.
func (c *cluster) pgStalled(nodeID string) bool {
	c.b.Helper()
	var n int
	err := c.pgConn().QueryRow(context.Background(), `
		SELECT count(*) FROM pg_stat_activity
		WHERE right(application_name, length($1)) = $1 AND state = 'active'
		  AND wait_event = 'ClientRead' AND backend_xid IS NOT NULL`, " node "+nodeID).Scan(&n)
	if err != nil {
		c.b.Fatal(err)
	}
	return n > 0
}
