package pgstream

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/bam-dev/bam/eventstream"
)

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
var errNotPgx = fmt.Errorf("%w: it is not of pgx's database/sql driver (github.com/jackc/pgx/v5/stdlib), which a PostgreSQL store needs", eventstream.ErrNotOnStore)

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
