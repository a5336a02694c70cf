package postgres

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/store"
	"github.com/bam-dev/bam/internal/store/storetest"
	"github.com/bam-dev/bam/internal/testpg"
)

func TestWriteEvents(t *testing.T) {
	t.Parallel()
	var urls sync.Map // *Store → its database URL
	storetest.RunDirect(t, func(t *testing.T) store.Store {
		url := testpg.NewDatabase(t)
		s := open(t, url)
		urls.Store(s, url)
		return s
	}, func(ctx context.Context, st store.Store, events []event.Event, commit bool) error {
		url, _ := urls.Load(st)
		// The application's own connection and transaction.
		conn, err := pgx.Connect(ctx, url.(string))
		if err != nil {
			return err
		}
		defer conn.Close(context.Background())
		tx, err := conn.Begin(ctx)
		if err != nil {
			return err
		}
		if err := WriteEvents(ctx, tx, events); err != nil || !commit {
			return errors.Join(err, tx.Rollback(ctx))
		}
		return tx.Commit(ctx)
	})
}
