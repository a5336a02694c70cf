package eventstream

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/jackc/pgx/v5"

	"github.com/bam-dev/bam/internal/catalog"
	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/store"
	"github.com/bam-dev/bam/internal/store/postgres"
	"github.com/bam-dev/bam/internal/store/sqlite"
	"github.com/bam-dev/bam/internal/store/storeurl"
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

// directStore is a store that writes events in a transaction of its own:
// both drivers are.
type directStore interface {
	store.Store
	WriteEvents(ctx context.Context, events []event.Event) error
}

var (
	_ directStore = (*sqlite.Store)(nil)
	_ directStore = (*postgres.Store)(nil)
)

// Direct is a stream that writes each event synchronously into the store's
// instances: no buffer, no source, no node in between. A method of Direct
// writes its event in a store transaction of its own and returns once it
// committed: the instance shows the event when the method returns nil.
// Pgx and SQL return a Writer that writes inside the caller's transaction
// instead, so that the events commit if and only if it does.
//
// Every event is checked first, like the other streams' (including
// against the activity definitions deployed in the store); a refused event
// writes nothing. A Direct is safe for concurrent use; it owns a store
// connection pool, which Close closes.
type Direct struct {
	emitter
	st     directStore
	driver string

	// mu is held shared by every write and exclusively by Close, which
	// so waits for the writes in progress.
	mu     sync.RWMutex
	closed bool

	// identity is the PostgreSQL store's (postgres.Identity), read when a
	// caller's transaction is first compared with it.
	idMu     sync.Mutex
	identity string
}

var _ Writer = (*Direct)(nil)

// OpenDirect opens the store at storeURL (postgres://… or sqlite:PATH, as
// bam's --store), which must be migrated, and returns a direct stream into
// it. The stream owns the store connection: Close closes it. Open one and
// share it; it is safe for concurrent use.
func OpenDirect(ctx context.Context, storeURL string, opts DirectOptions) (*Direct, error) {
	st, err := storeurl.Open(ctx, storeURL)
	if err != nil {
		return nil, fmt.Errorf("eventstream: %w", err)
	}
	d, err := newDirect(ctx, st, opts)
	if err != nil {
		st.Close()
		return nil, err
	}
	return d, nil
}

// newDirect returns a direct stream that owns st.
func newDirect(ctx context.Context, st store.Store, opts DirectOptions) (*Direct, error) {
	ds, ok := st.(directStore)
	if !ok {
		return nil, fmt.Errorf("eventstream: the %s store cannot write events directly", st.Driver())
	}
	if err := st.CheckSchema(ctx); err != nil {
		return nil, fmt.Errorf("eventstream: store %s: %w", st.Driver(), err)
	}
	c, err := newChecks(opts.MaxEventSize, opts.Validate)
	if err != nil {
		return nil, err
	}
	c.defs = catalog.New(st, catalog.Options{Strict: opts.RequireDefinitions})
	d := &Direct{st: ds, driver: st.Driver()}
	d.emitter = emitter{sink: d, checks: c}
	return d, nil
}

