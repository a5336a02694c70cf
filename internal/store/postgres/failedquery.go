package postgres

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bam-dev/bam/internal/store"
)

var failedDialect = store.FailedDialect{
	Placeholder: func(n int) string { return "$" + strconv.Itoa(n) },
	Position:    "strpos",
	Time:        func(t time.Time) any { return t },
}

// FailedEventsWhere implements store.Store.
func (s *Store) FailedEventsWhere(ctx context.Context, q store.FailedQuery) ([]store.FailedEvent, error) {
	where, args := q.Where(failedDialect, true)
	sql := `SELECT ` + store.FailedColumns + ` FROM bam_failed WHERE ` + where + ` ORDER BY id`
	if q.Limit > 0 {
		sql += ` LIMIT ` + strconv.Itoa(q.Limit)
	}
	rows, err := s.work.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("list failed events: %w", err)
	}
	out, err := pgx.CollectRows(rows, rowTo(store.ScanFailedEvent))
	if err != nil {
		return nil, fmt.Errorf("list failed events: %w", err)
	}
	return out, nil
}

// CountFailed implements store.Store.
func (s *Store) CountFailed(ctx context.Context, q store.FailedQuery, bound int64) (int64, bool, error) {
	where, args := q.Where(failedDialect, false)
	var n int64
	err := s.work.QueryRow(ctx, `SELECT count(*) FROM (SELECT 1 FROM bam_failed WHERE `+where+
		` LIMIT `+strconv.FormatInt(bound+1, 10)+`) AS matched`, args...).Scan(&n)
	if err != nil {
		return 0, false, fmt.Errorf("count failed events: %w", err)
	}
	if n > bound {
		return bound, true, nil
	}
	return n, false, nil
}
