package eventstream

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/bam-dev/bam/internal/catalog"
	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/store"
)

// Driver opens the bam store a stream writes to. Each kind of store has its
// driver package: pgstream.New() for a PostgreSQL store
// (github.com/bam-dev/bam/eventstream/pgstream), sqlitestream.New() for a
// SQLite one (github.com/bam-dev/bam/eventstream/sqlitestream). This
// package imports neither, so a program links only the drivers it names:
// one that writes to PostgreSQL carries no SQLite, and the reverse.
//
// Applications pass a Driver to OpenBuffered and OpenDirect. They neither
// call nor implement its methods, which are the driver packages' side of
// the contract and speak bam's internal types.
type Driver interface {
	// Open opens the store at storeURL for a stream, which closes it. A
	// URL of another kind of store is an error that names the driver
	// package to use instead.
	Open(ctx context.Context, storeURL string) (DriverStore, error)
}

// DriverStore is a store as a Driver opens it: what the streams use of it.
type DriverStore interface {
	// Driver names the kind of store ("postgres", "sqlite") in messages.
	Driver() string
	// CheckSchema says whether the store is migrated (bam migrate).
	CheckSchema(ctx context.Context) error
	// Source reads a source's configuration (store.ErrNotFound: none).
	Source(ctx context.Context, name string) (store.Source, error)
	// AppendBuffer writes a buffered stream's events to a buffer source in
	// one transaction.
	AppendBuffer(ctx context.Context, source string, events []store.BufferEvent) error
	// WriteEvents writes a direct stream's events into the instances, in
	// a store transaction of its own.
	WriteEvents(ctx context.Context, events []event.Event) error
	// SQLTx returns what writes a direct stream's events into the store
	// inside tx, a database/sql transaction of the application (not nil):
	// Direct.SQL.
	SQLTx(tx *sql.Tx) TxWriter
	// The deployed activity definitions, which the streams check events
	// against.
	catalog.Source
	Close() error
}

// TxWriter writes events into a store inside one transaction of the
// application. A driver package makes one per transaction (DriverStore.SQLTx,
// pgstream.DirectTx), and a Direct's Writer bound to that transaction writes
// through it.
type TxWriter interface {
	// Write writes events inside the transaction. Before the first write
	// it checks, only reading, that the transaction is on the store; when
	// it is not, or is of a kind the store cannot write through, the error
	// wraps ErrNotOnStore and the transaction is as it was.
	Write(ctx context.Context, events []event.Event) error
}

// errNoDriver is what OpenBuffered and OpenDirect return without a Driver.
var errNoDriver = errors.New("eventstream: no driver: pass pgstream.New() for a PostgreSQL store or sqlitestream.New() for a SQLite one")

// openStore opens the store at storeURL with drv.
func openStore(ctx context.Context, drv Driver, storeURL string) (DriverStore, error) {
	if drv == nil {
		return nil, errNoDriver
	}
	st, err := drv.Open(ctx, storeURL)
	if err != nil {
		return nil, fmt.Errorf("eventstream: %w", err)
	}
	return st, nil
}
