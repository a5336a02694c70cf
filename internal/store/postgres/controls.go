package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/bam-dev/bam/internal/store"
)

// Operator controls (store.OperatorControls): each change tells the nodes
// to balance in its own statement, so the notice goes out with the row.

// PoolState implements store.Store.
func (s *Store) PoolState(ctx context.Context) (store.PoolState, error) {
	var p store.PoolState
	err := s.work.QueryRow(ctx, `SELECT paused, paused_at, paused_by FROM bam_pool WHERE id = 1`).Scan(&p.Paused, &p.PausedAt, &p.PausedBy)
	if err != nil {
		return store.PoolState{}, fmt.Errorf("read the pool's state: %w", err)
	}
	if p.PausedAt != nil {
		t := p.PausedAt.UTC()
		p.PausedAt = &t
	}
	return p, nil
}

// SetPoolPaused implements store.Store. A pause of a paused pool keeps its
// first time and author.
func (s *Store) SetPoolPaused(ctx context.Context, paused bool, who string) error {
	_, err := s.work.Exec(ctx, `
		UPDATE bam_pool SET
			paused_at = CASE WHEN NOT $1 THEN NULL WHEN paused THEN paused_at ELSE now() END,
			paused_by = CASE WHEN NOT $1 THEN '' WHEN paused THEN paused_by ELSE $2 END,
			paused = $1
		WHERE id = 1
		RETURNING pg_notify('bam_sessions', '')`, paused, cleanText(who))
	if err != nil {
		return fmt.Errorf("set the pool paused=%t: %w", paused, err)
	}
	return nil
}

// SetNodeDraining implements store.Store. It runs on the lease pool, as
// every statement on the nodes' rows does.
func (s *Store) SetNodeDraining(ctx context.Context, nodeID string, draining bool) error {
	tag, err := s.lease.Exec(ctx, `
		UPDATE bam_nodes SET draining = $2 WHERE id = $1
		RETURNING pg_notify('bam_sessions', '')`, nodeID, draining)
	if err != nil {
		return fmt.Errorf("set node %s draining=%t: %w", nodeID, draining, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("node %s: %w", nodeID, store.ErrNotFound)
	}
	return nil
}

// MoveSession implements store.Store. It waits for a batch holding the
// session's row up to the lease pool's lock_timeout, as a renewal does,
// and then returns store.ErrLocked: the caller tries again.
func (s *Store) MoveSession(ctx context.Context, id store.SessionID, to string) error {
	tag, err := s.lease.Exec(ctx, `
		UPDATE bam_sessions SET move_to = nullif($3, '') WHERE source = $1 AND partition = $2
		RETURNING pg_notify('bam_sessions', '')`, id.Source, id.Partition, to)
	if isSQLState(err, sqlstateLockNotAvailable) {
		return fmt.Errorf("move session %s/%d: a batch has held its row for %v: %w", id.Source, id.Partition, leaseLockTimeout, store.ErrLocked)
	}
	if err != nil {
		return fmt.Errorf("move session %s/%d to %q: %w", id.Source, id.Partition, to, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("session %s/%d: %w", id.Source, id.Partition, store.ErrNotFound)
	}
	return nil
}

// RecordAudit implements store.Store.
func (s *Store) RecordAudit(ctx context.Context, e store.AuditEntry) error {
	_, err := s.work.Exec(ctx, `INSERT INTO bam_audit (who, action, target, detail) VALUES ($1, $2, $3, $4)`,
		cleanText(e.Who), cleanText(e.Action), cleanText(e.Target), cleanText(e.Detail))
	if err != nil {
		return fmt.Errorf("record %q in the audit log: %w", e.Action, err)
	}
	return nil
}

// AuditLog implements store.Store.
func (s *Store) AuditLog(ctx context.Context, limit int) ([]store.AuditEntry, error) {
	rows, err := s.work.Query(ctx, `
		SELECT id, at, who, action, target, detail FROM bam_audit ORDER BY id DESC LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("read the audit log: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.AuditEntry, error) {
		var e store.AuditEntry
		err := r.Scan(&e.ID, &e.At, &e.Who, &e.Action, &e.Target, &e.Detail)
		e.At = e.At.UTC()
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("read the audit log: %w", err)
	}
	return out, nil
}
