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
		heartbeatAge := func() time.Duration {
			nodes, err := st.Nodes(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			for _, nd := range nodes {
				if nd.ID == n.ID() {
					return nd.HeartbeatAge
				}
			}
			return time.Hour // forgotten
		}
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
