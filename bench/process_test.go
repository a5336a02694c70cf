package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/store"
	"github.com/bam-dev/bam/internal/store/storeurl"
	"github.com/bam-dev/bam/internal/testproc"
)

// The process benchmarks run one buffer source of two partitions on the
// default `bam serve` settings (lease TTL 3s, renew 1s, safety margin
// 500ms, balance 500ms, batch 1000, poll 1s): those are the product's
// promise. Only the log format is set, to read node ids and claims.
const (
	procSource     = "orders"
	procPartitions = 2
	// monitorEvery is how often the benchmark reads the sessions: the
	// resolution of every time measured from outside.
	monitorEvery = 5 * time.Millisecond
	// writeEvery is the writer's pace: one append of writeEvents events
	// (over both partitions) per interval, so a working session commits a
	// batch every few milliseconds.
	writeEvery  = 5 * time.Millisecond
	writeEvents = 20
)

// reps is how many times each process benchmark repeats its measurement
// (BAM_BENCH_REPS, default 5).
func reps() int {
	if n, err := strconv.Atoi(os.Getenv("BAM_BENCH_REPS")); err == nil && n > 0 {
		return n
	}
	return 5
}

// cluster is a store with real `bam serve` processes, a writer appending
// continuously and a monitor recording the sessions.
type cluster struct {
	b      *testing.B
	driver string
	bin    string
	url    string
	st     store.Store
	mon    *monitor
	count  int       // nodes started, for names
	pg     *pgx.Conn // PostgreSQL: opened on first use, to read pg_stat_activity
}

// newCluster prepares a fresh store of the driver with `bam migrate` and
// `bam source add`, and starts the writer and the monitor.
func newCluster(b *testing.B, driver string) *cluster {
	b.Helper()
	return newClusterAt(b, driver, storeURL(b, driver)) // skips first when PostgreSQL is unreachable
}

// newClusterAt is newCluster on the empty store at u.
func newClusterAt(b *testing.B, driver, u string) *cluster {
	b.Helper()
	c := &cluster{b: b, driver: driver, bin: bamBinary(b), url: u}
	c.bam("migrate")
	c.bam("source", "add", procSource, "--kind", "buffer", "--partitions", strconv.Itoa(procPartitions))
	st, err := storeurl.Open(context.Background(), c.url)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = st.Close() })
	c.st = st
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	c.mon = &monitor{st: st, changed: make(chan struct{})}
	wg.Add(2)
	go func() { defer wg.Done(); c.mon.run(ctx) }()
	go func() { defer wg.Done(); write(ctx, b, st) }()
	b.Cleanup(func() { stop(); wg.Wait() })
	return c
}

