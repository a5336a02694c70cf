// Package pgstream is eventstream's driver for a PostgreSQL store, on pgx
// (github.com/jackc/pgx/v5). Pass New() to eventstream.OpenBuffered or
// eventstream.OpenDirect:
//
//	stream, err := eventstream.OpenBuffered(ctx, pgstream.New(), "postgres://bam@db/bam", "orders", eventstream.BufferedOptions{})
//
// It also holds what takes pgx's own types: DirectTx binds a direct stream,
// and OutboxTx an outbox, to a pgx.Tx. A program that imports this package
// and not sqlitestream links no SQLite.
package pgstream

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5"

	"github.com/bam-dev/bam/eventstream"
	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/store/postgres"
)

// Driver opens PostgreSQL stores for the streams of eventstream.
type Driver struct{}

// New returns the PostgreSQL driver.
func New() *Driver { return &Driver{} }

var _ eventstream.Driver = (*Driver)(nil)

// Open connects to the store at storeURL, a postgres://… (or
// postgresql://…) URL as bam's --store takes it. It checks that the server
// answers; the stream checks the schema.
func (*Driver) Open(ctx context.Context, storeURL string) (eventstream.DriverStore, error) {
	if !postgres.IsURL(storeURL) {
		if strings.HasPrefix(storeURL, "sqlite:") {
			return nil, fmt.Errorf("store URL %s is a SQLite store: open it with sqlitestream.New(), not pgstream's driver", storeURL)
		}
		// Not echoed: a connection string of another form could hold a
		// password.
		return nil, fmt.Errorf("the store URL is not a PostgreSQL one: pgstream's driver opens postgres://USER@HOST:PORT/DB")
	}
	st, err := postgres.Open(ctx, storeURL)
	if err != nil {
		return nil, err // it names the store, password masked
	}
	return &pgStore{Store: st}, nil
}

// pgStore is a PostgreSQL store as the streams use it.
type pgStore struct {
	*postgres.Store

	// identity is the store's (postgres.Identity), read when a caller's
	// transaction is first compared with it.
	idMu     sync.Mutex
	identity string
}

var _ eventstream.DriverStore = (*pgStore)(nil)

// SQLTx returns what writes events inside tx, a *sql.Tx of pgx's
// database/sql driver, through the pgx connection under it.
func (s *pgStore) SQLTx(tx *sql.Tx) eventstream.TxWriter {
	return &txWriter{st: s, through: func(ctx context.Context, write func(postgres.Tx) error) error {
		return onPgxConn(ctx, tx, func(conn *pgx.Conn) error { return write(conn) })
	}}
}

// DirectTx returns a Writer that writes each event of the direct stream d
// into its PostgreSQL store inside tx, a transaction on the store's
// database: the events are applied if and only if tx commits, and tx sees
// them at once. Nothing is written before the event passed every check, so
// a refused event (*eventstream.EventError) leaves tx usable, and so does
// an error wrapping eventstream.ErrNotOnStore (tx is on another database;
// d writes to a SQLite store). Any other error comes from the database,
// which then aborted tx: roll it back. The Writer is as safe for concurrent
// use as tx (a pgx.Tx is not).
func DirectTx(d *eventstream.Direct, tx pgx.Tx) *eventstream.DirectWriter {
	return d.Bind(func(st eventstream.DriverStore) eventstream.TxWriter {
		s, ok := st.(*pgStore)
		switch {
		case tx == nil:
			return refusal{fmt.Errorf("%w: pgstream.DirectTx was given a nil transaction", eventstream.ErrNotOnStore)}
		case !ok:
			return refusal{fmt.Errorf("%w: a pgx transaction cannot write to the %s store; use Direct.SQL with a *sql.Tx of a database opened with sqlitestream.DSN", eventstream.ErrNotOnStore, st.Driver())}
		}
		return &txWriter{st: s, through: func(_ context.Context, write func(postgres.Tx) error) error { return write(tx) }}
	})
}

// txWriter writes events through one transaction of the application,
// which through reaches.
type txWriter struct {
	st      *pgStore
	through func(ctx context.Context, write func(q postgres.Tx) error) error
	// bound says the transaction was found on the store. A failed check
	// is tried again on the next write.
	bound atomic.Bool
}

func (w *txWriter) Write(ctx context.Context, events []event.Event) error {
	return w.through(ctx, func(q postgres.Tx) error {
		if !w.bound.Load() {
			if err := w.st.sameDatabase(ctx, q); err != nil {
				return err
			}
			w.bound.Store(true)
		}
		return postgres.WriteEvents(ctx, q, events)
	})
}

// sameDatabase checks that q, a transaction of the application, is on the
// store's database. It only reads, and the reads cannot fail on a healthy
// transaction, so a mismatch leaves q usable.
func (s *pgStore) sameDatabase(ctx context.Context, q postgres.Tx) error {
	got, err := postgres.Identity(ctx, q)
	if err != nil {
		return fmt.Errorf("%w: %w", eventstream.ErrNotOnStore, err)
	}
	s.idMu.Lock()
	defer s.idMu.Unlock()
	if got == s.identity {
		return nil
	}
	// First use, or the server restarted since: ask the store again.
	if s.identity, err = s.Identity(ctx); err != nil {
		return fmt.Errorf("read the store's identity: %w", err)
	}
	if got != s.identity {
		return fmt.Errorf("%w: the transaction is on %s, the store is %s", eventstream.ErrNotOnStore, got, s.identity)
	}
	return nil
}

// refusal is the TxWriter of a transaction that cannot write to the store.
type refusal struct{ err error }

func (r refusal) Write(context.Context, []event.Event) error { return r.err }
