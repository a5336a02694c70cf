package bench

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bam-dev/bam/internal/pool"
	"github.com/bam-dev/bam/internal/store"
	"github.com/bam-dev/bam/internal/store/storeurl"
)

// The balancing workload: DESIGN.md's "Scale" figure.
const (
	balanceNodes      = 50
	balanceSources    = 10
	balancePartitions = 100 // per source: 1,000 sessions in all
	balanceSessions   = balanceSources * balancePartitions
	// balanceLook is how often the benchmark reads the sessions while the
	// pool converges: the resolution of the times.
	balanceLook = 100 * time.Millisecond
	// balanceSettle passes between convergence and the quiet window.
	balanceSettle = time.Second
	// balanceQuiet is the window over which an idle, balanced pool's store
	// calls are counted; moves are counted from convergence to its end.
	balanceQuiet = 5 * time.Second
	// balanceLimit bounds a convergence (60 balance intervals): a pool
	// not balanced by then is reported as such, with where it got to.
	balanceLimit = 30 * time.Second
	// balancePGHandles is how many PostgreSQL store handles nodes 2-50
	// share.
	balancePGHandles = 5
)

// BenchmarkBalance runs 50 nodes (internal/pool, default settings: balance
// every 500 ms ± 20 %, lease TTL 3 s, renew 1 s, at most 32 handovers a
// round) in the benchmark's process against a real store, over 10 buffer
// sources of 100 partitions: 1,000 sessions, no events. Two scenarios:
//
//   - all-at-once: the 50 nodes start together, every session free.
//   - one-then-49: one node starts and claims all 1,000 sessions; then
//     the other 49 start together.
//
// It measures, from the start of the nodes (of the 49), the time and the
// balance intervals until the pool is balanced (every session held under
// a live lease, max − min ≤ 1 session per node: 20 each), and the sessions
// moved meanwhile: claims beyond each session's first, from the sessions'
// epochs (one-then-49 needs at least 980, all-at-once none). A pool not
// balanced within balanceLimit is reported (balanced_reps 0) with its
// spread, moves and lost leases at the limit, not failed: that is the
// finding. A balanced pool then idles: moves from convergence to the end
// of a 5 s window must be 0 (no thrashing), and over that window every
// call the nodes make to the store is counted (countingStore; one call ≈
// one SQL statement), per node and per balance interval: coordination
// (membership, leases, balancing) apart from the sessions' idle reads of
// their buffer (each idle session reads once per poll interval, 1 s). The
// rows the balancing reads are reported too (Sessions returns every
// session, to each node, each round), and on PostgreSQL the server's count
// of transactions committed in the store's database over the window, as a
// cross-check of the call count.
//
// How the nodes share the machine. SQLite: each node opens the store file
// itself, as separate processes would (its own connections, file lock and
// 50 ms Watch poll, which the counts leave out: 10 reads per node and
// interval). PostgreSQL: 50 nodes with a store handle each would need
// about 200 connections (work and lease pools, a LISTEN and a liveness
// connection each) and the server allows 100, shared with other tests. So
// node 1, which holds everything in one-then-49, has a handle of its own
// and nodes 2-50 share 5 handles (3 work and 3 lease connections each);
// one LISTEN is fanned out to every node (each sees every notice, as with
// a LISTEN of its own), and the 50 liveness locks are held on one
// connection (peers see them as the driver shows them; the per-node pings
// of these dedicated connections, 2 a second, are not there to count).
// Sharing changes how long calls wait for a connection, not which calls
// the nodes make.
//
// BAM_BENCH_REPS repeats each scenario (default once); with more than one
// repetition, each figure is the median, beside its _min and _max.
func BenchmarkBalance(b *testing.B) {
	for _, driver := range []string{"postgres", "sqlite"} {
		for _, scenario := range []string{"all-at-once", "one-then-49"} {
			b.Run(driver+"/"+scenario, func(b *testing.B) { benchBalance(b, driver, scenario) })
		}
	}
}

// balanceResult is one run of a scenario.
type balanceResult struct {
	balanced bool          // within balanceLimit
	converge time.Duration // from the start to balanced
	ownedAll time.Duration // from the start to every session held (all-at-once; 0 if never)
	spread   int           // max − min sessions per node when balanced, or at the limit
	rounds   float64       // balance rounds each node ran meanwhile (Nodes calls / nodes)
	// roundsToConverge is the last round, counted per node from the start,
	// in which any node claimed a session before the pool was balanced: 1
	// when every node's first round did all the work.
	roundsToConverge int64
	moved            int64 // claims beyond each session's first, until balanced or the limit
	quietMoved       int64 // from balanced to the end of the quiet window
	calls            map[string]int64
	rows             int64   // session rows read in the quiet window
	window           float64 // the quiet window, in balance intervals
	pgXacts          int64   // PostgreSQL: transactions committed in the store's database in the window
	warnings         map[string]int
	latency          map[string][2]float64 // mean and longest call by method, ms, over the whole run
	runErrors        int                   // nodes whose Run returned an error when stopped
}

