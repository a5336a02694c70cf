package sqlite

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/bam-dev/bam/internal/store"
)

var failedDialect = store.FailedDialect{
	Placeholder: func(n int) string { return "?" + strconv.Itoa(n) },
	Position:    "instr",
	Time:        func(t time.Time) any { return t.UnixMicro() },
}

// FailedEventsWhere implements store.Store.
func (s *Store) FailedEventsWhere(ctx context.Context, q store.FailedQuery) ([]store.FailedEvent, error) {
	where, args := q.Where(failedDialect, true)
	limit := q.Limit
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	rows, err := s.db.QueryContext(ctx, `SELECT `+store.FailedColumns+` FROM bam_failed WHERE `+where+
		` ORDER BY id LIMIT `+strconv.Itoa(limit), args...)
	if err != nil {
		return nil, fmt.Errorf("list failed events: %w", err)
	}
	defer rows.Close()
	out, err := store.CollectRows(rows, store.ScanFailedEvent)
	if err != nil {
		return nil, fmt.Errorf("list failed events: %w", err)
	}
	return out, nil
}

// CountFailed implements store.Store.
func (s *Store) CountFailed(ctx context.Context, q store.FailedQuery, bound int64) (int64, bool, error) {
	where, args := q.Where(failedDialect, false)
	var n int64
	err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM (SELECT 1 FROM bam_failed WHERE `+where+
		` LIMIT `+strconv.FormatInt(bound+1, 10)+`)`, args...).Scan(&n)
	if err != nil {
		return 0, false, fmt.Errorf("count failed events: %w", err)
	}
	if n > bound {
		return bound, true, nil
	}
	return n, false, nil
}
