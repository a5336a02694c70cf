package postgres

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bam-dev/bam/internal/store"
)

var _ store.WriteProber = (*Store)(nil)

// sqlstateQueryCanceled is statement_timeout's SQLSTATE (and a cancel
// request's).
const sqlstateQueryCanceled = "57014"

// ProbeWrite implements store.WriteProber on the work pool, where batches
// commit: a full pool, a read-only server or transaction default, a lock on
// bam_nodes or a disk that cannot take the WAL all fail it. Rewriting the
// node's own row writes a new row version, so the commit writes and flushes
// WAL like a batch does. The server ends its own waits (lock_timeout, then
// statement_timeout) a little before ctx's deadline, so that a probe that
// meets a lock costs no connection; either is reported as the deadline.
// The row lock it takes is held for the commit only: a renewal of the
// same node (the heartbeat writes the row too) waits that long, as it
// would behind the previous renewal.
func (s *Store) ProbeWrite(ctx context.Context, node string) error {
	ctx = forNode(ctx, node)
	err := pgx.BeginFunc(ctx, s.work, func(tx pgx.Tx) error {
		if d, ok := ctx.Deadline(); ok {
			left := time.Until(d).Milliseconds()
			ms := func(n int64) string { return strconv.FormatInt(max(n, 1), 10) + "ms" }
			if _, err := tx.Exec(ctx, `SELECT set_config('lock_timeout', $1, true), set_config('statement_timeout', $2, true)`,
				ms(left*8/10), ms(left*9/10)); err != nil {
				return err
			}
		}
		_, err := tx.Exec(ctx, `UPDATE bam_nodes SET heartbeat_at = heartbeat_at WHERE id = $1`, node)
		return err
	})
	switch {
	case isSQLState(err, sqlstateLockNotAvailable) || isSQLState(err, sqlstateQueryCanceled):
		return fmt.Errorf("probe a write to the store: %w: %w", context.DeadlineExceeded, s.scrub(err))
	case err != nil:
		return fmt.Errorf("probe a write to the store: %w", s.scrub(err))
	}
	return nil
}
