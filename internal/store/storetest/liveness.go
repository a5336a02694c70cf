package storetest

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/store"
	"github.com/bam-dev/bam/internal/testwait"
)

// RunLiveness holds the rules of the liveness locks (store.Liveness): a
// lock is seen held while its holder holds it, and free once the holder
// lets it go or its store is closed. open returns a fresh store; the
// suite migrates it if it has a schema. A store that is no store.Liveness
// skips them.
func RunLiveness(t *testing.T, open func(t *testing.T) PoolStore) {
	setup := func(t *testing.T) (PoolStore, context.Context) { return prepared(t, open) }

	t.Run("HeldUntilCtxEnds", func(t *testing.T) {
		t.Parallel()
		s, ctx := setup(t)
		lv := liveness(t, s)
		hctx, cancel := context.WithCancel(ctx)
		if _, err := lv.HoldLiveness(hctx, 4242); err != nil {
			t.Fatalf("HoldLiveness: %v", err)
		}
		held, err := lv.LivenessHeld(ctx, []int64{4242, 4243})
		if err != nil || !held[4242] || held[4243] {
			t.Fatalf("LivenessHeld = %v, %v; want 4242 held, 4243 not", held, err)
		}
		cancel()
		testwait.Until(t, 10*time.Second, "the lock to be free once its hold ended", func() bool {
			held, err := lv.LivenessHeld(ctx, []int64{4242})
			return err == nil && !held[4242]
		})
	})

	// Closing a store lets go of its locks by the time Close returns: a
	// peer sees the key free at once, and takes it.
	t.Run("EndsWithStore", func(t *testing.T) {
		t.Parallel()
		s, ctx := setup(t)
		lv := liveness(t, s)
		c, ok := s.(io.Closer)
		if !ok {
			t.Skip("the store has no Close")
		}
		peer := liveness(t, openPeer(t, s))
		if _, err := lv.HoldLiveness(context.Background(), 99); err != nil {
			t.Fatal(err)
		}
		if held, err := peer.LivenessHeld(ctx, []int64{99}); err != nil || !held[99] {
			t.Fatalf("LivenessHeld by a peer = %v, %v; want 99 held", held, err)
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		if held, err := peer.LivenessHeld(ctx, []int64{99}); err != nil || held[99] {
			t.Fatalf("LivenessHeld by a peer once Close returned = %v, %v; want 99 free", held, err)
		}
		if _, err := peer.HoldLiveness(ctx, 99); err != nil {
			t.Fatalf("a peer taking the key over: %v", err)
		}
	})
}

// liveness returns s's liveness locks, or skips the test if it has none.
func liveness(t *testing.T, s PoolStore) store.Liveness {
	t.Helper()
	lv, ok := s.(store.Liveness)
	if !ok {
		t.Skip("the store has no Liveness")
	}
	return lv
}
