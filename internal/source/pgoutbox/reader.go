// Package pgoutbox reads the pg-outbox source kind: an outbox table that an
// application fills inside its own business transactions, in its own
// PostgreSQL database. docs/outbox.md is the guide for application authors
// and operators; this comment says why the reader is built as it is.
//
// # Never skip an event (DESIGN.md, promise 4)
//
// Ids from a sequence are taken in one order and committed in another: a
// reader that moves past id 11 while the transaction holding id 10 is still
// open loses event 10. So positions are (xid, id), where xid is the writing
// transaction's xid8, and Read returns only rows whose xid is below
// pg_snapshot_xmin(pg_current_snapshot()): every transaction below that
// horizon has ended, and every transaction that starts later gets a larger
// xid, so no row can ever appear at or before a position already returned.
// Rows at or above the horizon are held: Read stops before the first one and
// says so (held), and the bus reads again soon.
//
// The price is the trap DESIGN.md names: two transactions writing the same
// instance are read in xid order, not commit order. bam's merge rules
// (internal/event/doc.go) decide by event time, not arrival order, so the
// result is the same.
//
// # Partitions
//
// Partition p of n holds the rows where
//
//	(hashtextextended(instance_id, 0) & 9223372036854775807) % n = p
//
// computed by the reader in SQL, so applications never need to know n, and
// all events of one instance are in one partition. The partition count must
// not change while the outbox holds unread events.
//
// # Waking
//
// An AFTER INSERT statement trigger calls pg_notify; PostgreSQL delivers it
// on commit only. Watch listens on its own connection. A notification is a
// hint: a lost one costs latency until the bus's fallback read, never an
// event. Nothing notifies when an unrelated long transaction ends and frees
// held rows, which is why held asks the bus to read again.
package pgoutbox

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bam-dev/bam/internal/source"
	"github.com/bam-dev/bam/internal/store"
)

var _ source.Reader = (*Reader)(nil)

// ErrClosed is returned by the methods of a Reader after Close, and by a
// Watch that Close ended.
var ErrClosed = errors.New("pg-outbox reader is closed")

const (
	// watchPingEvery is how long Watch waits for a notification before it
	// checks that its connection still works: a dead peer behind a silent
	// network would otherwise leave it waiting forever, and the bus would
	// never learn to reconnect.
	watchPingEvery = 30 * time.Second
	// watchPingTimeout bounds that check.
	watchPingTimeout = 10 * time.Second
)

// Reader reads the partitions of one outbox table. It is safe for
// concurrent use.
type Reader struct {
	pool       *pgxpool.Pool
	connConfig *pgx.ConnConfig // for Watch's dedicated connections
	partitions int
	channel    string // the trigger's NOTIFY channel, from the resolved table
	where      string // "table on host:port/db", for errors; never the DSN
	password   string // masked out of every error text

	readSQL, trimSQL, backlogSQL string

	// watchPingEvery and watchPingTimeout; tests shorten them.
	pingEvery, pingTimeout time.Duration

	closing   context.Context // done once Close starts: ends every Watch
	close     context.CancelFunc
	closeOnce sync.Once
}

// Open connects to the application's database at dsn and checks that table
// (see ParseTable) is an installed outbox, split into partitions
// partitions. Errors never show the DSN or its password.
func Open(ctx context.Context, dsn, table string, partitions int) (*Reader, error) {
	ident, err := ParseTable(table)
	if err != nil {
		return nil, err
	}
	if partitions < 1 {
		return nil, fmt.Errorf("outbox table %s: partitions must be at least 1, got %d", ident.Sanitize(), partitions)
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx masks passwords in its parse errors only on a best-effort
		// basis, and keeps the raw string in the error value: say nothing
		// about the DSN's content.
		return nil, errors.New("parse the pg-outbox DSN: it is not a valid PostgreSQL URL or key=value string (not shown: it may hold a password)")
	}
	if cfg.ConnConfig.RuntimeParams["application_name"] == "" {
		// So that the application's DBA can tell bam's sessions apart.
		cfg.ConnConfig.RuntimeParams["application_name"] = "bam pg-outbox"
	}
	r := &Reader{
		connConfig:  cfg.ConnConfig.Copy(),
		partitions:  partitions,
		where:       fmt.Sprintf("%s on %s:%d/%s", ident.Sanitize(), cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database),
		password:    cfg.ConnConfig.Password,
		pingEvery:   watchPingEvery,
		pingTimeout: watchPingTimeout,
	}
	r.closing, r.close = context.WithCancel(context.Background())
	r.pool, err = pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		r.close()
		return nil, r.errorf("connect to pg-outbox %s: %w", r.where, err)
	}
	if err := r.resolve(ctx, ident); err != nil {
		r.pool.Close()
		r.close()
		return nil, err
	}
	return r, nil
}

