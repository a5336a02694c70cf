package pool

import (
	"context"
	"time"

	"github.com/bam-dev/bam/internal/lease"
	"github.com/bam-dev/bam/internal/store"
)

// renewLockless heartbeats and renews every LivenessConfirm/4, from the
// loss of the liveness lock until a renewal succeeds after the lock is
// back (relocked closed), or ctx ends (a lease TTL after the loss). A peer
// that saw the lock gone thus sees a heartbeat within LivenessConfirm of
// its first look, however long taking the lock back takes. And when the
// lock went with the store (a restart), the first renewal after the
// store's return comes within LivenessConfirm/4, not at the renew loop's
// next tick up to RenewInterval later: the sessions' local deadlines
// (TTL − SafetyMargin after the last renewal began) are extended in time
// whenever the store was back before them. A node that is stopping does
// not renew: it may have left the pool.
func (n *Node) renewLockless(ctx context.Context, relocked <-chan struct{}) {
	defer n.wg.Done()
	t := time.NewTicker(n.cfg.LivenessConfirm / 4)
	defer t.Stop()
	for {
		n.mu.Lock()
		self := n.self
		stuck := time.Since(n.roundDone) > n.stuckAfter()
		n.mu.Unlock()
		if self.State != store.NodeRunning || stuck {
			// A node whose balance loop is stuck must not heartbeat
			// (renewLoop): these renewals do not either.
			return
		}
		back := isClosed(relocked)
		start := time.Now()
		// Not cancelled with ctx: cutting a statement short would cost its
		// connection.
		done := n.renewing()
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), n.cfg.LeaseTTL)
		leases, err := n.renew(rctx, self)
		cancel()
		if err == nil {
			n.heartbeat(start)
			n.renewed(leases, start, start.Add(n.cfg.LeaseTTL-n.cfg.SafetyMargin))
		}
		done()
		if err == nil && back {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// stuckAfter is how long the balance loop may go without finishing a
// round before the node stops heartbeating. A working loop finishes one at
// least every roundTimeout + the longest interval (BalanceInterval + 20 %),
// even when each round fails; twice that leaves room for a slow machine,
// so only a loop that truly hangs trips it.
func (n *Node) stuckAfter() time.Duration {
	return 2 * (n.roundTimeout() + n.live().BalanceInterval*6/5)
}

// renewLoop heartbeats and renews every lease, each RenewInterval, as long
// as the balance loop works.
func (n *Node) renewLoop(ctx context.Context) {
	t := time.NewTicker(n.cfg.RenewInterval)
	defer t.Stop()
	failing, stuck := false, false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		start := time.Now()
		n.mu.Lock()
		self := n.self
		stuckFor := start.Sub(n.roundDone)
		n.mu.Unlock()
		if self.State != store.NodeStopping && stuckFor > n.stuckAfter() {
			// The balance loop no longer decides: free sessions dealt to
			// this node would stay unowned (Decide, rule 5). Stop
			// heartbeating and renewing, so that peers count this node dead
			// and take its sessions over, and its sessions stop at their
			// local deadline.
			if !stuck {
				n.log.Error("balance loop stuck; not heartbeating nor renewing leases until it completes a round, so that peers take this node's sessions over",
					"since", stuckFor.Round(time.Millisecond), "bound", n.stuckAfter())
				stuck = true
			}
			continue // the sessions stop at their leases' local deadlines
		}
		if stuck {
			n.log.Info("balance loop works again; heartbeating again")
			stuck = false
		}
		done := n.renewing()
		rctx, cancel := context.WithTimeout(ctx, n.cfg.LeaseTTL)
		leases, err := n.renew(rctx, self)
		cancel()
		if err != nil {
			done()
			if ctx.Err() != nil {
				return
			}
			if !failing {
				n.log.Warn("cannot renew leases; sessions stop committing at their local deadline", "err", err)
			}
			failing = true
			continue
		}
		if failing {
			n.log.Info("lease renewal works again")
			failing = false
		}
		n.heartbeat(start)
		n.renewed(leases, start, start.Add(n.cfg.LeaseTTL-n.cfg.SafetyMargin))
		done()
	}
}

// renew heartbeats and renews every lease of the node, in one statement,
// and records how long it took.
func (n *Node) renew(ctx context.Context, self store.NodeRow) ([]store.Lease, error) {
	start := time.Now()
	leases, err := n.st.Renew(ctx, self, n.cfg.LeaseTTL)
	if ctx.Err() == nil || err == nil {
		// A renewal cut short by the node's stop is no failure of the store.
		n.cfg.Metrics.Renewed(time.Since(start), err)
	}
	return leases, err
}

// renewing marks a renewal in flight on the lease of every running
// session, and returns what ends it, to call once renewed has run (or the
// renewal failed): a lease whose deadline passes while a renewal begun
// before it is out ends only if that renewal does not extend it
// (lease.Lease.Renewing), so a renewal that is slow but succeeds stops no
// idle session.
func (n *Node) renewing() (done func()) {
	n.mu.Lock()
	held := make([]*lease.Lease, 0, len(n.sessions))
	for _, r := range n.sessions {
		r.lease.Renewing()
		held = append(held, r.lease)
	}
	n.mu.Unlock()
	return func() {
		for _, l := range held {
			l.RenewDone()
		}
	}
}

// renewed updates the sessions from the leases the store still gives us,
// as of a renewal begun at began. A session claimed after that is left
// alone: the renewal's statement may have run before the claim committed,
// and the next renewal will tell (its own local deadline still holds).
func (n *Node) renewed(leases []store.Lease, began, trustedUntil time.Time) {
	held := make(map[store.SessionID]store.Lease, len(leases))
	for _, l := range leases {
		held[l.SessionID] = l
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	var lost []store.Lease // said why after, with one read of the sessions
	for id, r := range n.sessions {
		l, ok := held[id]
		switch {
		case ok && l.Epoch == r.lease.Row().Epoch && l.Busy:
			// Still ours, but its row was locked by our batch in progress:
			// not extended this time, so its deadline stays.
		case ok && l.Epoch == r.lease.Row().Epoch:
			// An ended lease stays ended (its session stops): the next
			// renewal finds it not running and releases it.
			r.lease.Extend(trustedUntil)
		case r.handoff:
			// Already being handed over.
		case r.claimedAt.After(began):
			// Too new for this renewal to have seen.
		default:
			lost = append(lost, r.lease.Row())
			r.lease.Lose(nil)
			delete(n.sessions, id)
			n.cfg.Metrics.OwnerChanged(id, Lost)
		}
	}
	if len(lost) > 0 {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			n.explainLost(lost, "session lost: the store no longer holds our lease (it expired or a peer took it)")
		}()
	}
	// Leases we hold but do not run (a session stopped at its local
	// deadline while renewal failed): give them back.
	for id, l := range held {
		if _, ok := n.sessions[id]; !ok && !n.claiming[id] && !l.Busy && !n.handedOver.holds(id) {
			n.wg.Add(1)
			go func() {
				defer n.wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), n.cfg.LeaseTTL)
				defer cancel()
				if err := n.st.Release(ctx, l, n.self.ID); err != nil {
					n.log.Warn("release stale lease", "source", id.Source, "partition", id.Partition, "err", err)
				}
			}()
		}
	}
}
