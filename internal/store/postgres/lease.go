package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bam-dev/bam/internal/store"
)

// Leases: claims, renewals, releases and the sessions' view. Membership
// and lease statements run on the lease pool, never the work pool, so that
// a renewal never waits for a connection behind batches. Expiry is always
// now() + ttl on the store's clock; ttl travels as microseconds.
// Membership (Join, Leave, the nodes' rows) is in nodes.go.

func micros(d time.Duration) int64 { return d.Microseconds() }

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
		SET owner = $3, epoch = s.epoch + 1, lease_expires_at = now() + $5 * interval '1 microsecond',
		    move_to = CASE WHEN s.move_to = $3 THEN s.move_to END
		FROM bam_sources AS src
		WHERE s.source = $1 AND s.partition = $2
		  AND src.name = s.source AND src.enabled AND NOT src.paused
		  AND NOT (SELECT paused FROM bam_pool WHERE id = 1)
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
func (s *Store) Renew(ctx context.Context, n store.NodeRow, ttl time.Duration) ([]store.Lease, error) {
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
			  AND NOT (SELECT paused FROM bam_pool WHERE id = 1)
			  AND (w.prev IS NULL OR w.prev = $4 OR s.lease_expires_at IS NULL OR s.lease_expires_at <= now())
			FOR UPDATE OF s SKIP LOCKED
		)
		UPDATE bam_sessions AS s
		SET owner = $4, epoch = s.epoch + 1, lease_expires_at = now() + $5 * interval '1 microsecond',
		    move_to = CASE WHEN s.move_to = $4 THEN s.move_to END
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

// Sessions implements store.Store, ordered by source and partition. The
// lease's remaining time is computed with the store's clock. It runs on the
// lease pool: balancing and failover decisions read it.
func (s *Store) Sessions(ctx context.Context) ([]store.SessionRow, error) {
	rows, err := s.lease.Query(ctx, `
		SELECT s.source, s.partition, src.kind, src.enabled, src.paused, coalesce(s.owner, ''), s.epoch,
		       coalesce((extract(epoch FROM s.lease_expires_at - now()) * 1000000)::bigint, 0),
		       s.checkpoint_major, s.checkpoint_minor, s.applied_count, s.failed_count,
		       coalesce(s.last_error, ''), s.last_error_at,
		       CASE WHEN s.given_up_at > now() - $1 * interval '1 microsecond' THEN coalesce(s.given_up_by, '') ELSE '' END,
		       p.paused, coalesce(s.move_to, '')
		FROM bam_sessions AS s JOIN bam_sources AS src ON src.name = s.source CROSS JOIN bam_pool AS p
		ORDER BY s.source, s.partition`, micros(store.GiveUpMemory))
	if err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	out, err := pgx.CollectRows(rows, rowTo(store.ScanSession))
	if err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	return out, nil
}

// RecordError implements store.Store, fenced on owner and epoch in the
// same statement.
func (s *Store) RecordError(ctx context.Context, l store.Lease, node, msg string) error {
	msg = cleanText(msg)
	tag, err := s.work.Exec(ctx, `
		UPDATE bam_sessions
		SET last_error = nullif($3, ''), last_error_at = CASE WHEN $3 = '' THEN NULL ELSE now() END
		WHERE source = $1 AND partition = $2 AND owner = $4 AND epoch = $5`, l.Source, l.Partition, msg, node, l.Epoch)
	if err != nil {
		return fmt.Errorf("record error of session %s/%d: %w", l.Source, l.Partition, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("record error of session %s/%d (node %s, epoch %d): %w", l.Source, l.Partition, node, l.Epoch, store.ErrFenced)
	}
	return nil
}
