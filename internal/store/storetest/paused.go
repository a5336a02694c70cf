package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/store"
)

// RunPausedSources holds the rules of a paused source: it takes writes, no
// session of it can be claimed, and once resumed its sessions go on from
// their checkpoints. Pausing and disabling are independent. open returns
// a fresh store; the suite migrates it if it has a schema.
func RunPausedSources(t *testing.T, open func(t *testing.T) PoolStore) {
	setup := func(t *testing.T) (PoolStore, context.Context) { return prepared(t, open) }

	t.Run("PauseAndResume", func(t *testing.T) {
		t.Parallel()
		s, ctx := setup(t)
		mustAddBuffer(t, ctx, s, "src", 2)
		joinNodes(t, ctx, s, "a")
		p0, p1 := store.SessionID{Source: "src", Partition: 0}, store.SessionID{Source: "src", Partition: 1}
		held, err := s.Claim(ctx, p0, "a", "", 30*time.Second)
		if err != nil {
			t.Fatalf("Claim before the pause: %v", err)
		}

		if err := s.SetSourcePaused(ctx, "src", true); err != nil {
			t.Fatalf("SetSourcePaused(true): %v", err)
		}
		if src, err := s.Source(ctx, "src"); err != nil || !src.Paused || !src.Enabled {
			t.Fatalf("Source after the pause = %+v, %v; want paused and still enabled", src, err)
		}
		for _, se := range mustSessions(t, ctx, s) {
			if !se.SourcePaused || !se.SourceEnabled || se.Applies() {
				t.Errorf("session %v of a paused source: paused %t, enabled %t, applies %t; want paused, enabled, not applying",
					se.SessionID, se.SourcePaused, se.SourceEnabled, se.Applies())
			}
		}

		// Writes are accepted, and wait.
		if err := s.AppendBuffer(ctx, "src", []store.BufferEvent{{Partition: 1, Payload: []byte(`{"activity":"A","instance":"1","kind":"begin"}`)}}); err != nil {
			t.Fatalf("AppendBuffer to a paused source: %v", err)
		}
		if n := buffered(t, ctx, s, "src", 2); n != 1 {
			t.Fatalf("%d events buffered, want 1", n)
		}

		// No session can be claimed, one by one or together.
		if _, err := s.Claim(ctx, p1, "a", "", 30*time.Second); !errors.Is(err, store.ErrNotClaimable) {
			t.Fatalf("Claim of a paused source's session = %v, want ErrNotClaimable", err)
		}
		if bc, ok := s.(store.BatchClaimer); ok {
			leases, err := bc.ClaimBatch(ctx, []store.ClaimRequest{{ID: p1}}, "a", 30*time.Second)
			if err != nil || len(leases) != 0 {
				t.Fatalf("ClaimBatch of a paused source's session = %+v, %v; want none", leases, err)
			}
		}

		// The pause takes nothing from the owner of a session: its batch in
		// hand commits, then it lets the session go.
		if err := s.Apply(ctx, store.Batch{Lease: held, Node: "a", From: held.Checkpoint, Checkpoint: store.Position{Minor: 7}}); err != nil {
			t.Fatalf("Apply of the batch in hand after the pause: %v", err)
		}
		if err := s.Release(ctx, held, "a"); err != nil {
			t.Fatalf("Release: %v", err)
		}

		if err := s.SetSourcePaused(ctx, "nope", true); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("SetSourcePaused(nope) = %v, want ErrNotFound", err)
		}

		// Disabled and paused are two flags: enabling a paused source
		// leaves it paused.
		if err := s.SetSourceEnabled(ctx, "src", false); err != nil {
			t.Fatal(err)
		}
		if err := s.SetSourceEnabled(ctx, "src", true); err != nil {
			t.Fatal(err)
		}
		if src, _ := s.Source(ctx, "src"); !src.Paused {
			t.Fatalf("disable then enable resumed the source: %+v", src)
		}
		if _, err := s.Claim(ctx, p0, "a", "", 30*time.Second); !errors.Is(err, store.ErrNotClaimable) {
			t.Fatalf("Claim of a paused source's session after enable = %v, want ErrNotClaimable", err)
		}

		// Resumed, the sessions go on from their checkpoints.
		if err := s.SetSourcePaused(ctx, "src", false); err != nil {
			t.Fatalf("SetSourcePaused(false): %v", err)
		}
		if src, _ := s.Source(ctx, "src"); src.Paused {
			t.Fatalf("source still paused after resume: %+v", src)
		}
		l0, err := s.Claim(ctx, p0, "a", "", 30*time.Second)
		if err != nil || l0.Checkpoint != (store.Position{Minor: 7}) || l0.Epoch != held.Epoch+1 {
			t.Fatalf("Claim after resume = %+v, %v; want checkpoint 0/7, epoch %d", l0, err, held.Epoch+1)
		}
		if _, err := s.Claim(ctx, p1, "a", "", 30*time.Second); err != nil {
			t.Fatalf("Claim of partition 1 after resume: %v", err)
		}
		if n := buffered(t, ctx, s, "src", 2); n != 1 {
			t.Errorf("%d events buffered after resume, want the 1 written while paused", n)
		}
	})

	t.Run("AddPaused", func(t *testing.T) {
		t.Parallel()
		s, ctx := setup(t)
		if err := s.AddSource(ctx, store.Source{Name: "later", Kind: store.KindBuffer, Partitions: 1, Enabled: true, Paused: true}); err != nil {
			t.Fatal(err)
		}
		if src, _ := s.Source(ctx, "later"); !src.Paused {
			t.Errorf("source added paused is not: %+v", src)
		}
		mustAddBuffer(t, ctx, s, "now", 1)
		if src, _ := s.Source(ctx, "now"); src.Paused {
			t.Errorf("source added is paused: %+v", src)
		}
	})
}
