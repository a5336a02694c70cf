// Package sqlite is the embedded store driver: one SQLite file, shared by the
// nodes of a pool running on one machine (modernc.org/sqlite, pure Go).
//
// Several processes open the same file, so every connection runs in WAL mode
// (readers never block the writer), waits up to a busy timeout for the write
// lock instead of failing with SQLITE_BUSY, and begins its write
// transactions IMMEDIATE: a transaction that read first and tried to write
// later could not wait for the lock and would fail exactly when a failover
// makes two nodes write at once. synchronous=FULL makes a commit durable when
// it returns, which AppendBuffer and Apply promise.
//
// Inside one process, write transactions queue on a gate in Go rather than
// on SQLite's busy handler, which sleeps up to 100 ms between tries; lease
// and heartbeat statements pass ahead of batch work at that gate and run on
// a pool of their own, so a renewal never waits for a free connection or
// behind a queue of batches (DESIGN.md, "Renewals stuck behind work").
//
// Every time that decides something is read from SQLite's clock in SQL
// (unixepoch('subsec')) and kept as INTEGER microseconds since the Unix
// epoch; the caller's clock only supplies the TTL.
//
// The files of this driver and of the PostgreSQL driver have the same
// names for the same concerns: apply, buffer, definitions, direct, failed,
// idempotency, instances, lease, liveness, migrate, nodes, sources, views,
// vocabulary, watch. The write gate (gate.go) and the lock files of the
// liveness holds (flock_*.go) are SQLite's own.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"modernc.org/sqlite"

	"github.com/bam-dev/bam/internal/store"
)

var _ store.Store = (*Store)(nil)

// Tuning of the connection pools and the watch.
const (
	// BusyTimeout is how long a statement waits for another process's write
	// lock before failing with SQLITE_BUSY. A write transaction here lasts
	// milliseconds; the margin covers a slow disk's fsync and WAL checkpoints.
	BusyTimeout = 10 * time.Second
	// ClaimLockWait bounds how long Claim waits for the write lock before
	// it gives up with store.ErrLocked (PostgreSQL's lease pool has the
	// same lock_timeout): the caller claims its other sessions meanwhile.
	ClaimLockWait = 500 * time.Millisecond
	// DefaultPollInterval is how often Watch looks for buffer appends and
	// session changes made by other processes when Store.PollInterval is
	// zero.
	DefaultPollInterval = 50 * time.Millisecond

	// workConns bounds the connections for reads and the writes other
	// than batches. Writes are serialized anyway; the rest serve
	// concurrent readers.
	workConns = 8
	// leaseConns bounds the connections for lease and heartbeat statements:
	// one renewal loop and the odd claim or release at a time.
	leaseConns = 2
	// batchConns is the connection of the sessions' batches (Apply), one
	// at a time like every write.
	batchConns = 1
)

// Store is the SQLite store driver. It implements store.Store,
// store.Watcher and store.Liveness. Methods are safe for concurrent use.
type Store struct {
	// PollInterval is how often Watch polls for appends and session
	// changes made by other processes (default DefaultPollInterval). Set it
	// before calling Watch.
	PollInterval time.Duration

	store.DefinitionReads   // Definitions, DefinitionsVersion, Deployments
	store.DeployCommands    // Deploy, RemoveActivity, SetWindow
	store.AggregationAccess // Aggregation, VerifyAggregations
	store.AlertAccess       // OpenFirings, CommitAlerts, deliveries, AlertHistory
	store.ActivityEventsReader

	path  string
	db    *sql.DB // buffer, sources, definitions, reads
	lease *sql.DB // Claim, Renew, Release, ExpireLeases, Join, Leave, ForgetNode, Nodes
	batch *sql.DB // Apply: its temporary storage in memory (dataSourceName)
	gate  writeGate
	hub   hub
	own   ownSeqs // values of the 'sessions' notice counter set through this Store
	migs  []store.Migration

	folds   aggregationFolds // how Apply keeps the aggregations
	upserts upsertStmts      // Apply's, prepared once

	mu        sync.Mutex    // orders holds.Add before Close's holds.Wait
	done      chan struct{} // closed by Close: ends liveness holds and watches
	closeOnce sync.Once
	holds     sync.WaitGroup // liveness holds still to release
}

