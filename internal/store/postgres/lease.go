package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bam-dev/bam/internal/store"
)

// Membership and lease statements run on the lease pool, never the work
// pool, so that a renewal never waits for a connection behind batches.
// Expiry is always now() + ttl on the store's clock; ttl travels as
// microseconds.

// upsertNode is the heartbeat: it inserts the node's row, or refreshes it.
// Join replaces started_at; a renewal keeps the row's own.
const upsertNode = `
	INSERT INTO bam_nodes AS n (id, name, host, pid, started_at, heartbeat_at, state, lock_key)
	VALUES ($1, $2, $3, $4, coalesce($5, now()), now(), $6, $7)
	ON CONFLICT (id) DO UPDATE SET
		name = EXCLUDED.name, host = EXCLUDED.host, pid = EXCLUDED.pid,
		started_at = CASE WHEN $8 THEN EXCLUDED.started_at ELSE n.started_at END,
		heartbeat_at = now(), state = EXCLUDED.state, lock_key = EXCLUDED.lock_key`

func nodeArgs(n store.Node, replace bool) []any {
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

func micros(d time.Duration) int64 { return d.Microseconds() }

// Join implements store.Store. It also tells the other nodes to balance, so
// a new node gets work without waiting for their timers.
func (s *Store) Join(ctx context.Context, n store.Node) error {
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
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.DepartedNode, error) {
		var d store.DepartedNode
		var beatAge, age int64
		err := row.Scan(&d.ID, &d.Name, &d.Host, &d.PID, &d.StartedAt, &d.HeartbeatAt, &beatAge,
			&d.DepartedAt, &age, &d.FoundDeadBy, &d.Why)
		d.StartedAt, d.HeartbeatAt, d.DepartedAt = d.StartedAt.UTC(), d.HeartbeatAt.UTC(), d.DepartedAt.UTC()
		d.HeartbeatAge = time.Duration(beatAge) * time.Microsecond
		d.DepartedAge = time.Duration(age) * time.Microsecond
		return d, err
	})
	if err != nil {
		return nil, fmt.Errorf("list departed nodes: %w", err)
	}
	return out, nil
}