func (c *cluster) bam(args ...string) {
	c.b.Helper()
	out, err := exec.Command(c.bin, append(args, "--store", c.url)...).CombinedOutput()
	if err != nil {
		c.b.Fatalf("bam %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// write appends purchase-order events to both partitions until ctx ends.
func write(ctx context.Context, b *testing.B, st store.Store) {
	base := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	tick := time.NewTicker(writeEvery)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		evs := make([]store.BufferEvent, writeEvents)
		for j := range evs {
			n := i*writeEvents + j
			id := fmt.Sprintf("PO-%05d", n%500)
			ev := event.Event{Activity: "PurchaseOrder", Instance: id, Kind: event.Update, Time: base.Add(time.Duration(n) * time.Millisecond),
				Data: map[string]json.RawMessage{"Status": jsonString("Approved"), "Step": json.RawMessage(strconv.Itoa(n))}}
			evs[j] = store.BufferEvent{Partition: event.Partition(id, procPartitions), Payload: event.Encode(ev)}
		}
		if err := st.AppendBuffer(ctx, procSource, evs); err != nil && ctx.Err() == nil {
			b.Logf("writer: %v", err)
		}
	}
}

// proc is one `bam serve` process.
type proc struct {
	*testproc.Proc
	id     string
	joined time.Time // the time of its "node joined the pool" log line
}

// start starts a node with the default settings.
func (c *cluster) start() *proc {
	c.b.Helper()
	return c.startWith(c.url)
}

// startWith starts a node with the default settings on the store at url;
// it is killed when the benchmark ends.
func (c *cluster) startWith(url string) *proc {
	c.b.Helper()
	c.count++
	name := fmt.Sprintf("node-%d", c.count)
	return &proc{Proc: testproc.StartTest(c.b, testproc.Config{Path: c.bin, Name: name,
		Args: []string{"serve", "--store", url, "--name", name, "--log-format", "json"}})}
}

// waitJoined waits for the node's "node joined the pool" line and returns
// its id.
func (p *proc) waitJoined(b *testing.B) string {
	b.Helper()
	id, joined, err := p.WaitJoined(20 * time.Second)
	if err != nil {
		b.Fatal(err)
	}
	p.id, p.joined = id, joined
	return id
}

func (p *proc) lines() []map[string]any {
	out, _ := p.Lines()
	return out
}

// claimed returns the checkpoint at which the node claimed the session
// under the epoch, from its log ("session claimed", "session taken over
// from a dead node", "session taken over from an expired lease").
func (p *proc) claimed(id store.SessionID, epoch int64) (store.Position, bool) {
	for _, l := range p.lines() {
		msg, _ := l["msg"].(string)
		if !strings.HasPrefix(msg, "session claimed") && !strings.HasPrefix(msg, "session taken over") {
			continue
		}
		if l["source"] != id.Source || l["partition"] != float64(id.Partition) || l["epoch"] != float64(epoch) {
			continue
		}
		var pos store.Position
		if _, err := fmt.Sscanf(fmt.Sprint(l["checkpoint"]), "%d/%d", &pos.Major, &pos.Minor); err != nil {
			return pos, false
		}
		return pos, true
	}
	return store.Position{}, false
}

// signal sends sig to the node and returns when it was sent.
func (p *proc) signal(b *testing.B, sig syscall.Signal) time.Time {
	b.Helper()
	at := time.Now()
	if err := p.Signal(sig); err != nil {
		b.Fatalf("signal %v to %s: %v", sig, p.Name(), err)
	}
	return at
}

func (p *proc) wait(b *testing.B, limit time.Duration) {
	b.Helper()
	if !p.Wait(limit) {
		b.Fatalf("%s did not exit within %v", p.Name(), limit)
	}
}

// observation is one read of the sessions.
type observation struct {
	at       time.Time // when the read returned
	sessions map[store.SessionID]store.SessionRow
}

// monitor reads the sessions every monitorEvery and keeps every reading.
type monitor struct {
	st      store.Store
	mu      sync.Mutex
	obs     []observation
	changed chan struct{} // closed and replaced on each new observation
}

func (m *monitor) run(ctx context.Context) {
	tick := time.NewTicker(monitorEvery)
	defer tick.Stop()
	for {
		ss, err := m.st.Sessions(ctx)
		if err == nil {
			o := observation{at: time.Now(), sessions: map[store.SessionID]store.SessionRow{}}
			for _, s := range ss {
				o.sessions[s.SessionID] = s
			}
			m.mu.Lock()
			m.obs = append(m.obs, o)
			close(m.changed)
			m.changed = make(chan struct{})
			m.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// waitFor returns the first observation made after `after` that satisfies
// cond, waiting up to limit for it, or fails the benchmark.
func (m *monitor) waitFor(b *testing.B, after time.Time, limit time.Duration, what string, cond func(observation) bool) observation {
	b.Helper()
	o, ok := m.tryWaitFor(after, limit, cond)
	if !ok {
		b.Fatalf("waited %v for %s", limit, what)
	}
	return o
}

// tryWaitFor is waitFor that reports a timeout instead of failing.
func (m *monitor) tryWaitFor(after time.Time, limit time.Duration, cond func(observation) bool) (observation, bool) {
	deadline := time.After(limit)
	next := 0
	for {
		m.mu.Lock()
		obs, changed := m.obs, m.changed
		m.mu.Unlock()
		for ; next < len(obs); next++ {
			if o := obs[next]; o.at.After(after) && cond(o) {
				return o, true
			}
		}
		select {
		case <-changed:
		case <-deadline:
			return observation{}, false
		}
	}
}

// advances returns the times, within [from, to], at which a session's
// checkpoint was seen to move, with the last time it was seen moving
// before from (if any) first.
func (m *monitor) advances(id store.SessionID, from, to time.Time) []time.Time {
	m.mu.Lock()
	obs := m.obs
	m.mu.Unlock()
	var out []time.Time
	var prev *store.SessionRow
	var before time.Time
	for i := range obs {
		o := obs[i]
		s, ok := o.sessions[id]
		if !ok {
			continue
		}
		if prev != nil && prev.Checkpoint != s.Checkpoint {
			switch {
			case o.at.Before(from):
				before = o.at
			case !o.at.After(to):
				out = append(out, o.at)
			}
		}
		prev = &s
	}
	if !before.IsZero() {
		out = append([]time.Time{before}, out...)
	}
	return out
}

// maxGap is the longest time in [from, to] during which a session's
// checkpoint did not move, counting from its last move before from and up
// to to.
func (m *monitor) maxGap(id store.SessionID, from, to time.Time) time.Duration {
	ts := m.advances(id, from, to)
	ts = append(ts, to)
	var gap time.Duration
	for i := 1; i < len(ts); i++ {
		gap = max(gap, ts[i].Sub(ts[i-1]))
	}
	return gap
}

// owned maps each live node id to the sessions it holds with a live lease.
func (o observation) owned() map[string][]store.SessionID {
	out := map[string][]store.SessionID{}
	for id, s := range o.sessions {
		if s.Owner != "" && s.LeaseRemaining > 0 {
			out[s.Owner] = append(out[s.Owner], id)
		}
	}
	return out
}

// waitBalanced waits until each of the nodes holds the given number of
// sessions and every session has committed since, then lets the pool run
// steadily for settle.
func (c *cluster) waitBalanced(what string, want map[string]int, settle time.Duration) {
	c.b.Helper()
	o := c.mon.waitFor(c.b, time.Now(), 30*time.Second, what, func(o observation) bool {
		owned := o.owned()
		for id, n := range want {
			if len(owned[id]) != n {
				return false
			}
		}
		return len(o.sessions) == procPartitions
	})
	for id := range o.sessions {
		cp := o.sessions[id].Checkpoint
		c.mon.waitFor(c.b, o.at, 30*time.Second, what+" (sessions committing)", func(o2 observation) bool {
			s := o2.sessions[id]
			return s.Checkpoint != cp && s.LeaseRemaining > 0 && want[s.Owner] > 0
		})
	}
	time.Sleep(settle)
}

// waitCommitted waits until the session has committed a batch under node
// p after t0 (owner p, checkpoint past the one p claimed it at) and
// returns when that was first seen.
func (c *cluster) waitCommitted(id store.SessionID, p *proc, t0 time.Time, limit time.Duration) time.Time {
	c.b.Helper()
	at, ok := c.tryWaitCommitted(id, p, t0, limit)
	if !ok {
		c.b.Fatalf("waited %v for session %s/%d to commit under %s", limit, id.Source, id.Partition, p.Name())
	}
	return at
}

func (c *cluster) tryWaitCommitted(id store.SessionID, p *proc, t0 time.Time, limit time.Duration) (time.Time, bool) {
	o, ok := c.mon.tryWaitFor(t0, limit, func(o observation) bool {
		s := o.sessions[id]
		if s.Owner != p.id {
			return false
		}
		claimedAt, ok := p.claimed(id, s.Epoch)
		return ok && claimedAt.Less(s.Checkpoint)
	})
	return o.at, ok
}

// locksOf returns the lines of /proc/locks held by the process: on SQLite,
// the WAL write lock is a byte-range lock on the -shm file.
func locksOf(pid int) []string {
	b, err := os.ReadFile("/proc/locks")
	if err != nil {
		return nil
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) > 4 && f[4] == strconv.Itoa(pid) {
			out = append(out, l)
		}
	}
	return out
}

// sessionOf returns a session the node holds in the next observation.
func (c *cluster) sessionOf(nodeID string) store.SessionID {
	c.b.Helper()
	o := c.mon.waitFor(c.b, time.Now(), 10*time.Second, "a session of "+nodeID, func(o observation) bool {
		return len(o.owned()[nodeID]) > 0
	})
	return o.owned()[nodeID][0]
}

// other returns the session that is not id.
func other(id store.SessionID) store.SessionID {
	return store.SessionID{Source: id.Source, Partition: 1 - id.Partition}
}
