package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/bam-dev/bam/internal/store"
)

// migrationFiles holds the schema as versioned scripts, NNNN_name.sql, each
// run once in order. bam_schema records the versions applied.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

type migration struct {
	version int
	name    string
	sql     string
}

// loadMigrations reads the embedded scripts and checks that their versions
// run 1, 2, 3... without a gap, so a missing file cannot go unnoticed.
func loadMigrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		return nil, fmt.Errorf("read embedded migrations: %w", err)
	}
	var migs []migration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v < 1 {
			return nil, fmt.Errorf("migration file %s: name must be NNNN_name.sql", e.Name())
		}
		body, err := fs.ReadFile(migrationFiles, path.Join("migrations", e.Name()))
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", e.Name(), err)
		}
		migs = append(migs, migration{version: v, name: e.Name(), sql: string(body)})
	}
	sort.Slice(migs, func(i, j int) bool { return migs[i].version < migs[j].version })
	for i, m := range migs {
		if m.version != i+1 {
			return nil, fmt.Errorf("migration %s: expected version %d", m.name, i+1)
		}
	}
	return migs, nil
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
			if _, err := tx.ExecContext(ctx, m.sql); err != nil {
				return fmt.Errorf("apply %s: %w", m.name, err)
			}
			if _, err := tx.ExecContext(ctx,
				`INSERT INTO bam_schema (version, applied_at) VALUES (?, `+nowSQL+`)`, m.version); err != nil {
				return fmt.Errorf("record version %d: %w", m.version, err)
			}
			to = m.version
		}
		return nil
	})
	if err != nil {
		return from, from, fmt.Errorf("migrate sqlite store %s: %w", s.path, err)
	}
	return from, to, nil
}

// CheckSchema implements store.Store.
func (s *Store) CheckSchema(ctx context.Context) error {
	v, err := schemaVersion(ctx, s.db)
	if err != nil {
		return fmt.Errorf("check schema of %s: %w", s.path, err)
	}
	switch {
	case v == 0:
		return fmt.Errorf("%w (this bam knows version %d)", store.ErrSchemaMissing, s.latest())
	case v < s.latest():
		return fmt.Errorf("%w (store has version %d, this bam knows %d)", store.ErrSchemaOld, v, s.latest())
	case v > s.latest():
		return fmt.Errorf("%w (store has version %d, this bam knows %d)", store.ErrSchemaNewer, v, s.latest())
	}
	return nil
}