func benchBalance(b *testing.B, driver, scenario string) {
	b.StopTimer()
	interval := pool.DefaultConfig().BalanceInterval
	var m spreads
	needed, balancedReps, reps := 0, 0, 0
	if scenario == "one-then-49" {
		needed = balanceSessions - balanceSessions/balanceNodes
	}
	for range b.N {
		for range repsOr(1) {
			r := runBalance(b, driver, scenario)
			reps++
			// Until balanced, or until balanceLimit when it did not balance.
			m.add("spread", float64(r.spread))
			m.add("moved", float64(r.moved))
			m.add("rounds_run/node", r.rounds)
			lost := 0
			for msg, c := range r.warnings {
				if strings.HasPrefix(msg, "session lost") || strings.HasPrefix(msg, "session stopped") {
					lost += c
				}
			}
			m.add("leases_lost", float64(lost))
			m.add("node_errors", float64(r.runErrors))
			if r.ownedAll > 0 {
				m.add("owned_all_ms", ms(r.ownedAll))
			}
			if !r.balanced {
				b.Logf("%s %s: NOT balanced after %v (%.0f intervals): max − min = %d sessions per node, %d sessions moved (%d needed), %.1f rounds run per node; warnings: %v; mean and longest call by method (ms): %s",
					driver, scenario, balanceLimit, float64(balanceLimit)/float64(interval), r.spread, r.moved, needed, r.rounds, r.warnings, formatLatency(r.latency))
				continue
			}
			// The repetitions that balanced.
			balancedReps++
			m.add("converge_ms", ms(r.converge))
			rounds := m.add("converge_intervals", float64(r.converge)/float64(interval))
			m.add("converge_rounds", float64(r.roundsToConverge))
			m.add("quiet_moved", float64(r.quietMoved))
			// Store method calls while idle and balanced; one call ≈ one
			// SQL statement (see countingStore).
			per := float64(balanceNodes) * r.window
			var c, a int64
			for method, n := range r.calls {
				a += n
				if coordination[method] {
					c += n
				}
			}
			coord := m.add("coord_calls/node/interval", float64(c)/per)
			idle := m.add("idle_read_calls/node/interval", float64(r.calls["ReadBuffer"])/per)
			all := m.add("all_calls/node/interval", float64(a)/per)
			rows := m.add("session_rows/node/interval", float64(r.rows)/per)
			if driver == "postgres" {
				m.add("pg_xacts/node/interval", float64(r.pgXacts)/per)
			}
			b.Logf("%s %s: balanced after %v (%.1f intervals; the last claim in round %d of its node; %.1f rounds run per node), %d sessions moved (%d needed), %d moved in the %v after; idle, per node and interval: %.2f coordination calls, %.2f idle buffer reads, %.2f calls in all, %.0f session rows read; calls in the window by method: %v; warnings: %v; mean and longest call by method over the run (ms): %s",
				driver, scenario, r.converge.Round(time.Millisecond), rounds, r.roundsToConverge, r.rounds, r.moved, needed, r.quietMoved,
				balanceSettle+balanceQuiet, coord, idle, all, rows, r.calls, r.warnings, formatLatency(r.latency))
		}
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(balanceNodes, "nodes")
	b.ReportMetric(balanceSessions, "sessions")
	b.ReportMetric(float64(reps), "reps")
	b.ReportMetric(float64(balancedReps), "balanced_reps")
	b.ReportMetric(float64(needed), "moved_needed")
	m.report(b)
}

// runBalance runs one scenario on a fresh store and stops its nodes.
func runBalance(b *testing.B, driver, scenario string) balanceResult {
	b.Helper()
	ctx := context.Background()
	u := storeURL(b, driver) // skips first when PostgreSQL is unreachable
	mon := openStore(b, u)   // the benchmark's own view: not counted
	for i := range balanceSources {
		src := store.Source{Name: fmt.Sprintf("s%02d", i), Kind: store.KindBuffer, Partitions: balancePartitions, Enabled: true}
		if err := mon.AddSource(ctx, src); err != nil {
			b.Fatal(err)
		}
	}
	counter := newCallCounter()
	warns := &warnCounter{msgs: map[string]int{}}
	var cleanup []func()
	defer func() {
		for _, f := range slices.Backward(cleanup) {
			f()
		}
	}()
	stores := balanceStores(b, driver, u, counter, &cleanup)

	type running struct {
		node *pool.Node
		stop context.CancelFunc
		done chan error
	}
	nodes := make([]running, balanceNodes)
	ids := make([]string, balanceNodes)
	for i := range nodes {
		cfg := pool.DefaultConfig()
		cfg.Name = fmt.Sprintf("balance-%02d", i)
		n, err := pool.NewNode(stores[i], cfg, slog.New(&warnHandler{c: warns}))
		if err != nil {
			b.Fatal(err)
		}
		nodes[i] = running{node: n, done: make(chan error, 1)}
		ids[i] = n.ID()
	}
	start := func(rs []running) {
		for i := range rs {
			var rctx context.Context
			rctx, rs[i].stop = context.WithCancel(ctx)
			go func() { rs[i].done <- rs[i].node.Run(rctx) }()
		}
	}
	var res balanceResult
	stopped := false
	stopAll := func() {
		if stopped {
			return
		}
		stopped = true
		for _, r := range nodes {
			if r.stop != nil {
				r.stop()
			}
		}
		deadline := time.After(60 * time.Second)
		for _, r := range nodes {
			if r.stop == nil {
				continue
			}
			select {
			case err := <-r.done:
				// A node of a pool in trouble may end with an error (it
				// never joined, or could not leave): a finding, counted.
				if err != nil {
					res.runErrors++
					b.Logf("node %s: %v", r.node.ID(), err)
				}
			case <-deadline:
				b.Fatalf("node %s did not stop within 60s", r.node.ID())
			}
		}
	}
	cleanup = append(cleanup, stopAll)

	var ss []store.SessionRow
	var at time.Time
	if scenario == "one-then-49" {
		start(nodes[:1])
		if ss, _ = watchSessions(b, mon, func(ss []store.SessionRow) bool { return held(ss, ids[:1])[ids[0]] == balanceSessions }); ss == nil {
			b.Fatalf("node 1 did not hold every session within %v; warnings: %v", balanceLimit, warns.snapshot())
		}
	}
	roundsBefore := make([]int64, len(stores))
	for i, st := range stores {
		roundsBefore[i] = st.(*countingStore).rounds.Load()
	}
	t0 := time.Now()
	if scenario == "one-then-49" {
		start(nodes[1:])
	} else {
		start(nodes)
	}
	before, _ := counter.snapshot()
	ss, at = watchSessions(b, mon, func(ss []store.SessionRow) bool {
		if res.ownedAll == 0 && scenario == "all-at-once" && total(held(ss, ids)) == balanceSessions {
			res.ownedAll = time.Since(t0)
		}
		return balanced(ss, ids)
	})
	after, _ := counter.snapshot()
	res.rounds = float64(after["Nodes"]-before["Nodes"]) / float64(balanceNodes)
	res.balanced = ss != nil
	if !res.balanced {
		// Report where the pool got to.
		var err error
		if ss, err = mon.Sessions(ctx); err != nil {
			b.Fatal(err)
		}
	}
	res.converge = at.Sub(t0)
	for i, st := range stores {
		if in := st.(*countingStore).claimedIn.Load() - roundsBefore[i]; in > 0 {
			res.roundsToConverge = max(res.roundsToConverge, in)
		}
	}
	res.spread = spreadOf(held(ss, ids))
	res.moved = moves(ss)
	if res.balanced {
		res.measureQuiet(b, driver, u, mon, ids, counter)
	}
	res.latency = counter.latencies()
	stopAll()
	res.warnings = warns.snapshot()
	return res
}

// measureQuiet lets the balanced pool idle (no events, no joins): after
// balanceSettle, it counts what the nodes ask the store for balanceQuiet,
// and the sessions that moved since convergence.
func (res *balanceResult) measureQuiet(b *testing.B, driver, u string, mon store.Store, ids []string, counter *callCounter) {
	b.Helper()
	time.Sleep(balanceSettle)
	xact0 := pgXacts(b, driver, u)
	c0, rows0 := counter.snapshot()
	w0 := time.Now()
	time.Sleep(balanceQuiet)
	c1, rows1 := counter.snapshot()
	window := time.Since(w0)
	res.pgXacts = pgXacts(b, driver, u) - xact0
	ss, err := mon.Sessions(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	if !balanced(ss, ids) {
		b.Logf("the pool was balanced, then no longer after %v of quiet: %v", balanceSettle+balanceQuiet, held(ss, ids))
	}
	res.quietMoved = moves(ss) - res.moved
	res.calls = map[string]int64{}
	for m, n := range c1 {
		if d := n - c0[m]; d > 0 {
			res.calls[m] = d
		}
	}
	res.rows = rows1 - rows0
	res.window = float64(window) / float64(pool.DefaultConfig().BalanceInterval)
}

// balanceStores opens what each node uses as its store, counting calls
// into counter. See BenchmarkBalance for why PostgreSQL nodes share.
func balanceStores(b *testing.B, driver, u string, counter *callCounter, cleanup *[]func()) []store.Store {
	b.Helper()
	ctx := context.Background()
	open := func(u string) store.Store {
		st, err := storeurl.Open(ctx, u)
		if err != nil {
			b.Fatal(err)
		}
		*cleanup = append(*cleanup, func() { _ = st.Close() })
		return st
	}
	out := make([]store.Store, balanceNodes)
	if driver == "sqlite" {
		for i := range out {
			st := open(u)
			out[i] = &countingStore{Store: st, n: counter, w: st.(store.Watcher), lv: st.(store.Liveness)}
		}
		return out
	}
	// Node 1 (index 0), which holds everything in one-then-49, has a
	// handle of its own, with the driver's default pools; the others share
	// balancePGHandles, with 3 work connections each (their lease pools
	// have the driver's 3).
	shared, err := url.Parse(u)
	if err != nil {
		b.Fatal(err)
	}
	q := shared.Query()
	q.Set("pool_max_conns", "3")
	shared.RawQuery = q.Encode()
	handles := make([]store.Store, 1+balancePGHandles)
	handles[0] = open(u)
	for i := 1; i < len(handles); i++ {
		handles[i] = open(shared.String())
	}
	hubCtx, stopHub := context.WithCancel(ctx)
	hub := newNotifyHub()
	hubDone := make(chan struct{})
	go func() { defer close(hubDone); hub.run(hubCtx, handles[0].(store.Watcher)) }()
	*cleanup = append(*cleanup, func() { stopHub(); <-hubDone })
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		b.Fatal(err)
	}
	locks := &sharedLocks{conn: conn}
	*cleanup = append(*cleanup, func() { locks.wg.Wait(); _ = conn.Close(ctx) })
	for i := range out {
		h := handles[0]
		if i > 0 {
			h = handles[1+(i-1)%balancePGHandles]
		}
		out[i] = &countingStore{Store: h, n: counter, w: hub, lv: pgLiveness{Liveness: h.(store.Liveness), locks: locks}}
	}
	return out
}

// pgLiveness is a node's liveness on a shared PostgreSQL handle: its lock
// held on the shared connection, LivenessHeld the driver's.
type pgLiveness struct {
	store.Liveness
	locks *sharedLocks
}

func (l pgLiveness) HoldLiveness(ctx context.Context, key int64) (<-chan struct{}, error) {
	return l.locks.hold(ctx, key)
}

// sharedLocks holds the nodes' PostgreSQL liveness locks (session-level
// advisory locks, as the driver takes them) on one connection instead of
// one each. The locks are never lost: the connection lives as long as the
// benchmark's nodes.
type sharedLocks struct {
	mu   sync.Mutex
	conn *pgx.Conn
	wg   sync.WaitGroup
}

// hold takes the lock of key until ctx ends.
func (l *sharedLocks) hold(ctx context.Context, key int64) (<-chan struct{}, error) {
	l.mu.Lock()
	_, err := l.conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, key)
	l.mu.Unlock()
	if err != nil {
		return nil, err
	}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		<-ctx.Done()
		l.mu.Lock()
		_, _ = l.conn.Exec(context.Background(), `SELECT pg_advisory_unlock($1)`, key)
		l.mu.Unlock()
	}()
	return make(chan struct{}), nil
}

