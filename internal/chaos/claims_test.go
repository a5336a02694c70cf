package chaos

import (
	"fmt"
	"testing"

	"github.com/bam-dev/bam/internal/pool"
)

// TestEveryClaimIsRecorded: each message a node logs a claim under is a
// claim to the checker, which looks for two nodes under one epoch. (A node
// that took its own expired lease back logged it under a new message the
// checker did not read.)
func TestEveryClaimIsRecorded(t *testing.T) {
	var c claimLog
	for i, msg := range pool.ClaimLogMessages {
		c.record(fmt.Appendf(nil, `{"time":"2026-12-05T00:00:00Z","msg":%q,"node":"n1","source":"orders","partition":%d,"epoch":%d}`, msg, i, i+1), "node-1")
	}
	if len(c.claims) != len(pool.ClaimLogMessages) {
		t.Fatalf("%d claims recorded of %d logged: %+v", len(c.claims), len(pool.ClaimLogMessages), c.claims)
	}
	if got := c.claims[1]; got.Node != "n1" || got.Epoch != 2 {
		t.Errorf("claim = %+v", got)
	}
}
