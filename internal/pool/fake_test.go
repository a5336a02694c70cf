package pool

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/store"
	"github.com/bam-dev/bam/internal/store/memstore"
	"github.com/bam-dev/bam/internal/testlog"
	"github.com/bam-dev/bam/internal/testwait"
)

// Unit tests of the pool on the in-memory store, in testing/synctest
// bubbles: the nodes' timers and the store's lease expiry run on the
// bubble's fake clock, so seconds of a pool's life take milliseconds and
// nothing waits on the machine's speed: every time.Sleep in this package's
// node tests advances that clock. node_test.go and verdicts_test.go hold
// the tests of whole nodes; package pooltest keeps the faults only a real
// database shows.

var _ Store = (*memstore.Store)(nil)

// cutStore is a node's view of the in-memory store, with faults on
// demand and what the node did recorded.
type cutStore struct {
	*memstore.Store
	// cut fails every call, as for a node whose connections broke (with
	// its liveness lock dropped: a process that died).
	cut atomic.Bool
	// silent fails Renew and the claims: the node neither heartbeats nor
	// claims, as when it is paused or cut off from the store's lease
	// connections; its liveness lock stays held.
	silent atomic.Bool
	// noRelock fails every HoldLiveness after the first: a node whose
	// liveness lock, once lost, cannot be taken back.
	noRelock atomic.Bool
	// retakeDelay delays every HoldLiveness after the first: the node
	// takes its lock back that much later than it could. Set before the
	// node starts.
	retakeDelay time.Duration
	holds       atomic.Int64
	// hang, when set, blocks Sessions until it is closed: a balance loop
	// that hangs.
	hang atomic.Pointer[chan struct{}]
	// slowRenew delays the answer of every renewal (the store renewed at
	// once; the answer comes late): a busy store, a slow link.
	slowRenew atomic.Int64
	// releaseTakes is how long a release statement takes, as a real
	// store's round trip does. Set before the node starts.
	releaseTakes time.Duration

	// The statements that claim and release, and the sessions they cover.
	claimStatements, claims, releaseStatements, releases atomic.Int64

	mu         sync.Mutex
	silentFrom time.Time        // the first renewal that failed silent
	applies    []time.Time      // when each Apply was called
	looks      []map[int64]bool // every LivenessHeld answer, in order
}

func (c *cutStore) Sessions(ctx context.Context) ([]store.SessionRow, error) {
	if h := c.hang.Load(); h != nil {
		<-*h
	}
	return c.Store.Sessions(ctx)
}

var (
	errCut    = errors.New("injected: the node is cut off from the store")
	errSilent = errors.New("injected: the lease connection is cut")
)

func (c *cutStore) Nodes(ctx context.Context) ([]store.NodeRow, error) {
	if c.cut.Load() {
		return nil, errCut
	}
	return c.Store.Nodes(ctx)
}

func (c *cutStore) Renew(ctx context.Context, n store.NodeRow, ttl time.Duration) ([]store.Lease, error) {
	if c.cut.Load() {
		return nil, errCut
	}
	if c.silent.Load() {
		c.mu.Lock()
		if c.silentFrom.IsZero() {
			c.silentFrom = time.Now()
		}
		c.mu.Unlock()
		return nil, errSilent
	}
	leases, err := c.Store.Renew(ctx, n, ttl)
	time.Sleep(time.Duration(c.slowRenew.Load())) // on the bubble's clock
	return leases, err
}

func (c *cutStore) Claim(ctx context.Context, id store.SessionID, node, prevOwner string, ttl time.Duration) (store.Lease, error) {
	switch {
	case c.cut.Load():
		return store.Lease{}, errCut
	case c.silent.Load():
		return store.Lease{}, errSilent
	}
	c.claimStatements.Add(1)
	c.claims.Add(1)
	return c.Store.Claim(ctx, id, node, prevOwner, ttl)
}

func (c *cutStore) ClaimBatch(ctx context.Context, claims []store.ClaimRequest, node string, ttl time.Duration) ([]store.Lease, error) {
	switch {
	case c.cut.Load():
		return nil, errCut
	case c.silent.Load():
		return nil, errSilent
	}
	c.claimStatements.Add(1)
	c.claims.Add(int64(len(claims)))
	return c.Store.ClaimBatch(ctx, claims, node, ttl)
}

