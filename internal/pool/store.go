package pool

import (
	"context"
	"time"

	"github.com/bam-dev/bam/internal/bus"
	"github.com/bam-dev/bam/internal/source/buffer"
	"github.com/bam-dev/bam/internal/store"
)

// Store is what a node needs of the store (store.Store has it all; each
// driver satisfies it): the membership, the leases, and what the node's
// sessions and readers need. The drivers' optional extras are found by
// type assertion: store.Liveness (liveness locks), store.Watcher
// (notices), store.BatchClaimer and store.BatchReleaser (a round's claims
// and releases in one statement each).
type Store interface {
	Membership
	Leases
	bus.Store
	buffer.Store
	Outboxes
}

// Membership is the pool's members, as the store records them.
type Membership interface {
	Join(ctx context.Context, n store.NodeRow) error
	Leave(ctx context.Context, nodeID string) error
	ForgetNode(ctx context.Context, nodeID string, why store.Departure) error
	Nodes(ctx context.Context) ([]store.NodeRow, error)
}

// Leases are the sessions' leases: the view a round decides from, and the
// statements that move ownership (store.Store says what each guarantees).
type Leases interface {
	Sessions(ctx context.Context) ([]store.SessionRow, error)
	Claim(ctx context.Context, id store.SessionID, node, prevOwner string, ttl time.Duration) (store.Lease, error)
	Renew(ctx context.Context, n store.NodeRow, ttl time.Duration) ([]store.Lease, error)
	Release(ctx context.Context, l store.Lease, node string) error
	GiveUp(ctx context.Context, l store.Lease, node, reason string) error
	ExpireLeases(ctx context.Context, nodeID string) (int, error)
}

// Outboxes is what the node's pg-outbox readers record in the store: the
// source's configuration, which outbox it reads, and why it stopped.
type Outboxes interface {
	Source(ctx context.Context, name string) (store.Source, error)
	RecordOutbox(ctx context.Context, name string, o store.OutboxIdentity) error
	StoreID(ctx context.Context) (string, error)
	StopOutbox(ctx context.Context, at store.SessionID, checkpoint store.Position, reason string) error
}

var _ Store = store.Store(nil)
