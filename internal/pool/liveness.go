package pool

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/bam-dev/bam/internal/store"
)

// verdict is what a node concludes of a peer in a balance round (doc.go,
// "Death verdicts").
type verdict int

const (
	// peerAlive: heartbeat fresh, and its liveness lock held, unknown, or
	// gone for less than a confirmation. Its sessions stay.
	peerAlive verdict = iota
	// peerDied: its liveness lock was released with its connection, and a
	// second signal agrees (no heartbeat since the first look, a heartbeat
	// missed since, or a stale one). Its leases may be expired now.
	peerDied
	// peerSilent: its heartbeat is stale while its lock is held or cannot
	// be judged: paused, cut off, or dead without its connection closing.
	// Its leases expire by themselves.
	peerSilent
)

// deathWatch keeps, across balance rounds, what this node saw of its peers'
// liveness locks and of its own, and turns each round's look into
// verdicts. It is safe for concurrent use: the balance loop judges, the
// liveness loop reports on this node's own lock.
type deathWatch struct {
	ttl     time.Duration // a heartbeat older than this is stale
	renew   time.Duration // a live node heartbeats this often
	confirm time.Duration // how long a peer's lock must stay gone, with no heartbeat from it

	mu       sync.Mutex
	suspects map[string]suspect // by node id: peers whose lock was seen gone while their heartbeat was fresh
	// ownHeld: this node holds its own liveness lock, as far as it knows.
	ownHeld bool
	// distrustUntil: peers' locks say nothing until then (this node's own
	// lock was lost, or seen gone, not long ago: the store may have lost
	// every lock at once).
	distrustUntil time.Time
}

// suspect is a peer whose liveness lock a look found gone while its
// heartbeat was fresh.
type suspect struct {
	since   time.Time // this node's clock at that first look
	storeAt time.Time // the store's clock at that look: a later heartbeat_at means the peer lives
	// heartbeating: it heartbeat after its lock vanished. It lives without
	// its lock, and is found dead if it misses a heartbeat (none for two
	// renew intervals) before its lock is seen again.
	heartbeating bool
}

func newDeathWatch(ttl, renew, confirm time.Duration) *deathWatch {
	return &deathWatch{ttl: ttl, renew: renew, confirm: confirm, suspects: map[string]suspect{}}
}

// ownTaken records that this node holds its lock, at now. A lock taken
// again after a loss leaves peers' locks untrusted for a TTL: if the store
// lost every lock at once (a restart), the others need that long at most
// to take theirs again or to heartbeat.
func (w *deathWatch) ownTaken(now time.Time, again bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.ownHeld = true
	if again {
		w.distrustUntil = later(w.distrustUntil, now.Add(w.ttl))
	}
}

// ownLost records that this node lost its lock (its connection broke).
func (w *deathWatch) ownLost() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.ownHeld = false
}

// look is one balance round's reading of the pool.
type look struct {
	now   time.Time       // this node's clock
	peers []store.NodeRow // every member but this node, as the store listed them
	// held says, per lock key, whether some process holds it (the peers'
	// and this node's own); nil when the driver has no liveness lock or it
	// could not be read.
	held    map[int64]bool
	selfKey int64
}

// judge returns a verdict for every peer of l, and how long from now this
// node should look again to confirm a suspicion (0: no suspect pending).
func (w *deathWatch) judge(l look) (map[string]verdict, time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	held := l.held
	if held != nil && !held[l.selfKey] {
		// The store does not see this node's own lock: it lost the locks,
		// not (only) the peers. The liveness loop will take ours again.
		w.distrustUntil = later(w.distrustUntil, l.now.Add(w.ttl))
	}
	if !w.ownHeld || l.now.Before(w.distrustUntil) {
		held = nil
	}
	if held == nil {
		clear(w.suspects)
	}
	out := make(map[string]verdict, len(l.peers))
	var relook time.Duration
	members := make(map[string]bool, len(l.peers))
	for _, nd := range l.peers {
		members[nd.ID] = true
		fresh := nd.HeartbeatAge < w.ttl
		gone := held != nil && !held[nd.LockKey]
		switch {
		case !gone:
			delete(w.suspects, nd.ID)
			out[nd.ID] = aliveIf(fresh)
		case !fresh:
			// Two signals: no heartbeat for a TTL, and no lock.
			delete(w.suspects, nd.ID)
			out[nd.ID] = peerDied
		default:
			s, seen := w.suspects[nd.ID]
			switch {
			case !seen:
				w.suspects[nd.ID] = suspect{since: l.now, storeAt: nd.HeartbeatAt.Add(nd.HeartbeatAge)}
				out[nd.ID] = peerAlive
				relook = shortest(relook, w.confirm)
			case s.heartbeating && nd.HeartbeatAge >= 2*w.renew:
				// No lock, and a heartbeat missed.
				delete(w.suspects, nd.ID)
				out[nd.ID] = peerDied
			case s.heartbeating:
				out[nd.ID] = peerAlive
			case nd.HeartbeatAt.After(s.storeAt):
				s.heartbeating = true
				w.suspects[nd.ID] = s
				out[nd.ID] = peerAlive
			case l.now.Sub(s.since) >= w.confirm:
				delete(w.suspects, nd.ID)
				out[nd.ID] = peerDied
			default:
				out[nd.ID] = peerAlive
				relook = shortest(relook, w.confirm-l.now.Sub(s.since))
			}
		}
	}
	for id := range w.suspects {
		if !members[id] {
			delete(w.suspects, id)
		}
	}
	return out, relook
}

