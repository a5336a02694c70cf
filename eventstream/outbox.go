package eventstream

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/source/pgoutbox/outboxtable"
)

// OutboxConfig configures an Outbox. The zero value writes to the default
// table, bam_outbox.
type OutboxConfig struct {
	// Table is the outbox table, as given to bam source add --table: name,
	// or schema.name, taken literally and written without quotes. Default
	// bam_outbox. Install it with bam source install-outbox.
	//
	// The number of partitions of the source is not needed: bam computes
	// each row's partition from its instance_id when it reads.
	Table string
	// MaxEventSize bounds one event's JSON form, in bytes. Default 256 KiB,
	// the limit nodes apply (bam serve --max-event-size): a larger event
	// would be quarantined as a failed event.
	MaxEventSize int
	// Validate, if set, checks every event before it is written.
	Validate Validator
}

// Outbox writes events into a pg-outbox table (docs/outbox.md) inside the
// application's own PostgreSQL transactions, so that the events are
// committed if and only if the business transaction is. An Outbox holds no
// connection: SQL (and pgstream.OutboxTx, for a pgx.Tx) return a Writer
// bound to one transaction. It is safe for concurrent use, and needs no
// store driver: it writes through the application's own.
type Outbox struct {
	table  string // quoted
	insert string
	checks checks
}

// NewOutbox checks the configuration and returns an Outbox.
func NewOutbox(cfg OutboxConfig) (*Outbox, error) {
	parts, err := outboxtable.Parse(cfg.Table)
	if err != nil {
		return nil, fmt.Errorf("eventstream: %w", err)
	}
	c, err := newChecks(cfg.MaxEventSize, cfg.Validate)
	if err != nil {
		return nil, err
	}
	table := outboxtable.Quote(parts)
	return &Outbox{
		table: table,
		// id, xid and written_at are the table's defaults: xid must be the
		// writing transaction's, or the reader could skip events.
		insert: "INSERT INTO " + table + " (instance_id, event) VALUES ($1, $2)",
		checks: c,
	}, nil
}

// SQLExecer runs a statement: *sql.Tx is one (database/sql with a
// PostgreSQL driver such as pgx's stdlib, github.com/jackc/pgx/v5/stdlib,
// or lib/pq). pgstream.OutboxTx takes a pgx.Tx instead.
type SQLExecer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// SQL returns a Writer that inserts each event into the outbox through tx,
// as part of tx: the events are visible to bam if and only if tx commits.
// A method returns once its row is inserted; an error from the database
// leaves the transaction as PostgreSQL does (aborted): roll it back. Pass
// the transaction: a *sql.DB would commit each event on its own. The
// Writer is as safe for concurrent use as tx.
func (o *Outbox) SQL(tx SQLExecer) *OutboxWriter {
	w := &OutboxWriter{table: o.table, exec: func(ctx context.Context, instance, ev string) error {
		_, err := tx.ExecContext(ctx, o.insert, instance, ev)
		return err
	}}
	w.emitter = emitter{sink: w, checks: o.checks}
	return w
}

// OutboxWriter writes events into an outbox through one transaction. See
// Outbox.SQL.
type OutboxWriter struct {
	emitter
	table string
	exec  func(ctx context.Context, instance, ev string) error
}

var _ Writer = (*OutboxWriter)(nil)

// put inserts one row. instance_id is the event's segment, the instance or
// the continuation's token, as the partition of every source is chosen.
func (w *OutboxWriter) put(ctx context.Context, ev event.Event, payload []byte) error {
	if err := w.exec(ctx, ev.Segment(), string(payload)); err != nil {
		return fmt.Errorf("eventstream: insert the %s event of %s %q into outbox %s: %w", ev.Kind, ev.Activity, ev.Segment(), w.table, err)
	}
	return nil
}
