package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/bam-dev/bam/internal/store"
)

// Operator controls (store.OperatorControls): each change moves the
// 'sessions' counter in its own transaction, so that every node balances.

// PoolState implements store.Store.
func (s *Store) PoolState(ctx context.Context) (store.PoolState, error) {
	var p store.PoolState
	err := s.db.QueryRowContext(ctx, `SELECT paused, paused_at, paused_by FROM bam_pool WHERE id = 1`).
		Scan(&p.Paused, store.NullInstant(&p.PausedAt), &p.PausedBy)
	if err != nil {
		return store.PoolState{}, fmt.Errorf("read the pool's state: %w", err)
	}
	return p, nil
}

// SetPoolPaused implements store.Store. A pause of a paused pool keeps its
// first time and author.
func (s *Store) SetPoolPaused(ctx context.Context, paused bool, who string) error {
	return s.controlWrite(ctx, fmt.Sprintf("set the pool paused=%t", paused), func(tx *sql.Tx) (int64, error) {
		return rowsAffected(tx.ExecContext(ctx, `
			UPDATE bam_pool SET
				paused_at = CASE WHEN NOT ?1 THEN NULL WHEN paused THEN paused_at ELSE `+nowSQL+` END,
				paused_by = CASE WHEN NOT ?1 THEN '' WHEN paused THEN paused_by ELSE ?2 END,
				paused = ?1
			WHERE id = 1`, paused, who))
	})
}

// SetNodeDraining implements store.Store.
func (s *Store) SetNodeDraining(ctx context.Context, nodeID string, draining bool) error {
	return s.controlWrite(ctx, fmt.Sprintf("set node %s draining=%t", nodeID, draining), func(tx *sql.Tx) (int64, error) {
		n, err := rowsAffected(tx.ExecContext(ctx, `UPDATE bam_nodes SET draining = ? WHERE id = ?`, draining, nodeID))
		if err == nil && n == 0 {
			err = fmt.Errorf("node %s: %w", nodeID, store.ErrNotFound)
		}
		return n, err
	})
}

// MoveSession implements store.Store.
func (s *Store) MoveSession(ctx context.Context, id store.SessionID, to string) error {
	var target any
	if to != "" {
		target = to
	}
	// As a claim: never wait long for the write lock (ErrLocked).
	wctx, cancel := context.WithTimeout(ctx, ClaimLockWait)
	defer cancel()
	err := s.controlWrite(wctx, fmt.Sprintf("move session %s/%d to %q", id.Source, id.Partition, to), func(tx *sql.Tx) (int64, error) {
		n, err := rowsAffected(tx.ExecContext(ctx, `UPDATE bam_sessions SET move_to = ? WHERE source = ? AND partition = ?`,
			target, id.Source, id.Partition))
		if err == nil && n == 0 {
			err = fmt.Errorf("session %s/%d: %w", id.Source, id.Partition, store.ErrNotFound)
		}
		return n, err
	})
	if isBusy(err) || (errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil) {
		return fmt.Errorf("%w (the database's write lock stayed taken for %v): %w", store.ErrLocked, ClaimLockWait, err)
	}
	return err
}

// controlWrite runs change in a write transaction ahead of batch work,
// tells the nodes to balance, and names what failed.
func (s *Store) controlWrite(ctx context.Context, what string, change func(tx *sql.Tx) (int64, error)) error {
	var seq int64
	err := s.write(ctx, urgent, func(tx *sql.Tx) error {
		if _, err := change(tx); err != nil {
			return err
		}
		var err error
		seq, err = bumpSessions(ctx, tx)
		return err
	})
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	s.sessionsChanged(seq)
	return nil
}

// RecordAudit implements store.Store.
func (s *Store) RecordAudit(ctx context.Context, e store.AuditEntry) error {
	err := s.write(ctx, work, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO bam_audit (at, who, action, target, detail) VALUES (`+nowSQL+`, ?, ?, ?, ?)`,
			e.Who, e.Action, e.Target, e.Detail)
		return err
	})
	if err != nil {
		return fmt.Errorf("record %q in the audit log: %w", e.Action, err)
	}
	return nil
}

// AuditLog implements store.Store.
func (s *Store) AuditLog(ctx context.Context, limit int) ([]store.AuditEntry, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, at, who, action, target, detail FROM bam_audit ORDER BY id DESC LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("read the audit log: %w", err)
	}
	defer rows.Close()
	out, err := store.CollectRows(rows, func(r store.RowScanner) (store.AuditEntry, error) {
		var e store.AuditEntry
		err := r.Scan(&e.ID, store.Instant(&e.At), &e.Who, &e.Action, &e.Target, &e.Detail)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("read the audit log: %w", err)
	}
	return out, nil
}
