package pgoutbox

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bam-dev/bam/internal/store"
	"github.com/bam-dev/bam/internal/testpg"
	"github.com/bam-dev/bam/internal/testwait"
)

func countRows(t *testing.T, db *pgxpool.Pool, table string) int {
	t.Helper()
	var n int
	if err := db.QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestRewoundServerStopsReadAndTrim is a restored server as a reader sees
// it: the checkpoint is a transaction id the server has not reached (yet),
// and the rows written since sit behind it. Reading must say so rather than
// find nothing, and trimming must delete nothing.
func TestRewoundServerStopsReadAndTrim(t *testing.T) {
	t.Parallel()
	b := setup(t, "", 1)
	ctx := context.Background()
	for _, id := range []string{"PO-1", "PO-2", "PO-3"} {
		insert(t, b.app, DefaultTable, id, eventJSON(id, 1))
	}
	horizon, err := b.reader.Horizon(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Taken on the server before it was restored, a million transactions on.
	checkpoint := store.Position{Major: horizon + 1_000_000, Minor: 40}

	recs, held, err := b.reader.Read(ctx, 0, checkpoint, 10)
	if !errors.Is(err, ErrRewound) {
		t.Fatalf("Read after a checkpoint the server has not reached = %d records, held %v, %v; want ErrRewound", len(recs), held, err)
	}
	for _, want := range []string{"restored", "bam source reset-checkpoint"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not say %q: %v", want, err)
		}
	}
	if err := b.reader.Trim(ctx, 0, checkpoint); !errors.Is(err, ErrRewound) {
		t.Fatalf("Trim up to a checkpoint the server has not reached = %v, want ErrRewound", err)
	}
	if n := countRows(t, b.app, DefaultTable); n != 3 {
		t.Fatalf("%d rows left after a refused trim, want 3: unread events were deleted", n)
	}
	// Once the server's ids have run past the checkpoint again, the rows
	// written in between would be skipped: the reader stays stopped, and
	// a reader opened for the source as the store then has it refuses.
	for range 40 {
		if _, err := b.app.Exec(ctx, `SELECT pg_current_xact_id()`); err != nil {
			t.Fatal(err)
		}
	}
	near := store.Position{Major: horizon + 20, Minor: 1}
	if _, _, err := b.reader.Read(ctx, 0, near, 10); !errors.Is(err, ErrRewound) {
		t.Fatalf("Read of a stopped reader, at a position the server has passed = %v, want ErrRewound still", err)
	}
	stopped := store.Source{Name: "shop", DSN: b.dsn, Partitions: 1, OutboxStopped: err.Error()}
	if _, err := OpenSource(ctx, stopped); !errors.Is(err, ErrRewound) {
		t.Fatalf("OpenSource of a source recorded as stopped = %v, want ErrRewound", err)
	}
	r, err := Open(ctx, b.dsn, "", 1)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()

	// A checkpoint behind the horizon reads and trims as always.
	recs = readAll(t, r, 0, store.Position{})
	if len(recs) != 3 {
		t.Fatalf("read %d rows from the start, want 3", len(recs))
	}
	if recs[0].Segment != "PO-1" {
		t.Errorf("record's Segment = %q, want the row's instance_id PO-1", recs[0].Segment)
	}
	if err := r.Trim(ctx, 0, recs[2].Position); err != nil {
		t.Fatalf("Trim: %v", err)
	}
	if n := countRows(t, b.app, DefaultTable); n != 0 {
		t.Fatalf("%d rows left after trimming all, want 0", n)
	}
}

// TestReaderStopsOnAnotherDatabase drops the application's database and
// creates it again under the same name, behind a reader that is open: its
// next connection reaches another database (another oid), and it must stop
// rather than read the new rows with the old checkpoints.
func TestReaderStopsOnAnotherDatabase(t *testing.T) {
	t.Parallel()
	b := setup(t, "", 1)
	ctx := context.Background()
	recorded := b.reader.Identity()
	if recorded.DatabaseOID == 0 || recorded.Table != "public."+DefaultTable || recorded.SystemID == "" {
		t.Fatalf("Identity = %+v; want the database's oid, public.bam_outbox and the system identifier", recorded)
	}
	if got, err := Identify(ctx, b.dsn, ""); err != nil || got.Key() != recorded.Key() {
		t.Fatalf("Identify = %+v, %v; want %+v", got, err, recorded)
	}
	src := store.Source{Name: "shop", Kind: store.KindPgOutbox, Partitions: 1, DSN: b.dsn, Table: "", Outbox: recorded}
	r, err := OpenSource(ctx, src)
	if err != nil {
		t.Fatalf("OpenSource with the identity just recorded: %v", err)
	}
	defer r.Close()
	insert(t, b.app, DefaultTable, "PO-1", eventJSON("PO-1", 1))
	recs := readAll(t, r, 0, store.Position{})
	if len(recs) != 1 {
		t.Fatalf("read %d rows, want 1", len(recs))
	}

	// Dump and restore, as far as the reader can tell.
	u, err := url.Parse(b.dsn)
	if err != nil {
		t.Fatal(err)
	}
	name := strings.TrimPrefix(u.Path, "/")
	admin, err := pgx.Connect(ctx, testpg.AdminURL())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	b.app.Close()
	for _, q := range []string{"DROP DATABASE " + name + " WITH (FORCE)", "CREATE DATABASE " + name} {
		if _, err := admin.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	app, err := pgxpool.New(ctx, b.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	if err := Install(ctx, app, ""); err != nil {
		t.Fatal(err)
	}
	insert(t, app, DefaultTable, "PO-2", eventJSON("PO-2", 1))

	// The open reader: its old connections died with the database; the
	// first new one finds another database.
	var readErr error
	testwait.Until(t, horizonPatience, "the open reader to find another database", func() bool {
		_, _, readErr = r.Read(ctx, 0, recs[0].Position, 10)
		return errors.Is(readErr, store.ErrOutboxChanged)
	})
	if !strings.Contains(readErr.Error(), "oid") || !strings.Contains(readErr.Error(), "bam source reset-checkpoint shop") {
		t.Errorf("the error does not say what changed and what to run: %v", readErr)
	}
	if err := r.Trim(ctx, 0, recs[0].Position); !errors.Is(err, store.ErrOutboxChanged) {
		t.Errorf("Trim on another database = %v, want ErrOutboxChanged", err)
	}
	// A reader opened now is refused too.
	if r2, err := OpenSource(ctx, src); !errors.Is(err, store.ErrOutboxChanged) {
		if r2 != nil {
			_ = r2.Close()
		}
		t.Fatalf("OpenSource on another database = %v, want ErrOutboxChanged", err)
	}
	if n := countRows(t, app, DefaultTable); n != 1 {
		t.Fatalf("%d rows in the new database, want 1 (nothing trimmed)", n)
	}
}

// TestFloorSkipsRowsAppliedBeforeARepartition reads a source that had one
// partition and now has two: rows at or before the old partition's
// checkpoint were applied and are skipped; the others are read once, in
// their new partition.
func TestFloorSkipsRowsAppliedBeforeARepartition(t *testing.T) {
	t.Parallel()
	b := setup(t, "", 1)
	ctx := context.Background()
	ids := []string{"A", "B", "C", "D", "E", "F", "G", "H"}
	for _, id := range ids {
		insert(t, b.app, DefaultTable, id, eventJSON(id, 1))
	}
	all := readAll(t, b.reader, 0, store.Position{})
	if len(all) != len(ids) {
		t.Fatalf("read %d rows, want %d", len(all), len(ids))
	}
	applied := all[3].Position // A to D applied under one partition
	src := store.Source{Name: "shop", Kind: store.KindPgOutbox, Partitions: 2, DSN: b.dsn,
		Floor: &store.Floor{Partitions: 1, Checkpoints: []store.Position{applied}}}
	r, err := OpenSource(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	seen := map[string]int{}
	var backlog int64
	for p := range 2 {
		for _, rec := range readAll(t, r, p, store.Position{}) {
			seen[rec.Segment]++
		}
		n, err := r.Backlog(ctx, p, store.Position{})
		if err != nil {
			t.Fatal(err)
		}
		backlog += n
	}
	for _, id := range ids {
		want := 1
		if id <= "D" {
			want = 0
		}
		if seen[id] != want {
			t.Errorf("row %s read %d times, want %d", id, seen[id], want)
		}
	}
	if backlog != 4 {
		t.Errorf("backlog under the floor = %d, want 4", backlog)
	}
}

// TestClaim is the claim that keeps a second bam store's pool off an
// outbox table another store reads.
func TestClaim(t *testing.T) {
	t.Parallel()
	b := setup(t, "", 1)
	ctx := context.Background()
	if err := b.reader.Claim(ctx, "store-1", "shop"); err != nil {
		t.Fatalf("first Claim: %v", err)
	}
	if err := b.reader.Claim(ctx, "store-1", "shop-renamed"); err != nil {
		t.Fatalf("Claim again by the same store: %v", err)
	}
	other, err := Open(ctx, b.dsn, "public.bam_outbox", 1)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	err = other.Claim(ctx, "store-2", "orders")
	if !errors.Is(err, ErrClaimed) || !strings.Contains(err.Error(), "store-1") || !strings.Contains(err.Error(), `"shop-renamed"`) {
		t.Fatalf("Claim by another store = %v, want ErrClaimed naming store-1 and its source", err)
	}
	if err := b.reader.Release(ctx, "store-2"); err != nil {
		t.Fatal(err)
	}
	if err := other.Claim(ctx, "store-2", "orders"); !errors.Is(err, ErrClaimed) {
		t.Fatalf("a release by a store that holds no claim freed the table: %v", err)
	}
	if err := b.reader.Release(ctx, "store-1"); err != nil {
		t.Fatal(err)
	}
	if err := other.Claim(ctx, "store-2", "orders"); err != nil {
		t.Fatalf("Claim after the owner released it: %v", err)
	}
	// An outbox installed by an older bam has no readers table.
	if _, err := b.app.Exec(ctx, "DROP TABLE "+ReadersTable); err != nil {
		t.Fatal(err)
	}
	if err := b.reader.Claim(ctx, "store-1", "shop"); !errors.Is(err, ErrNoClaims) {
		t.Fatalf("Claim without the readers table = %v, want ErrNoClaims", err)
	}
}

// TestIdentityWithoutPgControlSystem is a server where bam's role may not
// run pg_control_system() (revoked, as some hosted services do): the
// identity falls back on the server's address, and reading works.
func TestIdentityWithoutPgControlSystem(t *testing.T) {
	t.Parallel()
	b := setup(t, "", 1)
	ctx := context.Background()
	role := "bam_test_role_" + strings.TrimPrefix(strings.TrimPrefix(mustURL(t, b.dsn).Path, "/"), "bam_test_")
	admin, err := pgx.Connect(ctx, testpg.AdminURL())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE ROLE "+role+" LOGIN"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		c, err := pgx.Connect(ctx, b.dsn)
		if err == nil {
			_, _ = c.Exec(ctx, "DROP OWNED BY "+role)
			c.Close(ctx)
		}
		_, _ = admin.Exec(ctx, "DROP ROLE IF EXISTS "+role)
	})
	for _, q := range []string{
		"REVOKE EXECUTE ON FUNCTION pg_control_system() FROM PUBLIC",
		"GRANT SELECT, DELETE ON bam_outbox TO " + role,
		"GRANT SELECT, INSERT, UPDATE, DELETE ON bam_outbox_readers TO " + role,
	} {
		if _, err := b.app.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	u := mustURL(t, b.dsn)
	u.User = url.User(role)
	r, err := Open(ctx, u.String(), "", 1)
	if err != nil {
		t.Fatalf("Open as a role that may not run pg_control_system(): %v", err)
	}
	defer r.Close()
	got := r.Identity()
	if got.SystemID != "" || got.Server != u.Host || !strings.HasPrefix(got.Key(), "addr:"+u.Host+"/") {
		t.Fatalf("Identity = %+v (key %s); want no system identifier, the server's address in its place", got, got.Key())
	}
	insert(t, b.app, DefaultTable, "PO-1", eventJSON("PO-1", 1))
	if recs := readAll(t, r, 0, store.Position{}); len(recs) != 1 {
		t.Fatalf("read %d rows, want 1", len(recs))
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
