package pgoutbox

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bam-dev/bam/internal/store"
)

// pendingSQL counts a partition's rows after a position up to a bound ($4),
// with the age of the oldest by the application's server's clock, and says
// whether the first of them is held: at or above the horizon, so that Read
// returns nothing until the transactions below it end. where holds the
// partition's and the floor's conditions, as in the read query.
func pendingSQL(table, where, horizon string) string {
	return `WITH pending AS (
			SELECT o.xid::text::bigint AS xid, o.written_at FROM ` + table + ` o
			WHERE (xid, id) > ($1::bigint::text::xid8, $2::bigint)` + where + `
			ORDER BY o.xid, o.id
			LIMIT $4)
		SELECT count(*), (extract(epoch FROM now() - min(written_at)) * 1000000)::bigint,
			coalesce(min(xid) >= ` + horizon + `::text::bigint, false)
		FROM pending`
}

// Pending is Backlog for a count that must stay cheap however far behind
// the session is: it counts at most bound rows (AtLeast when more wait),
// gives the age of the oldest by the server's clock, and reports whether
// the first of them is held back by the horizon (see the package comment):
// a transaction that started before it is still open, and Read returns
// nothing until it ends. HorizonHolder says which one.
func (r *Reader) Pending(ctx context.Context, partition int, after store.Position, bound int64) (b store.Backlog, held bool, err error) {
	if err := r.check(partition); err != nil {
		return store.Backlog{}, false, err
	}
	var oldest *int64
	if err := r.pool.QueryRow(ctx, r.pendingSQL, after.Major, after.Minor, int64(partition), bound+1).Scan(&b.Events, &oldest, &held); err != nil {
		return store.Backlog{}, false, r.errorf("count the backlog of partition %d of pg-outbox %s: %w", partition, r.where, err)
	}
	if b.Events > bound {
		b.Events, b.AtLeast = bound, true
	}
	if oldest != nil {
		b.OldestAge = max(time.Duration(*oldest)*time.Microsecond, 0)
	}
	return b, held, nil
}

// Holder is the transaction that holds the horizon back: the oldest one
// still open that has written something (it has a transaction id), on any
// database of the outbox's server, since the horizon is the server's.
type Holder struct {
	// Kind is "transaction" (a session's open transaction) or "prepared
	// transaction" (PREPARE TRANSACTION, waiting for COMMIT PREPARED).
	Kind string
	// PID is the backend's process id (pg_terminate_backend ends it); 0
	// for a prepared transaction.
	PID      int
	Database string
	User     string
	// Application is the session's application_name, or a prepared
	// transaction's gid.
	Application string
	State       string // pg_stat_activity's state: "idle in transaction", ...
	// Age is how long the transaction has been open (prepared), by the
	// server's clock.
	Age time.Duration
}

// holderSQL finds the holder: the open transaction, or prepared one, with
// the oldest transaction id. pg_stat_activity shows another role's
// sessions' transactions only to a superuser or a member of
// pg_read_all_stats; to others it shows none.
const holderSQL = `
	SELECT kind, pid, database, usr, application, state, age_us FROM (
		SELECT 'transaction' AS kind, a.pid, coalesce(a.datname::text, '') AS database, coalesce(a.usename::text, '') AS usr,
			coalesce(a.application_name, '') AS application, coalesce(a.state, '') AS state,
			coalesce((extract(epoch FROM now() - a.xact_start) * 1000000)::bigint, 0) AS age_us, age(a.backend_xid) AS xid_age
		FROM pg_stat_activity a WHERE a.backend_xid IS NOT NULL
		UNION ALL
		SELECT 'prepared transaction', 0, p.database::text, p.owner::text, p.gid, 'prepared',
			(extract(epoch FROM now() - p.prepared) * 1000000)::bigint, age(p.transaction)
		FROM pg_prepared_xacts p
	) h
	ORDER BY xid_age DESC
	LIMIT 1`

// HorizonHolder returns the transaction that holds the server's horizon
// back (see Holder), or nil when there is none this role can see (none is
// open, or pg_stat_activity hides it: grant the role pg_read_all_stats).
func (r *Reader) HorizonHolder(ctx context.Context) (*Holder, error) {
	if r.closing.Err() != nil {
		return nil, ErrClosed
	}
	var (
		h     Holder
		ageUS int64
	)
	err := r.pool.QueryRow(ctx, holderSQL).Scan(&h.Kind, &h.PID, &h.Database, &h.User, &h.Application, &h.State, &ageUS)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, nil
	case err != nil:
		return nil, r.errorf("find what holds the horizon of pg-outbox %s: %w", r.where, err)
	}
	h.Age = time.Duration(ageUS) * time.Microsecond
	return &h, nil
}
