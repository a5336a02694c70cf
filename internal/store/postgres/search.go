package postgres

import (
	"context"
	"fmt"

	"github.com/bam-dev/bam/internal/store"
)

var _ store.Searcher = (*Store)(nil)

// SearchRows implements store.Searcher on the work pool: one statement,
// which PostgreSQL runs as one snapshot.
func (s *Store) SearchRows(ctx context.Context, sql string, args []any) ([][]any, error) {
	rows, err := s.work.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("search: %w", s.scrub(err))
	}
	defer rows.Close()
	var out [][]any
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			return nil, fmt.Errorf("search: %w", s.scrub(err))
		}
		out = append(out, vals)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("search: %w", s.scrub(err))
	}
	return out, nil
}
