package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/bam-dev/bam/internal/store"
)

// BufferPending implements store.Store: both reads walk the buffer's read
// index from the checkpoint, the count for at most bound entries. Held
// rows count: they wait, only not yet readable.
func (s *Store) BufferPending(ctx context.Context, id store.SessionID, after store.Position, bound int64) (store.Backlog, error) {
	var (
		b      store.Backlog
		oldest *int64
	)
	err := s.work.QueryRow(ctx, `
		WITH pending AS (
			SELECT written_at FROM bam_buffer
			WHERE source = $1 AND partition = $2 AND (xid, id) > ($3::bigint::text::xid8, $4::bigint)
			ORDER BY xid, id
			LIMIT $5)
		SELECT count(*), (extract(epoch FROM now() - min(written_at)) * 1000000)::bigint FROM pending`,
		id.Source, id.Partition, after.Major, after.Minor, bound+1).Scan(&b.Events, &oldest)
	if err != nil {
		return store.Backlog{}, fmt.Errorf("read the backlog of buffer %s/%d after %v: %w", id.Source, id.Partition, after, err)
	}
	if b.Events > bound {
		b.Events, b.AtLeast = bound, true
	}
	if oldest != nil {
		b.OldestAge = max(time.Duration(*oldest)*time.Microsecond, 0)
	}
	return b, nil
}
