package postgres

import (
	"context"
	"embed"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/bam-dev/bam/internal/store"
)

// migrationFiles holds the schema, one file per version: NNNN_what.sql.
// A released file is never edited; a change is a new file.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrations returns the embedded migrations in version order.
func migrations() ([]store.Migration, error) {
	return store.LoadMigrations(migrationFiles, "migrations")
}

// latestVersion is the schema version this binary knows.
func latestVersion() (int, error) {
	ms, err := migrations()
	if err != nil {
		return 0, err
	}
	return len(ms), nil
}

// Two-key advisory lock that serializes `bam migrate` runs. The two-key
// form lives in another lock space than the one-bigint keys of liveness
// locks, so the two can never collide.
const (
	migrateLockClass = 0x62616d // "bam"
	migrateLockObj   = 1
)

// Migrate implements store.Store. It runs in one transaction under an
// advisory lock, so two concurrent runs apply each migration once, and a
// failed migration leaves the schema as it was.
func (s *Store) Migrate(ctx context.Context) (from, to int, err error) {
	ms, err := migrations()
	if err != nil {
		return 0, 0, fmt.Errorf("migrate: %w", err)
	}
	err = pgx.BeginFunc(ctx, s.work, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, $2)`, int32(migrateLockClass), int32(migrateLockObj)); err != nil {
			return fmt.Errorf("take the migration lock: %w", err)
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS bam_schema (
			version    integer PRIMARY KEY,
			name       text NOT NULL,
			applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
			return fmt.Errorf("create bam_schema: %w", err)
		}
		if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM bam_schema`).Scan(&from); err != nil {
			return fmt.Errorf("read the schema version: %w", err)
		}
		if from > len(ms) {
			return fmt.Errorf("%w (store has version %d, this bam knows %d)", store.ErrSchemaNewer, from, len(ms))
		}
		for _, m := range ms[from:] {
			// The simple protocol runs a file of many statements at once.
			if _, err := tx.Conn().PgConn().Exec(ctx, m.SQL).ReadAll(); err != nil {
				return fmt.Errorf("apply %s: %w", m.Name, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO bam_schema (version, name) VALUES ($1, $2)`, m.Version, m.Name); err != nil {
				return fmt.Errorf("record %s: %w", m.Name, err)
			}
		}
		return nil
	})
	if err != nil {
		return from, from, fmt.Errorf("migrate store %s: %w", s.where, err)
	}
	return from, len(ms), nil
}

// CheckSchema implements store.Store.
func (s *Store) CheckSchema(ctx context.Context) error {
	want, err := latestVersion()
	if err != nil {
		return fmt.Errorf("check schema: %w", err)
	}
	var exists bool
	if err := s.work.QueryRow(ctx, `SELECT to_regclass('bam_schema') IS NOT NULL`).Scan(&exists); err != nil {
		return fmt.Errorf("check schema of store %s: %w", s.where, err)
	}
	var have int
	if exists {
		if err := s.work.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM bam_schema`).Scan(&have); err != nil {
			return fmt.Errorf("check schema of store %s: %w", s.where, err)
		}
	}
	return store.CompareSchema(have, want)
}
