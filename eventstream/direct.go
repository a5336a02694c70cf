package eventstream

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"

	"github.com/bam-dev/bam/internal/catalog"
	"github.com/bam-dev/bam/internal/event"
)

// DirectOptions configures a Direct stream. The zero value is ready to use.
type DirectOptions struct {
	// MaxEventSize bounds one event's JSON form, in bytes. Default 256 KiB,
	// the limit nodes apply (bam serve --max-event-size).
	MaxEventSize int
	// Validate, if set, checks every event before it is written.
	Validate Validator
	// RequireDefinitions refuses the events of activities without a
	// deployed definition, as bam serve --require-definitions does for the
	// events nodes apply. By default such events are written untyped.
	RequireDefinitions bool
}

// Direct is a stream that writes each event synchronously into the store's
// instances: no buffer, no source, no node in between. A method of Direct
// writes its event in a store transaction of its own and returns once it
// committed: the instance shows the event when the method returns nil.
// SQL (and pgstream.DirectTx, for a pgx.Tx) return a Writer that writes
// inside the caller's transaction instead, so that the events commit if and
// only if it does.
//
// Every event is checked first, like the other streams' (including
// against the activity definitions deployed in the store); a refused event
// writes nothing. A Direct is safe for concurrent use; it owns a store
// connection pool, which Close closes.
type Direct struct {
	emitter
	st DriverStore

	// mu is held shared by every write and exclusively by Close, which
	// so waits for the writes in progress.
	mu     sync.RWMutex
	closed bool
}

var _ Writer = (*Direct)(nil)

// OpenDirect opens the store at storeURL (postgres://… or sqlite:PATH, as
// bam's --store) with drv, its kind's driver (pgstream.New() or
// sqlitestream.New()); the store must be migrated. It returns a direct
// stream into it, which owns the store connection: Close closes it. Open
// one and share it; it is safe for concurrent use.
func OpenDirect(ctx context.Context, drv Driver, storeURL string, opts DirectOptions) (*Direct, error) {
	st, err := openStore(ctx, drv, storeURL)
	if err != nil {
		return nil, err
	}
	d, err := newDirect(ctx, st, opts)
	if err != nil {
		st.Close()
		return nil, err
	}
	return d, nil
}

// newDirect returns a direct stream that owns st.
func newDirect(ctx context.Context, st DriverStore, opts DirectOptions) (*Direct, error) {
	if err := st.CheckSchema(ctx); err != nil {
		return nil, fmt.Errorf("eventstream: store %s: %w", st.Driver(), err)
	}
	c, err := newChecks(opts.MaxEventSize, opts.Validate)
	if err != nil {
		return nil, err
	}
	c.defs = catalog.New(st, catalog.Options{Strict: opts.RequireDefinitions})
	d := &Direct{st: st}
	d.emitter = emitter{sink: d, checks: c}
	return d, nil
}

// put writes a checked event in a transaction of its own.
func (d *Direct) put(ctx context.Context, ev event.Event, _ []byte) error {
	return d.writing(func() error {
		if err := d.st.WriteEvents(ctx, []event.Event{ev}); err != nil {
			return fmt.Errorf("eventstream: write the %s event of %s %q to the %s store: %w", ev.Kind, ev.Activity, ev.Segment(), d.st.Driver(), err)
		}
		return nil
	})
}

// writing runs write unless the stream is closed, keeping Close from
// closing the store under it.
func (d *Direct) writing(write func() error) error {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.closed {
		return ErrClosed
	}
	return write()
}

func (d *Direct) isClosed() bool {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.closed
}

func (w *DirectWriter) isClosed() bool { return w.d.isClosed() }

// Close waits for the writes in progress and closes the store. After Close,
// the methods of the stream and of the Writers bound to transactions
// return ErrClosed. Closing a closed stream returns nil.
func (d *Direct) Close(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	if err := d.st.Close(); err != nil {
		return fmt.Errorf("eventstream: close the store: %w", err)
	}
	return nil
}

// SQL returns a Writer that writes each event into the store inside tx, a
// database/sql transaction on the store's database: the events are applied
// if and only if tx commits, and tx sees them at once. Nothing is written
// before the event passed every check, so a refused event (*EventError)
// leaves tx usable, and so does an error wrapping ErrNotOnStore.
//
//   - On a SQLite store, tx must be on the store's file, opened with
//     sql.Open("sqlite", dsn) where dsn is sqlitestream.DSN's: IMMEDIATE
//     transactions, which hold the file's write lock from BEGIN, and the
//     store's SQL functions. A database error undoes the event's writes
//     (to a savepoint) and leaves tx usable, as it was before the call.
//   - On a PostgreSQL store, tx must come from pgx's database/sql driver
//     (github.com/jackc/pgx/v5/stdlib, sql.Open("pgx", ...)), whose
//     connection the events are written through, with the same statements
//     as pgstream.DirectTx (and one statement more per event, which hands
//     them to pgx); another driver is refused before anything is sent. A
//     database error aborts tx, as PostgreSQL does: roll it back.
//
// The Writer is as safe for concurrent use as tx.
func (d *Direct) SQL(tx *sql.Tx) *DirectWriter {
	if tx == nil {
		return d.Bind(func(DriverStore) TxWriter { return refusal{errNilTx} })
	}
	return d.Bind(func(st DriverStore) TxWriter { return st.SQLTx(tx) })
}

// Bind returns a Writer that writes each event through the TxWriter that
// bind makes of the stream's store. It is how a driver package binds a
// transaction of its own kind: pgstream.DirectTx binds a pgx.Tx.
// Applications call SQL, or such a function.
func (d *Direct) Bind(bind func(DriverStore) TxWriter) *DirectWriter {
	w := &DirectWriter{d: d, tx: bind(d.st)}
	w.emitter = emitter{sink: w, checks: d.checks}
	return w
}

// DirectWriter writes events into the store inside a caller's
// transaction. See Direct.SQL and Direct.Bind.
type DirectWriter struct {
	emitter
	d  *Direct
	tx TxWriter
}

var _ Writer = (*DirectWriter)(nil)

// ErrNotOnStore is wrapped by the errors of a Writer from Direct.SQL (or a
// driver package's, such as pgstream.DirectTx) whose transaction cannot
// write to the stream's store: of another driver, on another database, or
// nil. Nothing was written, and the transaction is as it was.
var ErrNotOnStore = errors.New("the transaction cannot write to this store")

// errNilTx is what a Writer bound to no transaction returns.
var errNilTx = fmt.Errorf("%w: Direct.SQL was given a nil transaction", ErrNotOnStore)

// refusal is the TxWriter of a transaction that cannot write to the store:
// every write returns err.
type refusal struct{ err error }

func (r refusal) Write(context.Context, []event.Event) error { return r.err }

// put writes a checked event through the caller's transaction.
func (w *DirectWriter) put(ctx context.Context, ev event.Event, _ []byte) error {
	return w.d.writing(func() error {
		err := w.tx.Write(ctx, []event.Event{ev})
		switch {
		case err == nil:
			return nil
		case errors.Is(err, ErrNotOnStore):
			return fmt.Errorf("eventstream: the %s event of %s %q was not written: %w", ev.Kind, ev.Activity, ev.Segment(), err)
		}
		return fmt.Errorf("eventstream: write the %s event of %s %q in the caller's transaction: %w", ev.Kind, ev.Activity, ev.Segment(), err)
	})
}
