package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/bam-dev/bam/internal/store"
)

// Pool-wide settings: bam_pool_settings (migration 0015); a change sends
// NOTIFY bam_settings in its own statement, so the nodes hear of it once
// it commits.

var _ store.PoolSettings = (*Store)(nil)

// PoolSettings implements store.PoolSettings.
func (s *Store) PoolSettings(ctx context.Context) ([]store.PoolSetting, error) {
	rows, err := s.work.Query(ctx, `SELECT name, value, set_by, set_at FROM bam_pool_settings ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("read the pool settings: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.PoolSetting, error) {
		var p store.PoolSetting
		err := row.Scan(&p.Name, &p.Value, &p.SetBy, &p.SetAt)
		p.SetAt = p.SetAt.UTC()
		return p, err
	})
	if err != nil {
		return nil, fmt.Errorf("read the pool settings: %w", err)
	}
	return out, nil
}

// SetPoolSetting implements store.PoolSettings.
func (s *Store) SetPoolSetting(ctx context.Context, p store.PoolSetting) (store.PoolSetting, error) {
	out := store.PoolSetting{Name: p.Name, Value: p.Value, SetBy: p.SetBy}
	err := s.work.QueryRow(ctx, `
		WITH set AS (
			INSERT INTO bam_pool_settings (name, value, set_by, set_at) VALUES ($1, $2, $3, now())
			ON CONFLICT (name) DO UPDATE SET value = excluded.value, set_by = excluded.set_by, set_at = excluded.set_at
			RETURNING set_at)
		SELECT set_at, pg_notify('bam_settings', '') FROM set`, p.Name, p.Value, p.SetBy).Scan(&out.SetAt, nil)
	if err != nil {
		return store.PoolSetting{}, fmt.Errorf("set the pool setting %s: %w", p.Name, err)
	}
	out.SetAt = out.SetAt.UTC()
	return out, nil
}

// UnsetPoolSetting implements store.PoolSettings.
func (s *Store) UnsetPoolSetting(ctx context.Context, name string) error {
	tag, err := s.work.Exec(ctx, `
		DELETE FROM bam_pool_settings WHERE name = $1
		RETURNING pg_notify('bam_settings', '')`, name)
	if err != nil {
		return fmt.Errorf("unset the pool setting %s: %w", name, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("pool setting %s: %w", name, store.ErrNotFound)
	}
	return nil
}
