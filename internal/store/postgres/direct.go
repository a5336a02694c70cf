package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/bam-dev/bam/internal/event"
)

// WriteEvents is the package's WriteEvents in a transaction of its own on
// the work pool. It returns once the transaction committed; on an error
// nothing was written.
func (s *Store) WriteEvents(ctx context.Context, events []event.Event) error {
	err := pgx.BeginFunc(ctx, s.work, func(tx pgx.Tx) error { return WriteEvents(ctx, tx, events) })
	return s.scrub(err)
}

// identitySQL tells one store's tables from another's: the server (the
// time its postmaster started, the same for every session of it), the
// database, and the bam_instances table the search path finds (its oid,
// unique within the database; NULL without a store schema).
const identitySQL = `SELECT current_database(), pg_postmaster_start_time()::text,
	coalesce(to_regclass('bam_instances')::oid::text, '')`

// Identity returns what identifies the store q writes to: two connections
// or transactions get the same identity if and only if WriteEvents through
// them writes the same tables (while the server is not restarted). It only
// reads, and cannot fail on a healthy transaction, so a caller can compare
// a transaction with the store before writing to it.
func Identity(ctx context.Context, q Tx) (string, error) {
	var db, started, instances string
	if err := q.QueryRow(ctx, identitySQL).Scan(&db, &started, &instances); err != nil {
		return "", fmt.Errorf("read the store's identity: %w", err)
	}
	if instances == "" {
		return "", fmt.Errorf("database %s has no bam_instances table in its search path: not a bam store", db)
	}
	return fmt.Sprintf("database %s (server started %s, bam_instances oid %s)", db, started, instances), nil
}

// Identity is the package's Identity of this store.
func (s *Store) Identity(ctx context.Context) (string, error) {
	id, err := Identity(ctx, s.work)
	return id, s.scrub(err)
}
