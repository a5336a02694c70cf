package sqlite

import (
	"context"
	"fmt"

	"github.com/bam-dev/bam/internal/store"
)

var _ store.Searcher = (*Store)(nil)

// SearchRows implements store.Searcher: one statement, which SQLite runs
// as one snapshot.
func (s *Store) SearchRows(ctx context.Context, sql string, args []any) ([][]any, error) {
	rows, err := s.db.QueryContext(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("search: %w", err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, fmt.Errorf("search: %w", err)
	}
	var out [][]any
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, fmt.Errorf("search: %w", err)
		}
		out = append(out, vals)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("search: %w", err)
	}
	return out, nil
}
