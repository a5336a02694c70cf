package memstore_test

import (
	"testing"

	"github.com/bam-dev/bam/internal/store/memstore"
	"github.com/bam-dev/bam/internal/store/storetest"
)

var _ storetest.PoolStore = (*memstore.Store)(nil)

// TestLeaseConformance holds the in-memory store to the areas of the
// conformance suite the drivers pass that it implements: membership,
// leases and Apply's fence, paused sources, the buffer, notices, liveness
// locks and departed nodes.
func TestLeaseConformance(t *testing.T) {
	t.Parallel()
	storetest.RunPool(t, func(*testing.T) storetest.PoolStore { return memstore.New() })
}