// notifyHub shares one PostgreSQL LISTEN among the in-process nodes: each
// node's Watch gets every notice, as with a LISTEN of its own, and, like
// the driver's, a "sessions" and a "buffer" notice once it listens.
type notifyHub struct {
	mu    sync.Mutex
	subs  map[chan store.Notice]struct{}
	ready chan struct{} // closed once the shared watch listens
	once  sync.Once
}

func newNotifyHub() *notifyHub {
	return &notifyHub{subs: map[chan store.Notice]struct{}{}, ready: make(chan struct{})}
}

// run keeps the shared watch going until ctx ends.
func (h *notifyHub) run(ctx context.Context, w store.Watcher) {
	for ctx.Err() == nil {
		_ = w.Watch(ctx, h.publish)
		sleepOrDone(ctx, 100*time.Millisecond)
	}
}

func (h *notifyHub) publish(n store.Notice) {
	h.once.Do(func() { close(h.ready) })
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs {
		select {
		case ch <- n:
		default: // a hint: a full queue already holds a wake-up
		}
	}
}

func (h *notifyHub) Watch(ctx context.Context, fn func(store.Notice)) error {
	select {
	case <-h.ready:
	case <-ctx.Done():
		return ctx.Err()
	}
	ch := make(chan store.Notice, 64)
	h.mu.Lock()
	h.subs[ch] = struct{}{}
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		delete(h.subs, ch)
		h.mu.Unlock()
	}()
	fn(store.Notice{Topic: store.TopicSessions})
	fn(store.Notice{Topic: store.TopicBuffer})
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case n := <-ch:
			fn(n)
		}
	}
}

