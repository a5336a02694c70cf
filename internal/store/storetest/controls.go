package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/store"
)

// RunOperatorControls holds the rules of what an operator changes in the
// pool as a whole (store.OperatorControls): the pool-wide pause, draining
// nodes, moved sessions and the audit log. open returns a fresh store with
// no schema.
func RunOperatorControls(t *testing.T, open func(t *testing.T) store.Store) {
	setup := func(t *testing.T) (store.Store, context.Context) { return prepared(t, open) }
	const ttl = 30 * time.Second

	t.Run("PoolPause", func(t *testing.T) {
		t.Parallel()
		s, ctx := setup(t)
		mustAddBuffer(t, ctx, s, "src", 2)
		joinNodes(t, ctx, s, "a")
		p0, p1 := store.SessionID{Source: "src", Partition: 0}, store.SessionID{Source: "src", Partition: 1}
		held, err := s.Claim(ctx, p0, "a", "", ttl)
		if err != nil {
			t.Fatal(err)
		}
		if p, err := s.PoolState(ctx); err != nil || p.Paused || p.PausedAt != nil || p.PausedBy != "" {
			t.Fatalf("PoolState of a new store = %+v, %v; want not paused", p, err)
		}
		if err := s.SetPoolPaused(ctx, true, "ops@host1"); err != nil {
			t.Fatalf("SetPoolPaused(true): %v", err)
		}
		first, err := s.PoolState(ctx)
		if err != nil || !first.Paused || first.PausedAt == nil || first.PausedBy != "ops@host1" {
			t.Fatalf("PoolState after the pause = %+v, %v; want paused by ops@host1, with a time", first, err)
		}
		for _, se := range mustSessions(t, ctx, s) {
			if !se.PoolPaused || se.Applies() || se.SourcePaused || !se.SourceEnabled {
				t.Errorf("session %v of a paused pool: pool paused %t, applies %t, source paused %t, enabled %t; want only the pool paused",
					se.SessionID, se.PoolPaused, se.Applies(), se.SourcePaused, se.SourceEnabled)
			}
		}
		// Writers keep writing; nothing can be claimed, one by one or together.
		if err := s.AppendBuffer(ctx, "src", []store.BufferEvent{{Partition: 1, Payload: []byte(`{"activity":"A","instance":"1","kind":"begin"}`)}}); err != nil {
			t.Fatalf("AppendBuffer while the pool is paused: %v", err)
		}
		if _, err := s.Claim(ctx, p1, "a", "", ttl); !errors.Is(err, store.ErrNotClaimable) {
			t.Fatalf("Claim while the pool is paused = %v, want ErrNotClaimable", err)
		}
		if bc, ok := s.(store.BatchClaimer); ok {
			leases, err := bc.ClaimBatch(ctx, []store.ClaimRequest{{ID: p1}}, "a", ttl)
			if err != nil || len(leases) != 0 {
				t.Fatalf("ClaimBatch while the pool is paused = %+v, %v; want none", leases, err)
			}
		}
		// The owner's batch in hand still commits: the pause stops sessions
		// after it, it does not fence it.
		if err := s.Apply(ctx, store.Batch{Lease: held, Node: "a", From: held.Checkpoint, Checkpoint: store.Position{Minor: 3}}); err != nil {
			t.Fatalf("Apply of the batch in hand after the pause: %v", err)
		}
		// Pausing again keeps who paused first, and when.
		if err := s.SetPoolPaused(ctx, true, "other@host2"); err != nil {
			t.Fatal(err)
		}
		if again, err := s.PoolState(ctx); err != nil || again.PausedBy != "ops@host1" || !again.PausedAt.Equal(*first.PausedAt) {
			t.Errorf("PoolState after a second pause = %+v, %v; want the first pause's author and time", again, err)
		}
		if err := s.SetPoolPaused(ctx, false, "ops@host1"); err != nil {
			t.Fatalf("SetPoolPaused(false): %v", err)
		}
		if p, err := s.PoolState(ctx); err != nil || p.Paused || p.PausedAt != nil || p.PausedBy != "" {
			t.Fatalf("PoolState after the resume = %+v, %v; want not paused", p, err)
		}
		l, err := s.Claim(ctx, p1, "a", "", ttl)
		if err != nil || l.Checkpoint != (store.Position{}) {
			t.Fatalf("Claim after the resume = %+v, %v; want the session from its checkpoint", l, err)
		}
	})

	t.Run("DrainingNode", func(t *testing.T) {
		t.Parallel()
		s, ctx := setup(t)
		joinNodes(t, ctx, s, "a", "b")
		if err := s.SetNodeDraining(ctx, "a", true); err != nil {
			t.Fatalf("SetNodeDraining(a): %v", err)
		}
		draining := func() map[string]bool {
			out := map[string]bool{}
			for _, n := range mustNodes(t, ctx, s) {
				out[n.ID] = n.Draining
			}
			return out
		}
		if d := draining(); !d["a"] || d["b"] {
			t.Fatalf("draining after SetNodeDraining(a) = %v; want a only", d)
		}
		// The node's own heartbeat leaves the mark alone: only an operator
		// sets and clears it.
		if _, err := s.Renew(ctx, node("a"), ttl); err != nil {
			t.Fatal(err)
		}
		if d := draining(); !d["a"] {
			t.Fatalf("a renewal cleared the draining mark: %v", d)
		}
		if err := s.SetNodeDraining(ctx, "a", false); err != nil {
			t.Fatal(err)
		}
		if d := draining(); d["a"] {
			t.Fatalf("draining after SetNodeDraining(a, false) = %v", d)
		}
		if err := s.SetNodeDraining(ctx, "nobody", true); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("SetNodeDraining(nobody) = %v, want ErrNotFound", err)
		}
	})

	t.Run("MovedSession", func(t *testing.T) {
		t.Parallel()
		s, ctx := setup(t)
		mustAddBuffer(t, ctx, s, "src", 1)
		joinNodes(t, ctx, s, "a", "b", "c")
		id := store.SessionID{Source: "src", Partition: 0}
		held, err := s.Claim(ctx, id, "a", "", ttl)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.MoveSession(ctx, id, "b"); err != nil {
			t.Fatalf("MoveSession(b): %v", err)
		}
		if se := session(t, ctx, s, id); se.MoveTo != "b" || se.Owner != "a" {
			t.Fatalf("session after the move = owner %q, moving to %q; want a, b", se.Owner, se.MoveTo)
		}
		if err := s.Release(ctx, held, "a"); err != nil {
			t.Fatal(err)
		}
		// The node it moved to keeps the mark: the session stays with it.
		if _, err := s.Claim(ctx, id, "b", "", ttl); err != nil {
			t.Fatal(err)
		}
		if se := session(t, ctx, s, id); se.MoveTo != "b" || se.Owner != "b" {
			t.Fatalf("session claimed by b = owner %q, moving to %q; want b, b", se.Owner, se.MoveTo)
		}
		// Another node's claim (b stopped working) forgets the move.
		if _, err := s.ExpireLeases(ctx, "b"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Claim(ctx, id, "c", "b", ttl); err != nil {
			t.Fatal(err)
		}
		if se := session(t, ctx, s, id); se.MoveTo != "" || se.Owner != "c" {
			t.Fatalf("session claimed by c = owner %q, moving to %q; want c and no move", se.Owner, se.MoveTo)
		}
		if err := s.MoveSession(ctx, id, "a"); err != nil {
			t.Fatal(err)
		}
		if err := s.MoveSession(ctx, id, ""); err != nil {
			t.Fatal(err)
		}
		if se := session(t, ctx, s, id); se.MoveTo != "" {
			t.Fatalf("MoveSession(\"\") left the move to %q", se.MoveTo)
		}
		if err := s.MoveSession(ctx, store.SessionID{Source: "src", Partition: 9}, "a"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("MoveSession of a session that does not exist = %v, want ErrNotFound", err)
		}
	})

	t.Run("AuditLog", func(t *testing.T) {
		t.Parallel()
		s, ctx := setup(t)
		if log, err := s.AuditLog(ctx, 10); err != nil || len(log) != 0 {
			t.Fatalf("AuditLog of a new store = %+v, %v", log, err)
		}
		before := time.Now().Add(-time.Minute)
		for _, e := range []store.AuditEntry{
			{Who: "ops@h", Action: "pause"},
			{Who: "ops@h", Action: "node drain", Target: "n1", Detail: "3 sessions"},
			{Who: "dev@h", Action: "resume"},
		} {
			if err := s.RecordAudit(ctx, e); err != nil {
				t.Fatalf("RecordAudit(%+v): %v", e, err)
			}
		}
		log, err := s.AuditLog(ctx, 2)
		if err != nil || len(log) != 2 {
			t.Fatalf("AuditLog(2) = %+v, %v; want 2 entries", log, err)
		}
		if log[0].Action != "resume" || log[0].Who != "dev@h" || log[1].Action != "node drain" || log[1].Target != "n1" || log[1].Detail != "3 sessions" {
			t.Errorf("AuditLog(2) = %+v; want the latest first", log)
		}
		if log[0].ID <= log[1].ID || log[0].At.Before(before) || log[0].At.After(time.Now().Add(time.Minute)) {
			t.Errorf("AuditLog ids and times = %+v", log)
		}
	})
}
