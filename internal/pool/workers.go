package pool

import (
	"context"
	"time"

	"github.com/bam-dev/bam/internal/bus"
	"github.com/bam-dev/bam/internal/lease"
	"github.com/bam-dev/bam/internal/store"
)

// A Worker runs a session of a built-in kind, such as the evaluation of
// the alerts (store.KindAlerts), instead of a bus.Session: the node deals,
// claims, renews, hands over and releases it like any session, and the
// worker does its work under the lease it is given (doc.go, "A session's
// lease, as one node sees it"). Its methods mean what bus.Session's do.
type Worker interface {
	// Run works until Stop (the work in hand done: returns nil), ctx ends
	// (returns ctx's error) or the lease ends or is fenced (an error
	// wrapping bus.ErrLost, lease.ErrExpired or lease.ErrLost).
	Run(ctx context.Context) error
	Stop()
	Wake()
	Lease() store.Lease
	// SourceTrouble is when the worker began failing for a reason this
	// node alone may have, and why; zero when it works.
	SourceTrouble() (since time.Time, err string)
}

// NewWorker makes the worker of a session just claimed, under held.
type NewWorker func(held *lease.Lease) Worker

var _ Worker = (*bus.Session)(nil)

// AttachWorker has the node run the sessions of kind with workers made by
// newWorker. It must be called before Run. A node without a worker for a
// built-in kind neither claims nor counts its sessions, so that a node
// that cannot run them never holds them.
func (n *Node) AttachWorker(kind store.SourceKind, newWorker NewWorker) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.started {
		panic("pool: Node.AttachWorker called after Run")
	}
	n.workers[kind] = newWorker
}

// runs reports whether the node can run sessions of kind: the kinds of
// event sources, and those it has a worker for.
func (n *Node) runs(kind store.SourceKind) bool {
	if kind == store.KindBuffer || kind == store.KindPgOutbox {
		return true
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	_, ok := n.workers[kind]
	return ok
}