// resolve finds the table's real schema and name, which the NOTIFY channel
// is derived from, and builds the queries. It runs the read query once so
// that a table of the wrong shape fails here, with advice, rather than on
// every read.
func (r *Reader) resolve(ctx context.Context, ident pgx.Identifier) error {
	var schema, name string
	var oid int64
	err := r.pool.QueryRow(ctx, `
		SELECT n.nspname, c.relname, c.oid::bigint
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.oid = to_regclass($1)`, ident.Sanitize()).Scan(&schema, &name, &oid)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("pg-outbox %s: the table does not exist; create it with `bam source install-outbox`", r.where)
	}
	if err != nil {
		return r.errorf("find pg-outbox %s: %w", r.where, err)
	}
	r.channel = channelName(schema, name, oid)
	r.buildQueries(pgx.Identifier{schema, name}.Sanitize())
	rows, err := r.pool.Query(ctx, r.readSQL, int64(0), int64(0), int64(0), 0)
	if err == nil {
		rows.Close()
		err = rows.Err()
	}
	if err != nil {
		return r.errorf("pg-outbox %s is not an outbox table as `bam source install-outbox` makes it: %w", r.where, err)
	}
	return nil
}

// channelName is the NOTIFY channel of the trigger function in installBody,
// computed the same way.
func channelName(schema, table string, oid int64) string {
	c := "bam:" + schema + "." + table
	if len(c) > maxIdentLen {
		c = "bam:oid:" + strconv.FormatInt(oid, 10)
	}
	return c
}

// buildQueries writes the table and the partition count into the queries.
// The count is a literal, not a parameter, so that an operator's expression
// index on the partition (docs/outbox.md) matches the query's expression.
// The horizon is a scalar subquery, evaluated once per statement, in the
// statement's own snapshot: the rows scanned and the horizon agree.
//
// $1, $2 are a position's xid and id. xid8 has no cast from bigint, hence
// the detour through text.
func (r *Reader) buildQueries(table string) {
	var part string
	if r.partitions > 1 {
		part = fmt.Sprintf(" AND (hashtextextended(instance_id, 0) & 9223372036854775807) %% %d = $3", r.partitions)
	} else {
		// One partition holds every row. $3 stays in the query so that
		// every query takes the same arguments.
		part = " AND $3::bigint = 0"
	}
	// ORDER BY names o.xid: a bare xid would be the bigint output column,
	// and sorting by it would keep the planner off the (xid, id) index.
	r.readSQL = `SELECT id, xid::text::bigint AS xid_int, event, written_at,
		xid >= (SELECT pg_snapshot_xmin(pg_current_snapshot())) AS held
		FROM ` + table + ` o
		WHERE (xid, id) > ($1::bigint::text::xid8, $2::bigint)` + part + `
		ORDER BY o.xid, o.id
		LIMIT $4`
	r.trimSQL = `DELETE FROM ` + table + `
		WHERE (xid, id) <= ($1::bigint::text::xid8, $2::bigint)` + part
	r.backlogSQL = `SELECT count(*) FROM ` + table + `
		WHERE (xid, id) > ($1::bigint::text::xid8, $2::bigint)` + part
}

// Read returns up to limit rows of a partition after a position, in (xid,
// id) order, stopping before the first row whose transaction is not below
// the horizon of finished transactions (see the package comment). It asks
// for one row more than limit, so that held also reports a held row right
// after a full batch.
func (r *Reader) Read(ctx context.Context, partition int, after store.Position, limit int) (recs []store.Record, held bool, err error) {
	if err := r.check(partition); err != nil {
		return nil, false, err
	}
	if limit < 1 {
		return nil, false, fmt.Errorf("read pg-outbox %s: limit must be at least 1, got %d", r.where, limit)
	}
	rows, err := r.pool.Query(ctx, r.readSQL, after.Major, after.Minor, int64(partition), limit+1)
	if err != nil {
		return nil, false, r.errorf("read partition %d of pg-outbox %s: %w", partition, r.where, err)
	}
	defer rows.Close()
	for rows.Next() {
		var rec store.Record
		var rowHeld bool
		if err := rows.Scan(&rec.Position.Minor, &rec.Position.Major, &rec.Payload, &rec.WrittenAt, &rowHeld); err != nil {
			return nil, false, r.errorf("read partition %d of pg-outbox %s: %w", partition, r.where, err)
		}
		if rowHeld {
			held = true
			break
		}
		if len(recs) == limit {
			break
		}
		recs = append(recs, rec)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, false, r.errorf("read partition %d of pg-outbox %s: %w", partition, r.where, err)
	}
	return recs, held, nil
}

