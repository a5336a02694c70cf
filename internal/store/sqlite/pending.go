package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/bam-dev/bam/internal/store"
)

// BufferPending implements store.Store: both reads walk the buffer's read
// index from the checkpoint, the count for at most bound entries.
func (s *Store) BufferPending(ctx context.Context, id store.SessionID, after store.Position, bound int64) (store.Backlog, error) {
	var (
		b      store.Backlog
		oldest sql.NullInt64
		now    int64
	)
	err := s.db.QueryRowContext(ctx, `
		SELECT (SELECT count(*) FROM (SELECT 1 FROM bam_buffer WHERE source = ?1 AND partition = ?2 AND id > ?3 LIMIT ?4)),
		       (SELECT written_at FROM bam_buffer WHERE source = ?1 AND partition = ?2 AND id > ?3 ORDER BY id LIMIT 1),
		       `+nowSQL, id.Source, id.Partition, after.Minor, bound+1).Scan(&b.Events, &oldest, &now)
	if err != nil {
		return store.Backlog{}, fmt.Errorf("read the backlog of buffer %s/%d after %d: %w", id.Source, id.Partition, after.Minor, err)
	}
	if b.Events > bound {
		b.Events, b.AtLeast = bound, true
	}
	if oldest.Valid {
		b.OldestAge = max(time.Duration(now-oldest.Int64)*time.Microsecond, 0)
	}
	return b, nil
}
