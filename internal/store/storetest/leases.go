package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/store"
	"github.com/bam-dev/bam/internal/testwait"
)

// instanceReader reads what Apply wrote, in a store that keeps instances
// (memstore does not: the lease tests check its sessions alone).
type instanceReader interface {
	Instance(ctx context.Context, k event.Key) (store.Instance, error)
}

// RunLeases holds the rules of the pool's membership and of the sessions'
// leases: who may claim, renew, release and give up a session, that the
// epoch fences every write of a node that lost it, and that leases end by
// the store's clock. open returns a fresh store; the suite migrates it if
// it has a schema.
func RunLeases(t *testing.T, open func(t *testing.T) PoolStore) {
	setup := func(t *testing.T) (PoolStore, context.Context) { return prepared(t, open) }

	t.Run("Membership", func(t *testing.T) {
		t.Parallel()
		s, ctx := setup(t)
		n := store.NodeRow{ID: "n1", Name: "alpha", Host: "h1", PID: 42, StartedAt: time.Now().UTC().Truncate(time.Second), State: store.NodeRunning, LockKey: 7}
		if err := s.Join(ctx, n); err != nil {
			t.Fatalf("Join: %v", err)
		}
		nodes, err := s.Nodes(ctx)
		if err != nil || len(nodes) != 1 {
			t.Fatalf("Nodes = %+v, %v", nodes, err)
		}
		got := nodes[0]
		if got.ID != "n1" || got.Name != "alpha" || got.Host != "h1" || got.PID != 42 || got.LockKey != 7 || got.State != store.NodeRunning {
			t.Errorf("node row = %+v", got)
		}
		if got.HeartbeatAge < -time.Second || got.HeartbeatAge > 5*time.Second {
			t.Errorf("fresh node's HeartbeatAge = %v", got.HeartbeatAge)
		}
		if err := s.ForgetNode(ctx, "n1", store.Departure{FoundDeadBy: "n0", Why: "test"}); err != nil {
			t.Fatalf("ForgetNode: %v", err)
		}
		if nodes, _ := s.Nodes(ctx); len(nodes) != 0 {
			t.Fatalf("Nodes after ForgetNode = %+v", nodes)
		}
		n.State = store.NodeStopping
		if _, err := s.Renew(ctx, n, time.Second); err != nil {
			t.Fatalf("Renew of a forgotten node: %v", err)
		}
		nodes, _ = s.Nodes(ctx)
		if len(nodes) != 1 || nodes[0].State != store.NodeStopping {
			t.Fatalf("Renew must put a forgotten node back with its state; Nodes = %+v", nodes)
		}
		if err := s.Leave(ctx, "n1"); err != nil {
			t.Fatalf("Leave: %v", err)
		}
		if nodes, _ := s.Nodes(ctx); len(nodes) != 0 {
			t.Fatalf("Nodes after Leave = %+v", nodes)
		}
	})

	t.Run("ClaimRenewRelease", func(t *testing.T) {
		t.Parallel()
		s, ctx := setup(t)
		mustAddBuffer(t, ctx, s, "src", 2)
		id := store.SessionID{Source: "src", Partition: 1}
		joinNodes(t, ctx, s, "a", "b")

		la, err := s.Claim(ctx, id, "a", "", 30*time.Second)
		if err != nil || la.Epoch != 1 || la.SessionID != id {
			t.Fatalf("Claim free = %+v, %v; want epoch 1", la, err)
		}
		if _, err := s.Claim(ctx, id, "b", "", 30*time.Second); !errors.Is(err, store.ErrNotClaimable) {
			t.Fatalf("Claim of an owned session as free = %v, want ErrNotClaimable", err)
		}
		if _, err := s.Claim(ctx, id, "b", "a", 30*time.Second); !errors.Is(err, store.ErrNotClaimable) {
			t.Fatalf("Claim over a live lease = %v, want ErrNotClaimable", err)
		}
		se := session(t, ctx, s, id)
		if se.Owner != "a" || se.Epoch != 1 || se.LeaseRemaining < 20*time.Second || se.LeaseRemaining > 31*time.Second {
			t.Fatalf("session after claim = %+v", se)
		}

		leases, err := s.Renew(ctx, node("a"), 30*time.Second)
		if err != nil || len(leases) != 1 || leases[0].SessionID != id || leases[0].Epoch != 1 {
			t.Fatalf("Renew(a) = %+v, %v", leases, err)
		}
		if leases, _ := s.Renew(ctx, node("b"), 30*time.Second); len(leases) != 0 {
			t.Fatalf("Renew(b) = %+v, want none", leases)
		}

		if err := s.Release(ctx, la, "b"); err != nil {
			t.Fatalf("Release by a non-owner must be a no-op: %v", err)
		}
		if se := session(t, ctx, s, id); se.Owner != "a" {
			t.Fatalf("Release by b freed a's session")
		}
		if err := s.Release(ctx, la, "a"); err != nil {
			t.Fatalf("Release: %v", err)
		}
		if se := session(t, ctx, s, id); se.Owner != "" || se.Epoch != 1 {
			t.Fatalf("after Release: %+v; want free, epoch 1", se)
		}
		lb, err := s.Claim(ctx, id, "b", "", 200*time.Millisecond)
		if err != nil || lb.Epoch != 2 {
			t.Fatalf("Claim after release = %+v, %v; want epoch 2", lb, err)
		}
		// Wait out b's short lease by the store's clock.
		testwait.Until(t, 5*time.Second, "the lease to expire", func() bool { return session(t, ctx, s, id).LeaseRemaining <= 0 })
		if leases, _ := s.Renew(ctx, node("b"), 30*time.Second); len(leases) != 0 {
			t.Fatalf("Renew must not revive an expired lease; got %+v", leases)
		}
		la2, err := s.Claim(ctx, id, "a", "b", 30*time.Second)
		if err != nil || la2.Epoch != 3 {
			t.Fatalf("take over an expired lease = %+v, %v; want epoch 3", la2, err)
		}

		// ExpireLeases makes a live lease claimable at once.
		n, err := s.ExpireLeases(ctx, "a")
		if err != nil || n != 1 {
			t.Fatalf("ExpireLeases = %d, %v; want 1", n, err)
		}
		lb2, err := s.Claim(ctx, id, "b", "a", 30*time.Second)
		if err != nil || lb2.Epoch != 4 {
			t.Fatalf("Claim after ExpireLeases = %+v, %v; want epoch 4", lb2, err)
		}

		// Leave releases everything the node owns.
		other := store.SessionID{Source: "src", Partition: 0}
		if _, err := s.Claim(ctx, other, "b", "", 30*time.Second); err != nil {
			t.Fatalf("Claim partition 0: %v", err)
		}
		if err := s.Leave(ctx, "b"); err != nil {
			t.Fatalf("Leave: %v", err)
		}
		for _, se := range mustSessions(t, ctx, s) {
			if se.Owner != "" {
				t.Errorf("after Leave(b), %v still owned by %q", se.SessionID, se.Owner)
			}
		}

		// A disabled source's sessions cannot be claimed.
		if err := s.SetSourceEnabled(ctx, "src", false); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Claim(ctx, other, "a", "", 30*time.Second); !errors.Is(err, store.ErrNotClaimable) {
			t.Fatalf("Claim of a disabled source = %v, want ErrNotClaimable", err)
		}
	})

	t.Run("ClaimBatch", func(t *testing.T) {
		t.Parallel()
		s, ctx := setup(t)
		bc, ok := s.(store.BatchClaimer)
		if !ok {
			t.Skip("the driver has no ClaimBatch")
		}
		mustAddBuffer(t, ctx, s, "src", 3)
		joinNodes(t, ctx, s, "a", "b")
		id := func(p int) store.SessionID { return store.SessionID{Source: "src", Partition: p} }
		for _, p := range []int{1, 2} {
			if _, err := s.Claim(ctx, id(p), "b", "", 30*time.Second); err != nil {
				t.Fatalf("Claim: %v", err)
			}
		}
		// 0 is free; 1 and 2 are b's, under live leases.
		got, err := bc.ClaimBatch(ctx, []store.ClaimRequest{{ID: id(0)}, {ID: id(1)}, {ID: id(2), PrevOwner: "b"}}, "a", 30*time.Second)
		if err != nil || len(got) != 1 || got[0].SessionID != id(0) || got[0].Epoch != 1 {
			t.Fatalf("ClaimBatch = %+v, %v; want only partition 0, at epoch 1", got, err)
		}
		if se := session(t, ctx, s, id(0)); se.Owner != "a" || se.LeaseRemaining < 20*time.Second {
			t.Fatalf("partition 0 after ClaimBatch: %+v", se)
		}
		if _, err := s.ExpireLeases(ctx, "b"); err != nil {
			t.Fatalf("ExpireLeases: %v", err)
		}
		got, err = bc.ClaimBatch(ctx, []store.ClaimRequest{{ID: id(1), PrevOwner: "b"}, {ID: id(2), PrevOwner: "b"}}, "a", 30*time.Second)
		if err != nil || len(got) != 2 || got[0].Epoch != 2 || got[1].Epoch != 2 {
			t.Fatalf("ClaimBatch of expired leases = %+v, %v; want both, at epoch 2", got, err)
		}
		if got, err := bc.ClaimBatch(ctx, nil, "a", 30*time.Second); err != nil || len(got) != 0 {
			t.Fatalf("ClaimBatch of nothing = %+v, %v", got, err)
		}
	})

	t.Run("ReleaseBatch", func(t *testing.T) {
		t.Parallel()
		s, ctx := setup(t)
		br, ok := s.(store.BatchReleaser)
		if !ok {
			t.Skip("the driver has no ReleaseBatch")
		}
		mustAddBuffer(t, ctx, s, "src", 4)
		joinNodes(t, ctx, s, "a", "b")
		var mine []store.Lease
		for p := range 3 {
			l, err := s.Claim(ctx, store.SessionID{Source: "src", Partition: p}, "a", "", 30*time.Second)
			if err != nil {
				t.Fatalf("Claim: %v", err)
			}
			mine = append(mine, l)
		}
		theirs, err := s.Claim(ctx, store.SessionID{Source: "src", Partition: 3}, "b", "", 30*time.Second)
		if err != nil {
			t.Fatalf("Claim: %v", err)
		}
		// Partition 2 under an older epoch: a's lease of it is stale.
		stale := mine[2]
		stale.Epoch--
		if err := br.ReleaseBatch(ctx, []store.Lease{mine[0], mine[1], stale, theirs}, "a"); err != nil {
			t.Fatalf("ReleaseBatch: %v", err)
		}
		for p, want := range []string{"", "", "a", "b"} {
			if se := session(t, ctx, s, store.SessionID{Source: "src", Partition: p}); se.Owner != want || se.Epoch != 1 {
				t.Errorf("partition %d after ReleaseBatch: owner %q, epoch %d; want %q, 1", p, se.Owner, se.Epoch, want)
			}
		}
		if err := br.ReleaseBatch(ctx, nil, "a"); err != nil {
			t.Fatalf("ReleaseBatch of nothing: %v", err)
		}
	})

	// Apply is fenced on owner, epoch and From: a batch under a lost
	// epoch, by another node, or a retry of one that committed (its answer
	// lost) writes nothing.
	t.Run("ApplyIsFenced", func(t *testing.T) {
		t.Parallel()
		s, ctx := setup(t)
		mustAddBuffer(t, ctx, s, "src", 1)
		joinNodes(t, ctx, s, "a", "b")
		id := store.SessionID{Source: "src", Partition: 0}
		la, err := s.Claim(ctx, id, "a", "", 200*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		testwait.Until(t, 5*time.Second, "the lease to expire", func() bool { return session(t, ctx, s, id).LeaseRemaining <= 0 })
		lb, err := s.Claim(ctx, id, "b", "a", 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		stale := batch(la, "a", store.Position{Minor: 5}, ev("PO", "1", event.Begin, 0, nil))
		if err := s.Apply(ctx, stale); !errors.Is(err, store.ErrFenced) {
			t.Fatalf("Apply under a lost epoch = %v, want ErrFenced", err)
		}
		instances, keeps := s.(instanceReader)
		if keeps {
			if _, err := instances.Instance(ctx, event.Key{Activity: "PO", Instance: "1"}); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("a fenced batch wrote its instance (Instance err = %v)", err)
			}
		}
		se := session(t, ctx, s, id)
		if se.Checkpoint != (store.Position{}) || se.Applied != 0 {
			t.Fatalf("a fenced batch moved the checkpoint: %+v", se)
		}
		fresh := batch(lb, "b", store.Position{Major: 1, Minor: 5}, ev("PO", "1", event.Begin, 0, nil))
		fresh.From = store.Position{}
		fresh.Failures = []store.Failure{{SessionID: id, Position: store.Position{Major: 1, Minor: 4}, Reason: "kind: unknown kind \"x\"", Payload: []byte(`{"kind":"x"}`)}}
		if err := s.Apply(ctx, fresh); err != nil {
			t.Fatalf("Apply by the owner: %v", err)
		}
		se = session(t, ctx, s, id)
		if se.Checkpoint != (store.Position{Major: 1, Minor: 5}) || se.Applied != 1 || se.Failed != 1 {
			t.Fatalf("after Apply: %+v; want checkpoint {1 5}, applied 1, failed 1", se)
		}
		// The wrong node under the right epoch is fenced too.
		wrong := batch(lb, "a", store.Position{Major: 1, Minor: 9}, ev("PO", "2", event.Begin, 0, nil))
		wrong.From = se.Checkpoint
		if err := s.Apply(ctx, wrong); !errors.Is(err, store.ErrFenced) {
			t.Fatalf("Apply by a non-owner = %v, want ErrFenced", err)
		}
		// A retry of a batch that did commit (its answer lost) is refused:
		// the checkpoint is no longer where the batch starts.
		if err := s.Apply(ctx, fresh); !errors.Is(err, store.ErrFenced) {
			t.Fatalf("Apply of the same batch again = %v, want ErrFenced", err)
		}
		if se := session(t, ctx, s, id); se.Checkpoint != fresh.Checkpoint || se.Applied != 1 {
			t.Fatalf("after a refused retry: %+v; want checkpoint {1 5}, applied 1", se)
		}
		if keeps {
			if in, err := instances.Instance(ctx, event.Key{Activity: "PO", Instance: "1"}); err != nil || in.Events != 1 {
				t.Fatalf("instance counts %d events after a refused retry (%v), want 1", in.Events, err)
			}
		}
	})

	t.Run("RecordError", func(t *testing.T) {
		t.Parallel()
		s, ctx := setup(t)
		mustAddBuffer(t, ctx, s, "src", 1)
		joinNodes(t, ctx, s, "a")
		id := store.SessionID{Source: "src"}
		l, err := s.Claim(ctx, id, "a", "", 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.RecordError(ctx, l, "a", "read source: connection refused"); err != nil {
			t.Fatal(err)
		}
		se := session(t, ctx, s, id)
		if se.LastError != "read source: connection refused" || se.LastErrorAt == nil {
			t.Fatalf("after RecordError: %+v", se)
		}
		if err := s.RecordError(ctx, l, "a", ""); err != nil {
			t.Fatal(err)
		}
		if se := session(t, ctx, s, id); se.LastError != "" {
			t.Fatalf("RecordError(\"\") did not clear: %+v", se)
		}
	})

	// A node that lost its session (a newer epoch, another owner) cannot
	// write what the session shows: its error would hide the new owner's
	// state, or clear the new owner's error.
	t.Run("RecordErrorFenced", func(t *testing.T) {
		t.Parallel()
		s, ctx := setup(t)
		mustAddBuffer(t, ctx, s, "src", 1)
		joinNodes(t, ctx, s, "a", "b")
		id := store.SessionID{Source: "src"}
		old, err := s.Claim(ctx, id, "a", "", time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		var current store.Lease
		testwait.Until(t, 5*time.Second, "b to claim the expired lease", func() bool {
			current, err = s.Claim(ctx, id, "b", "a", 30*time.Second)
			return err == nil
		})
		if err := s.RecordError(ctx, current, "b", "read source: timeout"); err != nil {
			t.Fatal(err)
		}
		for _, try := range []struct {
			node string
			l    store.Lease
			msg  string
		}{
			{"a", old, "stale owner's error"},
			{"a", old, ""},
			{"b", old, "b under the old epoch"},
			{"a", current, "a under b's epoch"},
		} {
			if err := s.RecordError(ctx, try.l, try.node, try.msg); !errors.Is(err, store.ErrFenced) {
				t.Errorf("RecordError by %s at epoch %d = %v, want ErrFenced", try.node, try.l.Epoch, err)
			}
		}
		if se := session(t, ctx, s, id); se.LastError != "read source: timeout" {
			t.Fatalf("last error = %q, want the owner's", se.LastError)
		}
	})

	// A node that cannot reach a source gives the session up: it is free,
	// names the node to deal it to last, and shows why; a node that does
	// not own it under that epoch changes nothing.
	t.Run("GiveUp", func(t *testing.T) {
		t.Parallel()
		s, ctx := setup(t)
		mustAddBuffer(t, ctx, s, "src", 1)
		joinNodes(t, ctx, s, "a", "b")
		id := store.SessionID{Source: "src"}
		l, err := s.Claim(ctx, id, "a", "", 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.GiveUp(ctx, l, "b", "not b's"); err != nil {
			t.Fatal(err)
		}
		if se := session(t, ctx, s, id); se.Owner != "a" || se.GivenUpBy != "" || se.LastError != "" {
			t.Fatalf("after a GiveUp by a node that does not own it: %+v", se)
		}
		if err := s.GiveUp(ctx, l, "a", "read source: connection refused"); err != nil {
			t.Fatal(err)
		}
		se := session(t, ctx, s, id)
		if se.Owner != "" || se.GivenUpBy != "a" || se.LastError != "read source: connection refused" || se.LastErrorAt == nil {
			t.Fatalf("after GiveUp: %+v", se)
		}
		lb, err := s.Claim(ctx, id, "b", "", 30*time.Second)
		if err != nil || lb.Epoch != l.Epoch+1 {
			t.Fatalf("claim after GiveUp = %+v, %v", lb, err)
		}
		if se := session(t, ctx, s, id); se.GivenUpBy != "a" {
			t.Fatalf("GivenUpBy forgotten by a claim: %+v (it lasts store.GiveUpMemory)", se)
		}
	})
}