// put writes a checked event in a transaction of its own.
func (d *Direct) put(ctx context.Context, ev event.Event, _ []byte) error {
	return d.writing(func() error {
		if err := d.st.WriteEvents(ctx, []event.Event{ev}); err != nil {
			return fmt.Errorf("eventstream: write the %s event of %s %q to the %s store: %w", ev.Kind, ev.Activity, ev.Segment(), d.driver, err)
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

// Pgx returns a Writer that writes each event into the PostgreSQL store
// inside tx, a transaction on the store's database: the events are applied
// if and only if tx commits, and tx sees them at once. Nothing is written
// before the event passed every check, so a refused event (*EventError)
// leaves tx usable, and so does an error wrapping ErrNotOnStore. Any other
// error comes from the database, which then aborted tx: roll it back. The Writer is as safe for concurrent use as tx
// (a pgx.Tx is not).
//
// On a SQLite store, every method returns an error saying so.
func (d *Direct) Pgx(tx pgx.Tx) *DirectWriter {
	w := &DirectWriter{d: d}
	switch {
	case tx == nil:
		w.refused = errNilTx
	case d.driver != "postgres":
		w.refused = fmt.Errorf("eventstream: %w: a pgx transaction cannot write to the %s store; use Direct.SQL with a *sql.Tx of a database opened with SQLiteDSN", ErrNotOnStore, d.driver)
	default:
		w.write = func(ctx context.Context, ev event.Event) error {
			if err := w.bindOnce(func() error { return d.samePostgres(ctx, tx) }); err != nil {
				return err
			}
			return postgres.WriteEvents(ctx, tx, []event.Event{ev})
		}
	}
	w.emitter = emitter{sink: w, checks: d.checks}
	return w
}

// SQL returns a Writer that writes each event into the store inside tx, a
// database/sql transaction on the store's database: the events are applied
// if and only if tx commits, and tx sees them at once. Nothing is written
// before the event passed every check, so a refused event (*EventError)
// leaves tx usable, and so does an error wrapping ErrNotOnStore.
//
//   - On a SQLite store, tx must be on the store's file, opened with
//     sql.Open("sqlite", dsn) where dsn is SQLiteDSN's: IMMEDIATE
//     transactions, which hold the file's write lock from BEGIN, and the
//     store's SQL functions. A database error undoes the event's writes
//     (to a savepoint) and leaves tx usable, as it was before the call.
//   - On a PostgreSQL store, tx must come from pgx's database/sql driver
//     (github.com/jackc/pgx/v5/stdlib, sql.Open("pgx", ...)), whose
//     connection the events are written through, with the same statements
//     as Pgx (and one statement more per event, which hands them to pgx);
//     another driver is refused before anything is sent. A database error
//     aborts tx, as PostgreSQL does: roll it back.
//
// The Writer is as safe for concurrent use as tx.
func (d *Direct) SQL(tx *sql.Tx) *DirectWriter {
	w := &DirectWriter{d: d}
	switch {
	case tx == nil:
		w.refused = errNilTx
	case d.driver == "postgres":
		w.write = func(ctx context.Context, ev event.Event) error {
			return onPgxConn(ctx, tx, func(conn *pgx.Conn) error {
				if err := w.bindOnce(func() error { return d.samePostgres(ctx, conn) }); err != nil {
					return err
				}
				return postgres.WriteEvents(ctx, conn, []event.Event{ev})
			})
		}
	default:
		w.write = func(ctx context.Context, ev event.Event) error {
			if err := w.bindOnce(func() error { return d.sameSQLite(ctx, tx) }); err != nil {
				return err
			}
			return inSavepoint(ctx, tx, func() error { return sqlite.WriteEvents(ctx, tx, []event.Event{ev}) })
		}
	}
	w.emitter = emitter{sink: w, checks: d.checks}
	return w
}

// DirectWriter writes events into the store inside a caller's
// transaction. See Direct.Pgx and Direct.SQL.
type DirectWriter struct {
	emitter
	d *Direct
	// refused, when set, is what every method returns: the transaction
	// cannot write to this store.
	refused error
	write   func(ctx context.Context, ev event.Event) error

	// bound says the transaction was found to be on the store.
	bindMu sync.Mutex
	bound  bool
}

var _ Writer = (*DirectWriter)(nil)

// ErrNotOnStore is wrapped by the errors of a Writer from Direct.Pgx or
// Direct.SQL whose transaction cannot write to the stream's store: of
// another driver, or on another database. Nothing was written, and the
// transaction is as it was.
var ErrNotOnStore = errors.New("the transaction cannot write to this store")

// errNilTx is what a Writer bound to no transaction returns.
var errNilTx = fmt.Errorf("eventstream: %w: Direct.Pgx or Direct.SQL was given a nil transaction", ErrNotOnStore)

// put writes a checked event through the caller's transaction.
func (w *DirectWriter) put(ctx context.Context, ev event.Event, _ []byte) error {
	if w.refused != nil {
		return w.refused
	}
	return w.d.writing(func() error {
		err := w.write(ctx, ev)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, ErrNotOnStore):
			return fmt.Errorf("eventstream: the %s event of %s %q was not written: %w", ev.Kind, ev.Activity, ev.Segment(), err)
		}
		return fmt.Errorf("eventstream: write the %s event of %s %q in the caller's transaction: %w", ev.Kind, ev.Activity, ev.Segment(), err)
	})
}

// bindOnce runs check until it succeeds once: the transaction is on the
// store. A failed check is tried again on the next write.
func (w *DirectWriter) bindOnce(check func() error) error {
	w.bindMu.Lock()
	defer w.bindMu.Unlock()
	if w.bound {
		return nil
	}
	if err := check(); err != nil {
		return err
	}
	w.bound = true
	return nil
}

// samePostgres checks that tx is on the store's database. It only reads,
// and the reads cannot fail on a healthy transaction, so a mismatch leaves
// tx usable.
func (d *Direct) samePostgres(ctx context.Context, tx postgres.Tx) error {
	got, err := postgres.Identity(ctx, tx)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrNotOnStore, err)
	}
	d.idMu.Lock()
	defer d.idMu.Unlock()
	if got == d.identity {
		return nil
	}
	// First use, or the server restarted since: ask the store again.
	st := d.st.(*postgres.Store)
	if d.identity, err = st.Identity(ctx); err != nil {
		return fmt.Errorf("read the store's identity: %w", err)
	}
	if got != d.identity {
		return fmt.Errorf("%w: the transaction is on %s, the store is %s", ErrNotOnStore, got, d.identity)
	}
	return nil
}