// Trim deletes the partition's rows up to and including upTo. Only rows
// already read can be there: a row at or before a position Read returned
// had finished committing when it was read, and no later transaction can
// write one (its xid is larger). So deleting by position never deletes an
// unread event, and deleting again deletes nothing.
func (r *Reader) Trim(ctx context.Context, partition int, upTo store.Position) error {
	if err := r.check(partition); err != nil {
		return err
	}
	if _, err := r.pool.Exec(ctx, r.trimSQL, upTo.Major, upTo.Minor, int64(partition)); err != nil {
		return r.errorf("trim partition %d of pg-outbox %s: %w", partition, r.where, err)
	}
	return nil
}

// Backlog counts the partition's committed rows after a position, held ones
// included.
func (r *Reader) Backlog(ctx context.Context, partition int, after store.Position) (int64, error) {
	if err := r.check(partition); err != nil {
		return 0, err
	}
	var n int64
	if err := r.pool.QueryRow(ctx, r.backlogSQL, after.Major, after.Minor, int64(partition)).Scan(&n); err != nil {
		return 0, r.errorf("count backlog of partition %d of pg-outbox %s: %w", partition, r.where, err)
	}
	return n, nil
}

// Watch opens a connection of its own, LISTENs on the outbox trigger's
// channel, and calls wake once when it listens (rows committed before that
// woke nobody) and then once per notification. wake must not block. Every
// watchPingEvery without a notification it pings the server, so that a
// dead connection is found. It returns ctx's error when ctx ends (as the
// store's Watch does), ErrClosed when Close ends it, and the connection's
// error when it fails: the caller retries with backoff.
func (r *Reader) Watch(ctx context.Context, wake func()) error {
	if r.closing.Err() != nil {
		return ErrClosed
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(r.closing, cancel)()
	ended := func(err error) error {
		switch {
		case r.closing.Err() != nil:
			return ErrClosed
		case ctx.Err() != nil:
			return ctx.Err()
		default:
			return err
		}
	}

	conn, err := pgx.ConnectConfig(ctx, r.connConfig.Copy())
	if err != nil {
		return ended(r.errorf("watch pg-outbox %s: %w", r.where, err))
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = conn.Close(closeCtx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{r.channel}.Sanitize()); err != nil {
		return ended(r.errorf("watch pg-outbox %s: listen: %w", r.where, err))
	}
	wake()
	for {
		waitCtx, cancelWait := context.WithTimeout(ctx, r.pingEvery)
		_, err := conn.WaitForNotification(waitCtx)
		quiet := waitCtx.Err() != nil && ctx.Err() == nil
		cancelWait()
		switch {
		case err == nil:
			wake()
		case ctx.Err() != nil:
			return ended(err)
		case quiet && !conn.IsClosed():
			pingCtx, cancelPing := context.WithTimeout(ctx, r.pingTimeout)
			err := conn.Ping(pingCtx)
			cancelPing()
			if err != nil {
				return ended(r.errorf("watch pg-outbox %s: ping: %w", r.where, err))
			}
		default:
			return ended(r.errorf("watch pg-outbox %s: %w", r.where, err))
		}
	}
}

// Close ends every Watch and closes the pool. It is idempotent.
func (r *Reader) Close() error {
	r.closeOnce.Do(func() {
		r.close()
		r.pool.Close()
	})
	return nil
}

func (r *Reader) check(partition int) error {
	if r.closing.Err() != nil {
		return ErrClosed
	}
	if partition < 0 || partition >= r.partitions {
		return fmt.Errorf("pg-outbox %s: no partition %d (it has %d)", r.where, partition, r.partitions)
	}
	return nil
}

// errorf wraps an error like fmt.Errorf, then masks the DSN's password if
// the text shows it anywhere (a server or driver message could quote it).
func (r *Reader) errorf(format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	if r.password == "" || !strings.Contains(err.Error(), r.password) {
		return err
	}
	return &redactedError{msg: strings.ReplaceAll(err.Error(), r.password, "xxxxx"), err: err}
}

// redactedError shows a masked text but keeps the chain for errors.Is/As.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }
