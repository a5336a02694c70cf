package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/store"
)

// RunLiveness holds the rules of the liveness locks (store.Liveness): a
// lock is seen held while its holder holds it, and free once the holder
// lets it go. open returns a fresh store; the suite migrates it if it has
// a schema. A store that is no store.Liveness skips them.
func RunLiveness(t *testing.T, open func(t *testing.T) PoolStore) {
	setup := func(t *testing.T) (PoolStore, context.Context) { return prepared(t, open) }

	t.Run("HeldUntilCtxEnds", func(t *testing.T) {
		t.Parallel()
		s, ctx := setup(t)
		lv, ok := s.(store.Liveness)
		if !ok {
			t.Skip("driver has no Liveness")
		}
		hctx, cancel := context.WithCancel(ctx)
		if _, err := lv.HoldLiveness(hctx, 4242); err != nil {
			t.Fatalf("HoldLiveness: %v", err)
		}
		held, err := lv.LivenessHeld(ctx, []int64{4242, 4243})
		if err != nil || !held[4242] || held[4243] {
			t.Fatalf("LivenessHeld = %v, %v; want 4242 held, 4243 not", held, err)
		}
		cancel()
		waitFor(t, 10*time.Second, func() bool {
			held, err := lv.LivenessHeld(ctx, []int64{4242})
			return err == nil && !held[4242]
		})
	})
}
