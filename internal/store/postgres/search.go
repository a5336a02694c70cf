package postgres

import (
	"context"
	"fmt"
	"sync/atomic"

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

// textOrder is what TextSortsByBytes learnt: a database's collation is set
// when it is created and never changes.
type textOrder struct {
	known, bytewise atomic.Bool
}

// TextSortsByBytes reports whether the database's collation orders text by
// bytes, as Go and SQLite do: the C and POSIX locales, and C.UTF-8, whose
// order is the code points' (which is the UTF-8 bytes'), of the libc
// provider. Package search then compares text without COLLATE "C", so
// that the primary key and the text items' indexes serve its orders and
// ranges.
func (s *Store) TextSortsByBytes(ctx context.Context) (bool, error) {
	if s.collation.known.Load() {
		return s.collation.bytewise.Load(), nil
	}
	var bytewise bool
	err := s.work.QueryRow(ctx, `SELECT datlocprovider = 'c' AND datcollate IN ('C', 'POSIX', 'C.UTF-8', 'C.utf8')
		FROM pg_database WHERE datname = current_database()`).Scan(&bytewise)
	if err != nil {
		return false, fmt.Errorf("read the database's collation: %w", s.scrub(err))
	}
	s.collation.bytewise.Store(bytewise)
	s.collation.known.Store(true)
	return bytewise, nil
}