func (c *cutStore) Release(ctx context.Context, l store.Lease, node string) error {
	c.releaseStatements.Add(1)
	c.releases.Add(1)
	time.Sleep(c.releaseTakes)
	return c.Store.Release(ctx, l, node)
}

func (c *cutStore) ReleaseBatch(ctx context.Context, leases []store.Lease, node string) error {
	c.releaseStatements.Add(1)
	c.releases.Add(int64(len(leases)))
	time.Sleep(c.releaseTakes)
	return c.Store.ReleaseBatch(ctx, leases, node)
}

func (c *cutStore) HoldLiveness(ctx context.Context, key int64) (<-chan struct{}, error) {
	if c.cut.Load() || (c.noRelock.Load() && c.holds.Load() > 0) {
		return nil, errCut
	}
	if c.holds.Add(1) > 1 && !sleepCtx(ctx, c.retakeDelay) {
		return nil, ctx.Err()
	}
	return c.Store.HoldLiveness(ctx, key)
}

func (c *cutStore) LivenessHeld(ctx context.Context, keys []int64) (map[int64]bool, error) {
	held, err := c.Store.LivenessHeld(ctx, keys)
	if err == nil {
		c.mu.Lock()
		c.looks = append(c.looks, held)
		c.mu.Unlock()
	}
	return held, err
}

func (c *cutStore) Apply(ctx context.Context, b store.Batch) error {
	c.mu.Lock()
	c.applies = append(c.applies, time.Now())
	c.mu.Unlock()
	if c.cut.Load() {
		return errCut
	}
	return c.Store.Apply(ctx, b)
}

// looksSince returns the LivenessHeld answers after the first n.
func (c *cutStore) looksSince(n int) []map[int64]bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.looks[min(n, len(c.looks)):])
}

func (c *cutStore) lookCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.looks)
}

// fakePool is nodes on one in-memory store, in the running bubble.
type fakePool struct {
	t     *testing.T
	st    *memstore.Store
	nodes []*fakeNode
}

type fakeNode struct {
	*Node
	view   *cutStore
	log    *testlog.Lines
	cancel context.CancelFunc
	done   chan error
	err    error
	ended  bool
}

// stop stops the node cleanly (once) and returns Run's error.
func (fn *fakeNode) stop() error {
	fn.cancel()
	if !fn.ended {
		fn.err, fn.ended = <-fn.done, true
	}
	return fn.err
}

// newFakePool returns a store with sources buffer sources s0, s1, ... of
// partitions partitions each, and no node yet.
func newFakePool(t *testing.T, sources, partitions int) *fakePool {
	st := memstore.New()
	for i := range sources {
		if err := st.AddSource(t.Context(), store.Source{Name: fmt.Sprintf("s%d", i), Kind: store.KindBuffer, Partitions: partitions, Enabled: true}); err != nil {
			t.Fatal(err)
		}
	}
	return &fakePool{t: t, st: st}
}

// start runs a node with the default settings.
func (p *fakePool) start(name string) *fakeNode {
	return p.startWith(Config{Name: name}, nil)
}

// startWith runs a node with cfg; prepare, when set, sets up the node and
// its view of the store before it runs.
func (p *fakePool) startWith(cfg Config, prepare func(*fakeNode)) *fakeNode {
	view := &cutStore{Store: p.st}
	lines, log := testlog.Capture(testLogger(p.t).With("name", cfg.Name).Handler())
	ctx, cancel := context.WithCancel(context.Background())
	fn := &fakeNode{Node: newTestNode(p.t, view, cfg, log), view: view, log: lines, cancel: cancel, done: make(chan error, 1)}
	if prepare != nil {
		prepare(fn)
	}
	go func() { fn.done <- fn.Run(ctx) }()
	p.nodes = append(p.nodes, fn)
	return fn
}

// kill makes a node dead to its peers: cut off from the store, its
// liveness lock gone. Its goroutines end with the test.
func (p *fakePool) kill(fn *fakeNode) {
	fn.view.cut.Store(true)
	p.st.DropLiveness(fn.self.LockKey)
}

