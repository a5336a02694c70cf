package ops

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/bam-dev/bam/internal/source/pgoutbox"
	"github.com/bam-dev/bam/internal/store"
)

// pendingDeliveries is the alerts session's backlog: the deliveries that
// wait.
func (b *Backlogs) pendingDeliveries(ctx context.Context, bound int64) (int64, error) {
	as, ok := b.st.(store.AlertStore)
	if !ok {
		return 0, nil
	}
	bl, err := as.PendingDeliveries(ctx, bound)
	return bl.Events, err
}

// OutboxTimeout bounds how long a backlog waits for a pg-outbox database:
// one that does not answer must not hold up the rest of a status.
const OutboxTimeout = 2 * time.Second

// Backlogs counts sessions' backlogs: a buffer source's in the store, a
// pg-outbox source's in its database, whose reader it opens once per
// source. Close closes them. Not safe for concurrent use.
type Backlogs struct {
	st       store.Store
	outboxes map[string]*outbox
}

// NewBacklogs returns a Backlogs over st.
func NewBacklogs(st store.Store) *Backlogs {
	return &Backlogs{st: st, outboxes: map[string]*outbox{}}
}

// outbox is a pg-outbox source's reader, or why it could not be opened,
// and the holder of its server's horizon once looked for.
type outbox struct {
	r      *pgoutbox.Reader
	err    error
	holder *Holder
}

// Exact counts every event of se's backlog (a read of each: `bam
// status`).
func (b *Backlogs) Exact(ctx context.Context, se store.SessionRow) (int64, error) {
	switch se.Kind {
	case store.KindBuffer:
		return b.st.BufferBacklog(ctx, se.SessionID, se.Checkpoint)
	case store.KindPgOutbox:
		o := b.outbox(ctx, se.Source)
		if o.err != nil {
			return 0, o.err
		}
		ctx, cancel := context.WithTimeout(ctx, OutboxTimeout)
		defer cancel()
		return o.r.Backlog(ctx, se.Partition, se.Checkpoint)
	case store.KindAlerts:
		return b.pendingDeliveries(ctx, math.MaxInt32)
	}
	return 0, fmt.Errorf("unknown source kind %q", se.Kind)
}

// SessionBacklog is a session's backlog counted up to a bound, and, for a
// pg-outbox session, whether the server's horizon holds it back and by
// which transaction.
type SessionBacklog struct {
	store.Backlog
	// Held: the first event after the checkpoint cannot be read yet,
	// because a transaction of the outbox's server that started before it
	// is still open (pg-outbox only; a buffer's holds last a commit).
	Held bool
	// Holder is that transaction, when Held and it could be found.
	Holder *Holder
}

// Holder is the transaction that holds a pg-outbox server's horizon back
// (pgoutbox.Holder), or why it could not be found.
type Holder struct {
	*pgoutbox.Holder
	Err error
}

// Bounded counts se's backlog up to bound (store.Backlog.AtLeast past
// it), with the age of its oldest event, and for a pg-outbox session held
// back by its server's horizon, the transaction holding it.
func (b *Backlogs) Bounded(ctx context.Context, se store.SessionRow, bound int64) (SessionBacklog, error) {
	switch se.Kind {
	case store.KindBuffer:
		bl, err := b.st.BufferPending(ctx, se.SessionID, se.Checkpoint, bound)
		return SessionBacklog{Backlog: bl}, err
	case store.KindPgOutbox:
		o := b.outbox(ctx, se.Source)
		if o.err != nil {
			return SessionBacklog{}, o.err
		}
		ctx, cancel := context.WithTimeout(ctx, OutboxTimeout)
		defer cancel()
		bl, held, err := o.r.Pending(ctx, se.Partition, se.Checkpoint, bound)
		if err != nil || !held {
			return SessionBacklog{Backlog: bl}, err
		}
		if o.holder == nil {
			h, err := o.r.HorizonHolder(ctx)
			o.holder = &Holder{Holder: h, Err: err}
		}
		return SessionBacklog{Backlog: bl, Held: true, Holder: o.holder}, nil
	case store.KindAlerts:
		// No events: what waits is the firings' deliveries.
		as, ok := b.st.(store.AlertStore)
		if !ok {
			return SessionBacklog{}, nil
		}
		bl, err := as.PendingDeliveries(ctx, bound)
		return SessionBacklog{Backlog: bl}, err
	}
	return SessionBacklog{}, fmt.Errorf("unknown source kind %q", se.Kind)
}

func (b *Backlogs) outbox(ctx context.Context, name string) *outbox {
	if o, ok := b.outboxes[name]; ok {
		return o
	}
	o := &outbox{}
	b.outboxes[name] = o
	src, err := b.st.Source(ctx, name)
	if err != nil {
		o.err = fmt.Errorf("read source: %w", err)
		return o
	}
	ctx, cancel := context.WithTimeout(ctx, OutboxTimeout)
	defer cancel()
	o.r, o.err = pgoutbox.OpenSource(ctx, src)
	return o
}

// Close closes the pg-outbox readers it opened.
func (b *Backlogs) Close() {
	for _, o := range b.outboxes {
		if o.r != nil {
			_ = o.r.Close()
		}
	}
}
