// Package postgres is the PostgreSQL driver of the activity store: the
// production store that every node of a pool shares.
//
// Two connection pools keep coordination apart from work (DESIGN.md, trap
// "renewals stuck behind work"): the work pool applies batches and serves
// reads, and a small lease pool runs only the short membership and lease
// statements (Join, Renew, Claim, Release, ExpireLeases, Leave) and the
// reads that balancing and failover decide on (Sessions, Nodes,
// LivenessHeld), so a renewal never queues behind a slow batch for a
// connection. LISTEN and the
// liveness advisory lock each get a dedicated connection of their own,
// outside both pools, because they live as long as the node.
//
// No lease statement waits long for a row lock (lock_timeout on the lease
// pool): a batch whose client stopped in the middle of its request holds
// its session's row with no end in sight. Renew skips such rows, Claim
// skips such sessions, or ends the backend when it belongs to the expired
// owner it takes over from (lease.go; connections are named after the
// node they write for: nodename.go).
//
// Positions in the ingest buffer are (xid8 of the writing transaction, row
// id), and ReadBuffer stops at the oldest transaction still running, so a
// writer that commits late can never be skipped (DESIGN.md, promise 4).
//
// Apply is one round trip: the fencing UPDATE, the instance upsert and the
// quarantine insert are pipelined in one implicit transaction, and the fence
// aborts that transaction when it fails (DESIGN.md, promises 1 and 2).
//
// The files of this driver and of the SQLite driver have the same names
// for the same concerns: apply, buffer, definitions, direct, failed,
// idempotency, instances, lease, liveness, migrate, nodes, sources, views,
// vocabulary, watch. Naming connections after their node (nodename.go) is
// PostgreSQL's own.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bam-dev/bam/internal/store"
)

var _ store.Store = (*Store)(nil)

const (
	// leasePoolConns bounds the lease pool: enough for a renewal, a claim
	// or release, and a read of the pool's view (Sessions, Nodes,
	// LivenessHeld) to run at once.
	leasePoolConns = 3

	// sqlstateFenced is raised by bam_fence (migrations/0001_init.sql).
	sqlstateFenced = "BAM01"
	// sqlstateUniqueViolation is PostgreSQL's unique_violation.
	sqlstateUniqueViolation = "23505"

	// leaseLockTimeout bounds how long a statement of the lease pool waits
	// for one lock. A batch holds its session's row from its fence to its
	// commit, usually for milliseconds; a longer wait means a batch that
	// is slow or stalled, which neither a renewal (it skips the row:
	// Renew) nor a claim (it skips the session: Claim) waits for.
	leaseLockTimeout = "500ms"
)