// stopAll stops every node cleanly and waits for it: a bubble ends only
// once its goroutines have.
func (p *fakePool) stopAll() {
	for _, fn := range p.nodes {
		fn.cancel()
	}
	for _, fn := range p.nodes {
		_ = fn.stop()
	}
}

func (p *fakePool) owned() map[string]int {
	return ownedCount(p.t, p.st)
}

// waitOwned waits until each node in want owns as many sessions as it
// says, under live leases.
func (p *fakePool) waitOwned(limit time.Duration, what string, want map[*fakeNode]int) {
	p.t.Helper()
	testwait.Until(p.t, limit, what, func() bool {
		o := p.owned()
		for fn, n := range want {
			if o[fn.ID()] != n {
				return false
			}
		}
		return true
	})
}

// sessions returns every session by id, as the store has it.
func (p *fakePool) sessions() map[store.SessionID]store.SessionRow {
	p.t.Helper()
	ss, err := p.st.Sessions(p.t.Context())
	if err != nil {
		p.t.Fatal(err)
	}
	out := map[store.SessionID]store.SessionRow{}
	for _, s := range ss {
		out[s.SessionID] = s
	}
	return out
}

// moves counts the claims between two readings: every claim raises a
// session's epoch by one, whether it moves the session or takes it back.
func moves(before, after map[store.SessionID]store.SessionRow) int64 {
	var n int64
	for id, s := range after {
		n += s.Epoch - before[id].Epoch
	}
	return n
}

// write appends perInstance events (a begin, then updates) to each of the
// instances PO-0 ... PO-<instances-1> of source s0, in their partitions.
func (p *fakePool) write(instances, perInstance int) {
	p.t.Helper()
	partitions := 0
	for id := range p.sessions() {
		if id.Source == "s0" {
			partitions++
		}
	}
	var evs []store.BufferEvent
	for i := range instances {
		id := fmt.Sprintf("PO-%d", i)
		for j := range perInstance {
			kind := event.Update
			if j == 0 {
				kind = event.Begin
			}
			ev := event.Event{Activity: "PO", Instance: id, Kind: kind, Time: time.Now(), Data: map[string]json.RawMessage{"N": json.RawMessage(fmt.Sprint(j))}}
			evs = append(evs, store.BufferEvent{Partition: event.Partition(id, partitions), Payload: event.Encode(ev)})
		}
	}
	if err := p.st.AppendBuffer(p.t.Context(), "s0", evs); err != nil {
		p.t.Fatal(err)
	}
}

// waitApplied waits until the instances PO-0 ... have want events applied
// each, and fails if one has more.
func (p *fakePool) waitApplied(instances, want int) {
	p.t.Helper()
	key := func(i int) event.Key { return event.Key{Activity: "PO", Instance: fmt.Sprintf("PO-%d", i)} }
	testwait.Until(p.t, 20*time.Second, "every event to be applied", func() bool {
		applied := p.st.Applied()
		for i := range instances {
			if applied[key(i)] < want {
				return false
			}
		}
		return true
	})
	applied := p.st.Applied()
	for i := range instances {
		if n := applied[key(i)]; n != want {
			p.t.Errorf("PO-%d: %d events applied, want %d", i, n, want)
		}
	}
}

// TestFakePoolBalancesAndFailsOver: three nodes share twelve sessions four
// each within a second of starting together; when one dies the other two
// take its sessions over within the liveness confirmation and a round, long
// before its leases would expire; a node that stops cleanly hands its
// sessions over at once.
func TestFakePoolBalancesAndFailsOver(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newFakePool(t, 3, 4)
		defer p.stopAll()
		a, b, c := p.start("a"), p.start("b"), p.start("c")
		time.Sleep(time.Second)
		synctest.Wait()
		if o := p.owned(); o[a.ID()] != 4 || o[b.ID()] != 4 || o[c.ID()] != 4 {
			t.Fatalf("a second after a start together: %v; want 4 each", o)
		}

		p.kill(c)
		took := testwait.Until(t, DefaultConfig().LeaseTTL, "c's sessions to be taken over before its leases expire", func() bool {
			o := p.owned()
			return o[c.ID()] == 0 && o[a.ID()]+o[b.ID()] == 12
		})
		t.Logf("c's sessions taken over %v after it died", took)
		time.Sleep(time.Second)
		synctest.Wait()
		if o := p.owned(); o[a.ID()] != 6 || o[b.ID()] != 6 {
			t.Fatalf("after c died: %v; want 6 each", o)
		}

		stopped := time.Now()
		if err := b.stop(); err != nil {
			t.Fatal(err)
		}
		p.waitOwned(DefaultConfig().BalanceInterval*2-time.Since(stopped), "a to hold all 12 after b stopped", map[*fakeNode]int{a: 12})
	})
}

