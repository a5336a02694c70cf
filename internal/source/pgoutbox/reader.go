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
// all events of one instance are in one partition. The count changes only
// through bam source repartition (see Repartitioned below).
//
// # Positions are worth nothing on another server
//
// A checkpoint is a transaction id of the application's server. Restore
// that server from a backup, promote a replica, or dump and restore the
// database elsewhere, and new rows may get ids at or below the checkpoint:
// a reader would never read them, and the next trim would delete them. So
// the source records which outbox its checkpoints are positions in
// (store.OutboxIdentity: the server's system identifier, the database's
// oid, the table) and the reader stops, with an error that says what
// changed and what to run, when
//
//   - the server it reaches is another one (Open, and every new
//     connection of its pool: a server swapped behind the same address is
//     found on the first connection to it), or
//   - the server's horizon is at or below the position a read or a trim
//     starts from: on the server the checkpoint was taken on, that
//     position was read below an earlier horizon, and the horizon never
//     goes back (rewound). Read and trim check it in the statement that
//     reads or deletes, so no row is read or deleted past a rewind.
//
// The session then retries and fails the same way, reading and trimming
// nothing, until an operator chooses (bam source reset-checkpoint) after
// looking. A rewind stops the reader for good (Stopped), and the pool
// records it with the source (store.Store.StopOutbox), so that no reader
// resumes once the server's ids have run past the checkpoint again: the
// rows written in between would be skipped. A restore whose server kept its system identifier (a physical
// backup) and has already run past the checkpoint when bam first looks is
// not seen: docs/outbox.md says so.
//
// # A row of another instance
//
// Read returns each row's instance_id as the record's Segment: it chose
// the row's partition, so the bus quarantines an event whose instance (or
// continuation token) is another one instead of applying it out of its
// instance's order (source.CheckSegment).
//
// # Repartitioned
//
// A source whose partition count changed keeps the old count and
// checkpoints as its floor (store.Floor): a row at or before the checkpoint
// of its old partition was applied before the change and is skipped, by a
// condition in the read query, until every session is past the floor.
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
	"cmp"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bam-dev/bam/internal/source"
	"github.com/bam-dev/bam/internal/store"
)

var _ source.Reader = (*Reader)(nil)

// ErrClosed is returned by the methods of a Reader after Close, and by a
// Watch that Close ended.
var ErrClosed = errors.New("pg-outbox reader is closed")

// ErrClaimed is wrapped by Claim's error when another bam store reads the
// outbox table.
var ErrClaimed error = &haltError{"another bam store reads this outbox table"}

// ErrNoClaims is wrapped by Claim's error when the outbox has no readers
// table (installed by an older bam) or bam may not use it: the caller
// warns, and reads on.
var ErrNoClaims = errors.New("the outbox has no bam_outbox_readers table bam can use; run bam source install-outbox again (or apply bam source outbox-sql) so that a second bam store reading this table is refused")

// ErrRewound is wrapped by the errors of Read and Trim when the server's
// transaction ids are behind the position they start from: the server
// is not where the checkpoint was taken (restored, or a replica promoted).
var ErrRewound error = &haltError{"the outbox server's transaction ids are behind the checkpoint"}

// haltError is an error no other node would fare better with: it wraps
// source.ErrHalted, so that a node keeps the session instead of handing it
// over to a peer to try.
type haltError struct{ msg string }

func (e *haltError) Error() string        { return e.msg }
func (e *haltError) Is(target error) bool { return target == source.ErrHalted }

// halted marks err as one no other node would fare better with
// (source.ErrHalted), keeping its text and its chain.
func halted(err error) error { return &haltedError{err} }

type haltedError struct{ err error }

