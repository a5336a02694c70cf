package pooltest

import (
	"context"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/store"
	"github.com/bam-dev/bam/internal/testpg"
	"github.com/bam-dev/bam/internal/testwait"
)

// TestTakeoverOfSessionStalledMidBatch: a node paused or cut off in the
// middle of sending a batch leaves its backend holding the session's row,
// "active" and waiting for the rest of the request. A healthy node must
// still claim every other session at once, and take the stalled one over
// once its lease has expired (DESIGN.md, "a lock held by a request that
// never finishes"). It used to wait on that row with no deadline, its
// balance loop frozen: it owned none of the 4 sessions.
func TestTakeoverOfSessionStalledMidBatch(t *testing.T) {
	url := testpg.NewDatabase(t)
	st := openPostgres(t, url)
	setupStore(t, st, 4)
	ctx := context.Background()
	// The gone node owned partition 0 (first in the claim order); its
	// lease has expired, and its backend stalled mid-batch holds the row.
	stalledID := store.SessionID{Source: "s", Partition: 0}
	if _, err := st.Claim(ctx, stalledID, "gone", "", 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	stalled := testpg.Stall(t, url, "bam node gone",
		`UPDATE bam_sessions SET applied_count = applied_count WHERE source = 's' AND partition = 0`)
	testwait.Until(t, 5*time.Second, "the gone node's lease to expire", func() bool { return ownedCount(t, st)["gone"] == 0 })

	cfg := fastConfig("healthy")
	start := time.Now()
	n := runNode(t, openPostgres(t, url), cfg)
	testwait.Until(t, 2*time.Second, "the healthy node to own the 3 free sessions", func() bool {
		return ownedCount(t, st)[n.ID()] >= 3
	})
	free := time.Since(start)
	testwait.Until(t, cfg.LeaseTTL+3*time.Second, "the healthy node to take the stalled session over", func() bool {
		return ownedCount(t, st)[n.ID()] == 4
	})
	t.Logf("3 free sessions owned after %v, the stalled one after %v", free.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	if stalled.Alive(t, url) {
		t.Error("the stalled backend of the expired owner still runs")
	}
}
