package pgstream

import (
	"context"
	"database/sql"
	"errors"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/bam-dev/bam/eventstream"
)

// Execer runs a statement: pgx.Tx is one (and so are *pgx.Conn and
// *pgxpool.Pool, but only a transaction makes events atomic with the
// business change).
type Execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// OutboxTx returns a Writer that inserts each event into the outbox o
// through tx, as part of tx: the events are visible to bam if and only if
// tx commits. It is eventstream.Outbox.SQL for pgx: a method returns once
// its row is inserted; an error from the database leaves the transaction as
// PostgreSQL does (aborted): roll it back. The Writer is as safe for
// concurrent use as tx (a pgx.Tx is not).
func OutboxTx(o *eventstream.Outbox, tx Execer) *eventstream.OutboxWriter {
	return o.SQL(execer{tx})
}

// execer is an Execer as eventstream.Outbox.SQL takes one.
type execer struct{ tx Execer }

func (e execer) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	tag, err := e.tx.Exec(ctx, query, args...)
	return result(tag), err
}

// result is a pgx command tag as a sql.Result.
type result pgconn.CommandTag

func (r result) RowsAffected() (int64, error) { return pgconn.CommandTag(r).RowsAffected(), nil }

func (result) LastInsertId() (int64, error) {
	return 0, errors.New("PostgreSQL has no last insert id: use RETURNING")
}