// sameSQLite checks that tx is a SQLite transaction on the store's file
// whose connection has the store's SQL functions, without writing.
func (d *Direct) sameSQLite(ctx context.Context, tx *sql.Tx) error {
	path := d.st.(*sqlite.Store).Path()
	// A statement PostgreSQL refuses would abort the caller's transaction:
	// find a pgx one first, before anything is sent.
	if err := onPgxConn(ctx, tx, func(*pgx.Conn) error { return errOnPostgres }); errors.Is(err, errOnPostgres) {
		return fmt.Errorf("%w: the transaction is on PostgreSQL (pgx's database/sql driver), the store is the SQLite file %s", ErrNotOnStore, path)
	}
	var file string
	err := tx.QueryRowContext(ctx, `SELECT file FROM pragma_database_list WHERE name = 'main'`).Scan(&file)
	if errors.Is(err, sql.ErrTxDone) || ctx.Err() != nil {
		return err
	}
	if err != nil {
		return fmt.Errorf("%w: the transaction is not on a SQLite database (%w); the store is the SQLite file %s", ErrNotOnStore, err, path)
	}
	if !sameFile(file, path) {
		return fmt.Errorf("%w: the transaction is on the SQLite file %q, the store is %s", ErrNotOnStore, file, path)
	}
	var merged string
	if err := tx.QueryRowContext(ctx, `SELECT bam_merge_items(NULL, NULL)`).Scan(&merged); err != nil {
		return fmt.Errorf("%w: its connection lacks the store's SQL functions (%w): open the database with sql.Open(\"sqlite\", dsn), dsn from SQLiteDSN, and no connection before", ErrNotOnStore, err)
	}
	return nil
}

// errOnPostgres is how sameSQLite's probe stops a pgx connection.
var errOnPostgres = errors.New("a PostgreSQL connection")

func sameFile(a, b string) bool {
	fa, err := os.Stat(a)
	if err != nil {
		return false
	}
	fb, err := os.Stat(b)
	return err == nil && os.SameFile(fa, fb)
}

