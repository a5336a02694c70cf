package pool

import (
	"time"

	"github.com/bam-dev/bam/internal/store"
)

// Metrics records what a node's loops do (package metrics implements
// it). A nil Config.Metrics records nothing.
type Metrics interface {
	// OwnerChanged records that this node gained or lost a session, and
	// why.
	OwnerChanged(id store.SessionID, cause OwnerChange)
	// Renewed records one renewal of every lease of the node (with its
	// heartbeat): how long it took, and its error.
	Renewed(took time.Duration, err error)
	// Balanced records one balance round: the sessions it handed over,
	// and its error.
	Balanced(handedOver int, err error)
}

// OwnerChange is why a session changed owner, as the node that gained it
// (claim, takeovers) or lost it (handoff, lost) saw it. A session that
// moves is counted on both sides: a handoff by the giver is a claim by the
// taker, a takeover by the taker is (if the loser lived to see it) lost by
// the loser.
type OwnerChange string

// The causes of OwnerChange.
const (
	// Claimed: a free session (never owned, released, or handed over)
	// claimed by this node.
	Claimed OwnerChange = "claim"
	// HandedOver: released by this node after its batch in hand
	// committed: to balance, because its source failed from here, or on
	// a clean stop.
	HandedOver OwnerChange = "handoff"
	// TakenFromDead: taken by this node from a peer found dead (its
	// liveness lock released with its connection, no heartbeat since) or
	// no longer a member.
	TakenFromDead OwnerChange = "takeover_death"
	// TakenFromExpired: taken by this node from a peer whose lease
	// expired (paused, cut off, or late to renew).
	TakenFromExpired OwnerChange = "takeover_expiry"
	// Lost: this node's session ended without a handoff: its lease
	// expired locally, a renewal or a balance round found a peer owns it,
	// or the store's fence refused its batch.
	Lost OwnerChange = "lost"
)

type noMetrics struct{}

func (noMetrics) OwnerChanged(store.SessionID, OwnerChange) {}
func (noMetrics) Renewed(time.Duration, error)              {}
func (noMetrics) Balanced(int, error)                       {}

// Owned returns how many sessions the node runs now.
func (n *Node) Owned() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.sessions)
}