// Open opens the store file at path, creating it and its directory if
// needed. It does not migrate: call Migrate (bam migrate) or CheckSchema.
func Open(ctx context.Context, path string) (*Store, error) {
	if err := registerFunctions(); err != nil {
		return nil, fmt.Errorf("open sqlite store: %w", err)
	}
	migs, err := loadMigrations()
	if err != nil {
		return nil, fmt.Errorf("open sqlite store: %w", err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o755); err != nil {
		return nil, fmt.Errorf("open sqlite store %s: %w", abs, err)
	}
	s := &Store{path: abs, migs: migs, done: make(chan struct{})}
	dsn := dataSourceName(abs)
	if s.db, err = openPool(ctx, dsn, workConns); err != nil {
		return nil, fmt.Errorf("open sqlite store %s: %w", abs, err)
	}
	if s.lease, err = openPool(ctx, dsn, leaseConns); err != nil {
		_ = s.db.Close()
		return nil, fmt.Errorf("open sqlite store %s (lease connections): %w", abs, err)
	}
	if s.batch, err = openPool(ctx, dataSourceName(abs, "temp_store(MEMORY)"), batchConns); err != nil {
		_ = s.db.Close()
		_ = s.lease.Close()
		return nil, fmt.Errorf("open sqlite store %s (batch connection): %w", abs, err)
	}
	s.DeployCommands = store.DeployCommands{InTx: s.deploying}
	s.DefinitionReads = store.DefinitionReads{Query: query(s.db), Where: abs, ActivitiesSQL: activitiesSQL, DeploymentsSQL: deploymentsSQL}
	s.AggregationAccess = store.AggregationAccess{Exec: func(ctx context.Context, sql string) error { _, err := s.db.ExecContext(ctx, sql); return err }, Query: query(s.db), SQL: aggregations, Deployed: s.DefinitionReads.Definitions, Text: aggregationText}
	s.AlertAccess = s.alertAccess()
	s.ActivityEventsReader = store.ActivityEventsReader{Query: query(s.db)}
	return s, nil
}

// DefaultURL is the store a new user gets: a SQLite file in ./bam-data.
const DefaultURL = "sqlite:bam-data/bam.db"

// PathOf returns the file a sqlite: store URL (sqlite:PATH, as --store and
// BAM_STORE take it) names, and whether raw is a sqlite: URL at all.
func PathOf(raw string) (string, bool) {
	rest, ok := strings.CutPrefix(raw, "sqlite:")
	if !ok {
		return "", false
	}
	return strings.TrimPrefix(rest, "//"), true
}

// OpenURL is Open of the file a sqlite: store URL names.
func OpenURL(ctx context.Context, raw string) (*Store, error) {
	path, ok := PathOf(raw)
	if !ok || path == "" {
		return nil, fmt.Errorf("store URL %q names no file: use sqlite:PATH, e.g. %s (%w)", raw, DefaultURL, store.ErrBadURL)
	}
	st, err := Open(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("open SQLite store %s: %w", path, err)
	}
	return st, nil
}

// dataSourceName is a file: URI, so that any character in the path is
// escaped rather than read as the start of the query; pragmas are more
// PRAGMAs every connection runs. The batch connection keeps its temporary
// storage in memory (temp_store(MEMORY)): its statement journals, which
// every upsert of an instance with aggregation triggers writes, and its
// record of the instances a batch touched, all bounded by a batch. The
// other connections keep the default, so that a large sort of a read
// spills to a file rather than grow the process.
func dataSourceName(path string, pragmas ...string) string {
	q := url.Values{}
	// Order matters: the busy timeout must be in force before switching to
	// WAL, which takes a lock the first time.
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", BusyTimeout.Milliseconds()))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "foreign_keys(1)")
	for _, p := range pragmas {
		q.Add("_pragma", p)
	}
	q.Set("_txlock", "immediate")
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(path), RawQuery: q.Encode()}
	return u.String()
}

func openPool(ctx context.Context, dsn string, conns int) (*sql.DB, error) {
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns) // a reopened connection re-runs the PRAGMAs
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, err
	}
	return db, nil
}

// Driver implements store.Store.
func (s *Store) Driver() string { return "sqlite" }

// Path is the store file.
func (s *Store) Path() string { return s.path }

// Close ends watches and liveness holds (releasing their locks) and closes
// the connections.
func (s *Store) Close() error {
	var err error
	s.closeOnce.Do(func() {
		s.mu.Lock()
		close(s.done)
		s.mu.Unlock()
		s.holds.Wait()
		err = errors.Join(s.upserts.close(), s.batch.Close(), s.db.Close(), s.lease.Close())
		if err != nil {
			err = fmt.Errorf("close sqlite store %s: %w", s.path, err)
		}
	})
	return err
}

// nowSQL is the store's clock in microseconds since the Unix epoch. SQLite
// returns the same 'now' for every use within one statement step.
const nowSQL = "CAST(unixepoch('subsec') * 1000000 AS INTEGER)"

// Which pool and which place in the write queue a write takes.
const (
	work   = false
	urgent = true
)

// write runs fn in one IMMEDIATE transaction, after this process's earlier
// writers (lease writers first). fn's error rolls back and is returned as is.
func (s *Store) write(ctx context.Context, leaseWork bool, fn func(tx *sql.Tx) error) error {
	db := s.db
	if leaseWork {
		db = s.lease
	}
	return s.writeOn(ctx, db, leaseWork, fn)
}

// writeOn is write on the connections of db.
func (s *Store) writeOn(ctx context.Context, db *sql.DB, leaseWork bool, fn func(tx *sql.Tx) error) error {
	if err := s.gate.acquire(ctx, leaseWork); err != nil {
		return err
	}
	defer s.gate.release()
	tx, err := db.BeginTx(ctx, nil) // BEGIN IMMEDIATE (_txlock)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// micros converts a stored time.
func micros(us int64) time.Time { return time.UnixMicro(us).UTC() }

// notFound maps sql.ErrNoRows to store.ErrNotFound, the one place database
// "no rows" becomes the store's sentinel.
func notFound(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return store.ErrNotFound
	}
	return err
}

// query makes q, a pool or a transaction, a store.Query.
func query(q querier) store.Query {
	return func(ctx context.Context, fn func(store.Rows) error, sql string, args ...any) error {
		rows, err := q.QueryContext(ctx, sql, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		return fn(rows)
	}
}

// rowsAffected returns how many rows an Exec touched.
func rowsAffected(res sql.Result, err error) (int64, error) {
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// registerFunctions registers the Go functions the SQL relies on. The
// driver keeps them for every connection it opens afterwards, process-wide,
// and refuses a second registration: hence once.
var registerFunctions = sync.OnceValue(func() error {
	return errors.Join(
		sqlite.RegisterDeterministicScalarFunction(mergeItemsFunc, 2, mergeItems),
		sqlite.RegisterDeterministicScalarFunction(storedTimesFunc, 1, storedTimes))
})

// aggregationText writes a value of an aggregation as text.
var aggregationText = func(expr string, _ store.ValueKind) string { return "CAST(" + expr + " AS TEXT)" }