// Store is the PostgreSQL activity store. Its methods are safe for
// concurrent use.
type Store struct {
	store.DefinitionReads   // Definitions, DefinitionsVersion, Deployments
	store.DeployCommands    // Deploy, RemoveActivity, SetWindow
	store.AggregationAccess // Aggregation, VerifyAggregations
	store.AlertAccess       // OpenFirings, CommitAlerts, deliveries, AlertHistory
	store.ActivityEventsReader

	work  *pgxpool.Pool // batches, buffer, instances, sources, reads
	lease *pgxpool.Pool // membership and lease statements only
	// conn is the configuration of the dedicated connections (LISTEN,
	// liveness lock); each use takes a copy.
	conn *pgx.ConnConfig
	// where is the store URL with its password masked, for errors.
	where string
	// secrets are strings that must never appear in an error.
	secrets []string
	// collation caches whether the database orders text by bytes
	// (TextSortsByBytes).
	collation textOrder

	// closing ends the dedicated connections' goroutines when Close is
	// called while their callers' contexts are still alive.
	closing   context.Context
	stop      context.CancelFunc
	mu        sync.Mutex // guards closed and wg.Add against Close
	closed    bool
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// IsURL reports whether raw is a PostgreSQL store URL, as --store and
// BAM_STORE take it: postgres://… or postgresql://….
func IsURL(raw string) bool {
	return strings.HasPrefix(raw, "postgres://") || strings.HasPrefix(raw, "postgresql://")
}

// Open connects to the store at url (a postgres:// URL or a key=value
// connection string; pool_max_conns and the other pgxpool settings apply to
// the work pool). It checks that the server answers, not the schema: call
// CheckSchema or Migrate.
func Open(ctx context.Context, url string) (*Store, error) {
	s := &Store{where: redact(url), secrets: passwords(url)}
	workCfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w: %w", s.where, store.ErrBadURL, s.scrub(err))
	}
	s.conn = workCfg.ConnConfig.Copy()
	leaseCfg := workCfg.Copy()
	setAppName(workCfg.ConnConfig, "bam")
	setAppName(leaseCfg.ConnConfig, "bam-lease")
	limitIdleTransactions(workCfg.ConnConfig)
	limitIdleTransactions(leaseCfg.ConnConfig)
	// A lease statement never waits long for a row lock (DESIGN.md, "a
	// lock held by a request that never finishes"): Claim skips the
	// session, or ends the stalled backend of its expired owner.
	leaseCfg.ConnConfig.RuntimeParams["lock_timeout"] = leaseLockTimeout
	workCfg.PrepareConn = nameForNode(workCfg.ConnConfig.RuntimeParams["application_name"])
	leaseCfg.PrepareConn = nameForNode(leaseCfg.ConnConfig.RuntimeParams["application_name"])
	leaseCfg.MaxConns = leasePoolConns
	// Keep one connection open so a renewal never pays for a connect.
	leaseCfg.MinConns = 1

	s.work, err = pgxpool.NewWithConfig(ctx, workCfg)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", s.where, s.scrub(err))
	}
	s.lease, err = pgxpool.NewWithConfig(ctx, leaseCfg)
	if err != nil {
		s.work.Close()
		return nil, fmt.Errorf("open store %s: %w", s.where, s.scrub(err))
	}
	if err := s.work.Ping(ctx); err != nil {
		s.work.Close()
		s.lease.Close()
		return nil, fmt.Errorf("open store %s: %w", s.where, s.scrub(err))
	}
	s.DeployCommands = store.DeployCommands{InTx: s.deploying}
	s.DefinitionReads = store.DefinitionReads{Query: query(s.work), Where: "store " + s.where, ActivitiesSQL: activitiesSQL, DeploymentsSQL: deploymentsSQL}
	s.AggregationAccess = store.AggregationAccess{Exec: func(ctx context.Context, sql string) error { _, err := s.work.Exec(ctx, sql); return err }, Query: query(s.work), SQL: aggregations, Deployed: s.DefinitionReads.Definitions, Text: aggregationText}
	s.AlertAccess = s.alertAccess()
	s.ActivityEventsReader = store.ActivityEventsReader{Query: query(s.work)}
	s.closing, s.stop = context.WithCancel(context.Background())
	return s, nil
}

// Driver implements store.Store.
func (s *Store) Driver() string { return "postgres" }

// Close releases the liveness locks held through this store, ends its
// watches and closes both pools. It is safe to call more than once.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		s.stop()
		s.wg.Wait()
		s.lease.Close()
		s.work.Close()
	})
	return nil
}

// scope returns ctx, also cancelled when the store is closed, so that the
// long-lived dedicated connections end with the store.
func (s *Store) scope(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.closing, cancel)
	return ctx, func() {
		stop()
		cancel()
	}
}

// goStart registers a goroutine that Close must wait for; false once the
// store is closed.
func (s *Store) goStart() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	return true
}

// connect opens a dedicated connection, outside both pools.
func (s *Store) connect(ctx context.Context, appName string) (*pgx.Conn, error) {
	cfg := s.conn.Copy()
	setAppName(cfg, appName)
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to store %s: %w", s.where, s.scrub(err))
	}
	return conn, nil
}

const (
	// checkEvery is how often an idle dedicated connection (LISTEN,
	// liveness lock) is pinged, so that a dead one is noticed within
	// about checkEvery + checkTimeout even when nothing is sent on it.
	checkEvery   = time.Second
	checkTimeout = 3 * time.Second
)

// closeConn closes a dedicated connection without waiting long for a
// server that may be gone.
func closeConn(conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = conn.Close(ctx)
}

// rowTo adapts a row scanner of package store (store.ScanSource…) to
// pgx.CollectRows.
func rowTo[T any](scan func(store.RowScanner) (T, error)) pgx.RowToFunc[T] {
	return func(row pgx.CollectableRow) (T, error) { return scan(row) }
}

