package pgoutbox

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bam-dev/bam/internal/store"
	"github.com/bam-dev/bam/internal/testpg"
)

// TestPendingHeldAndHolder: a transaction open in another database of the
// server holds the horizon back; Pending says the outbox's row is held,
// and HorizonHolder names that transaction, its database and its age. The
// server is the test's own, so that no other test's transaction is older.
func TestPendingHeldAndHolder(t *testing.T) {
	_, dsn := testpg.NewServer(t)
	ctx := context.Background()
	app, err := pgxpool.New(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(app.Close)
	if err := Install(ctx, app, ""); err != nil {
		t.Fatal(err)
	}
	r, err := Open(ctx, dsn, "", 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })

	if b, held, err := r.Pending(ctx, 0, store.Position{}, 10); err != nil || b != (store.Backlog{}) || held {
		t.Fatalf("Pending of an empty outbox = %+v, held %v, %v; want zero", b, held, err)
	}
	if h, err := r.HorizonHolder(ctx); err != nil || h != nil {
		t.Fatalf("HorizonHolder with no transaction open = %+v, %v; want none", h, err)
	}

	// The long transaction is in another database: the horizon is the server's.
	if _, err := app.Exec(ctx, "CREATE DATABASE elsewhere"); err != nil {
		t.Fatal(err)
	}
	other, err := pgxpool.New(ctx, otherDatabase(t, dsn, "elsewhere"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(other.Close)
	long, err := other.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer long.Rollback(ctx)
	var pid int
	if err := long.QueryRow(ctx, "SELECT pg_backend_pid(), pg_current_xact_id()::text").Scan(&pid, new(string)); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		insert(t, app, "", "PO-1", eventJSON("PO-1", i))
	}

	b, held, err := r.Pending(ctx, 0, store.Position{}, 2)
	if err != nil || b.Events != 2 || !b.AtLeast || !held || b.OldestAge < 0 || b.OldestAge > time.Minute {
		t.Fatalf("Pending bound 2 behind the long transaction = %+v, held %v, %v; want 2 at least, held, a young age", b, held, err)
	}
	h, err := r.HorizonHolder(ctx)
	if err != nil || h == nil {
		t.Fatalf("HorizonHolder = %+v, %v; want the long transaction", h, err)
	}
	if h.Kind != "transaction" || h.PID != pid || h.Database != "elsewhere" || h.State != "idle in transaction" || h.Age < 0 {
		t.Fatalf("HorizonHolder = %+v; want pid %d in database elsewhere, idle in transaction", h, pid)
	}

	if err := long.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	b, held, err = r.Pending(ctx, 0, store.Position{}, 10)
	if err != nil || b.Events != 3 || b.AtLeast || held {
		t.Fatalf("Pending once it ended = %+v, held %v, %v; want 3, not held", b, held, err)
	}
}

// otherDatabase is dsn, a URL, with another database.
func otherDatabase(t *testing.T, dsn, db string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + db
	return u.String()
}