func (e *haltedError) Error() string        { return e.err.Error() }
func (e *haltedError) Unwrap() error        { return e.err }
func (e *haltedError) Is(target error) bool { return target == source.ErrHalted }

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
	source     string // the source's name, for the commands errors suggest
	server     string // host:port

	schema string // the table's resolved schema, where ReadersTable is

	// identity is the outbox found at Open; new connections must reach
	// the same server and database.
	identity atomic.Pointer[store.OutboxIdentity]
	floor    *store.Floor
	// stopped is the first rewind Read or Trim found: from then on they
	// return it, even once the server's ids have passed the checkpoint
	// again (the rows written in between would be skipped).
	stopped atomic.Pointer[error]

	readSQL, horizonSQL, trimSQL, backlogSQL string
	pendingSQL                               string // holdup.go

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
	return OpenSource(ctx, store.Source{DSN: dsn, Table: table, Partitions: partitions})
}

// OpenSource opens the reader of a pg-outbox source. When src.Outbox is
// recorded, the outbox found must be that one, else the error wraps
// store.ErrOutboxChanged and says what changed; Identity returns what was
// found, for the caller to record when nothing is. src.Floor is applied
// to every read.
func OpenSource(ctx context.Context, src store.Source) (*Reader, error) {
	dsn, table, partitions := src.DSN, src.Table, src.Partitions
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
		source:      cmp.Or(src.Name, "NAME"),
		server:      fmt.Sprintf("%s:%d", cfg.ConnConfig.Host, cfg.ConnConfig.Port),
		floor:       src.Floor,
		pingEvery:   watchPingEvery,
		pingTimeout: watchPingTimeout,
	}
	if src.OutboxStopped != "" {
		return nil, fmt.Errorf("pg-outbox %s: %w; stopped then: %s", r.where, ErrRewound, src.OutboxStopped)
	}
	if r.floor != nil && (r.floor.Partitions < 1 || len(r.floor.Checkpoints) != r.floor.Partitions) {
		return nil, fmt.Errorf("pg-outbox %s: a floor of %d partitions with %d checkpoints", r.where, r.floor.Partitions, len(r.floor.Checkpoints))
	}
	// Every new connection must reach the server and database found at
	// Open: a server restored or swapped behind the same address is found
	// here, before anything is read from it or deleted on it.
	cfg.AfterConnect = func(ctx context.Context, conn *pgx.Conn) error {
		want := r.identity.Load()
		if want == nil {
			return nil
		}
		got, err := r.identify(ctx, conn)
		if err != nil {
			return err
		}
		got.Table = want.Table
		return r.changed(*want, got)
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
	if !src.Outbox.IsZero() {
		if err := r.changed(src.Outbox, *r.identity.Load()); err != nil {
			r.pool.Close()
			r.close()
			return nil, err
		}
	}
	return r, nil
}

// Stopped reports whether the reader found the server's transaction ids
// behind a position and stopped for good: a new reader must be opened
// once an operator has reset the checkpoints.
func (r *Reader) Stopped() bool { return r.stopped.Load() != nil }

// Identity returns the outbox the reader found at Open.
func (r *Reader) Identity() store.OutboxIdentity { return *r.identity.Load() }

// identify reads the server's and database's identity on conn. The system
// identifier needs EXECUTE on pg_control_system(), which PostgreSQL grants
// to everyone by default; where it was revoked (some hosted services), it
// is left empty and the server's address stands in (OutboxIdentity).
func (r *Reader) identify(ctx context.Context, conn *pgx.Conn) (store.OutboxIdentity, error) {
	o := store.OutboxIdentity{Server: r.server}
	err := conn.QueryRow(ctx, `SELECT oid::bigint, datname FROM pg_database WHERE datname = current_database()`).
		Scan(&o.DatabaseOID, &o.Database)
	if err != nil {
		return o, r.errorf("identify the server of pg-outbox %s: %w", r.where, err)
	}
	err = conn.QueryRow(ctx, `SELECT system_identifier::text FROM pg_control_system()`).Scan(&o.SystemID)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42501" { // insufficient_privilege
		o.SystemID, err = "", nil
	}
	if err != nil {
		return o, r.errorf("identify the server of pg-outbox %s: %w", r.where, err)
	}
	return o, nil
}

