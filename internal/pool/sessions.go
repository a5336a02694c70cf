package pool

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/bam-dev/bam/internal/bus"
	"github.com/bam-dev/bam/internal/lease"
	"github.com/bam-dev/bam/internal/source"
	"github.com/bam-dev/bam/internal/store"
)

// handOver stops a session after its batch in hand; it is released when
// it ends. It reports whether it began a handoff.
func (n *Node) handOver(id store.SessionID) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	r, ok := n.sessions[id]
	if !ok || r.handoff {
		return false
	}
	r.handoff = true
	r.s.Stop()
	return true
}

// start runs a session for a freshly claimed lease.
func (n *Node) start(workCtx context.Context, l store.Lease, kind store.SourceKind, trustedUntil time.Time) {
	ctx, cancel := context.WithCancel(workCtx)
	held := lease.New(ctx, l, trustedUntil)
	// The session's first batch checks the open reader against the
	// source's configuration (sameReader); the session goroutine alone
	// calls this function.
	checked := false
	var s Worker
	n.mu.Lock()
	newWorker := n.workers[kind]
	n.mu.Unlock()
	if newWorker != nil {
		s = newWorker(held)
	} else {
		s = bus.NewSession(n.cfg.Session, n.st, n.self.ID, held,
			func(ctx context.Context) (source.Reader, error) {
				r, err := n.reader(ctx, l.Source, !checked)
				checked = checked || err == nil
				return r, err
			}, n.log)
	}
	r := &running{s: s, lease: held, kind: kind, cancel: cancel, claimedAt: time.Now()}
	n.mu.Lock()
	n.sessions[l.SessionID] = r
	delete(n.claiming, l.SessionID)
	n.mu.Unlock()
	n.sessionWG.Add(1)
	go func() {
		defer n.sessionWG.Done()
		defer cancel()
		err := s.Run(ctx)
		n.mu.Lock()
		// Still in the map: neither a renewal nor a balance round took it
		// for lost (they counted it so).
		ours := n.sessions[l.SessionID] == r
		if ours {
			delete(n.sessions, l.SessionID)
		}
		handoff, giveUp := r.handoff, r.giveUp
		n.mu.Unlock()
		attrs := []any{"source", l.Source, "partition", l.Partition, "epoch", l.Epoch}
		switch {
		case errors.Is(err, lease.ErrLost):
			// renewed said why.
		case errors.Is(err, lease.ErrExpired):
			n.log.Warn("session stopped: its lease could not be renewed before its local deadline", attrs...)
			if ours {
				n.cfg.Metrics.OwnerChanged(l.SessionID, Lost)
			}
		case errors.Is(err, bus.ErrLost) && ours:
			// Nothing of the batch in hand was committed; the row says
			// who, or what, fenced it. (Not ours: a renewal or a balance
			// round found it lost first, and said why.)
			n.explainLost([]store.Lease{l}, "session lost to a newer owner; nothing of the batch in hand was committed", "reason", err)
			n.cfg.Metrics.OwnerChanged(l.SessionID, Lost)
		case errors.Is(err, bus.ErrLost):
		case err == nil && handoff && giveUp != "":
			rctx, cancel := context.WithTimeout(context.Background(), n.cfg.LeaseTTL)
			defer cancel()
			if err := n.st.GiveUp(rctx, l, n.self.ID, giveUp); err != nil {
				n.log.Warn("give up session: release failed; the lease will expire instead", append(attrs, "err", err)...)
			} else {
				n.cfg.Metrics.OwnerChanged(l.SessionID, HandedOver)
			}
		case err == nil && handoff:
			n.releaseHandedOver(l)
		}
	}()
	s.Wake()
}

// releaseQueue holds the leases of sessions handed over, from the end of
// their session until their release returns.
type releaseQueue struct {
	mu       sync.Mutex
	pending  []store.Lease // not yet being released
	flushing bool          // a session's goroutine is releasing
	queued   map[store.SessionID]bool
}

// holds reports whether the lease of id waits for its release or is being
// released: a renewal meanwhile still returns it, and must not take it for
// a stale one.
func (q *releaseQueue) holds(id store.SessionID) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.queued[id]
}

// releaseHandedOver releases the lease of a session stopped to be handed
// over. A balance round may hand over hundreds of sessions, which end at
// about the same time: the first to end releases its lease, then, in one
// statement where the driver can (store.BatchReleaser), every lease queued
// meanwhile, until none is left; the others only queue theirs. So the
// releases neither hold every lease connection while the renewal waits nor
// wake every node once per session, and the first waits for nobody.
func (n *Node) releaseHandedOver(l store.Lease) {
	q := &n.handedOver
	q.mu.Lock()
	q.pending = append(q.pending, l)
	if q.queued == nil {
		q.queued = map[store.SessionID]bool{}
	}
	q.queued[l.SessionID] = true
	if q.flushing {
		q.mu.Unlock()
		return
	}
	q.flushing = true
	for len(q.pending) > 0 {
		batch := q.pending
		q.pending = nil
		q.mu.Unlock()
		n.release(batch)
		q.mu.Lock()
		for _, l := range batch {
			delete(q.queued, l.SessionID)
		}
	}
	q.flushing = false
	q.mu.Unlock()
}

func (n *Node) release(leases []store.Lease) {
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.LeaseTTL)
	defer cancel()
	failed := map[store.SessionID]error{}
	if br, ok := n.st.(store.BatchReleaser); ok && len(leases) > 1 {
		if err := br.ReleaseBatch(ctx, leases, n.self.ID); err != nil {
			for _, l := range leases {
				failed[l.SessionID] = err
			}
		}
	} else {
		for _, l := range leases {
			if err := n.st.Release(ctx, l, n.self.ID); err != nil {
				failed[l.SessionID] = err
			}
		}
	}
	for _, l := range leases {
		attrs := []any{"source", l.Source, "partition", l.Partition, "epoch", l.Epoch}
		if err := failed[l.SessionID]; err != nil {
			n.log.Warn("hand over: release failed; the lease will expire instead", append(attrs, "err", err)...)
			continue
		}
		n.log.Info("session handed over", attrs...)
		n.cfg.Metrics.OwnerChanged(l.SessionID, HandedOver)
	}
}
