package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/bam-dev/bam/internal/store"
)

// alertAccess is store.AlertAccess on this store.
func (s *Store) alertAccess() store.AlertAccess {
	return store.AlertAccess{
		Query: query(s.work),
		InTx: func(ctx context.Context, fn func(store.Query, store.Exec) error) error {
			return pgx.BeginFunc(ctx, s.work, func(tx pgx.Tx) error {
				return fn(query(tx), func(ctx context.Context, sql string, args ...any) (int64, error) {
					tag, err := tx.Exec(ctx, sql, args...)
					return tag.RowsAffected(), err
				})
			})
		},
		Now: "now()",
		Later: func(p string) string {
			return "(now() + make_interval(secs => CAST(" + p + " AS double precision) / 1000000))"
		},
	}
}
