package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
)

// sqlStore lets the conformance suite query the activity views
// (storetest.SQL).
type sqlStore struct{ *Store }

func (s sqlStore) QuerySQL(ctx context.Context, query string, args ...any) ([][]any, error) {
	rows, err := s.work.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out [][]any
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			return nil, err
		}
		for i, v := range vals {
			switch v := v.(type) {
			case pgtype.Numeric:
				text, err := v.Value()
				if err != nil {
					return nil, err
				}
				vals[i] = text
			case int32:
				vals[i] = int64(v)
			case interface{ UTC() time.Time }:
				vals[i] = v.UTC()
			}
		}
		out = append(out, vals)
	}
	return out, rows.Err()
}
