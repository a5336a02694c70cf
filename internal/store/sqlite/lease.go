package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/bam-dev/bam/internal/store"
)

// Leases: claims, renewals, releases and the sessions' view. Every lease
// statement runs on the lease pool and passes ahead of batch work at the
// write gate: a node that is busy applying must still renew on time.
// Membership (Join, Leave, the nodes' rows) is in nodes.go.

// Sessions implements store.Store, ordered by source and partition.
func (s *Store) Sessions(ctx context.Context) ([]store.SessionRow, error) {
	rows, err := s.db.QueryContext(ctx, `
		SELECT se.source, se.partition, so.kind, so.enabled, so.paused, coalesce(se.owner, ''), se.epoch,
		       coalesce(se.lease_expires_at - `+nowSQL+`, 0),
		       se.checkpoint_major, se.checkpoint_minor, se.applied_count, se.failed_count,
		       coalesce(se.last_error, ''), se.last_error_at,
		       CASE WHEN se.given_up_at > `+nowSQL+` - ? THEN coalesce(se.given_up_by, '') ELSE '' END,
		       p.paused, coalesce(se.move_to, '')
		FROM bam_sessions se JOIN bam_sources so ON so.name = se.source CROSS JOIN bam_pool p
		ORDER BY se.source, se.partition`, store.GiveUpMemory.Microseconds())
	if err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	defer rows.Close()
	out, err := store.CollectRows(rows, store.ScanSession)
	if err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	return out, nil
}

// claimSession claims one session (?3, ?4) for node ?1 with a lease of ?2
// microseconds, if its owner is still ?5 (NULL: none) and, when that is
// another node, its lease expired; and if its source applies and the pool
// is not paused. A claim by a node other than the one the session was
// moved to forgets the move.
const claimSession = `
	UPDATE bam_sessions
	SET owner = ?1, epoch = epoch + 1, lease_expires_at = ` + nowSQL + ` + ?2,
	    move_to = CASE WHEN move_to = ?1 THEN move_to END
	WHERE source = ?3 AND partition = ?4 AND owner IS ?5
	  AND (?5 IS NULL OR ?5 = ?1 OR lease_expires_at <= ` + nowSQL + `)
	  AND EXISTS (SELECT 1 FROM bam_sources WHERE name = ?3 AND enabled AND NOT paused)
	  AND NOT (SELECT paused FROM bam_pool WHERE id = 1)
	RETURNING epoch, checkpoint_major, checkpoint_minor`

// Claim implements store.Store in one statement: the owner test, the
// expiry test on the store's clock, the source's enabled and paused flags
// and the epoch bump cannot be separated by another node's claim. A node
// may re-claim its own session at any time; that bumps the epoch and
// fences its own batches still in flight.
func (s *Store) Claim(ctx context.Context, id store.SessionID, node, prevOwner string, ttl time.Duration) (store.Lease, error) {
	var prev any
	if prevOwner != "" {
		prev = prevOwner
	}
	l := store.Lease{SessionID: id}
	// Like PostgreSQL's lock_timeout on the lease pool: a claim never
	// waits long for the write lock.
	wctx, cancel := context.WithTimeout(ctx, ClaimLockWait)
	defer cancel()
	err := s.write(wctx, urgent, func(tx *sql.Tx) error {
		return tx.QueryRowContext(wctx, claimSession,
			node, ttl.Microseconds(), id.Source, id.Partition, prev,
		).Scan(&l.Epoch, &l.Checkpoint.Major, &l.Checkpoint.Minor)
	})
	switch {
	case errors.Is(err, sql.ErrNoRows):
		err = store.ErrNotClaimable
	case isBusy(err) || (errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil):
		// The file's write lock stayed taken (a node paused inside a write
		// transaction holds it until it resumes: docs/OPERATIONS.md).
		err = fmt.Errorf("%w (the database's write lock stayed taken for %v): %w", store.ErrLocked, ClaimLockWait, err)
	}
	if err != nil {
		return store.Lease{}, fmt.Errorf("claim session %s/%d for node %s: %w", id.Source, id.Partition, node, err)
	}
	return l, nil
}

// isBusy reports whether err is SQLITE_BUSY (any extended code).
func isBusy(err error) bool {
	var e *sqlite.Error
	return errors.As(err, &e) && e.Code()&0xff == sqlite3.SQLITE_BUSY
}

// Renew implements store.Store: the heartbeat (re-inserting a forgotten
// row) and one UPDATE extending every unexpired lease of the node, in one
// transaction. An expired lease is not revived even if nobody took it: the
// node already stopped trusting it.
func (s *Store) Renew(ctx context.Context, n store.NodeRow, ttl time.Duration) ([]store.Lease, error) {
	var leases []store.Lease
	err := s.write(ctx, urgent, func(tx *sql.Tx) error {
		leases = leases[:0]
		if _, err := tx.ExecContext(ctx, heartbeatNode, nodeArgs(n)...); err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, `
			UPDATE bam_sessions SET lease_expires_at = `+nowSQL+` + ?2
			WHERE owner = ?1 AND lease_expires_at > `+nowSQL+`
			RETURNING source, partition, epoch, checkpoint_major, checkpoint_minor`,
			n.ID, ttl.Microseconds())
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var l store.Lease
			if err := rows.Scan(&l.Source, &l.Partition, &l.Epoch, &l.Checkpoint.Major, &l.Checkpoint.Minor); err != nil {
				return err
			}
			leases = append(leases, l)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("renew leases of node %s: %w", n.ID, err)
	}
	slices.SortFunc(leases, func(a, b store.Lease) int {
		return cmp.Or(cmp.Compare(a.Source, b.Source), cmp.Compare(a.Partition, b.Partition))
	})
	return leases, nil
}

// Release implements store.Store. The epoch stays: the next claim raises it.
// When a lease was released, the nodes are told to balance.
func (s *Store) Release(ctx context.Context, l store.Lease, node string) error {
	var seq int64 // 0: nothing released
	err := s.write(ctx, urgent, func(tx *sql.Tx) error {
		n, err := rowsAffected(tx.ExecContext(ctx, `
			UPDATE bam_sessions SET owner = NULL, lease_expires_at = NULL
			WHERE source = ? AND partition = ? AND owner = ? AND epoch = ?`,
			l.Source, l.Partition, node, l.Epoch))
		if err != nil || n == 0 {
			return err
		}
		seq, err = bumpSessions(ctx, tx)
		return err
	})
	if err != nil {
		return fmt.Errorf("release session %s/%d of node %s: %w", l.Source, l.Partition, node, err)
	}
	if seq > 0 {
		s.sessionsChanged(seq)
	}
	return nil
}

// GiveUp implements store.Store, in one transaction like Release.
func (s *Store) GiveUp(ctx context.Context, l store.Lease, node, reason string) error {
	var seq int64 // 0: nothing released
	err := s.write(ctx, urgent, func(tx *sql.Tx) error {
		n, err := rowsAffected(tx.ExecContext(ctx, `
			UPDATE bam_sessions SET owner = NULL, lease_expires_at = NULL, given_up_by = ?3, given_up_at = `+nowSQL+`,
				last_error = nullif(?5, ''), last_error_at = `+nowSQL+`
			WHERE source = ?1 AND partition = ?2 AND owner = ?3 AND epoch = ?4`,
			l.Source, l.Partition, node, l.Epoch, reason))
		if err != nil || n == 0 {
			return err
		}
		seq, err = bumpSessions(ctx, tx)
		return err
	})
	if err != nil {
		return fmt.Errorf("give up session %s/%d of node %s: %w", l.Source, l.Partition, node, err)
	}
	if seq > 0 {
		s.sessionsChanged(seq)
	}
	return nil
}

// ExpireLeases implements store.Store: the leases end now by the store's
// clock; owner and epoch stay, so a peer claims them with prevOwner set to
// the dead node, exactly as after a timeout. When leases ended, the nodes
// are told to balance.
func (s *Store) ExpireLeases(ctx context.Context, nodeID string) (int, error) {
	var n, seq int64
	err := s.write(ctx, urgent, func(tx *sql.Tx) error {
		var err error
		n, err = rowsAffected(tx.ExecContext(ctx, `
			UPDATE bam_sessions SET lease_expires_at = `+nowSQL+`
			WHERE owner = ? AND lease_expires_at > `+nowSQL, nodeID))
		if err != nil || n == 0 {
			return err
		}
		seq, err = bumpSessions(ctx, tx)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("expire leases of node %s: %w", nodeID, err)
	}
	if n > 0 {
		s.sessionsChanged(seq)
	}
	return int(n), nil
}

// RecordError implements store.Store, fenced on owner and epoch in the
// same statement.
func (s *Store) RecordError(ctx context.Context, l store.Lease, node, msg string) error {
	err := s.write(ctx, work, func(tx *sql.Tx) error {
		n, err := rowsAffected(tx.ExecContext(ctx, `
			UPDATE bam_sessions
			SET last_error = nullif(?1, ''),
			    last_error_at = CASE WHEN ?1 = '' THEN NULL ELSE `+nowSQL+` END
			WHERE source = ?2 AND partition = ?3 AND owner = ?4 AND epoch = ?5`, msg, l.Source, l.Partition, node, l.Epoch))
		if err == nil && n == 0 {
			err = fmt.Errorf("node %s, epoch %d: %w", node, l.Epoch, store.ErrFenced)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("record error of session %s/%d: %w", l.Source, l.Partition, err)
	}
	return nil
}

var _ store.BatchReleaser = (*Store)(nil)

// ReleaseBatch implements store.BatchReleaser in one write transaction; the
// nodes are told to balance once, when a lease was freed.
func (s *Store) ReleaseBatch(ctx context.Context, leases []store.Lease, node string) error {
	if len(leases) == 0 {
		return nil
	}
	var seq int64 // 0: nothing released
	err := s.write(ctx, urgent, func(tx *sql.Tx) error {
		var released int64
		for _, l := range leases {
			n, err := rowsAffected(tx.ExecContext(ctx, `
				UPDATE bam_sessions SET owner = NULL, lease_expires_at = NULL
				WHERE source = ? AND partition = ? AND owner = ? AND epoch = ?`,
				l.Source, l.Partition, node, l.Epoch))
			if err != nil {
				return err
			}
			released += n
		}
		if released == 0 {
			return nil
		}
		var err error
		seq, err = bumpSessions(ctx, tx)
		return err
	})
	if err != nil {
		return fmt.Errorf("release %d sessions of node %s: %w", len(leases), node, err)
	}
	if seq > 0 {
		s.sessionsChanged(seq)
	}
	return nil
}

var _ store.BatchClaimer = (*Store)(nil)

// ClaimBatch implements store.BatchClaimer: Claim's statement for each
// session, in one write transaction (SQLite has one writer: nothing is
// locked by another one meanwhile).
func (s *Store) ClaimBatch(ctx context.Context, claims []store.ClaimRequest, node string, ttl time.Duration) ([]store.Lease, error) {
	if len(claims) == 0 {
		return nil, nil
	}
	var leases []store.Lease
	// As Claim: never wait long for the write lock.
	wctx, cancel := context.WithTimeout(ctx, ClaimLockWait)
	defer cancel()
	err := s.write(wctx, urgent, func(tx *sql.Tx) error {
		leases = leases[:0]
		for _, c := range claims {
			var prev any
			if c.PrevOwner != "" {
				prev = c.PrevOwner
			}
			l := store.Lease{SessionID: c.ID}
			err := tx.QueryRowContext(wctx, claimSession, node, ttl.Microseconds(), c.ID.Source, c.ID.Partition, prev).Scan(&l.Epoch, &l.Checkpoint.Major, &l.Checkpoint.Minor)
			if errors.Is(err, sql.ErrNoRows) {
				continue
			}
			if err != nil {
				return err
			}
			leases = append(leases, l)
		}
		return nil
	})
	if isBusy(err) || (errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil) {
		err = fmt.Errorf("%w (the database's write lock stayed taken for %v): %w", store.ErrLocked, ClaimLockWait, err)
	}
	if err != nil {
		return nil, fmt.Errorf("claim %d sessions for node %s: %w", len(claims), node, err)
	}
	return leases, nil
}
