package postgres

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/store"
	"github.com/bam-dev/bam/internal/testpg"
	"github.com/bam-dev/bam/internal/testwait"
)

// A batch whose client stops in the middle of the request (SIGSTOP, a cut
// link) leaves its backend holding the session's row, "active" and
// waiting for the client, for hours. These tests stall a backend that way
// (testpg.Stall) and check that no lease statement waits for it.

// stallSession stalls a backend named appName in the middle of a fence-like
// UPDATE of the session's row.
func stallSession(t *testing.T, url, appName string, id store.SessionID) *testpg.Stalled {
	t.Helper()
	return testpg.Stall(t, url, appName, `UPDATE bam_sessions SET applied_count = applied_count
		WHERE source = '`+id.Source+`' AND partition = `+string(rune('0'+id.Partition)))
}

func leaseSetup(t *testing.T, partitions int) bundle {
	t.Helper()
	b := setup(t)
	if err := b.s.AddSource(b.ctx, store.Source{Name: "src", Kind: store.KindBuffer, Partitions: partitions, Enabled: true}); err != nil {
		t.Fatal(err)
	}
	return b
}

// waitExpired waits until the session's lease has expired by the store's
// clock.
func waitExpired(t *testing.T, b bundle, id store.SessionID) {
	t.Helper()
	testwait.Until(t, 10*time.Second, "the lease expires", func() bool {
		ss, err := b.s.Sessions(b.ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range ss {
			if s.SessionID == id {
				return s.LeaseRemaining <= 0
			}
		}
		return false
	})
}

// TestClaimEndsStalledBackendOfExpiredOwner: the claim of an expired lease
// whose row a stalled backend of its owner holds ends that backend and
// succeeds, within the lock timeout twice. It used to wait for as long as
// the backend lived.
func TestClaimEndsStalledBackendOfExpiredOwner(t *testing.T) {
	t.Parallel()
	b := leaseSetup(t, 2)
	id := store.SessionID{Source: "src", Partition: 0}
	// Long enough to outlive stallSession on a loaded machine: under 300 ms
	// the lease sometimes expired before the first claim below.
	la, err := b.s.Claim(b.ctx, id, "a", "", 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	stalled := stallSession(t, b.url, "bam node a", id)

	// Not expired yet: no wait, no harm done to the owner's backend.
	short, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	if _, err := b.s.Claim(short, id, "b", "a", time.Minute); !errors.Is(err, store.ErrNotClaimable) && !errors.Is(err, store.ErrLocked) {
		t.Fatalf("claim of a live lease = %v, want ErrNotClaimable", err)
	}

	waitExpired(t, b, id)
	start := time.Now()
	lb, err := b.s.Claim(short, id, "b", "a", time.Minute)
	took := time.Since(start)
	if err != nil {
		t.Fatalf("claim of the expired lease after %v: %v", took, err)
	}
	if lb.Epoch != la.Epoch+1 || lb.EndedBackends != 1 {
		t.Fatalf("claimed epoch %d, ended %d backends; want epoch %d, 1 backend", lb.Epoch, lb.EndedBackends, la.Epoch+1)
	}
	if took > 3*time.Second {
		t.Errorf("the claim took %v", took)
	}
	if stalled.Alive(t, b.url) {
		t.Error("the stalled backend of the expired owner still runs")
	}
	t.Logf("claimed after %v", took.Round(time.Millisecond))
}

// TestClaimSkipsRowLockedByOthers: a claim never ends a backend that is not
// the expired owner's; it gives up within the lock timeout with ErrLocked
// and other sessions can still be claimed.
func TestClaimSkipsRowLockedByOthers(t *testing.T) {
	t.Parallel()
	b := leaseSetup(t, 2)
	id := store.SessionID{Source: "src", Partition: 0}
	if _, err := b.s.Claim(b.ctx, id, "a", "", 200*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	// Named like node "c", and like a node whose id merely ends like a's.
	other := stallSession(t, b.url, "bam node c", id)
	waitExpired(t, b, id)
	short, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	start := time.Now()
	_, err := b.s.Claim(short, id, "b", "a", time.Minute)
	if !errors.Is(err, store.ErrLocked) {
		t.Fatalf("claim of a row a stranger holds = %v, want ErrLocked", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("the claim gave up after %v", took)
	}
	if !other.Alive(t, b.url) {
		t.Error("a backend of another node was ended")
	}
	if _, err := b.s.Claim(short, store.SessionID{Source: "src", Partition: 1}, "b", "", time.Minute); err != nil {
		t.Fatalf("claim of another session: %v", err)
	}
}

// TestRenewSkipsRowLockedByStalledBatch: a renewal does not wait behind a
// stalled batch of the node itself: it renews the other leases and the
// heartbeat, and returns the locked one Busy. It used to wait for as long
// as the batch's backend lived.
func TestRenewSkipsRowLockedByStalledBatch(t *testing.T) {
	t.Parallel()
	b := leaseSetup(t, 2)
	n := store.NodeRow{ID: "a", State: store.NodeRunning}
	if err := b.s.Join(b.ctx, n); err != nil {
		t.Fatal(err)
	}
	locked, free := store.SessionID{Source: "src", Partition: 0}, store.SessionID{Source: "src", Partition: 1}
	for _, id := range []store.SessionID{locked, free} {
		if _, err := b.s.Claim(b.ctx, id, "a", "", time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	stallSession(t, b.url, "bam node a", locked)
	short, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	start := time.Now()
	leases, err := b.s.Renew(short, n, time.Minute)
	took := time.Since(start)
	if err != nil {
		t.Fatalf("renew after %v: %v", took, err)
	}
	got := map[store.SessionID]bool{}
	for _, l := range leases {
		got[l.SessionID] = l.Busy
	}
	if busy, ok := got[locked]; !ok || !busy {
		t.Errorf("the locked lease: returned %v, busy %v; want returned busy", ok, busy)
	}
	if busy, ok := got[free]; !ok || busy {
		t.Errorf("the free lease: returned %v, busy %v; want returned, renewed", ok, busy)
	}
	if took > 3*time.Second {
		t.Errorf("the renewal took %v", took)
	}
}

// TestConnectionsNamedForNode: the connections a node's statements run on
// carry its id, which is how a claim tells the expired owner's backends.
func TestConnectionsNamedForNode(t *testing.T) {
	t.Parallel()
	b := leaseSetup(t, 1)
	n := store.NodeRow{ID: "a1b2", State: store.NodeRunning}
	if err := b.s.Join(b.ctx, n); err != nil {
		t.Fatal(err)
	}
	l, err := b.s.Claim(b.ctx, store.SessionID{Source: "src"}, n.ID, "", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.s.Renew(b.ctx, n, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := b.s.Apply(b.ctx, store.Batch{Lease: l, Node: n.ID, From: l.Checkpoint, Checkpoint: store.Position{Minor: 1}}); err != nil {
		t.Fatal(err)
	}
	c := connect(t, b.url)
	for _, want := range []string{"bam node a1b2", "bam-lease node a1b2"} {
		var k int
		if err := c.QueryRow(b.ctx, `SELECT count(*) FROM pg_stat_activity WHERE application_name = $1`, want).Scan(&k); err != nil {
			t.Fatal(err)
		}
		if k == 0 {
			t.Errorf("no connection named %q", want)
		}
	}
	if got := appNameFor(string(make([]byte, 80)), "id"); len(got) != maxAppName || got[len(got)-8:] != " node id" {
		t.Errorf("appNameFor of a long base = %q", got)
	}
}
