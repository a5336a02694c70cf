package eventstream

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/bam-dev/bam/internal/catalog"
	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/store"
)

// Defaults of BufferedOptions.
const (
	DefaultFlushThreshold = 500
	DefaultMaxPending     = 100_000
)

// Errors of a buffered stream, for errors.Is.
var (
	// ErrUnflushed is returned by Close while the stream holds events that
	// were never flushed. The stream stays open and keeps them: Flush, then
	// Close; or Discard them explicitly.
	ErrUnflushed = errors.New("event stream holds unflushed events")
	// ErrFlushFailed is wrapped by the error of a flush that could not
	// write its events to the store. The events are kept, in order, for
	// the next Flush: nothing is lost and nothing needs writing again. A
	// write method whose event reached FlushThreshold returns it too: that
	// event was accepted and is among those kept.
	ErrFlushFailed = errors.New("flush failed; the events are kept for a retry")
	// ErrStreamFull is returned by a write method when MaxPending events are
	// held and flushing them failed: that event was not accepted.
	ErrStreamFull = errors.New("event stream is full: its events could not be flushed")
)

// BufferedOptions configure a buffered stream. The zero value is the
// defaults.
type BufferedOptions struct {
	// FlushThreshold is the number of events held (in events) at which a
	// write method flushes them, before it returns. Default
	// DefaultFlushThreshold (500).
	FlushThreshold int
	// MaxPending bounds the events held in memory while flushes fail (in
	// events). A write that finds MaxPending events held flushes first and,
	// if that fails, is refused with ErrStreamFull. Default
	// DefaultMaxPending (100,000); at least FlushThreshold.
	MaxPending int
	// MaxEventSize bounds one event's JSON form, in bytes. Default 256 KiB,
	// the limit nodes apply (bam serve --max-event-size): a larger event
	// would be quarantined as a failed event.
	MaxEventSize int
	// Validate, if set, checks every event before it is accepted. A
	// buffered stream also checks every event against the activity
	// definitions deployed in the store (bam deploy), as nodes will.
	Validate Validator
}

// bufferStore is what a buffered stream needs of a store.
type bufferStore interface {
	AppendBuffer(ctx context.Context, source string, events []store.BufferEvent) error
}

// Buffered is a stream into a buffer source of the activity store. Events
// are held in memory and written in one store transaction when
// FlushThreshold of them are held or when Flush is called: an event is
// durable once a Flush (or a write that flushed) returns nil after it was
// accepted. A Buffered is safe for concurrent use; the events of one
// instance keep the order in which they were accepted.
//
// Close refuses to drop events: it returns ErrUnflushed while any are held.
type Buffered struct {
	emitter
	source     string
	partitions int
	threshold  int
	maxPending int
	st         bufferStore
	closeStore func() error

	// flushMu serializes flushes, so that batches reach the store in the
	// order their events were accepted. It is taken before mu.
	flushMu sync.Mutex
	mu      sync.Mutex
	pending []store.BufferEvent
	closed  bool
}

var _ Writer = (*Buffered)(nil)

// OpenBuffered opens the store at storeURL (postgres://… or sqlite:PATH, as
// bam's --store) with drv, its kind's driver (pgstream.New() or
// sqlitestream.New()), and returns a stream into its buffer source named
// source, which must exist (bam source add NAME --kind buffer) and be
// enabled. The stream owns the store connection: Close closes it. Open one
// stream per source and share it; it is safe for concurrent use.
func OpenBuffered(ctx context.Context, drv Driver, storeURL, source string, opts BufferedOptions) (*Buffered, error) {
	st, err := openStore(ctx, drv, storeURL)
	if err != nil {
		return nil, err
	}
	b, err := newBuffered(ctx, st, source, opts)
	if err != nil {
		st.Close()
		return nil, err
	}
	b.closeStore = st.Close
	return b, nil
}

// newBuffered returns a stream into source of an open store, which the
// caller keeps and closes.
func newBuffered(ctx context.Context, st DriverStore, source string, opts BufferedOptions) (*Buffered, error) {
	if err := st.CheckSchema(ctx); err != nil {
		return nil, fmt.Errorf("eventstream: store %s: %w", st.Driver(), err)
	}
	src, err := st.Source(ctx, source)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, fmt.Errorf("eventstream: the store has no source %q; add it with: bam source add %s --kind buffer --partitions 4", source, source)
	case err != nil:
		return nil, fmt.Errorf("eventstream: read source %q: %w", source, err)
	case src.Kind != store.KindBuffer:
		return nil, fmt.Errorf("eventstream: source %s is a %s source, not a buffer source: write its events with an Outbox inside the application's transactions", src.Name, src.Kind)
	case !src.Enabled:
		return nil, fmt.Errorf("eventstream: source %s is disabled; enable it first with: bam source enable %s", src.Name, src.Name)
	}
	b, err := newBufferedTo(st, src.Name, src.Partitions, opts)
	if err != nil {
		return nil, err
	}
	b.checks.defs = catalog.New(st, catalog.Options{})
	return b, nil
}

