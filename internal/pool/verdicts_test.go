package pool

import (
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/bam-dev/bam/internal/testwait"
)

// The death verdicts (doc.go) with whole nodes on the in-memory store: a
// live node whose liveness lock vanished keeps its sessions, a dead one
// loses them fast, and the log says which it was. liveness_test.go drives
// the rule with made-up looks; the faults only a real PostgreSQL server
// shows (a lock's connection ended by the server, a restart) are tested in
// package pooltest.

const diedMsg = "node died: its liveness lock was released with its connection; its leases are expired now"

// TestLockResetMovesNoSession: a live node's liveness lock vanishes (its
// connection broke: a network blip, a proxy recycling it). Its peer sees
// the lock gone while the node's heartbeat is fresh. The node takes its
// lock back late on purpose (a slow reconnect: 150 ms, then 600 ms, more
// than LivenessConfirm), heartbeating meanwhile, and no session moves.
// Before the death verdicts were confirmed, the peer expired every lease
// of the node at its first look and the pool reshuffled.
func TestLockResetMovesNoSession(t *testing.T) {
	for _, delay := range []time.Duration{150 * time.Millisecond, 600 * time.Millisecond} {
		t.Run(fmt.Sprint("retake after ", delay), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) { testLockReset(t, delay) })
		})
	}
}

func testLockReset(t *testing.T, retakeDelay time.Duration) {
	p := newFakePool(t, 1, 8)
	defer p.stopAll()
	// Rounds more frequent than by default, so that a looks within the
	// shorter delay.
	cfg := func(name string) Config { return Config{Name: name, BalanceInterval: 100 * time.Millisecond} }
	a := p.startWith(cfg("a"), nil)
	b := p.startWith(cfg("b"), func(fn *fakeNode) { fn.view.retakeDelay = retakeDelay })
	p.waitOwned(10*time.Second, "a and b to own four sessions each", map[*fakeNode]int{a: 4, b: 4})
	before := p.sessions()
	looked := a.view.lookCount()

	p.st.DropLiveness(b.self.LockKey)
	testwait.Until(t, 10*time.Second, "b to take its liveness lock again", func() bool {
		return b.log.Count("liveness lock taken again", "") == 1
	})
	// Until a has looked five times since, at least once without b's lock
	// and then three times with it.
	var sawGone bool
	testwait.Until(t, 10*time.Second, "a to see b's lock gone, then back", func() bool {
		back := 0
		sawGone = false
		for _, held := range a.view.looksSince(looked) {
			switch {
			case !held[b.self.LockKey]:
				sawGone, back = true, 0
			case sawGone:
				back++
			}
		}
		return sawGone && back >= 3
	})
	if m := moves(before, p.sessions()); m != 0 {
		a.log.Dump(t)
		t.Fatalf("%d sessions moved after b's lock connection was reset; want 0", m)
	}
	if n := a.log.Count(diedMsg, ""); n != 0 {
		t.Errorf("a logged b dead %d times", n)
	}
}

// A node that really died (every connection closed, no heartbeat, its
// lock gone for good) is found dead within a fraction of its lease TTL,
// and its sessions are logged as taken over from a dead node.
func TestDeadNodeIsTakenOverBeforeItsLeasesExpire(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newFakePool(t, 1, 4)
		defer p.stopAll()
		// A long TTL: only the death verdict can move the sessions soon.
		cfg := func(name string) Config {
			return Config{Name: name, LeaseTTL: 20 * time.Second, RenewInterval: time.Second}
		}
		a := p.startWith(cfg("a"), nil)
		b := p.startWith(cfg("b"), nil)
		p.waitOwned(10*time.Second, "a and b to own two sessions each", map[*fakeNode]int{a: 2, b: 2})
		p.kill(b)
		took := testwait.Until(t, 10*time.Second, "a to own every session", func() bool { return p.owned()[a.ID()] == 4 })
		t.Logf("a took b's sessions over %v after b died", took)
		if took > 5*time.Second {
			t.Errorf("took %v to take a dead node's sessions over; want well under its lease TTL", took)
		}
		if n := a.log.Count(diedMsg, ""); n != 1 {
			t.Errorf("a logged b's death %d times, want 1", n)
		}
		// The store keeps b as gone, found dead by a, and why.
		gone, err := p.st.DepartedNodes(t.Context())
		if err != nil || len(gone) != 1 || gone[0].ID != b.ID() || gone[0].FoundDeadBy != a.ID() ||
			!strings.HasPrefix(gone[0].Why, "its liveness lock was released with its connection, and it had not heartbeat since") {
			t.Errorf("DepartedNodes = %+v, %v; want b, found dead by a with the lock's reason", gone, err)
		}
		// A claim is logged just after it commits.
		testwait.Until(t, 5*time.Second, "a to log its takeovers", func() bool {
			return a.log.Count("session taken over from a dead node", "")+a.log.Count("session taken over from an expired lease", "") >= 2
		})
		dead := a.log.Count("session taken over from a dead node", "")
		expired := a.log.Count("session taken over from an expired lease", "")
		if dead != 2 || expired != 0 {
			a.log.Dump(t)
			t.Errorf("a logged %d takeovers from a dead node and %d from an expired lease; want 2 and 0", dead, expired)
		}
	})
}