// changed returns nil when found is the recorded outbox, else an error
// wrapping store.ErrOutboxChanged that says what changed and what to do.
func (r *Reader) changed(recorded, found store.OutboxIdentity) error {
	d := recorded.Diff(found)
	if d == "" {
		return nil
	}
	return halted(fmt.Errorf("pg-outbox %s: %w: %s. Reading and trimming are stopped: the checkpoints are positions on the "+
		"recorded server and would skip or delete new rows on this one. Look at the outbox, then choose with "+
		"bam source reset-checkpoint %s (--to-horizon, --to-start or --keep; see docs/outbox.md)",
		r.where, store.ErrOutboxChanged, d, r.source))
}

// rewound is the error of a read or trim that starts at or after the
// server's horizon. The first one found stops the reader for good (see
// stopped); the caller records it (store.Store.StopOutbox) so that the
// source stays stopped on every node.
func (r *Reader) rewound(op string, partition int, from store.Position, horizon int64) error {
	err := fmt.Errorf("%s partition %d of pg-outbox %s: %w (the oldest running transaction is %d, the checkpoint is at %d/%d): "+
		"the server was restored from a backup or a replica was promoted, and rows written since may sit at or below "+
		"the checkpoint. Reading and trimming are stopped so that none is skipped or deleted. Look at the outbox, then "+
		"choose with bam source reset-checkpoint %s (--to-horizon, --to-start or --keep; see docs/outbox.md)",
		op, partition, r.where, ErrRewound, horizon, from.Major, from.Minor, r.source)
	r.stopped.CompareAndSwap(nil, &err)
	return *r.stopped.Load()
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
	conn, err := r.pool.Acquire(ctx)
	if err != nil {
		return r.errorf("connect to pg-outbox %s: %w", r.where, err)
	}
	found, err := r.identify(ctx, conn.Conn())
	conn.Release()
	if err != nil {
		return err
	}
	found.Table = schema + "." + name
	r.identity.Store(&found)
	r.schema = schema
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

// buildQueries writes the table, the partition count and the floor into
// the queries. The count is a literal, not a parameter, so that an
// operator's expression index on the partition (docs/outbox.md) matches the
// query's expression. The horizon is a scalar subquery, evaluated once per
// statement, in the statement's own snapshot: the rows scanned and the
// horizon agree, and Read and Trim check it against their position in
// the statement that reads or deletes.
//
// $1, $2 are a position's xid and id. xid8 has no cast from bigint, hence
// the detour through text.
func (r *Reader) buildQueries(table string) {
	const hash = "(hashtextextended(instance_id, 0) & 9223372036854775807)"
	const horizon = "(SELECT pg_snapshot_xmin(pg_current_snapshot()))"
	var part string
	if r.partitions > 1 {
		part = fmt.Sprintf(" AND %s %% %d = $3", hash, r.partitions)
	} else {
		// One partition holds every row. $3 stays in the query so that
		// every query takes the same arguments.
		part = " AND $3::bigint = 0"
	}
	var floor string
	if f := r.floor; f != nil {
		majors, minors := make([]string, len(f.Checkpoints)), make([]string, len(f.Checkpoints))
		for i, c := range f.Checkpoints {
			majors[i], minors[i] = strconv.FormatInt(c.Major, 10), strconv.FormatInt(c.Minor, 10)
		}
		k := fmt.Sprintf("(%s %% %d + 1)", hash, f.Partitions)
		floor = fmt.Sprintf(" AND (xid, id) > ((ARRAY[%s]::bigint[])[%s]::text::xid8, (ARRAY[%s]::bigint[])[%s])",
			strings.Join(majors, ","), k, strings.Join(minors, ","), k)
	}
	// ORDER BY names o.xid: a bare xid would be the bigint output column,
	// and sorting by it would keep the planner off the (xid, id) index.
	r.readSQL = `SELECT id, xid::text::bigint AS xid_int, event, written_at, instance_id,
		xid >= ` + horizon + ` AS held, ` + horizon + `::text::bigint AS horizon
		FROM ` + table + ` o
		WHERE (xid, id) > ($1::bigint::text::xid8, $2::bigint)` + part + floor + `
		ORDER BY o.xid, o.id
		LIMIT $4`
	r.horizonSQL = `SELECT ` + horizon + `::text::bigint`
	r.trimSQL = `WITH trimmed AS (
			DELETE FROM ` + table + `
			WHERE (xid, id) <= ($1::bigint::text::xid8, $2::bigint)` + part + `
			  AND ` + horizon + ` > $1::bigint::text::xid8
			RETURNING 1)
		SELECT ` + horizon + `::text::bigint, (SELECT count(*) FROM trimmed)`
	r.backlogSQL = `SELECT count(*) FROM ` + table + `
		WHERE (xid, id) > ($1::bigint::text::xid8, $2::bigint)` + part + floor
	r.pendingSQL = pendingSQL(table, part+floor, horizon)
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
	horizon := int64(-1) // the statement's, when it returned a row
	for rows.Next() {
		var rec store.Record
		var rowHeld bool
		if err := rows.Scan(&rec.Position.Minor, &rec.Position.Major, &rec.Payload, &rec.WrittenAt, &rec.Segment, &rowHeld, &horizon); err != nil {
			return nil, false, r.errorf("read partition %d of pg-outbox %s: %w", partition, r.where, err)
		}
		if horizon <= after.Major {
			return nil, false, r.rewound("read", partition, after, horizon)
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
	if horizon < 0 && after != (store.Position{}) {
		// Nothing after the position: on a rewound server that is what
		// a reader sees while every new row sits behind its checkpoint.
		if err := r.pool.QueryRow(ctx, r.horizonSQL).Scan(&horizon); err != nil {
			return nil, false, r.errorf("read partition %d of pg-outbox %s: %w", partition, r.where, err)
		}
		if horizon <= after.Major {
			return nil, false, r.rewound("read", partition, after, horizon)
		}
	}
	return recs, held, nil
}

// Trim deletes the partition's rows up to and including upTo. Only rows
// already read can be there: a row at or before a position Read returned
// had finished committing when it was read, and no later transaction can
// write one (its xid is larger). So deleting by position never deletes an
// unread event, and deleting again deletes nothing. On a server whose
// horizon is not past upTo (rewound) that no longer holds: the statement
// deletes nothing then, and Trim returns an error wrapping ErrRewound.
func (r *Reader) Trim(ctx context.Context, partition int, upTo store.Position) error {
	if err := r.check(partition); err != nil {
		return err
	}
	var horizon, deleted int64
	if err := r.pool.QueryRow(ctx, r.trimSQL, upTo.Major, upTo.Minor, int64(partition)).Scan(&horizon, &deleted); err != nil {
		return r.errorf("trim partition %d of pg-outbox %s: %w", partition, r.where, err)
	}
	if horizon <= upTo.Major {
		return r.rewound("trim", partition, upTo, horizon)
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
	if err := r.stopped.Load(); err != nil {
		return *err
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

// Horizon returns the server's horizon: every transaction below it has
// ended, and every later one gets an id at or above it.
func (r *Reader) Horizon(ctx context.Context) (int64, error) {
	if r.closing.Err() != nil {
		return 0, ErrClosed
	}
	var h int64
	if err := r.pool.QueryRow(ctx, r.horizonSQL).Scan(&h); err != nil {
		return 0, r.errorf("read the horizon of pg-outbox %s: %w", r.where, err)
	}
	return h, nil
}

// Identify connects to dsn and returns the identity of the outbox table
// (see ParseTable) there, whether or not it is installed yet: an
// unqualified name that does not exist is where install-outbox would
// create it, the first schema of the search_path. `bam source add`
// records it, so that a second source on the same table is refused at
// once.
func Identify(ctx context.Context, dsn, table string) (store.OutboxIdentity, error) {
	ident, err := ParseTable(table)
	if err != nil {
		return store.OutboxIdentity{}, err
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return store.OutboxIdentity{}, errors.New("parse the pg-outbox DSN: it is not a valid PostgreSQL URL or key=value string (not shown: it may hold a password)")
	}
	r := &Reader{
		where:    fmt.Sprintf("%s on %s:%d/%s", ident.Sanitize(), cfg.Host, cfg.Port, cfg.Database),
		password: cfg.Password,
		server:   fmt.Sprintf("%s:%d", cfg.Host, cfg.Port),
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return store.OutboxIdentity{}, r.errorf("connect to pg-outbox %s: %w", r.where, err)
	}
	defer conn.Close(context.Background())
	o, err := r.identify(ctx, conn)
	if err != nil {
		return o, err
	}
	var name string
	if len(ident) == 2 {
		name = ident[0] + "." + ident[1]
	}
	if err := conn.QueryRow(ctx, `
		SELECT coalesce(
			(SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			 WHERE c.oid = to_regclass($1)),
			nullif($2, ''),
			current_schema() || '.' || $3)`, ident.Sanitize(), name, ident[len(ident)-1]).Scan(&o.Table); err != nil {
		return o, r.errorf("resolve pg-outbox %s: %w", r.where, err)
	}
	return o, nil
}

// Claim records, in the outbox's database, that the bam store storeID
// reads the table (as source), unless another store does: then the error
// wraps ErrClaimed and names it. Two pools with their own stores would
// otherwise both apply every event, and each trim rows the other has not
// read. A claim is kept until Release (bam source remove). An outbox
// without the readers table, or whose table bam may not write, returns an
// error wrapping ErrNoClaims.
func (r *Reader) Claim(ctx context.Context, storeID, source string) error {
	if r.closing.Err() != nil {
		return ErrClosed
	}
	table := pgx.Identifier{r.schema, ReadersTable}.Sanitize()
	outbox := r.Identity().Table
	var (
		owner, ownerSource string
		since              time.Time
	)
	err := r.pool.QueryRow(ctx, `
		WITH claim AS (
			INSERT INTO `+table+` (outbox, store_id, source) VALUES ($1, $2, $3)
			ON CONFLICT (outbox) DO UPDATE SET source = EXCLUDED.source
				WHERE `+table+`.store_id = EXCLUDED.store_id
			RETURNING store_id, source, claimed_at)
		SELECT store_id, source, claimed_at FROM claim
		UNION ALL
		SELECT store_id, source, claimed_at FROM `+table+` WHERE outbox = $1 AND NOT EXISTS (SELECT FROM claim)`,
		outbox, storeID, source).Scan(&owner, &ownerSource, &since)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && (pgErr.Code == "42P01" || pgErr.Code == "42501") { // undefined_table, insufficient_privilege
		return fmt.Errorf("pg-outbox %s: %w (%s)", r.where, ErrNoClaims, pgErr.Message)
	}
	if err != nil {
		return r.errorf("claim pg-outbox %s: %w", r.where, err)
	}
	if owner != storeID {
		return fmt.Errorf("pg-outbox %s: %w: store %s (its source %q) has read it since %s; two pools would both apply "+
			"every event. Point this source at another table, or, if that store is gone for good, delete its claim in the "+
			"application's database: DELETE FROM %s WHERE outbox = '%s'",
			r.where, ErrClaimed, owner, ownerSource, since.UTC().Format(time.RFC3339), table, outbox)
	}
	return nil
}

// Release deletes the claim of store storeID on the table, if it holds it.
func (r *Reader) Release(ctx context.Context, storeID string) error {
	if r.closing.Err() != nil {
		return ErrClosed
	}
	table := pgx.Identifier{r.schema, ReadersTable}.Sanitize()
	_, err := r.pool.Exec(ctx, `DELETE FROM `+table+` WHERE outbox = $1 AND store_id = $2`, r.Identity().Table, storeID)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && (pgErr.Code == "42P01" || pgErr.Code == "42501") {
		return nil // nothing was claimed there
	}
	if err != nil {
		return r.errorf("release the claim on pg-outbox %s: %w", r.where, err)
	}
	return nil
}
