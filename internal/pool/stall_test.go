package pool

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/store"
	"github.com/bam-dev/bam/internal/store/postgres"
	"github.com/bam-dev/bam/internal/testpg"
)

// TestTakeoverOfSessionStalledMidBatch: a node paused or cut off in the
// middle of sending a batch leaves its backend holding the session's row,
// "active" and waiting for the rest of the request. A healthy node must
// still claim every other session at once, and take the stalled one over
// once its lease has expired (DESIGN.md, "a lock held by a request that
// never finishes"). It used to wait on that row with no deadline, its
// balance loop frozen: it owned none of the 4 sessions.
func TestTakeoverOfSessionStalledMidBatch(t *testing.T) {
	url := testpg.NewDatabase(t)
	open := func() store.Store {
		st, err := postgres.Open(context.Background(), url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	st := open()
	setupStore(t, st, 4)
	ctx := context.Background()
	// The gone node owned partition 0 (first in the claim order); its
	// lease has expired, and its backend stalled mid-batch holds the row.
	stalledID := store.SessionID{Source: "s", Partition: 0}
	if _, err := st.Claim(ctx, stalledID, "gone", "", 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	stalled := testpg.Stall(t, url, "bam node gone",
		`UPDATE bam_sessions SET applied_count = applied_count WHERE source = 's' AND partition = 0`)
	waitUntil(t, 5*time.Second, "the gone node's lease to expire", func() bool { return ownedCount(t, st)["gone"] == 0 })

	cfg := fastConfig("healthy")
	start := time.Now()
	n := runNode(t, open(), cfg)
	waitUntil(t, 2*time.Second, "the healthy node to own the 3 free sessions", func() bool {
		return ownedCount(t, st)[n.ID()] >= 3
	})
	free := time.Since(start)
	waitUntil(t, cfg.LeaseTTL+3*time.Second, "the healthy node to take the stalled session over", func() bool {
		return ownedCount(t, st)[n.ID()] == 4
	})
	t.Logf("3 free sessions owned after %v, the stalled one after %v", free.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	if stalled.Alive(t, url) {
		t.Error("the stalled backend of the expired owner still runs")
	}
}

// blockingStore blocks Sessions, ignoring its context, while blocked is
// set: a balance loop that hangs.
type blockingStore struct {
	store.Store
	mu      sync.Mutex
	blocked chan struct{} // nil: not blocked; closed to release
}

func (s *blockingStore) block() {
	s.mu.Lock()
	s.blocked = make(chan struct{})
	s.mu.Unlock()
}

func (s *blockingStore) unblock() {
	s.mu.Lock()
	close(s.blocked)
	s.blocked = nil
	s.mu.Unlock()
}

func (s *blockingStore) Sessions(ctx context.Context) ([]store.Session, error) {
	s.mu.Lock()
	b := s.blocked
	s.mu.Unlock()
	if b != nil {
		<-b
	}
	return s.Store.Sessions(ctx)
}

// TestStuckBalanceLoopStopsHeartbeat: a node whose balance loop hangs
// stops heartbeating, so that peers see it dead and deal it no work
// (Decide, rule 5), and heartbeats again once the loop completes a round.
// It used to keep heartbeating while the sessions dealt to it stayed
// unowned.
func TestStuckBalanceLoopStopsHeartbeat(t *testing.T) {
	eachStore(t, func(t *testing.T, open func() store.Store) {
		st := open()
		setupStore(t, st, 2)
		bs := &blockingStore{Store: open()}
		cfg := fastConfig("stuck")
		n := runNode(t, bs, cfg)
		waitUntil(t, 5*time.Second, "the node to own both sessions", func() bool { return ownedCount(t, st)[n.ID()] == 2 })
		heartbeatAge := func() time.Duration { return heartbeatAgeOf(t, st, n.ID()) }
		bs.block()
		stuck := time.Now()
		waitUntil(t, n.stuckAfter()+3*cfg.LeaseTTL, "the stuck node's heartbeat to go stale", func() bool {
			return heartbeatAge() > cfg.LeaseTTL
		})
		t.Logf("heartbeat stale %v after the balance loop hung (bound %v)", time.Since(stuck).Round(time.Millisecond), n.stuckAfter())
		if o := ownedCount(t, st)[n.ID()]; o != 0 {
			t.Errorf("the stuck node still holds %d live leases", o)
		}
		bs.unblock()
		waitUntil(t, 5*time.Second, "the node to heartbeat again", func() bool { return heartbeatAge() < cfg.LeaseTTL })
	})
}

// stuckLocklessStore is a node's store whose liveness lock, once lost, is
// not taken back (watchedStore's retakeDelay) and whose Sessions blocks
// while blocked: a node without its lock whose balance loop hangs.
type stuckLocklessStore struct {
	*watchedStore
	blocking blockingStore
}

func (s *stuckLocklessStore) Sessions(ctx context.Context) ([]store.Session, error) {
	return s.blocking.Sessions(ctx)
}

// TestStuckBalanceLoopStopsLocklessRenewals: a node that loses its
// liveness lock renews its leases every LivenessConfirm/4, for up to a
// lease TTL, until it holds the lock again (renewLockless). When its
// balance loop is already stuck (it stopped heartbeating), those renewals
// must not start heartbeating again. They used to: the node took back its
// leases and heartbeat for a TTL while it decided nothing.
func TestStuckBalanceLoopStopsLocklessRenewals(t *testing.T) {
	url := testpg.NewDatabase(t)
	st := openPostgres(t, url)
	setupStore(t, st, 2)
	work := openPostgres(t, url)
	s := &stuckLocklessStore{watchedStore: &watchedStore{Store: work, retakeDelay: time.Hour}}
	s.blocking.Store = work
	cfg := fastConfig("stuck-lockless")
	n := runNode(t, s, cfg)
	waitUntil(t, 5*time.Second, "the node to own both sessions", func() bool { return ownedCount(t, st)[n.ID()] == 2 })
	heartbeatAge := func() time.Duration { return heartbeatAgeOf(t, st, n.ID()) }

	s.blocking.block()
	defer s.blocking.unblock()
	waitUntil(t, n.stuckAfter()+3*cfg.LeaseTTL, "the stuck node's heartbeat to go stale", func() bool {
		return heartbeatAge() > cfg.LeaseTTL
	})
	if k := terminateLiveness(t, url, n.self.LockKey); k != 1 {
		t.Fatalf("ended %d backends holding the node's liveness lock, want 1", k)
	}
	// renewLockless would renew within LivenessConfirm/4 of the loss, and
	// for a lease TTL: watch a little longer than that.
	lost := time.Now()
	for time.Since(lost) < cfg.LeaseTTL+cfg.RenewInterval {
		if age := heartbeatAge(); age < cfg.LeaseTTL {
			t.Fatalf("the stuck node heartbeat again %v after losing its liveness lock (heartbeat %v old)", time.Since(lost).Round(time.Millisecond), age)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if o := ownedCount(t, st)[n.ID()]; o != 0 {
		t.Errorf("the stuck node holds %d live leases", o)
	}
}

// heartbeatAgeOf returns how long ago the node last heartbeat, as st says;
// an hour when it is no longer a member.
func heartbeatAgeOf(t *testing.T, st store.Store, id string) time.Duration {
	t.Helper()
	nodes, err := st.Nodes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, nd := range nodes {
		if nd.ID == id {
			return nd.HeartbeatAge
		}
	}
	return time.Hour
}
