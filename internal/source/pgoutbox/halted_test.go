package pgoutbox

import (
	"errors"
	"fmt"
	"testing"

	"github.com/bam-dev/bam/internal/source"
	"github.com/bam-dev/bam/internal/store"
)

// TestStopsAreHalts: the reader's stops (the outbox changed, its ids went
// back, another store reads it) say source.ErrHalted, so that a node keeps
// the session rather than hand it to a peer that would stop the same way,
// and keep their own sentinels for callers that branch on them.
func TestStopsAreHalts(t *testing.T) {
	r := &Reader{where: `"bam_outbox" on db`, source: "shop"}
	changed := r.changed(store.OutboxIdentity{SystemID: "1"}, store.OutboxIdentity{SystemID: "2"})
	for _, err := range []error{changed, fmt.Errorf("read: %w", ErrRewound), fmt.Errorf("claim: %w", ErrClaimed)} {
		if !errors.Is(err, source.ErrHalted) {
			t.Errorf("%v is no halt", err)
		}
	}
	if !errors.Is(changed, store.ErrOutboxChanged) {
		t.Errorf("%v lost store.ErrOutboxChanged", changed)
	}
}