// newBufferedTo returns a stream into the buffer source named source with
// partitions partitions of st.
func newBufferedTo(st bufferStore, source string, partitions int, opts BufferedOptions) (*Buffered, error) {
	threshold := cmp.Or(opts.FlushThreshold, DefaultFlushThreshold)
	maxPending := cmp.Or(opts.MaxPending, max(DefaultMaxPending, threshold))
	switch {
	case threshold < 1:
		return nil, fmt.Errorf("eventstream: FlushThreshold must be 0 (the default, %d) or more, got %d", DefaultFlushThreshold, opts.FlushThreshold)
	case maxPending < threshold:
		return nil, fmt.Errorf("eventstream: MaxPending (%d) must be at least FlushThreshold (%d)", maxPending, threshold)
	case partitions < 1:
		return nil, fmt.Errorf("eventstream: source %s has %d partitions", source, partitions)
	}
	c, err := newChecks(opts.MaxEventSize, opts.Validate)
	if err != nil {
		return nil, err
	}
	b := &Buffered{source: source, partitions: partitions, threshold: threshold, maxPending: maxPending, st: st}
	b.emitter = emitter{sink: b, checks: c}
	return b, nil
}

// put holds a checked event, flushing when the threshold is reached.
func (b *Buffered) put(ctx context.Context, ev event.Event, payload []byte) error {
	b.mu.Lock()
	rec := store.BufferEvent{Partition: event.Partition(ev.Segment(), b.partitions), Payload: payload}
	if b.closed {
		b.mu.Unlock()
		return ErrClosed
	}
	if len(b.pending) >= b.maxPending {
		b.mu.Unlock()
		if n, err := b.flush(ctx); err != nil {
			// Not ErrFlushFailed: that would say this event was accepted.
			return fmt.Errorf("eventstream: %w (%d events held, the limit; a flush of %d failed): the %s event of %s %q was not accepted: %w",
				ErrStreamFull, b.maxPending, n, ev.Kind, ev.Activity, ev.Segment(), err)
		}
		return b.put(ctx, ev, payload)
	}
	b.pending = append(b.pending, rec)
	full := len(b.pending) >= b.threshold
	b.mu.Unlock()
	if !full {
		return nil
	}
	if n, err := b.flush(ctx); err != nil {
		return fmt.Errorf("eventstream: the %s event of %s %q was accepted, but %w: %d events to source %s: %w",
			ev.Kind, ev.Activity, ev.Segment(), ErrFlushFailed, n, b.source, err)
	}
	return nil
}

// Flush writes every event accepted so far to the store in one transaction
// and returns once they are durable. If the write fails, the error wraps
// ErrFlushFailed and the events are kept, in order, for the next Flush.
// Events accepted while a flush runs are left for the next one.
func (b *Buffered) Flush(ctx context.Context) error {
	if n, err := b.flush(ctx); err != nil {
		return fmt.Errorf("eventstream: %w: %d events to source %s: %w", ErrFlushFailed, n, b.source, err)
	}
	return nil
}

// flush is Flush returning the store's error as it is, and how many events
// it tried to write.
func (b *Buffered) flush(ctx context.Context) (int, error) {
	b.flushMu.Lock()
	defer b.flushMu.Unlock()
	b.mu.Lock()
	// Only a flush removes events, only from the front, and one at a time;
	// writers append behind: the batch stays valid without the lock.
	batch := b.pending[:len(b.pending):len(b.pending)]
	b.mu.Unlock()
	if len(batch) == 0 {
		return 0, nil
	}
	// A repartition of the source (bam source repartition) refuses events
	// filed under the old count: they are filed again, where the nodes
	// read them, and so is every put from now on.
	partitions, err := store.AppendRefiled(batch, func() error { return b.st.AppendBuffer(ctx, b.source, batch) })
	if partitions > 0 {
		b.mu.Lock()
		b.partitions = partitions
		b.mu.Unlock()
	}
	if err != nil {
		return len(batch), err
	}
	b.mu.Lock()
	rest := b.pending[len(batch):]
	if len(rest) == 0 {
		b.pending = nil // let the flushed events go
	} else {
		b.pending = append([]store.BufferEvent(nil), rest...)
	}
	b.mu.Unlock()
	return len(batch), nil
}

func (b *Buffered) isClosed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closed
}

// Pending returns the number of events accepted and not yet flushed.
func (b *Buffered) Pending() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.pending)
}

// Discard drops the events accepted and not yet flushed, and returns how
// many it dropped: the explicit way to give them up (before Close, when the
// store cannot be reached and the process must stop).
func (b *Buffered) Discard() int {
	b.flushMu.Lock()
	defer b.flushMu.Unlock()
	b.mu.Lock()
	defer b.mu.Unlock()
	n := len(b.pending)
	b.pending = nil
	return n
}

// Close closes the stream and the store it opened. While the stream holds
// unflushed events it returns an error wrapping ErrUnflushed, with their
// count, and stays open with the events kept: Flush and Close again, or
// Discard them. Closing a closed stream returns nil.
func (b *Buffered) Close(ctx context.Context) error {
	b.flushMu.Lock() // a flush in progress finishes first
	defer b.flushMu.Unlock()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	if n := len(b.pending); n > 0 {
		return fmt.Errorf("eventstream: %w: %d events for source %s; call Flush, then Close (or Discard them)", ErrUnflushed, n, b.source)
	}
	b.closed = true
	if b.closeStore != nil {
		if err := b.closeStore(); err != nil {
			return fmt.Errorf("eventstream: close the store: %w", err)
		}
	}
	return nil
}
