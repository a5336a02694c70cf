package main

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	_ "modernc.org/sqlite"             // database/sql driver "sqlite"

	"github.com/bam-dev/bam/eventstream"
	"github.com/bam-dev/bam/eventstream/pgstream"
	"github.com/bam-dev/bam/eventstream/sqlitestream"
)

// schema is the application's own tables, the same on PostgreSQL and
// SQLite. Amounts are kept in cents.
const schema = `
CREATE TABLE IF NOT EXISTS purchase_orders (
    id           text    PRIMARY KEY,
    customer     text    NOT NULL,
    amount_cents bigint  NOT NULL,
    quantity     integer NOT NULL,
    rush         boolean NOT NULL,
    status       text    NOT NULL,
    shipment     text
);
CREATE TABLE IF NOT EXISTS shipments (
    id       text PRIMARY KEY,
    token    text NOT NULL UNIQUE,
    carrier  text NOT NULL,
    tracking text NOT NULL,
    weight   double precision NOT NULL,
    status   text NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (
    name text   PRIMARY KEY,
    n    bigint NOT NULL
);
INSERT INTO counters (name, n) VALUES ('shipment', 0) ON CONFLICT (name) DO NOTHING;
`

// backend runs the application's units of work: a change to its own
// database and the events that describe it.
//
// On PostgreSQL the events go into the outbox table in the same
// transaction: they are committed if and only if the change is.
//
// On SQLite (the default) the events go to the store's buffer source
// through a buffered stream, which cannot share the application's
// transaction: the events of a step are accepted during the step, dropped
// if the step rolls back, and flushed once its change committed. A flush
// that fails keeps them for the next step's flush (or the final one), so
// the only events that can be lost are those of a process killed between a
// commit and its flush.
type backend struct {
	db     *sql.DB
	outbox *eventstream.Outbox
	stream *eventstream.Buffered
	// where says where the events go, for the operator.
	where string
}

// openOutbox opens the application's PostgreSQL database, whose outbox
// table bam reads (bam source install-outbox).
func openOutbox(ctx context.Context, dsn, table string) (*backend, error) {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("open the application database: %w", err)
	}
	ob, err := eventstream.NewOutbox(eventstream.OutboxConfig{Table: table})
	if err != nil {
		db.Close()
		return nil, err
	}
	b := &backend{db: db, outbox: ob, where: fmt.Sprintf("the outbox table %s of the application database, in each business transaction", cmp.Or(table, "bam_outbox"))}
	if err := b.init(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return b, nil
}

// openBuffered opens the application's SQLite database at path and a
// buffered stream into source of the store at storeURL.
func openBuffered(ctx context.Context, path, storeURL, source string) (*backend, error) {
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)")
	if err != nil {
		return nil, fmt.Errorf("open the application database %s: %w", path, err)
	}
	db.SetMaxOpenConns(1) // one writer; no SQLITE_BUSY between our own connections
	stream, err := eventstream.OpenBuffered(ctx, storeDriver(storeURL), storeURL, source, eventstream.BufferedOptions{})
	if err != nil {
		db.Close()
		return nil, err
	}
	b := &backend{db: db, stream: stream, where: fmt.Sprintf("the buffer source %s of the store, flushed after each business transaction", source)}
	if err := b.init(ctx); err != nil {
		b.close(ctx)
		return nil, err
	}
	return b, nil
}

// storeDriver returns the SDK's driver for the store at storeURL. This
// application takes either kind of store, so it links both drivers; one
// whose store is always PostgreSQL (or always SQLite) imports only pgstream
// (or sqlitestream), and links only that database's client.
func storeDriver(storeURL string) eventstream.Driver {
	if strings.HasPrefix(storeURL, "postgres://") || strings.HasPrefix(storeURL, "postgresql://") {
		return pgstream.New()
	}
	return sqlitestream.New()
}

func (b *backend) init(ctx context.Context) error {
	// One statement at a time: database/sql drivers differ on scripts.
	for _, stmt := range splitStatements(schema) {
		if _, err := b.db.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("create the application's tables: %w", err)
		}
	}
	return nil
}

// do runs one unit of work: step changes the application's data through tx
// and writes its events through w.
func (b *backend) do(ctx context.Context, step func(tx *sql.Tx, w eventstream.Writer) error) error {
	if b.stream != nil && b.stream.Pending() > 0 {
		// An earlier step's flush failed: its events come first.
		if err := b.stream.Flush(ctx); err != nil {
			return err
		}
	}
	tx, err := b.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	var w eventstream.Writer
	if b.outbox != nil {
		w = b.outbox.SQL(tx)
	} else {
		w = b.stream
	}
	if err := step(tx, w); err != nil {
		b.drop()
		return errors.Join(err, tx.Rollback())
	}
	if err := tx.Commit(); err != nil {
		b.drop()
		return err
	}
	if b.stream != nil {
		return b.stream.Flush(ctx)
	}
	return nil
}

// drop forgets the events of a step that rolled back. Only that step's
// events are held: every step starts with nothing pending.
func (b *backend) drop() {
	if b.stream != nil {
		b.stream.Discard()
	}
}

// close flushes what the stream still holds (a step whose flush failed, or
// was interrupted), then closes the stream and the database. Events that
// cannot be flushed are reported, never dropped silently: the stream's
// Close says how many (eventstream.ErrUnflushed).
func (b *backend) close(ctx context.Context) error {
	var err error
	if b.stream != nil {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		err = b.stream.Flush(ctx)
		err = errors.Join(err, b.stream.Close(ctx))
	}
	return errors.Join(err, b.db.Close())
}