func sleepOrDone(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// watchSessions reads the sessions every balanceLook until cond holds,
// and returns that reading and when it returned; nil after balanceLimit.
func watchSessions(b *testing.B, st store.Store, cond func([]store.SessionRow) bool) ([]store.SessionRow, time.Time) {
	b.Helper()
	return pollSessions(b, st, balanceLook, balanceLimit, cond)
}

// pollSessions reads the sessions every interval until cond holds, and
// returns that reading and when it returned; nil after limit.
func pollSessions(b *testing.B, st store.Store, every, limit time.Duration, cond func([]store.SessionRow) bool) ([]store.SessionRow, time.Time) {
	b.Helper()
	deadline := time.Now().Add(limit)
	for {
		ss, err := st.Sessions(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		at := time.Now()
		if cond(ss) {
			return ss, at
		}
		if at.After(deadline) {
			return nil, at
		}
		time.Sleep(every)
	}
}

// held counts the sessions each of the nodes holds under a live lease
// (0 for a node that holds none).
func held(ss []store.SessionRow, nodes []string) map[string]int {
	out := make(map[string]int, len(nodes))
	for _, id := range nodes {
		out[id] = 0
	}
	for _, s := range ss {
		if _, ok := out[s.Owner]; ok && s.LeaseRemaining > 0 {
			out[s.Owner]++
		}
	}
	return out
}

// balanced reports whether every session is held by one of the nodes and
// no node holds more than one session more than another.
func balanced(ss []store.SessionRow, nodes []string) bool {
	h := held(ss, nodes)
	return total(h) == len(ss) && spreadOf(h) <= 1
}

func total(held map[string]int) int {
	n := 0
	for _, c := range held {
		n += c
	}
	return n
}

// spreadOf is max − min of the sessions held per node.
func spreadOf(held map[string]int) int {
	if len(held) == 0 {
		return 0
	}
	return slices.Max(slices.Collect(maps.Values(held))) - slices.Min(slices.Collect(maps.Values(held)))
}

// moves counts the claims beyond each session's first: each claim raises
// a session's epoch by one, from 0.
func moves(ss []store.SessionRow) int64 {
	var n int64
	for _, s := range ss {
		n += max(s.Epoch-1, 0)
	}
	return n
}

// pgXacts returns the transactions committed so far in the store's
// database (PostgreSQL; 0 on SQLite), from pg_stat_database. Backends
// report them about once a second, so a window's count is good to about a
// second's worth.
func pgXacts(b *testing.B, driver, u string) int64 {
	b.Helper()
	if driver != "postgres" {
		return 0
	}
	ctx := context.Background()
	c, err := pgx.Connect(ctx, u)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close(ctx)
	var n int64
	if err := c.QueryRow(ctx, `SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()`).Scan(&n); err != nil {
		b.Fatal(err)
	}
	return n
}

// warnHandler counts a node's warnings and errors by message.
type warnHandler struct{ c *warnCounter }

type warnCounter struct {
	mu   sync.Mutex
	msgs map[string]int
}

func (h *warnHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (h *warnHandler) WithAttrs([]slog.Attr) slog.Handler           { return h }
func (h *warnHandler) WithGroup(string) slog.Handler                { return h }

func (h *warnHandler) Handle(_ context.Context, r slog.Record) error {
	h.c.mu.Lock()
	h.c.msgs[r.Message]++
	h.c.mu.Unlock()
	return nil
}

func (c *warnCounter) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.msgs)
}

func formatLatency(l map[string][2]float64) string {
	var out []string
	for _, m := range slices.Sorted(maps.Keys(l)) {
		out = append(out, fmt.Sprintf("%s %.1f/%.0f", m, l[m][0], l[m][1]))
	}
	return strings.Join(out, ", ")
}
