package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/bam-dev/bam/internal/store"
)

// Pool-wide settings: bam_pool_settings (migration 0016). A change bumps
// bam_notices' 'settings' counter in its transaction, for the watchers of
// other processes, and tells this process's watchers after the commit.

// PoolSettings implements store.PoolSettings.
func (s *Store) PoolSettings(ctx context.Context) ([]store.PoolSetting, error) {
	var out []store.PoolSetting
	err := query(s.db)(ctx, func(rows store.Rows) error {
		for rows.Next() {
			var p store.PoolSetting
			var at int64
			if err := rows.Scan(&p.Name, &p.Value, &p.SetBy, &at); err != nil {
				return err
			}
			p.SetAt = micros(at)
			out = append(out, p)
		}
		return rows.Err()
	}, `SELECT name, value, set_by, set_at FROM bam_pool_settings ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("read the pool settings: %w", err)
	}
	return out, nil
}

var _ store.PoolSettings = (*Store)(nil)

// SetPoolSetting implements store.PoolSettings.
func (s *Store) SetPoolSetting(ctx context.Context, p store.PoolSetting) (store.PoolSetting, error) {
	out := store.PoolSetting{Name: p.Name, Value: p.Value, SetBy: p.SetBy}
	err := s.write(ctx, work, func(tx *sql.Tx) error {
		var at int64
		err := tx.QueryRowContext(ctx, `
			INSERT INTO bam_pool_settings (name, value, set_by, set_at) VALUES (?, ?, ?, `+nowSQL+`)
			ON CONFLICT (name) DO UPDATE SET value = excluded.value, set_by = excluded.set_by, set_at = excluded.set_at
			RETURNING set_at`, p.Name, p.Value, p.SetBy).Scan(&at)
		if err != nil {
			return err
		}
		out.SetAt = micros(at)
		return bumpSettings(ctx, tx)
	})
	if err != nil {
		return store.PoolSetting{}, fmt.Errorf("set the pool setting %s: %w", p.Name, err)
	}
	s.hub.publish(store.Notice{Topic: store.TopicSettings})
	return out, nil
}

// UnsetPoolSetting implements store.PoolSettings.
func (s *Store) UnsetPoolSetting(ctx context.Context, name string) error {
	err := s.write(ctx, work, func(tx *sql.Tx) error {
		n, err := rowsAffected(tx.ExecContext(ctx, `DELETE FROM bam_pool_settings WHERE name = ?`, name))
		if err != nil {
			return err
		}
		if n == 0 {
			return store.ErrNotFound
		}
		return bumpSettings(ctx, tx)
	})
	if err != nil {
		return fmt.Errorf("unset the pool setting %s: %w", name, err)
	}
	s.hub.publish(store.Notice{Topic: store.TopicSettings})
	return nil
}

// bumpSettings moves the 'settings' counter that Watch polls, in the
// transaction that changes a setting. (This process's watchers are told at
// once and again by their poll: a hint too many costs one read.)
func bumpSettings(ctx context.Context, tx *sql.Tx) error {
	if _, err := tx.ExecContext(ctx, `UPDATE bam_notices SET seq = seq + 1 WHERE topic = 'settings'`); err != nil {
		return fmt.Errorf("count the settings change: %w", err)
	}
	return nil
}
