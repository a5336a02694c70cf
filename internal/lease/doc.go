// Package lease is one session's lease as this node holds it: the row the
// store granted (owner, epoch, checkpoint) and the local deadline after
// which the node must not commit under it, as a context that ends there.
//
// The store's clock decides who owns a session (DESIGN.md, "No expiry
// depends on a local clock"); the local deadline only makes a node stop
// before the store could let a peer in. It is the start of the last
// renewal that the store confirmed + TTL − safety margin, on this
// process's monotonic clock: a renewal that began at b and succeeded
// proves the lease ran at least until b + TTL on the store's clock, and
// the margin covers the clocks' drift over a TTL. The node renews every
// lease it holds in one statement (package pool); a session commits under
// the lease's context and knows nothing of renewals (package bus).
//
// # States
//
//	         Extend(later deadline)
//	           ┌──────┐
//	           ▼      │
//	New ──▶  held ────┘ ──── deadline passes ──────▶ ended: ErrExpired
//	           │
//	           ├──── Lose(cause) ───────────────────▶ ended: cause (ErrLost unless given)
//	           ├──── End(cause) ────────────────────▶ ended: cause (a handover, a stop)
//	           └──── the parent context ends ───────▶ ended: the parent's cause
//
// A renewal in flight when the deadline passes (Renewing … RenewDone)
// holds the end back until it returns: if it succeeded, it began before
// the deadline and proves the lease held, and Extend moves the deadline;
// if not, the lease ends then. Meanwhile the lease is not trusted, so a
// session commits nothing. This is what keeps a renewal that is slow but
// succeeds (a store busy for a moment) from stopping every idle session.
//
// An ended lease stays ended: Extend no longer moves its deadline, so a
// renewal that returns after the deadline passed cannot revive a session
// that may already have stopped (the node releases such a lease instead).
// Ctx().Done() closes on entering ended, and context.Cause(Ctx()) says why;
// Trusted reports held and before the deadline, which a session checks
// once more right before it commits.
package lease
