package pool

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"testing"
	"testing/synctest"
	"time"

	"github.com/bam-dev/bam/internal/source"
	"github.com/bam-dev/bam/internal/store"
	"github.com/bam-dev/bam/internal/testwait"
)

// These tests run several nodes in one process on the in-memory store, in
// synctest bubbles (fake_test.go). The tests against real stores are in
// package pooltest; the multi-process failover tests (SIGKILL, SIGSTOP)
// are in test/e2e.

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// ownedCount returns how many live leases each node holds.
func ownedCount(t *testing.T, st Leases) map[string]int {
	ss, err := st.Sessions(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, s := range ss {
		if s.Owner != "" && s.LeaseRemaining > 0 {
			out[s.Owner]++
		}
	}
	return out
}

// TestNodesShareSessionsAndHandOverOnStop: three nodes share six sessions
// two each and apply every event once; a clean stop hands every session
// over without waiting for a lease.
func TestNodesShareSessionsAndHandOverOnStop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newFakePool(t, 1, 6)
		defer p.stopAll()
		a, b, c := p.start("a"), p.start("b"), p.start("c")
		p.waitOwned(10*time.Second, "three nodes to own two sessions each", map[*fakeNode]int{a: 2, b: 2, c: 2})
		p.write(50, 4)
		p.waitApplied(50, 4)

		start := time.Now()
		if err := a.stop(); err != nil {
			t.Fatal(err)
		}
		p.waitOwned(3*time.Second-time.Since(start), "the two others to own three sessions each", map[*fakeNode]int{b: 3, c: 3})
		t.Logf("sessions moved %v after the stop began", time.Since(start))
		p.write(50, 2)
		p.waitApplied(50, 6)
	})
}

// Issue 8, item 6: a node claims the sessions of a round together, in one
// statement, not one round trip each (20 of them made a newcomer's share
// take a second on a loaded store).
func TestNodeClaimsItsShareInOneStatement(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newFakePool(t, 1, 20)
		defer p.stopAll()
		a := p.start("a")
		p.waitOwned(10*time.Second, "node a to own every session", map[*fakeNode]int{a: 20})
		statements, claims := a.view.claimStatements.Load(), a.view.claims.Load()
		if statements != 1 {
			t.Errorf("%d sessions claimed in %d statements; want 1", claims, statements)
		}
	})
}

// Issue 8, item 6: a node handing over many sessions at once releases them
// together, a few statements per round of handovers, not one each (which
// held every lease connection while its renewal waited, and woke every
// node once per session).
func TestNodeReleasesHandedOverSessionsTogether(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newFakePool(t, 1, 80)
		defer p.stopAll()
		// Releases take a round trip, as on a real store: sessions that
		// end meanwhile queue theirs.
		a := p.startOwningWith(Config{Name: "a"}, func(fn *fakeNode) { fn.view.releaseTakes = 2 * time.Millisecond })
		b, c, d := p.start("b"), p.start("c"), p.start("d")
		p.waitOwned(20*time.Second, "four nodes to own 20 sessions each", map[*fakeNode]int{a: 20, b: 20, c: 20, d: 20})
		statements, leases := a.view.releaseStatements.Load(), a.view.releases.Load()
		t.Logf("%d leases released in %d statements", leases, statements)
		if leases < 60 || statements > leases/2 {
			t.Errorf("%d leases released in %d statements; want at least 60, in at most half as many statements", leases, statements)
		}
	})
}

// TestNodeThatCannotRenewStopsCommitting: a node whose renewals and claims
// fail (its lease connections cannot reach the store) tries no commit once
// its leases could have expired, while events keep coming; once it can
// renew again it takes its sessions back and applies every event once.
func TestNodeThatCannotRenewStopsCommitting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newFakePool(t, 1, 2)
		defer p.stopAll()
		a := p.startOwningAll("a")
		ttl := DefaultConfig().LeaseTTL

		a.view.silent.Store(true)
		calls := 0
		var expired time.Time
		// Events keep coming, every 20 ms, until a lease TTL after a's
		// leases expired.
		for expired.IsZero() || time.Since(expired) < ttl {
			p.write(5, 1)
			calls++
			time.Sleep(20 * time.Millisecond)
			if expired.IsZero() && p.owned()[a.ID()] == 0 {
				expired = time.Now()
			}
			if calls > 1000 {
				t.Fatalf("a's leases still live 20 s after it could no longer renew: %v", p.owned())
			}
		}
		a.view.mu.Lock()
		late := 0
		for _, at := range a.view.applies {
			// The last renewal that succeeded began before the first that
			// failed: no lease of a lives past that + TTL.
			if at.Sub(a.view.silentFrom) > ttl {
				late++
			}
		}
		a.view.mu.Unlock()
		if late > 0 {
			t.Fatalf("node a tried %d commits after its leases could have expired", late)
		}
		a.view.silent.Store(false)
		p.waitOwned(10*time.Second, "node a to own both sessions again", map[*fakeNode]int{a: 2})
		p.waitApplied(5, calls)
		// It took its own expired leases back: a claim, not a takeover
		// "from" itself.
		if n := a.log.Count("session claimed again: this node's own lease on it had expired (it was paused or late to renew)", ""); n != 2 {
			a.log.Dump(t)
			t.Errorf("a said %d times that it claimed its own expired lease again, want 2", n)
		}
		if n := a.log.Count("session taken over from an expired lease", ""); n != 0 {
			t.Errorf("a logged %d takeovers from itself", n)
		}
	})
}