func aliveIf(fresh bool) verdict {
	if fresh {
		return peerAlive
	}
	return peerSilent
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// shortest returns the shorter of two waits, 0 meaning none.
func shortest(a, b time.Duration) time.Duration {
	if a == 0 || b < a {
		return b
	}
	return a
}

// holdLiveness takes the liveness lock, retrying while the store is
// unreachable, until ctx (the node's) ends.
func (n *Node) holdLiveness(ctx, lctx context.Context, lv store.Liveness) (<-chan struct{}, error) {
	for attempt := 1; ; attempt++ {
		lost, err := lv.HoldLiveness(lctx, n.self.LockKey)
		if err == nil {
			n.deaths.ownTaken(time.Now(), false)
			return lost, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("take liveness lock: %w", err)
		}
		n.log.Warn("cannot take the liveness lock yet; retrying", "err", err, "attempt", attempt)
		if !sleepCtx(ctx, backoff(attempt)) {
			return nil, fmt.Errorf("take liveness lock: %w", err)
		}
	}
}

// keepLiveness takes the liveness lock again whenever its connection
// breaks, at once and then every livenessRetry at most: peers find a node
// whose lock vanished dead unless it takes the lock back or heartbeats
// within LivenessConfirm (doc.go, "Death verdicts"), so meanwhile it also
// renews every LivenessConfirm/4 (renewLockless).
func (n *Node) keepLiveness(ctx context.Context, lv store.Liveness, lost <-chan struct{}) {
	defer n.wg.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case <-lost:
		}
		if ctx.Err() != nil {
			return // the hold ended because the node is stopping
		}
		lostAt := time.Now()
		n.setLiveness(LivenessLost)
		n.deaths.ownLost()
		n.log.Warn("liveness lock lost (its store connection broke); taking it again; peers keep this node's sessions while it heartbeats or once it holds the lock again",
			"liveness_confirm", n.cfg.LivenessConfirm)
		hctx, stopRenewing := context.WithTimeout(ctx, n.cfg.LeaseTTL)
		relocked := make(chan struct{})
		n.wg.Add(1)
		go func() { defer stopRenewing(); n.renewLockless(hctx, relocked) }()
		var attempts int
		lost, attempts = n.retakeLiveness(ctx, lv)
		if lost == nil {
			return
		}
		n.deaths.ownTaken(time.Now(), true)
		n.setLiveness(LivenessHeld)
		close(relocked)
		n.log.Info("liveness lock taken again", "after", time.Since(lostAt).Round(time.Millisecond), "attempts", attempts)
	}
}

// retakeLiveness takes the liveness lock again, retrying until ctx ends
// (then lost is nil).
func (n *Node) retakeLiveness(ctx context.Context, lv store.Liveness) (lost <-chan struct{}, attempts int) {
	for attempt := 1; ; attempt++ {
		lost, err := lv.HoldLiveness(ctx, n.self.LockKey)
		if err == nil {
			return lost, attempt
		}
		if ctx.Err() != nil {
			return nil, attempt
		}
		if attempt == 1 || attempt%50 == 0 {
			n.log.Warn("cannot take the liveness lock again yet; retrying", "err", err, "attempt", attempt)
		}
		if !sleepCtx(ctx, livenessRetry(attempt)) {
			return nil, attempt
		}
	}
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// livenessRetry is the wait before taking the liveness lock again after
// attempt failed: short, because a store that is back must see every live
// node's lock again within a fraction of the lease TTL, and one attempt is
// only a connection (refused at once while the store is down).
func livenessRetry(attempt int) time.Duration {
	return min(25*time.Millisecond<<min(attempt, 4), 250*time.Millisecond)
}
