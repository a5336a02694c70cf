// Package sqlitestream is eventstream's driver for a SQLite store, on
// modernc.org/sqlite (pure Go, no cgo). Pass New() to
// eventstream.OpenBuffered or eventstream.OpenDirect:
//
//	stream, err := eventstream.OpenDirect(ctx, sqlitestream.New(), "sqlite:bam-data/bam.db", eventstream.DirectOptions{})
//
// DSN opens the store's file as the application's own database, so that
// Direct.SQL writes events in the application's transactions. A program
// that imports this package and not pgstream links no PostgreSQL client.
// Importing it registers modernc.org/sqlite's database/sql driver,
// "sqlite".
package sqlitestream

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"

	"github.com/bam-dev/bam/eventstream"
	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/store/sqlite"
)

// Driver opens SQLite stores for the streams of eventstream.
type Driver struct{}

// New returns the SQLite driver.
func New() *Driver { return &Driver{} }

var _ eventstream.Driver = (*Driver)(nil)

// Open opens the store file a sqlite:PATH URL names, as bam's --store
// takes it.
func (*Driver) Open(ctx context.Context, storeURL string) (eventstream.DriverStore, error) {
	if _, ok := sqlite.PathOf(storeURL); !ok {
		if strings.HasPrefix(storeURL, "postgres://") || strings.HasPrefix(storeURL, "postgresql://") {
			return nil, errors.New("the store URL is a PostgreSQL store: open it with pgstream.New(), not sqlitestream's driver")
		}
		// Not echoed: a connection string could hold a password.
		return nil, fmt.Errorf("the store URL is not a SQLite one: sqlitestream's driver opens sqlite:PATH, e.g. %s", sqlite.DefaultURL)
	}
	st, err := sqlite.OpenURL(ctx, storeURL)
	if err != nil {
		return nil, err
	}
	return &sqliteStore{Store: st}, nil
}

// DSN returns what to pass to sql.Open("sqlite", ...) to open the SQLite
// store at storeURL (sqlite:PATH) as the application's own database, for
// Direct.SQL: the store's connection settings, IMMEDIATE transactions, and
// the store's SQL functions on every connection.
func DSN(storeURL string) (string, error) {
	path, ok := sqlite.PathOf(storeURL)
	if !ok || path == "" {
		return "", fmt.Errorf("sqlitestream: %q is not a SQLite store URL (sqlite:PATH)", storeURL)
	}
	dsn, err := sqlite.DataSourceName(path)
	if err != nil {
		return "", fmt.Errorf("sqlitestream: %w", err)
	}
	return dsn, nil
}

// sqliteStore is a SQLite store as the streams use it.
type sqliteStore struct {
	*sqlite.Store
}

var _ eventstream.DriverStore = (*sqliteStore)(nil)

// SQLTx returns what writes events inside tx, a transaction on the store's
// file opened with DSN's settings.
func (s *sqliteStore) SQLTx(tx *sql.Tx) eventstream.TxWriter {
	return &txWriter{st: s, tx: tx}
}

// txWriter writes events through one transaction of the application.
type txWriter struct {
	st *sqliteStore
	tx *sql.Tx
	// bound says the transaction was found on the store. A failed check
	// is tried again on the next write.
	bound atomic.Bool
}

func (w *txWriter) Write(ctx context.Context, events []event.Event) error {
	if !w.bound.Load() {
		if err := w.st.sameFile(ctx, w.tx); err != nil {
			return err
		}
		w.bound.Store(true)
	}
	return inSavepoint(ctx, w.tx, func() error { return sqlite.WriteEvents(ctx, w.tx, events) })
}

// sameFile checks that tx is a SQLite transaction on the store's file
// whose connection has the store's SQL functions, without writing.
func (s *sqliteStore) sameFile(ctx context.Context, tx *sql.Tx) error {
	path := s.Path()
	// A statement PostgreSQL refuses would abort the caller's transaction:
	// first send one that PostgreSQL answers and SQLite refuses, which
	// leaves a SQLite transaction as it was.
	var version string
	err := tx.QueryRowContext(ctx, `SELECT current_setting('server_version')`).Scan(&version)
	switch {
	case errors.Is(err, sql.ErrTxDone) || ctx.Err() != nil:
		return err
	case err == nil:
		return fmt.Errorf("%w: the transaction is on PostgreSQL %s, the store is the SQLite file %s", eventstream.ErrNotOnStore, version, path)
	}
	var file string
	err = tx.QueryRowContext(ctx, `SELECT file FROM pragma_database_list WHERE name = 'main'`).Scan(&file)
	if errors.Is(err, sql.ErrTxDone) || ctx.Err() != nil {
		return err
	}
	if err != nil {
		return fmt.Errorf("%w: the transaction is not on a SQLite database (%w); the store is the SQLite file %s", eventstream.ErrNotOnStore, err, path)
	}
	if !sameFile(file, path) {
		return fmt.Errorf("%w: the transaction is on the SQLite file %q, the store is %s", eventstream.ErrNotOnStore, file, path)
	}
	var merged string
	if err := tx.QueryRowContext(ctx, `SELECT bam_merge_items(NULL, NULL)`).Scan(&merged); err != nil {
		return fmt.Errorf("%w: its connection lacks the store's SQL functions (%w): open the database with sql.Open(\"sqlite\", dsn), dsn from sqlitestream.DSN, and no connection before", eventstream.ErrNotOnStore, err)
	}
	return nil
}

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
