package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"fmt"

	"github.com/bam-dev/bam/internal/store"
)

// migrationFiles holds the schema as versioned scripts, NNNN_name.sql, each
// run once in order. bam_schema records the versions applied.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// loadMigrations reads the embedded scripts in version order.
func loadMigrations() ([]store.Migration, error) {
	return store.LoadMigrations(migrationFiles, "migrations")
}

// latest is the schema version this binary knows.
func (s *Store) latest() int { return len(s.migs) }

type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// schemaVersion is the store's schema version; 0 when it has none.
func schemaVersion(ctx context.Context, q queryer) (int, error) {
	var tables int
	err := q.QueryRowContext(ctx,
		`SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'bam_schema'`).Scan(&tables)
	if err != nil || tables == 0 {
		return 0, err
	}
	var v int
	err = q.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM bam_schema`).Scan(&v)
	return v, err
}

// Migrate implements store.Store. The whole upgrade is one IMMEDIATE
// transaction (SQLite's DDL is transactional), so two processes migrating
// at once serialize and the second finds nothing left to do.
func (s *Store) Migrate(ctx context.Context) (from, to int, err error) {
	err = s.write(ctx, work, func(tx *sql.Tx) error {
		v, err := schemaVersion(ctx, tx)
		if err != nil {
			return err
		}
		from, to = v, v
		if v > s.latest() {
			return fmt.Errorf("%w (store has version %d, this bam knows %d)", store.ErrSchemaNewer, v, s.latest())
		}
		for _, m := range s.migs[v:] {
			if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
				return fmt.Errorf("apply %s: %w", m.Name, err)
			}
			if _, err := tx.ExecContext(ctx,
				`INSERT INTO bam_schema (version, applied_at) VALUES (?, `+nowSQL+`)`, m.Version); err != nil {
				return fmt.Errorf("record version %d: %w", m.Version, err)
			}
			to = m.Version
		}
		if from > 0 && from < gateVersion && to >= gateVersion {
			return rewriteAggregationTriggers(ctx, tx)
		}
		return nil
	})
	if err != nil {
		return from, from, fmt.Errorf("migrate sqlite store %s: %w", s.path, err)
	}
	return from, to, nil
}

// gateVersion is the last schema version that changed the aggregation
// triggers: from it they are gates and movers (0017_aggregation_gates.sql);
// from version 12 (0012_aggregation_fold.sql) a batch folds its
// aggregation changes and the row triggers step aside while it does.
const gateVersion = 17

// rewriteAggregationTriggers writes the aggregation triggers of every
// deployed activity again, as this bam writes them: those written before
// version 12 would keep the cells of a batch that folds them too, and
// count its instances twice; those written before gateVersion would cost
// every batch's row every aggregation's program.
func rewriteAggregationTriggers(ctx context.Context, tx *sql.Tx) error {
	deployed, _, err := readDefinitions(ctx, tx)
	if err != nil {
		return fmt.Errorf("rewrite the aggregation triggers: %w", err)
	}
	for _, a := range deployed {
		for _, q := range append(triggers.Drop(a.Activity), triggers.Create(a.Activity)...) {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("rewrite the aggregation triggers of %s: %w", a.Activity.Name, err)
			}
		}
	}
	return nil
}

// CheckSchema implements store.Store.
func (s *Store) CheckSchema(ctx context.Context) error {
	v, err := schemaVersion(ctx, s.db)
	if err != nil {
		return fmt.Errorf("check schema of %s: %w", s.path, err)
	}
	return store.CompareSchema(v, s.latest())
}
