package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/bam-dev/bam/internal/store"
)

var _ store.WriteProber = (*Store)(nil)

// ProbeWrite implements store.WriteProber the way a batch writes: through
// this process's write gate (behind at most the write in hand), BEGIN
// IMMEDIATE on the work pool, which waits for another process's write lock
// until ctx ends (the driver interrupts the busy wait), then a rewrite of
// the node's own row and a commit, which appends to the WAL and syncs it.
func (s *Store) ProbeWrite(ctx context.Context, node string) error {
	err := s.write(ctx, work, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE bam_nodes SET heartbeat_at = heartbeat_at WHERE id = ?`, node)
		return err
	})
	switch {
	case err != nil && ctx.Err() != nil && !errors.Is(err, ctx.Err()):
		// The driver may report an interrupted busy wait as "interrupted".
		return fmt.Errorf("probe a write to the store: %w: %w", ctx.Err(), err)
	case err != nil:
		return fmt.Errorf("probe a write to the store: %w", err)
	}
	return nil
}
