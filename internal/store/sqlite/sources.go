package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/bam-dev/bam/internal/store"
)

// AddSource implements store.Store: the source and one free session per
// partition, in one transaction.
func (s *Store) AddSource(ctx context.Context, src store.Source) error {
	switch {
	case src.Name == "":
		return errors.New("add source: name must not be empty")
	case src.Kind == "":
		return fmt.Errorf("add source %q: kind must not be empty", src.Name)
	case src.Partitions < 1:
		return fmt.Errorf("add source %q: partitions must be at least 1, got %d", src.Name, src.Partitions)
	}
	var seq int64
	err := s.write(ctx, work, func(tx *sql.Tx) error {
		n, err := rowsAffected(tx.ExecContext(ctx, `
			INSERT INTO bam_sources (name, kind, partitions, enabled, dsn, tbl, created_at)
			VALUES (?, ?, ?, ?, ?, ?, `+nowSQL+`)
			ON CONFLICT (name) DO NOTHING`,
			src.Name, string(src.Kind), src.Partitions, src.Enabled, src.DSN, src.Table))
		if err != nil {
			return err
		}
		if n == 0 {
			return store.ErrExists
		}
		_, err = tx.ExecContext(ctx, `
			WITH RECURSIVE p(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM p WHERE n + 1 < ?2)
			INSERT INTO bam_sessions (source, partition) SELECT ?1, n FROM p`,
			src.Name, src.Partitions)
		if err != nil {
			return err
		}
		seq, err = bumpSessions(ctx, tx)
		return err
	})
	if err != nil {
		return fmt.Errorf("add source %q: %w", src.Name, err)
	}
	s.sessionsChanged(seq)
	return nil
}

const sourceColumns = `name, kind, partitions, enabled, dsn, tbl, created_at`

func scanSource(sc interface{ Scan(...any) error }) (store.Source, error) {
	var (
		src     store.Source
		kind    string
		created int64
	)
	if err := sc.Scan(&src.Name, &kind, &src.Partitions, &src.Enabled, &src.DSN, &src.Table, &created); err != nil {
		return store.Source{}, err
	}
	src.Kind = store.SourceKind(kind)
	src.CreatedAt = micros(created)
	return src, nil
}

// Sources implements store.Store, ordered by name.
func (s *Store) Sources(ctx context.Context) ([]store.Source, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+sourceColumns+` FROM bam_sources ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list sources: %w", err)
	}
	defer rows.Close()
	var out []store.Source
	for rows.Next() {
		src, err := scanSource(rows)
		if err != nil {
			return nil, fmt.Errorf("list sources: %w", err)
		}
		out = append(out, src)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list sources: %w", err)
	}
	return out, nil
}

// Source implements store.Store.
func (s *Store) Source(ctx context.Context, name string) (store.Source, error) {
	src, err := scanSource(s.db.QueryRowContext(ctx, `SELECT `+sourceColumns+` FROM bam_sources WHERE name = ?`, name))
	if err != nil {
		return store.Source{}, fmt.Errorf("source %q: %w", name, notFound(err))
	}
	return src, nil
}

// SetSourceEnabled implements store.Store.
func (s *Store) SetSourceEnabled(ctx context.Context, name string, enabled bool) error {
	var seq int64
	err := s.write(ctx, work, func(tx *sql.Tx) error {
		n, err := rowsAffected(tx.ExecContext(ctx, `UPDATE bam_sources SET enabled = ? WHERE name = ?`, enabled, name))
		if err != nil {
			return err
		}
		if n == 0 {
			return store.ErrNotFound
		}
		seq, err = bumpSessions(ctx, tx)
		return err
	})
	if err != nil {
		return fmt.Errorf("set source %q enabled=%t: %w", name, enabled, err)
	}
	s.sessionsChanged(seq)
	return nil
}

// RemoveSource implements store.Store. Its sessions and buffered events go
// with it (ON DELETE CASCADE); its failed events stay for the operator. A
// node still applying a batch of the source finds its session gone and is
// fenced.
func (s *Store) RemoveSource(ctx context.Context, name string) error {
	var seq int64
	err := s.write(ctx, work, func(tx *sql.Tx) error {
		var enabled bool
		err := tx.QueryRowContext(ctx, `SELECT enabled FROM bam_sources WHERE name = ?`, name).Scan(&enabled)
		if err != nil {
			return notFound(err)
		}
		if enabled {
			var live int
			err := tx.QueryRowContext(ctx, `
				SELECT count(*) FROM bam_sessions
				WHERE source = ? AND owner IS NOT NULL AND lease_expires_at > `+nowSQL, name).Scan(&live)
			if err != nil {
				return err
			}
			if live > 0 {
				return fmt.Errorf("%d sessions are owned, disable the source first: %w", live, store.ErrNotClaimable)
			}
		}
		if _, err = tx.ExecContext(ctx, `DELETE FROM bam_sources WHERE name = ?`, name); err != nil {
			return err
		}
		seq, err = bumpSessions(ctx, tx)
		return err
	})
	if err != nil {
		return fmt.Errorf("remove source %q: %w", name, err)
	}
	s.sessionsChanged(seq)
	return nil
}
