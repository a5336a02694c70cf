package sqlite

import (
	"context"
	"database/sql"
	"strings"

	"github.com/bam-dev/bam/internal/store"
)

// alertAccess is store.AlertAccess on this store: its reads on the pool,
// its writes in the write queue, its $n parameters rewritten ?n.
func (s *Store) alertAccess() store.AlertAccess {
	rebind := func(sql string) string { return strings.ReplaceAll(sql, "$", "?") }
	reads := query(s.db)
	return store.AlertAccess{
		Query: func(ctx context.Context, fn func(store.Rows) error, sql string, args ...any) error {
			return reads(ctx, fn, rebind(sql), args...)
		},
		InTx: func(ctx context.Context, fn func(store.Query, store.Exec) error) error {
			return s.write(ctx, work, func(tx *sql.Tx) error {
				q := query(tx)
				return fn(func(ctx context.Context, fn func(store.Rows) error, sql string, args ...any) error {
					return q(ctx, fn, rebind(sql), args...)
				}, func(ctx context.Context, sql string, args ...any) (int64, error) {
					return rowsAffected(tx.ExecContext(ctx, rebind(sql), args...))
				})
			})
		},
		Now:   nowSQL,
		Later: func(p string) string { return "(" + nowSQL + " + CAST(" + p + " AS INTEGER))" },
	}
}
