package pooltest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/store"
	"github.com/bam-dev/bam/internal/testwait"
)

// TestRepartitionIsNoLoss: a repartition fences every session of its
// source, and the node that ran them says so, once a session, as an
// operator's change: not as a loss to a peer or a pause of its own (it
// logged "session lost: a peer owns it now (this node was paused or cut
// off…)" with no new owner, and two other loss lines).
func TestRepartitionIsNoLoss(t *testing.T) {
	eachStore(t, func(t *testing.T, open func() store.Store) {
		st := open()
		setupStore(t, st, 4)
		n := runNode(t, open(), fastConfig("a"))
		testwait.Until(t, 10*time.Second, "the node to own the four sessions", func() bool { return ownedCount(t, st)[n.ID()] == 4 })
		if _, err := st.Repartition(context.Background(), "s", 2); err != nil {
			t.Fatal(err)
		}
		const fenced = "session fenced by a change to its source (bam source repartition or reset-checkpoint): nothing of the batch in hand was committed; it is claimed again from its new checkpoint"
		const ended = "session ended: its source or partition no longer exists (bam source remove or repartition)"
		const stopped = "stopping session: its source or partition no longer exists (bam source remove or repartition)"
		testwait.Until(t, 10*time.Second, "the node to own the two new sessions", func() bool { return ownedCount(t, st)[n.ID()] == 2 })
		// Each of the four said why, as the change it was.
		testwait.Until(t, 5*time.Second, "the node to say why it stopped its four sessions", func() bool {
			return n.log.Count(fenced, "")+n.log.Count(ended, "")+n.log.Count(stopped, "") >= 4
		})
		for _, line := range n.log.Messages() {
			if strings.HasPrefix(line, "session lost") {
				n.log.Dump(t)
				t.Fatalf("a repartition logged %q", line)
			}
		}
	})
}
