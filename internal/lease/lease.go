package lease

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/bam-dev/bam/internal/store"
)

var (
	// ErrExpired ends a lease whose local deadline passed before a renewal
	// moved it.
	ErrExpired = errors.New("the lease's local deadline passed before a renewal moved it")
	// ErrLost ends a lease the store no longer grants this node.
	ErrLost = errors.New("the store no longer holds the lease for this node")
)

// Lease is one session's lease held by this node. Its methods are safe
// for concurrent use.
type Lease struct {
	row    store.Lease
	ctx    context.Context
	cancel context.CancelCauseFunc

	mu       sync.Mutex
	deadline time.Time
	timer    *time.Timer
	ended    bool
	renewing int // renewals in flight (Renewing, not yet RenewDone)
}

// New holds row until deadline; the lease ends with parent too.
func New(parent context.Context, row store.Lease, deadline time.Time) *Lease {
	ctx, cancel := context.WithCancelCause(parent)
	l := &Lease{row: row, ctx: ctx, cancel: cancel, deadline: deadline}
	l.mu.Lock()
	l.timer = time.AfterFunc(time.Until(deadline), l.expire)
	l.mu.Unlock()
	context.AfterFunc(ctx, func() { l.end(context.Cause(ctx)) })
	return l
}

// Row returns the lease as the store granted it.
func (l *Lease) Row() store.Lease { return l.row }

// Ctx ends when the lease does; context.Cause says why.
func (l *Lease) Ctx() context.Context { return l.ctx }

// Done is Ctx().Done().
func (l *Lease) Done() <-chan struct{} { return l.ctx.Done() }

// Deadline returns the local deadline.
func (l *Lease) Deadline() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.deadline
}

// Trusted reports whether the lease is held and its deadline ahead.
func (l *Lease) Trusted() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return !l.ended && l.ctx.Err() == nil && time.Now().Before(l.deadline)
}

// Extend moves the deadline to until when that is later, after a renewal
// the store confirmed; it reports whether the lease is still held (an
// ended lease stays ended).
func (l *Lease) Extend(until time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ended || l.ctx.Err() != nil {
		return false
	}
	if until.After(l.deadline) {
		l.deadline = until
		l.timer.Reset(time.Until(until))
	}
	return true
}

// Renewing marks a renewal in flight: until the matching RenewDone the
// lease does not end at its deadline, since the renewal may yet prove it
// held (it began before the deadline), but it is not trusted past the
// deadline either, so nothing commits meanwhile. A renewal is bounded by
// its own timeout, so this delays the end by at most that.
func (l *Lease) Renewing() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.renewing++
}

// RenewDone ends a renewal marked by Renewing, after its Extend if it
// succeeded: a lease whose deadline has passed meanwhile ends now.
func (l *Lease) RenewDone() {
	l.mu.Lock()
	l.renewing--
	passed := l.renewing == 0 && !l.ended && !time.Now().Before(l.deadline)
	l.mu.Unlock()
	if passed {
		l.cancel(ErrExpired)
	}
}

// Lose ends the lease because the store no longer grants it; a nil cause
// is ErrLost.
func (l *Lease) Lose(cause error) {
	if cause == nil {
		cause = ErrLost
	}
	l.cancel(cause)
}

// End ends the lease for cause: the node stops using it (a handover, a
// stop). Whether the store's row is released is the caller's affair.
func (l *Lease) End(cause error) { l.cancel(cause) }

// expire runs when the timer fires: the deadline passed unless an Extend
// moved it meanwhile (then the timer was reset, or fires late). While a
// renewal is in flight, RenewDone decides instead.
func (l *Lease) expire() {
	l.mu.Lock()
	passed := !l.ended && !time.Now().Before(l.deadline) && l.renewing == 0
	if !passed && !l.ended && l.renewing == 0 {
		l.timer.Reset(time.Until(l.deadline))
	}
	l.mu.Unlock()
	if passed {
		l.cancel(ErrExpired)
	}
}

// end marks the lease ended once its context is.
func (l *Lease) end(error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ended = true
	l.timer.Stop()
}