// A node that stops heartbeating but keeps its liveness lock (paused, or
// cut off from the store's lease connections) is taken over when its
// leases expire, logged as such: never as a dead node.
func TestSilentNodeIsNotLoggedDead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newFakePool(t, 1, 4)
		defer p.stopAll()
		a, b := p.start("a"), p.start("b")
		p.waitOwned(10*time.Second, "a and b to own two sessions each", map[*fakeNode]int{a: 2, b: 2})
		b.view.silent.Store(true)
		p.waitOwned(10*time.Second, "a to own every session", map[*fakeNode]int{a: 4})
		// A claim is logged just after it commits.
		testwait.Until(t, 5*time.Second, "a to log its takeovers", func() bool {
			return a.log.Count("session taken over from a dead node", "")+a.log.Count("session taken over from an expired lease", "") >= 2
		})
		// The lease and the heartbeat go stale together (one statement
		// renews both): a round may still see the heartbeat fresh when it
		// finds the lease expired, and say so in why.
		expired := a.log.Count("session taken over from an expired lease", "")
		dead := a.log.Count("session taken over from a dead node", "")
		if expired != 2 || dead != 0 {
			a.log.Dump(t)
			t.Errorf("a logged %d takeovers from an expired lease and %d from a dead node; want 2 and 0", expired, dead)
		}
		if n := a.log.Count(diedMsg, ""); n != 0 {
			t.Errorf("a logged the silent node dead %d times", n)
		}
		b.view.silent.Store(false)
		p.waitOwned(10*time.Second, "b to get two sessions back", map[*fakeNode]int{a: 2, b: 2})
	})
}

// A node silent past ForgetAfter is forgotten, and the store keeps it as
// gone, found dead by the peer that forgot it and why, until it heartbeats
// again: then it is a member, and no longer listed as gone.
func TestSilentNodeIsForgottenAsGone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newFakePool(t, 1, 2)
		defer p.stopAll()
		cfg := func(name string) Config { return Config{Name: name, ForgetAfter: 5 * time.Second} }
		a := p.startWith(cfg("a"), nil)
		b := p.startWith(cfg("b"), nil)
		p.waitOwned(10*time.Second, "a and b to own a session each", map[*fakeNode]int{a: 1, b: 1})
		b.view.silent.Store(true)
		testwait.Until(t, 10*time.Second, "a to forget b", func() bool {
			gone, err := p.st.DepartedNodes(t.Context())
			return err == nil && len(gone) == 1
		})
		gone, _ := p.st.DepartedNodes(t.Context())
		if g := gone[0]; g.ID != b.ID() || g.Name != "b" || g.FoundDeadBy != a.ID() || !strings.HasPrefix(g.Why, "silent past the forget delay: no heartbeat for ") {
			t.Errorf("gone = %+v; want b, found dead by a, silent past the forget delay", g)
		}
		// It is logged just after it commits.
		testwait.Until(t, 5*time.Second, "a to log that it forgot b", func() bool { return a.log.Count("forgot a node silent for long", "") > 0 })
		if n := a.log.Count("forgot a node silent for long", ""); n != 1 {
			t.Errorf("a logged forgetting b %d times, want 1", n)
		}
		b.view.silent.Store(false)
		testwait.Until(t, 10*time.Second, "b to be a member again, not gone", func() bool {
			gone, err := p.st.DepartedNodes(t.Context())
			return err == nil && len(gone) == 0
		})
	})
}