// Nodes implements store.Store, ordered by id. HeartbeatAge is computed with
// the store's clock. It runs on the lease pool: failover decisions read it.
func (s *Store) Nodes(ctx context.Context) ([]store.Node, error) {
	rows, err := s.lease.Query(ctx, `
		SELECT id, name, host, pid, started_at, heartbeat_at,
		       (extract(epoch FROM now() - heartbeat_at) * 1000000)::bigint, state, lock_key
		FROM bam_nodes ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Node, error) {
		var n store.Node
		var age int64
		var state string
		err := row.Scan(&n.ID, &n.Name, &n.Host, &n.PID, &n.StartedAt, &n.HeartbeatAt, &age, &state, &n.LockKey)
		n.StartedAt, n.HeartbeatAt = n.StartedAt.UTC(), n.HeartbeatAt.UTC()
		n.HeartbeatAge = time.Duration(age) * time.Microsecond
		n.State = store.NodeState(state)
		return n, err
	})
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	return out, nil
}

// Claim implements store.Store in one UPDATE: the owner must still be
// prevOwner, and a lease of another node must have expired by the store's
// clock. A node may re-claim its own session (a new epoch fences its older
// batches). The row lock makes a claim wait for a batch being committed
// under the old epoch, and that batch's fence then fails or has committed.
//
// That wait is bounded by the lease pool's lock_timeout: a batch that
// holds the row longer is one whose client stopped sending (paused, cut
// off mid-request): the server ran its fence and waits for the rest, and
// neither idle_in_transaction_session_timeout nor, for hours, TCP
// keepalive ends it. So a takeover (prevOwner another node) first ends the
// backends of that owner that hold the row once its lease has expired
// (endStalled): the owner no longer trusts that lease, and waiting for its
// batch would only delay the takeover. A lock taken meanwhile is ended the
// same way once, after the wait. Else the claim returns ErrLocked, and the
// caller claims its other sessions and retries this one next round.
func (s *Store) Claim(ctx context.Context, id store.SessionID, node, prevOwner string, ttl time.Duration) (store.Lease, error) {
	if node == "" {
		return store.Lease{}, errors.New("claim: node id must not be empty")
	}
	ctx = forNode(ctx, node)
	takeover := prevOwner != "" && prevOwner != node
	endStalled := func() (int, error) {
		n, err := s.endStalled(ctx, id, prevOwner)
		if err != nil {
			return 0, fmt.Errorf("claim session %s/%d for node %s: its row is locked by a transaction in progress and "+
				"the backends of its expired owner %s could not be ended (%w); retried when that transaction ends: %w",
				id.Source, id.Partition, node, prevOwner, err, store.ErrLocked)
		}
		return n, nil
	}
	ended := 0
	if takeover {
		var err error
		if ended, err = endStalled(); err != nil {
			return store.Lease{}, err
		}
	}
	l, err := s.claim(ctx, id, node, prevOwner, ttl)
	if isSQLState(err, sqlstateLockNotAvailable) && takeover {
		more, endErr := endStalled()
		if endErr != nil {
			return store.Lease{}, endErr
		}
		if more > 0 {
			ended += more
			l, err = s.claim(ctx, id, node, prevOwner, ttl)
		}
	}
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return store.Lease{}, fmt.Errorf("claim session %s/%d for node %s: %w", id.Source, id.Partition, node, store.ErrNotClaimable)
	case isSQLState(err, sqlstateLockNotAvailable):
		return store.Lease{}, fmt.Errorf("claim session %s/%d for node %s: waited %s for its row: %w",
			id.Source, id.Partition, node, leaseLockTimeout, store.ErrLocked)
	case err != nil:
		return store.Lease{}, fmt.Errorf("claim session %s/%d for node %s: %w", id.Source, id.Partition, node, err)
	}
	l.EndedBackends = ended
	return l, nil
}

func (s *Store) claim(ctx context.Context, id store.SessionID, node, prevOwner string, ttl time.Duration) (store.Lease, error) {
	var prev *string
	if prevOwner != "" {
		prev = &prevOwner
	}
	l := store.Lease{SessionID: id}
	err := s.lease.QueryRow(ctx, `
		UPDATE bam_sessions AS s
		SET owner = $3, epoch = s.epoch + 1, lease_expires_at = now() + $5 * interval '1 microsecond'
		FROM bam_sources AS src
		WHERE s.source = $1 AND s.partition = $2
		  AND src.name = s.source AND src.enabled AND NOT src.paused
		  AND s.owner IS NOT DISTINCT FROM $4::text
		  AND ($4::text IS NULL OR $4::text = $3 OR s.lease_expires_at IS NULL OR s.lease_expires_at <= now())
		RETURNING s.epoch, s.checkpoint_major, s.checkpoint_minor`,
		id.Source, id.Partition, node, prev, micros(ttl)).Scan(&l.Epoch, &l.Checkpoint.Major, &l.Checkpoint.Minor)
	return l, err
}

// endStalled ends the backends of owner that hold the session's row lock,
// if owner's lease on it has expired by the store's clock, and returns how
// many it ended. The transaction holding the row is found by the row's
// xmax (the session rows are only ever locked by plain UPDATEs, so xmax
// is that transaction's id, never a multixact), its backend by the
// transaction's own lock in pg_locks, and its node by its
// application_name (nameForNode).
//
// Ending such a backend is safe: its owner's lease expired and nobody has
// claimed the session since (owner and epoch are unchanged, or this would
// not match), so what its transaction could still commit is a batch the
// fence accepts anyway; aborting it instead commits nothing, and the new
// owner reads the same events again from the checkpoint. The fence stays
// the authority: the claim that follows raises the epoch, and anything the
// old owner sends later is refused. It needs the right to signal that
// backend (the same role, or pg_signal_backend); without it, the error
// says so.
func (s *Store) endStalled(ctx context.Context, id store.SessionID, owner string) (int, error) {
	var ended int
	err := s.lease.QueryRow(ctx, `
		SELECT count(*) FILTER (WHERE pg_terminate_backend(a.pid))
		FROM bam_sessions AS s
		JOIN pg_locks AS l ON l.locktype = 'transactionid' AND l.mode = 'ExclusiveLock' AND l.granted
		                  AND l.transactionid = s.xmax
		JOIN pg_stat_activity AS a ON a.pid = l.pid
		WHERE s.source = $1 AND s.partition = $2 AND s.owner = $3 AND s.lease_expires_at <= now()
		  AND a.pid <> pg_backend_pid()
		  AND right(a.application_name, length($4)) = $4`,
		id.Source, id.Partition, owner, nodeSuffix(owner)).Scan(&ended)
	if err != nil {
		return 0, fmt.Errorf("end the stalled backends of node %s: %w", owner, err)
	}
	return ended, nil
}

// Renew implements store.Store in one round trip: the heartbeat upsert and
// the extension of every unexpired lease of the node are one statement.
// An expired lease is not revived, even if nobody took it: the node has
// already stopped trusting it, and the next claim raises the epoch.
//
// One of the node's own batches holds its session's row from its fence to
// its commit, and the renewal waits for it, up to the lease pool's
// lock_timeout. A batch that holds it longer is slow or stalled (its client
// stopped sending mid-request), and the renewal must not wait behind it,
// or every lease and the heartbeat would wait with it: it runs again
// skipping the locked rows, which it returns Busy, as last committed.
func (s *Store) Renew(ctx context.Context, n store.Node, ttl time.Duration) ([]store.Lease, error) {
	if n.ID == "" {
		return nil, errors.New("renew: node id must not be empty")
	}
	ctx = forNode(ctx, n.ID)
	args := append(nodeArgs(n, false), micros(ttl))
	leases, err := s.renew(ctx, renewSQL, args)
	if isSQLState(err, sqlstateLockNotAvailable) {
		leases, err = s.renew(ctx, renewSkippingLockedSQL, args)
	}
	if err != nil {
		return nil, fmt.Errorf("renew leases of node %s: %w", n.ID, err)
	}
	return leases, nil
}

var (
	renewSQL = `
		WITH heartbeat AS (` + upsertNode + `)
		UPDATE bam_sessions
		SET lease_expires_at = now() + $9 * interval '1 microsecond'
		WHERE owner = $1 AND lease_expires_at > now()
		RETURNING source, partition, epoch, checkpoint_major, checkpoint_minor, false`
	renewSkippingLockedSQL = `
		WITH heartbeat AS (` + upsertNode + `),
		free AS (
			SELECT source, partition FROM bam_sessions
			WHERE owner = $1 AND lease_expires_at > now()
			FOR UPDATE SKIP LOCKED
		), renewed AS (
			UPDATE bam_sessions AS s
			SET lease_expires_at = now() + $9 * interval '1 microsecond'
			FROM free
			WHERE s.source = free.source AND s.partition = free.partition
			RETURNING s.source, s.partition, s.epoch, s.checkpoint_major, s.checkpoint_minor
		)
		SELECT source, partition, epoch, checkpoint_major, checkpoint_minor, false FROM renewed
		UNION ALL
		SELECT source, partition, epoch, checkpoint_major, checkpoint_minor, true FROM bam_sessions AS s
		WHERE owner = $1 AND lease_expires_at > now()
		  AND NOT EXISTS (SELECT 1 FROM free WHERE free.source = s.source AND free.partition = s.partition)`
)

func (s *Store) renew(ctx context.Context, sql string, args []any) ([]store.Lease, error) {
	rows, err := s.lease.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Lease, error) {
		var l store.Lease
		err := row.Scan(&l.Source, &l.Partition, &l.Epoch, &l.Checkpoint.Major, &l.Checkpoint.Minor, &l.Busy)
		return l, err
	})
}

// Release implements store.Store. The epoch is kept: the next claim raises
// it. The nodes are told to balance only when a lease was freed.
func (s *Store) Release(ctx context.Context, l store.Lease, node string) error {
	ctx = forNode(ctx, node)
	_, err := s.lease.Exec(ctx, `
		UPDATE bam_sessions SET owner = NULL, lease_expires_at = NULL
		WHERE source = $1 AND partition = $2 AND owner = $3 AND epoch = $4
		RETURNING pg_notify('bam_sessions', '')`, l.Source, l.Partition, node, l.Epoch)
	if err != nil {
		return fmt.Errorf("release session %s/%d of node %s: %w", l.Source, l.Partition, node, err)
	}
	return nil
}

// GiveUp implements store.Store, in one statement like Release.
func (s *Store) GiveUp(ctx context.Context, l store.Lease, node, reason string) error {
	ctx = forNode(ctx, node)
	_, err := s.lease.Exec(ctx, `
		UPDATE bam_sessions SET owner = NULL, lease_expires_at = NULL, given_up_by = $3, given_up_at = now(),
			last_error = nullif($5, ''), last_error_at = now()
		WHERE source = $1 AND partition = $2 AND owner = $3 AND epoch = $4
		RETURNING pg_notify('bam_sessions', '')`, l.Source, l.Partition, node, l.Epoch, cleanText(reason))
	if err != nil {
		return fmt.Errorf("give up session %s/%d of node %s: %w", l.Source, l.Partition, node, err)
	}
	return nil
}

// ExpireLeases implements store.Store: the dead node's live leases end now
// by the store's clock, so peers can claim them with prevOwner = nodeID.
// The owner is kept, so a claim that still names it keeps working. A lease
// whose row is locked (a batch of that node still in progress) is left to
// expire by itself: waiting for it could mean waiting for a stalled
// backend, which Claim ends once the lease has expired.
func (s *Store) ExpireLeases(ctx context.Context, nodeID string) (int, error) {
	var n int
	err := s.lease.QueryRow(ctx, `
		WITH expired AS (
			UPDATE bam_sessions SET lease_expires_at = now()
			WHERE (source, partition) IN (
				SELECT source, partition FROM bam_sessions
				WHERE owner = $1 AND lease_expires_at > now()
				FOR UPDATE SKIP LOCKED)
			RETURNING pg_notify('bam_sessions', '')
		)
		SELECT count(*) FROM expired`, nodeID).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("expire leases of node %s: %w", nodeID, err)
	}
	return n, nil
}

var _ store.BatchReleaser = (*Store)(nil)

// ReleaseBatch implements store.BatchReleaser in one statement; the nodes
// are told to balance once, when a lease was freed.
func (s *Store) ReleaseBatch(ctx context.Context, leases []store.Lease, node string) error {
	if len(leases) == 0 {
		return nil
	}
	sources := make([]string, len(leases))
	partitions := make([]int32, len(leases))
	epochs := make([]int64, len(leases))
	for i, l := range leases {
		sources[i], partitions[i], epochs[i] = l.Source, int32(l.Partition), l.Epoch
	}
	_, err := s.lease.Exec(ctx, `
		WITH released AS (
			UPDATE bam_sessions AS s SET owner = NULL, lease_expires_at = NULL
			FROM unnest($1::text[], $2::int[], $3::bigint[]) AS r(source, partition, epoch)
			WHERE s.source = r.source AND s.partition = r.partition AND s.epoch = r.epoch AND s.owner = $4
			RETURNING 1
		)
		SELECT pg_notify('bam_sessions', '') WHERE EXISTS (SELECT FROM released)`,
		sources, partitions, epochs, node)
	if err != nil {
		return fmt.Errorf("release %d sessions of node %s: %w", len(leases), node, err)
	}
	return nil
}

var _ store.BatchClaimer = (*Store)(nil)

// ClaimBatch implements store.BatchClaimer in one statement, with Claim's
// conditions. Rows locked by another transaction are skipped (SKIP LOCKED),
// so a claim never waits behind a batch being committed.
func (s *Store) ClaimBatch(ctx context.Context, claims []store.ClaimRequest, node string, ttl time.Duration) ([]store.Lease, error) {
	if node == "" {
		return nil, errors.New("claim: node id must not be empty")
	}
	if len(claims) == 0 {
		return nil, nil
	}
	sources := make([]string, len(claims))
	partitions := make([]int32, len(claims))
	prevs := make([]string, len(claims))
	for i, c := range claims {
		sources[i], partitions[i], prevs[i] = c.ID.Source, int32(c.ID.Partition), c.PrevOwner
	}
	rows, err := s.lease.Query(ctx, `
		WITH wanted AS (
			SELECT source, partition, nullif(prev, '') AS prev
			FROM unnest($1::text[], $2::int[], $3::text[]) AS w(source, partition, prev)
		), claimable AS (
			SELECT s.source, s.partition
			FROM bam_sessions AS s
			JOIN wanted AS w ON w.source = s.source AND w.partition = s.partition
			JOIN bam_sources AS src ON src.name = s.source AND src.enabled AND NOT src.paused
			WHERE s.owner IS NOT DISTINCT FROM w.prev
			  AND (w.prev IS NULL OR w.prev = $4 OR s.lease_expires_at IS NULL OR s.lease_expires_at <= now())
			FOR UPDATE OF s SKIP LOCKED
		)
		UPDATE bam_sessions AS s
		SET owner = $4, epoch = s.epoch + 1, lease_expires_at = now() + $5 * interval '1 microsecond'
		FROM claimable AS c
		WHERE s.source = c.source AND s.partition = c.partition
		RETURNING s.source, s.partition, s.epoch, s.checkpoint_major, s.checkpoint_minor`,
		sources, partitions, prevs, node, micros(ttl))
	if err != nil {
		return nil, fmt.Errorf("claim %d sessions for node %s: %w", len(claims), node, err)
	}
	leases, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Lease, error) {
		var l store.Lease
		err := row.Scan(&l.Source, &l.Partition, &l.Epoch, &l.Checkpoint.Major, &l.Checkpoint.Minor)
		return l, err
	})
	if err != nil {
		return nil, fmt.Errorf("claim %d sessions for node %s: %w", len(claims), node, err)
	}
	return leases, nil
}
