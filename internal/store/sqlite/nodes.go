package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/bam-dev/bam/internal/store"
)

// Membership: the nodes' rows and their departures. Every statement here
// runs on the lease pool and passes ahead of batch work at the write gate,
// as the lease statements do (lease.go).

// insertNode writes a node's row with a fresh heartbeat. A started_at of
// zero is taken as the store's now.
const insertNode = `
	INSERT INTO bam_nodes (id, name, host, pid, started_at, heartbeat_at, state, lock_key)
	VALUES (?1, ?2, ?3, ?4, coalesce(?5, ` + nowSQL + `), ` + nowSQL + `, ?6, ?7)
	ON CONFLICT (id) DO UPDATE SET
		name = excluded.name, host = excluded.host, pid = excluded.pid,
		heartbeat_at = excluded.heartbeat_at, state = excluded.state, lock_key = excluded.lock_key`

// joinNode replaces the row, start time included; heartbeatNode (Renew)
// keeps the start time of a row that exists.
const (
	joinNode      = insertNode + `, started_at = excluded.started_at`
	heartbeatNode = insertNode
)

func nodeArgs(n store.NodeRow) []any {
	var started any
	if !n.StartedAt.IsZero() {
		started = n.StartedAt.UnixMicro()
	}
	return []any{n.ID, n.Name, n.Host, n.PID, started, string(n.State), n.LockKey}
}

// Join implements store.Store: the row is written afresh, start time
// included, and the other nodes are told to balance, so that a new node
// gets work without waiting for their timers.
func (s *Store) Join(ctx context.Context, n store.NodeRow) error {
	if n.ID == "" {
		return errors.New("join: node id must not be empty")
	}
	var seq int64
	err := s.write(ctx, urgent, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, joinNode, nodeArgs(n)...); err != nil {
			return err
		}
		var err error
		seq, err = bumpSessions(ctx, tx)
		return err
	})
	if err != nil {
		return fmt.Errorf("join node %s: %w", n.ID, err)
	}
	s.sessionsChanged(seq)
	return nil
}

// Leave implements store.Store: the node's sessions are freed (epochs kept,
// so the next claim fences anything still in flight), its row deleted and
// recorded as departed, and the other nodes told to balance, in one
// transaction.
func (s *Store) Leave(ctx context.Context, nodeID string) error {
	var seq int64
	err := s.write(ctx, urgent, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx,
			`UPDATE bam_sessions SET owner = NULL, lease_expires_at = NULL WHERE owner = ?`, nodeID); err != nil {
			return err
		}
		if err := departNode(ctx, tx, nodeID, store.Departure{Why: store.DepartedCleanly}); err != nil {
			return err
		}
		var err error
		seq, err = bumpSessions(ctx, tx)
		return err
	})
	if err != nil {
		return fmt.Errorf("leave node %s: %w", nodeID, err)
	}
	s.sessionsChanged(seq)
	return nil
}

// ForgetNode implements store.Store. Forgetting a node that is already
// gone is not an error, and records nothing more: several peers may find
// the same dead node, and the first to delete its row says why.
func (s *Store) ForgetNode(ctx context.Context, nodeID string, why store.Departure) error {
	err := s.write(ctx, urgent, func(tx *sql.Tx) error { return departNode(ctx, tx, nodeID, why) })
	if err != nil {
		return fmt.Errorf("forget node %s: %w", nodeID, err)
	}
	return nil
}

// departNode records a node's row as departed, replacing an older record
// of the same node (one forgotten, back, and gone again), deletes the row,
// and prunes the records older than store.DepartedMemory.
func departNode(ctx context.Context, tx *sql.Tx, nodeID string, why store.Departure) error {
	if _, err := tx.ExecContext(ctx, `
		INSERT INTO bam_departed_nodes (id, name, host, pid, started_at, heartbeat_at, departed_at, found_dead_by, why)
		SELECT id, name, host, pid, started_at, heartbeat_at, `+nowSQL+`, ?2, ?3 FROM bam_nodes WHERE id = ?1
		ON CONFLICT (id) DO UPDATE SET name = excluded.name, host = excluded.host, pid = excluded.pid,
			started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at, departed_at = excluded.departed_at,
			found_dead_by = excluded.found_dead_by, why = excluded.why`,
		nodeID, why.FoundDeadBy, why.Why); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM bam_nodes WHERE id = ?`, nodeID); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, `DELETE FROM bam_departed_nodes WHERE departed_at < `+nowSQL+` - ?`, store.DepartedMemory.Microseconds())
	return err
}

// DepartedNodes implements store.Store, the latest first.
func (s *Store) DepartedNodes(ctx context.Context) ([]store.DepartedNode, error) {
	rows, err := s.db.QueryContext(ctx, `
		SELECT d.id, d.name, d.host, d.pid, d.started_at, d.heartbeat_at, `+nowSQL+` - d.heartbeat_at,
		       d.departed_at, `+nowSQL+` - d.departed_at, d.found_dead_by, d.why
		FROM bam_departed_nodes AS d
		WHERE d.departed_at >= `+nowSQL+` - ?
		  AND NOT EXISTS (SELECT 1 FROM bam_nodes AS n WHERE n.id = d.id)
		ORDER BY d.departed_at DESC, d.id`, store.DepartedMemory.Microseconds())
	if err != nil {
		return nil, fmt.Errorf("list departed nodes: %w", err)
	}
	defer rows.Close()
	out, err := store.CollectRows(rows, store.ScanDepartedNode)
	if err != nil {
		return nil, fmt.Errorf("list departed nodes: %w", err)
	}
	return out, nil
}

// Nodes implements store.Store, ordered by id.
func (s *Store) Nodes(ctx context.Context) ([]store.NodeRow, error) {
	rows, err := s.lease.QueryContext(ctx, `
		SELECT id, name, host, pid, started_at, heartbeat_at, `+nowSQL+` - heartbeat_at, state, lock_key, draining
		FROM bam_nodes ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	defer rows.Close()
	out, err := store.CollectRows(rows, store.ScanNode)
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	return out, nil
}
