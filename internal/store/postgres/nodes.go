package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bam-dev/bam/internal/store"
)

// Membership: the nodes' rows and their departures, on the lease pool as
// the lease statements are (lease.go).

// upsertNode is the heartbeat: it inserts the node's row, or refreshes it.
// Join replaces started_at; a renewal keeps the row's own.
const upsertNode = `
	INSERT INTO bam_nodes AS n (id, name, host, pid, started_at, heartbeat_at, state, lock_key)
	VALUES ($1, $2, $3, $4, coalesce($5, now()), now(), $6, $7)
	ON CONFLICT (id) DO UPDATE SET
		name = EXCLUDED.name, host = EXCLUDED.host, pid = EXCLUDED.pid,
		started_at = CASE WHEN $8 THEN EXCLUDED.started_at ELSE n.started_at END,
		heartbeat_at = now(), state = EXCLUDED.state, lock_key = EXCLUDED.lock_key`

func nodeArgs(n store.NodeRow, replace bool) []any {
	var started *time.Time
	if !n.StartedAt.IsZero() {
		started = &n.StartedAt
	}
	state := n.State
	if state == "" {
		state = store.NodeRunning
	}
	return []any{n.ID, n.Name, n.Host, n.PID, started, string(state), n.LockKey, replace}
}

// Join implements store.Store. It also tells the other nodes to balance, so
// a new node gets work without waiting for their timers.
func (s *Store) Join(ctx context.Context, n store.NodeRow) error {
	if n.ID == "" {
		return errors.New("join: node id must not be empty")
	}
	b := &pgx.Batch{}
	b.Queue(upsertNode, nodeArgs(n, true)...)
	b.Queue(`SELECT pg_notify('bam_sessions', '')`)
	// One implicit transaction: the notice goes out with the row.
	if err := s.lease.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("join node %s: %w", n.ID, err)
	}
	return nil
}

// Leave implements store.Store: the node's leases are freed (epochs kept, so
// the next claim raises them), its row deleted and recorded as departed,
// and the nodes told to balance, in one transaction.
func (s *Store) Leave(ctx context.Context, nodeID string) error {
	ctx = forNode(ctx, nodeID)
	_, err := s.lease.Exec(ctx, `
		WITH released AS (
			UPDATE bam_sessions SET owner = NULL, lease_expires_at = NULL WHERE owner = $1
		), `+departNode+`
		SELECT pg_notify('bam_sessions', '')`, nodeID, "", store.DepartedCleanly, micros(store.DepartedMemory))
	if err != nil {
		return fmt.Errorf("leave node %s: %w", nodeID, err)
	}
	return nil
}

// ForgetNode implements store.Store. Forgetting a node that is already gone
// is not an error, and records nothing more: several peers may find the
// same node dead at once, and the first to delete its row says why (the
// SQLite driver does the same).
func (s *Store) ForgetNode(ctx context.Context, nodeID string, why store.Departure) error {
	_, err := s.lease.Exec(ctx, `WITH `+departNode+` SELECT`, nodeID, why.FoundDeadBy, cleanText(why.Why), micros(store.DepartedMemory))
	if err != nil {
		return fmt.Errorf("forget node %s: %w", nodeID, err)
	}
	return nil
}

// departNode holds the common table expressions that delete node $1's
// row, record it as departed (found dead by $2, empty when it left; why
// $3) and prune the records older than $4 microseconds. A record of the
// same node (one forgotten, back, and gone again) is replaced; the pruning
// leaves it alone, as one statement must not touch a row twice.
const departNode = `
	gone AS (
		DELETE FROM bam_nodes WHERE id = $1
		RETURNING id, name, host, pid, started_at, heartbeat_at
	), recorded AS (
		INSERT INTO bam_departed_nodes AS d (id, name, host, pid, started_at, heartbeat_at, departed_at, found_dead_by, why)
		SELECT id, name, host, pid, started_at, heartbeat_at, now(), $2, $3 FROM gone
		ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, host = EXCLUDED.host, pid = EXCLUDED.pid,
			started_at = EXCLUDED.started_at, heartbeat_at = EXCLUDED.heartbeat_at, departed_at = EXCLUDED.departed_at,
			found_dead_by = EXCLUDED.found_dead_by, why = EXCLUDED.why
	), pruned AS (
		DELETE FROM bam_departed_nodes WHERE departed_at < now() - $4 * interval '1 microsecond' AND id <> $1
	)`

// DepartedNodes implements store.Store, the latest first.
func (s *Store) DepartedNodes(ctx context.Context) ([]store.DepartedNode, error) {
	rows, err := s.work.Query(ctx, `
		SELECT d.id, d.name, d.host, d.pid, d.started_at, d.heartbeat_at,
		       (extract(epoch FROM now() - d.heartbeat_at) * 1000000)::bigint,
		       d.departed_at, (extract(epoch FROM now() - d.departed_at) * 1000000)::bigint,
		       d.found_dead_by, d.why
		FROM bam_departed_nodes AS d
		WHERE d.departed_at >= now() - $1 * interval '1 microsecond'
		  AND NOT EXISTS (SELECT FROM bam_nodes AS n WHERE n.id = d.id)
		ORDER BY d.departed_at DESC, d.id`, micros(store.DepartedMemory))
	if err != nil {
		return nil, fmt.Errorf("list departed nodes: %w", err)
	}
	out, err := pgx.CollectRows(rows, rowTo(store.ScanDepartedNode))
	if err != nil {
		return nil, fmt.Errorf("list departed nodes: %w", err)
	}
	return out, nil
}

// Nodes implements store.Store, ordered by id. HeartbeatAge is computed with
// the store's clock. It runs on the lease pool: failover decisions read it.
func (s *Store) Nodes(ctx context.Context) ([]store.NodeRow, error) {
	rows, err := s.lease.Query(ctx, `
		SELECT id, name, host, pid, started_at, heartbeat_at,
		       (extract(epoch FROM now() - heartbeat_at) * 1000000)::bigint, state, lock_key, draining
		FROM bam_nodes ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	out, err := pgx.CollectRows(rows, rowTo(store.ScanNode))
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	return out, nil
}
