package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/bam-dev/bam/internal/store/storetest"
)

// sqlStore lets the conformance suite query the activity views
// (storetest.SQL) and open a peer on the same database (storetest.Peer).
type sqlStore struct {
	*Store
	url string
}

func (s sqlStore) OpenPeer(t *testing.T) storetest.PoolStore { return open(t, s.url) }

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