// inSavepoint runs write inside a savepoint of tx, rolled back to when
// write fails, so that a failed write leaves tx as it was. For SQLite,
// where a failed statement does not abort the transaction and a caller
// that commits anyway would commit half an event's writes.
func inSavepoint(ctx context.Context, tx *sql.Tx, write func() error) error {
	if _, err := tx.ExecContext(ctx, `SAVEPOINT bam_direct`); err != nil {
		return err
	}
	if err := write(); err != nil {
		ctx := context.WithoutCancel(ctx) // undo even when ctx ended the write
		_, rerr := tx.ExecContext(ctx, `ROLLBACK TO bam_direct`)
		if rerr == nil {
			_, rerr = tx.ExecContext(ctx, `RELEASE bam_direct`)
		}
		if rerr != nil {
			return fmt.Errorf("%w; and undoing it failed, roll the transaction back: %w", err, rerr)
		}
		return err
	}
	_, err := tx.ExecContext(ctx, `RELEASE bam_direct`)
	return err
}

// pgxRewriter runs fn on the *pgx.Conn under a *sql.Tx of pgx's
// database/sql driver. The driver hands a statement's arguments to pgx as
// they are; pgx gives a pgx.QueryRewriter among them its connection before
// it sends anything, and the connection is in tx's transaction. fn's
// statements so run in tx, with the same code as through a pgx.Tx.
type pgxRewriter struct {
	fn     func(*pgx.Conn) error
	called bool
	err    error
}

func (r *pgxRewriter) RewriteQuery(_ context.Context, conn *pgx.Conn, query string, args []any) (string, []any, error) {
	r.called = true
	if r.err = r.fn(conn); r.err != nil {
		return "", nil, r.err // nothing more is sent
	}
	return query, args, nil
}

var _ pgx.QueryRewriter = (*pgxRewriter)(nil)

// errNotPgx is the error of onPgxConn when tx is not of pgx's driver.
var errNotPgx = fmt.Errorf("%w: it is not of pgx's database/sql driver (github.com/jackc/pgx/v5/stdlib), which a PostgreSQL store needs", ErrNotOnStore)

// onPgxConn runs fn on the pgx connection of tx, in tx's transaction, and
// returns fn's error; errNotPgx when tx is not of pgx's database/sql
// driver (then fn did not run, and the driver refused the statement before
// running it, or ran a SELECT 1).
func onPgxConn(ctx context.Context, tx *sql.Tx, fn func(*pgx.Conn) error) error {
	r := &pgxRewriter{fn: fn}
	_, err := tx.ExecContext(ctx, `SELECT 1`, r)
	switch {
	case r.called && r.err != nil:
		return r.err
	case r.called:
		return err
	case errors.Is(err, sql.ErrTxDone), errors.Is(err, driver.ErrBadConn), ctx.Err() != nil:
		return err // database/sql did not reach the driver
	case err != nil:
		return fmt.Errorf("%w (%w)", errNotPgx, err)
	}
	return errNotPgx
}

// SQLiteDSN returns what to pass to sql.Open("sqlite", ...) (the SQLite
// driver modernc.org/sqlite, which this package registers) to open the
// SQLite store at storeURL (sqlite:PATH) as the application's own
// database, for Direct.SQL: the store's connection settings, IMMEDIATE
// transactions, and the store's SQL functions on every connection.
func SQLiteDSN(storeURL string) (string, error) {
	path, ok := storeurl.SQLitePath(storeURL)
	if !ok || path == "" {
		return "", fmt.Errorf("eventstream: %q is not a SQLite store URL (sqlite:PATH)", storeURL)
	}
	dsn, err := sqlite.DataSourceName(path)
	if err != nil {
		return "", fmt.Errorf("eventstream: %w", err)
	}
	return dsn, nil
}
