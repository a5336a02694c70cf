package pool

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/store"
	"github.com/bam-dev/bam/internal/store/memstore"
)

// Unit tests of the pool on the in-memory store, in testing/synctest
// bubbles: the nodes' timers and the store's lease expiry run on the
// bubble's fake clock, so seconds of a pool's life take milliseconds and
// nothing waits on the machine's speed. The tests against real stores
// (node_test.go, verdicts_test.go, stall_test.go) keep the faults only a
// real database shows.

var _ Store = (*memstore.Store)(nil)

// cutStore is a node's view of the in-memory store that can be cut off:
// every call then fails, as for a node whose connections broke (with its
// liveness lock dropped: a process that died).
type cutStore struct {
	*memstore.Store
	cut atomic.Bool
	// noRelock fails every HoldLiveness after the first: a node whose
	// liveness lock, once lost, cannot be taken back.
	noRelock atomic.Bool
	holds    atomic.Int64
	// hang, when set, blocks Sessions until it is closed: a balance loop
	// that hangs.
	hang atomic.Pointer[chan struct{}]
	// slowRenew delays the answer of every renewal (the store renewed at
	// once; the answer comes late): a busy store, a slow link.
	slowRenew atomic.Int64
}

func (c *cutStore) Sessions(ctx context.Context) ([]store.Session, error) {
	if h := c.hang.Load(); h != nil {
		<-*h
	}
	return c.Store.Sessions(ctx)
}

var errCut = errors.New("injected: the node is cut off from the store")

func (c *cutStore) Nodes(ctx context.Context) ([]store.Node, error) {
	if c.cut.Load() {
		return nil, errCut
	}
	return c.Store.Nodes(ctx)
}

func (c *cutStore) Renew(ctx context.Context, n store.Node, ttl time.Duration) ([]store.Lease, error) {
	if c.cut.Load() {
		return nil, errCut
	}
	leases, err := c.Store.Renew(ctx, n, ttl)
	time.Sleep(time.Duration(c.slowRenew.Load()))
	return leases, err
}

func (c *cutStore) HoldLiveness(ctx context.Context, key int64) (<-chan struct{}, error) {
	if c.cut.Load() || (c.noRelock.Load() && c.holds.Load() > 0) {
		return nil, errCut
	}
	c.holds.Add(1)
	return c.Store.HoldLiveness(ctx, key)
}

func (c *cutStore) Apply(ctx context.Context, b store.Batch) error {
	if c.cut.Load() {
		return errCut
	}
	return c.Store.Apply(ctx, b)
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

// startWith runs a node with cfg; prepare, when set, sets up its view of
// the store before it starts.
func (p *fakePool) startWith(cfg Config, prepare func(*cutStore)) *fakeNode {
	view := &cutStore{Store: p.st}
	if prepare != nil {
		prepare(view)
	}
	name := cfg.Name
	n := newTestNode(p.t, view, cfg, testLogger(p.t).With("name", name))
	ctx, cancel := context.WithCancel(context.Background())
	fn := &fakeNode{Node: n, view: view, cancel: cancel, done: make(chan error, 1)}
	go func() { fn.done <- n.Run(ctx) }()
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
		killed := time.Now()
		for p.owned()[c.ID()] > 0 || p.owned()[a.ID()]+p.owned()[b.ID()] != 12 {
			time.Sleep(10 * time.Millisecond)
			if time.Since(killed) > DefaultConfig().LeaseTTL {
				t.Fatalf("%v after c died: %v; want its sessions taken over before its leases expire", time.Since(killed), p.owned())
			}
		}
		t.Logf("c's sessions taken over %v after it died", time.Since(killed))
		time.Sleep(time.Second)
		synctest.Wait()
		if o := p.owned(); o[a.ID()] != 6 || o[b.ID()] != 6 {
			t.Fatalf("after c died: %v; want 6 each", o)
		}

		stopped := time.Now()
		if err := b.stop(); err != nil {
			t.Fatal(err)
		}
		for p.owned()[a.ID()] != 12 {
			time.Sleep(10 * time.Millisecond)
			if time.Since(stopped) > DefaultConfig().BalanceInterval*2 {
				t.Fatalf("%v after b stopped: %v; want a to hold all 12", time.Since(stopped), p.owned())
			}
		}
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
	n := p.start(name)
	time.Sleep(2 * time.Second)
	if o := p.owned()[n.ID()]; o != p.sessionCount() {
		p.t.Fatalf("%s owns %d sessions, want all %d", name, o, p.sessionCount())
	}
	return n
}

func (p *fakePool) sessionCount() int {
	ss, err := p.st.Sessions(p.t.Context())
	if err != nil {
		p.t.Fatal(err)
	}
	return len(ss)
}

func (p *fakePool) heartbeatAge(fn *fakeNode) time.Duration {
	return heartbeatAgeOf(p.t, p.st, fn.ID())
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
		ss, err := p.st.Sessions(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range ss {
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
		stuck := time.Now()
		ttl := DefaultConfig().LeaseTTL
		for p.heartbeatAge(n) <= ttl {
			time.Sleep(50 * time.Millisecond)
			if time.Since(stuck) > n.stuckAfter()+2*ttl {
				t.Fatalf("still heartbeating %v after the balance loop hung (bound %v)", time.Since(stuck), n.stuckAfter())
			}
		}
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
		n := p.startWith(Config{Name: "stuck-lockless"}, func(c *cutStore) { c.noRelock.Store(true) })
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
