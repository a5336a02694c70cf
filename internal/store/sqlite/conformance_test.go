package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"

	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/store"
	"github.com/bam-dev/bam/internal/store/storetest"
)

// openFresh opens a store on a new file, without schema.
func openFresh(t *testing.T) store.Store {
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "bam.db"))
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return sqlStore{openFresh(t).(*Store)} })
}

func TestWriteEvents(t *testing.T) {
	storetest.RunDirect(t, openFresh, func(ctx context.Context, st store.Store, events []event.Event, commit bool) error {
		// The application's own database handle on the store's file.
		dsn, err := DataSourceName(st.(*Store).Path())
		if err != nil {
			return err
		}
		db, err := sql.Open("sqlite", dsn)
		if err != nil {
			return err
		}
		defer db.Close()
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		if err := WriteEvents(ctx, tx, events); err != nil || !commit {
			return errors.Join(err, tx.Rollback())
		}
		return tx.Commit()
	})
}

func TestStoreWriteEvents(t *testing.T) {
	storetest.RunDirectOwnTransaction(t, openFresh, func(ctx context.Context, st store.Store, events []event.Event) error {
		return st.(*Store).WriteEvents(ctx, events)
	})
}

// sqlStore lets the suite query the activity views (storetest.SQL) and
// open a peer on the same file (storetest.Peer).
type sqlStore struct{ *Store }

func (s sqlStore) OpenPeer(t *testing.T) storetest.PoolStore {
	return openAt(t, context.Background(), s.Path())
}

func (s sqlStore) QuerySQL(ctx context.Context, query string, args ...any) ([][]any, error) {
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	var out [][]any
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		for i, v := range vals {
			if b, ok := v.([]byte); ok {
				vals[i] = string(b)
			}
		}
		out = append(out, vals)
	}
	return out, rows.Err()
}