// query makes q, a pool or a transaction, a store.Query.
func query(q querier) store.Query {
	return func(ctx context.Context, fn func(store.Rows) error, sql string, args ...any) error {
		rows, err := q.Query(ctx, sql, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		return fn(rows)
	}
}

// setAppName names the connections in pg_stat_activity, unless the URL
// already names them.
func setAppName(cfg *pgx.ConnConfig, name string) {
	if _, ok := cfg.RuntimeParams["application_name"]; !ok {
		cfg.RuntimeParams["application_name"] = name
	}
}

// idleTransactionTimeout ends a transaction that sits idle this long. bam's
// transactions are sent in one go and never wait between statements; one
// that idles belongs to a process that is paused (SIGSTOP, a frozen VM) or
// cut off mid-transaction, and its row locks would make a peer's takeover
// of its sessions wait until it resumes. The server ends it instead, so a
// paused node is taken over when its leases expire, as promised.
const idleTransactionTimeout = "2s"

// limitIdleTransactions sets idle_in_transaction_session_timeout, unless
// the URL sets it.
func limitIdleTransactions(cfg *pgx.ConnConfig) {
	if _, ok := cfg.RuntimeParams["idle_in_transaction_session_timeout"]; !ok {
		cfg.RuntimeParams["idle_in_transaction_session_timeout"] = idleTransactionTimeout
	}
}

// isSQLState reports whether err is a PostgreSQL error with that code.
func isSQLState(err error, code string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == code
}

// scrub returns err with every known password masked in its text, keeping
// the chain for errors.Is and errors.As. pgx redacts its own messages, but
// only on a best-effort basis, and errors of lower layers (url.Parse) may
// quote the connection string whole.
func (s *Store) scrub(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	clean := msg
	for _, pw := range s.secrets {
		clean = strings.ReplaceAll(clean, pw, "xxxxx")
	}
	// pgx tries a host once per fallback (TLS, then plain) and lists each
	// failure on a line of its own: the same dial error twice says nothing
	// more.
	if strings.Contains(clean, "\n") {
		var lines []string
		for _, l := range strings.Split(clean, "\n") {
			if !slices.Contains(lines, l) {
				lines = append(lines, l)
			}
		}
		clean = strings.Join(lines, "\n")
	}
	if clean == msg {
		return err
	}
	return &scrubbed{msg: clean, err: err}
}

type scrubbed struct {
	msg string
	err error
}

func (e *scrubbed) Error() string { return e.msg }
func (e *scrubbed) Unwrap() error { return e.err }

var kvPassword = regexp.MustCompile(`(?i)\b(?:ssl)?password\s*=\s*('(?:[^'\\]|\\.)*'|[^\s]*)`)

// redact returns the connection string with its passwords masked, for
// messages.
func redact(conn string) string {
	if u, err := url.Parse(conn); err == nil && u.Scheme != "" {
		q := u.Query()
		for _, k := range []string{"password", "sslpassword"} {
			if q.Has(k) {
				q.Set(k, "xxxxx")
			}
		}
		u.RawQuery = q.Encode()
		return u.Redacted()
	}
	if strings.Contains(conn, "://") {
		return "(unparsable store URL)"
	}
	return kvPassword.ReplaceAllStringFunc(conn, func(m string) string {
		return m[:strings.Index(m, "=")+1] + "xxxxx"
	})
}

// passwords returns the passwords written in a connection string, raw and
// URL-escaped, so that scrub can mask them wherever they appear.
func passwords(conn string) []string {
	var out []string
	add := func(pw string) {
		if len(pw) >= 3 { // masking a one-letter password would mangle every message
			out = append(out, pw, url.QueryEscape(pw), url.PathEscape(pw))
		}
	}
	if u, err := url.Parse(conn); err == nil && u.Scheme != "" {
		if pw, ok := u.User.Password(); ok {
			add(pw)
		}
		for _, k := range []string{"password", "sslpassword"} {
			if pw := u.Query().Get(k); pw != "" {
				add(pw)
			}
		}
	} else if i := strings.Index(conn, "://"); i >= 0 {
		// Unparsable URL: mask whatever sits between user: and @.
		rest := conn[i+3:]
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			if c := strings.Index(rest[:at], ":"); c >= 0 {
				add(rest[c+1 : at])
			}
		}
	}
	for _, m := range kvPassword.FindAllStringSubmatch(conn, -1) {
		add(strings.Trim(m[1], "'"))
	}
	return out
}

// aggregationText writes a value of an aggregation as text.
var aggregationText = func(expr string, kind store.ValueKind) string {
	if kind == store.KindTime {
		return "to_char(" + expr + " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
	}
	return expr + "::text"
}