// TestFakePoolAppliesEveryEventOnce: events written while nodes join,
// die and stop are each applied once.
func TestFakePoolAppliesEveryEventOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newFakePool(t, 1, 8)
		defer p.stopAll()
		write := func(from, to int) {
			var evs []store.BufferEvent
			for i := from; i < to; i++ {
				id := fmt.Sprintf("PO-%d", i)
				evs = append(evs, store.BufferEvent{Partition: event.Partition(id, 8),
					Payload: fmt.Appendf(nil, `{"activity":"PO","instance":%q,"kind":"begin"}`, id)})
			}
			if err := p.st.AppendBuffer(t.Context(), "s0", evs); err != nil {
				t.Fatal(err)
			}
		}
		a := p.start("a")
		write(0, 100)
		time.Sleep(time.Second)
		b := p.start("b")
		write(100, 200)
		time.Sleep(time.Second)
		p.kill(a)
		write(200, 300)
		time.Sleep(2 * time.Second)
		p.start("c")
		write(300, 400)
		time.Sleep(time.Second)
		if err := b.stop(); err != nil {
			t.Fatal(err)
		}
		write(400, 500)
		time.Sleep(5 * time.Second)
		synctest.Wait()
		applied := p.st.Applied()
		for i := range 500 {
			if n := applied[event.Key{Activity: "PO", Instance: fmt.Sprintf("PO-%d", i)}]; n != 1 {
				t.Errorf("PO-%d applied %d times, want once", i, n)
			}
		}
	})
}

// startOwningAll starts a node alone and lets it claim every session.
func (p *fakePool) startOwningAll(name string) *fakeNode {
	p.t.Helper()
	return p.startOwningWith(Config{Name: name}, nil)
}

// startOwningWith starts a node alone, as startWith does, and lets it
// claim every session.
func (p *fakePool) startOwningWith(cfg Config, prepare func(*fakeNode)) *fakeNode {
	p.t.Helper()
	n := p.startWith(cfg, prepare)
	time.Sleep(2 * time.Second)
	if o := p.owned()[n.ID()]; o != p.sessionCount() {
		p.t.Fatalf("%s owns %d sessions, want all %d", cfg.Name, o, p.sessionCount())
	}
	return n
}

func (p *fakePool) sessionCount() int { return len(p.sessions()) }

// heartbeatAge returns how long ago the node last heartbeat, as the store
// says; an hour when it is no longer a member.
func (p *fakePool) heartbeatAge(fn *fakeNode) time.Duration {
	p.t.Helper()
	nodes, err := p.st.Nodes(p.t.Context())
	if err != nil {
		p.t.Fatal(err)
	}
	for _, nd := range nodes {
		if nd.ID == fn.ID() {
			return nd.HeartbeatAge
		}
	}
	return time.Hour
}

// TestNodesStartedTogetherMoveNothing: two nodes started within a balance
// interval of each other claim their shares once each; nothing moves (a
// new node sits out one interval before its first round).
func TestNodesStartedTogetherMoveNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newFakePool(t, 1, 8)
		defer p.stopAll()
		a := p.start("a")
		time.Sleep(DefaultConfig().BalanceInterval * 3 / 4)
		b := p.start("b")
		time.Sleep(3 * time.Second)
		synctest.Wait()
		if o := p.owned(); o[a.ID()] != 4 || o[b.ID()] != 4 {
			t.Fatalf("owned %v; want 4 each", o)
		}
		for _, s := range p.sessions() {
			if s.Epoch != 1 {
				t.Errorf("session %s/%d at epoch %d, owned by %s: it moved; want each claimed once", s.Source, s.Partition, s.Epoch, s.Owner)
			}
		}
	})
}