// TestNodeGivesUpASessionWhoseSourceItCannotRead: a node that cannot read a
// source hands the session over once a peer works, and the peer, not it,
// takes it; alone, the node keeps trying. (Before, the node kept the
// session for as long as it lived.)
func TestNodeGivesUpASessionWhoseSourceItCannotRead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newFakePool(t, 1, 1)
		defer p.stopAll()
		id := store.SessionID{Source: "s0"}
		cfg := Config{Name: "blind"}
		cfg.Session.MaxBackoff = 100 * time.Millisecond
		giveUp := DefaultConfig().SourceGiveUp
		blind := p.startWith(cfg, func(fn *fakeNode) {
			fn.openSource = func(_ context.Context, _ Store, src store.Source, _ *slog.Logger) (source.Reader, store.Source, error) {
				return nil, src, errors.New("dial tcp 10.0.0.9:5432: connect: no route to host")
			}
		})
		p.waitOwned(10*time.Second, "the blind node to own the session", map[*fakeNode]int{blind: 1})
		// Alone, it keeps the session well past SourceGiveUp.
		time.Sleep(3 * giveUp)
		if o := p.sessions()[id].Owner; o != blind.ID() {
			t.Fatalf("alone, the blind node gave its session up (owner %q)", o)
		}

		p.write(1, 1)
		seeing := p.start("seeing")
		p.waitOwned(giveUp+10*time.Second, "the seeing node to take the session over", map[*fakeNode]int{seeing: 1})
		p.waitApplied(1, 1)
		if by := p.sessions()[id].GivenUpBy; by != blind.ID() {
			t.Errorf("session given up by %q, want the blind node %s", by, blind.ID())
		}
		// The blind node does not take it back: it is dealt elsewhere.
		time.Sleep(3 * DefaultConfig().BalanceInterval)
		if o := p.sessions()[id].Owner; o != seeing.ID() {
			t.Errorf("owner %q after a few rounds, want the seeing node", o)
		}
	})
}

// TestPausedSourceIsNotApplied: pausing a source stops its sessions after
// their batch and no node claims them while events are written to it;
// resumed, the sessions go on from their checkpoints and apply each event
// once.
func TestPausedSourceIsNotApplied(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newFakePool(t, 1, 4)
		defer p.stopAll()
		ctx := t.Context()
		a, b := p.start("a"), p.start("b")
		p.waitOwned(10*time.Second, "a and b to own two sessions each", map[*fakeNode]int{a: 2, b: 2})
		p.write(20, 2)
		p.waitApplied(20, 2)

		if err := p.st.SetSourcePaused(ctx, "s0", true); err != nil {
			t.Fatal(err)
		}
		testwait.Until(t, 10*time.Second, "every session to be let go", func() bool { return len(p.owned()) == 0 })
		if n := a.log.Count("stopping session: its source was paused; its events wait in it until it is resumed", ""); n != 2 {
			t.Errorf("a logged %d sessions stopped for the pause, want 2", n)
		}
		before := p.sessions()
		p.write(20, 2)
		// Ten balance rounds on the bubble's clock, each of which could
		// claim; synctest.Wait lets every node finish what they started.
		time.Sleep(10 * DefaultConfig().BalanceInterval)
		synctest.Wait()
		if o := p.owned(); len(o) != 0 {
			t.Fatalf("sessions of a paused source owned: %v", o)
		}
		if n := moves(before, p.sessions()); n != 0 {
			t.Errorf("%d claims of a paused source's sessions", n)
		}
		for k, n := range p.st.Applied() {
			if n != 2 {
				t.Fatalf("instance %s: %d events applied while paused, want the 2 from before", k.Instance, n)
			}
		}

		if err := p.st.SetSourcePaused(ctx, "s0", false); err != nil {
			t.Fatal(err)
		}
		p.waitApplied(20, 4)
		p.waitOwned(10*time.Second, "a and b to own two sessions each again", map[*fakeNode]int{a: 2, b: 2})
	})
}