// TestStuckBalanceLoopStopsHeartbeat: a node whose balance loop hangs
// stops heartbeating within stuckAfter, so that peers see it dead and deal
// it no work (Decide, rule 5), its leases lapse, and it heartbeats again
// once the loop completes a round. It used to keep heartbeating while the
// sessions dealt to it stayed unowned.
func TestStuckBalanceLoopStopsHeartbeat(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newFakePool(t, 1, 2)
		defer p.stopAll()
		n := p.startOwningAll("stuck")
		hang := make(chan struct{})
		n.view.hang.Store(&hang)
		unhang := sync.OnceFunc(func() { n.view.hang.Store(nil); close(hang) })
		defer unhang() // before stopAll, or the node could never stop
		ttl := DefaultConfig().LeaseTTL
		testwait.Until(t, n.stuckAfter()+2*ttl, "the node to stop heartbeating after its balance loop hung", func() bool { return p.heartbeatAge(n) > ttl })
		if o := p.owned()[n.ID()]; o != 0 {
			t.Errorf("the stuck node still holds %d live leases", o)
		}
		unhang()
		time.Sleep(2 * time.Second)
		if age := p.heartbeatAge(n); age > ttl {
			t.Fatalf("heartbeat %v old after the loop works again", age)
		}
	})
}

// TestStuckBalanceLoopStopsLocklessRenewals: a node that loses its
// liveness lock renews its leases every LivenessConfirm/4, for up to a
// lease TTL, until it holds the lock again (renewLockless). When its
// balance loop is already stuck (it stopped heartbeating), those renewals
// must not start heartbeating again. They used to: the node took back its
// leases and heartbeat for a TTL while it decided nothing.
func TestStuckBalanceLoopStopsLocklessRenewals(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newFakePool(t, 1, 2)
		defer p.stopAll()
		n := p.startWith(Config{Name: "stuck-lockless"}, func(fn *fakeNode) { fn.view.noRelock.Store(true) })
		time.Sleep(2 * time.Second)
		hang := make(chan struct{})
		n.view.hang.Store(&hang)
		defer func() { n.view.hang.Store(nil); close(hang) }() // before stopAll
		ttl := DefaultConfig().LeaseTTL
		time.Sleep(n.stuckAfter() + 2*ttl)
		if age := p.heartbeatAge(n); age <= ttl {
			t.Fatalf("heartbeat %v old %v after the loop hung; want stale", age, n.stuckAfter()+2*ttl)
		}
		p.st.DropLiveness(n.self.LockKey)
		lost := time.Now()
		// Every 10 ms of the bubble's clock, for as long as renewLockless
		// could run and a renewal more.
		for time.Since(lost) < ttl+DefaultConfig().RenewInterval {
			if age := p.heartbeatAge(n); age < ttl {
				t.Fatalf("the stuck node heartbeat again %v after losing its liveness lock (heartbeat %v old)", time.Since(lost), age)
			}
			time.Sleep(10 * time.Millisecond)
		}
		if o := p.owned()[n.ID()]; o != 0 {
			t.Errorf("the stuck node holds %d live leases", o)
		}
	})
}

// TestSlowRenewalStopsNoSession: a renewal that the store performs at once
// but whose answer comes after the sessions' local deadline (a store busy
// for a moment) extends them when it returns; it does not stop them.
// Sessions used to stop at the deadline and be claimed again (bam's e2e
// TestSeedScenario on a loaded machine: "its epoch moved 1 → 2").
func TestSlowRenewalStopsNoSession(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newFakePool(t, 1, 2)
		defer p.stopAll()
		n := p.startOwningAll("slow")
		cfg := DefaultConfig()
		// Past the deadline of the renewal before, within the lease's life
		// on the store's clock.
		n.view.slowRenew.Store(int64(cfg.LeaseTTL - cfg.SafetyMargin - cfg.RenewInterval + 300*time.Millisecond))
		time.Sleep(6 * time.Second)
		n.view.slowRenew.Store(0)
		time.Sleep(2 * time.Second)
		ss, err := p.st.Sessions(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range ss {
			if s.Owner != n.ID() || s.Epoch != 1 {
				t.Errorf("session %s/%d: owner %s, epoch %d; want the slow node's, epoch 1", s.Source, s.Partition, s.Owner, s.Epoch)
			}
		}
	})
}
