package pgoutbox

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bam-dev/bam/internal/source/sourcetest"
	"github.com/bam-dev/bam/internal/store"
	"github.com/bam-dev/bam/internal/testpg"
	"github.com/bam-dev/bam/internal/testwait"
)

// testBundle is what a test works with: the reader, and a pool on the same
// database playing the application.
type testBundle struct {
	reader *Reader
	app    *pgxpool.Pool
	dsn    string
}

// setup installs an outbox named table in a fresh database and opens a
// reader of it with n partitions. Schemas the name needs are created first.
func setup(t *testing.T, table string, n int) *testBundle {
	t.Helper()
	ctx := context.Background()
	dsn := testpg.NewDatabase(t)
	app, err := pgxpool.New(ctx, dsn)
	if err != nil {
		t.Fatalf("connect application pool: %v", err)
	}
	t.Cleanup(app.Close)
	if id, err := ParseTable(table); err == nil && len(id) == 2 {
		if _, err := app.Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{id[0]}.Sanitize()); err != nil {
			t.Fatalf("create schema: %v", err)
		}
	}
	if err := Install(ctx, app, table); err != nil {
		t.Fatalf("install: %v", err)
	}
	r, err := Open(ctx, dsn, table, n)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return &testBundle{reader: r, app: app, dsn: dsn}
}

// insert writes one event as an application would, returning its id.
func insert(t *testing.T, db interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}, table, instance, ev string) int64 {
	t.Helper()
	id, err := ParseTable(table)
	if err != nil {
		t.Fatal(err)
	}
	var rowID int64
	err = db.QueryRow(context.Background(),
		"INSERT INTO "+id.Sanitize()+" (instance_id, event) VALUES ($1, $2) RETURNING id", instance, ev).Scan(&rowID)
	if err != nil {
		t.Fatalf("insert event of %s: %v", instance, err)
	}
	return rowID
}

func eventJSON(instance string, n int) string {
	return fmt.Sprintf(`{"activity":"PurchaseOrder","instance":%q,"kind":"update","data":{"N":%d}}`, instance, n)
}

// horizonPatience bounds the wait for a read that should succeed: other
// tests on the same server may hold the horizon for a moment with
// transactions of their own, so such a read is waited for, not assumed.
const horizonPatience = 15 * time.Second

// readAll reads a partition after a position until nothing is left and
// nothing is held.
func readAll(t *testing.T, r *Reader, partition int, after store.Position) []store.Record {
	t.Helper()
	var all []store.Record
	testwait.Until(t, horizonPatience, fmt.Sprintf("partition %d to be read to the end", partition), func() bool {
		for {
			recs, held, err := r.Read(context.Background(), partition, after, 7)
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			all = append(all, recs...)
			if len(recs) > 0 {
				after = recs[len(recs)-1].Position
			}
			if len(recs) < 7 {
				return !held
			}
		}
	})
	return all
}

func payloads(recs []store.Record) []string {
	out := make([]string, len(recs))
	for i, rec := range recs {
		out[i] = string(rec.Payload)
	}
	return out
}

// TestReadOutOfOrderCommits is DESIGN.md promise 4: a writer that commits
// after a later writer is never skipped.
func TestReadOutOfOrderCommits(t *testing.T) {
	t.Run("lower id commits last", func(t *testing.T) {
		b := setup(t, "", 1)
		ctx := context.Background()

		txA, err := b.app.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer txA.Rollback(ctx)
		idA := insert(t, txA, "", "PO-1", "event A")
		txB, err := b.app.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		idB := insert(t, txB, "", "PO-2", "event B")
		if err := txB.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if idA >= idB {
			t.Fatalf("ids: A %d, B %d; the test needs A below B", idA, idB)
		}

		// B is committed and visible, but A, open, may still land before it.
		recs, held, err := b.reader.Read(ctx, 0, store.Position{}, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != 0 || !held {
			t.Fatalf("read while A is open: got %q, held %v; want nothing, held", payloads(recs), held)
		}
		if n, err := b.reader.Backlog(ctx, 0, store.Position{}); err != nil || n != 1 {
			t.Fatalf("backlog while A is open: got %d, %v; want 1 (B)", n, err)
		}

		if err := txA.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		got := readAll(t, b.reader, 0, store.Position{})
		if want := []string{"event A", "event B"}; fmt.Sprint(payloads(got)) != fmt.Sprint(want) {
			t.Fatalf("after A commits: got %q, want %q", payloads(got), want)
		}
		if got[0].Position.Minor != idA || got[1].Position.Minor != idB || !got[0].Position.Less(got[1].Position) {
			t.Fatalf("positions %v, %v: want ids %d then %d, increasing", got[0].Position, got[1].Position, idA, idB)
		}
		if got[0].WrittenAt.IsZero() {
			t.Fatal("WrittenAt is zero; want written_at")
		}
	})

	// A took its xid first but its id last: xid order wins, and still
	// nothing is skipped.
	t.Run("lower xid takes the higher id", func(t *testing.T) {
		b := setup(t, "", 1)
		ctx := context.Background()

		txA, err := b.app.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer txA.Rollback(ctx)
		if _, err := txA.Exec(ctx, "SELECT pg_current_xact_id()"); err != nil {
			t.Fatal(err)
		}
		idB := insert(t, b.app, "", "PO-1", "event B") // its own transaction, committed
		idA := insert(t, txA, "", "PO-1", "event A")
		if idA <= idB {
			t.Fatalf("ids: A %d, B %d; the test needs A above B", idA, idB)
		}
		recs, held, err := b.reader.Read(ctx, 0, store.Position{}, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != 0 || !held {
			t.Fatalf("read while A is open: got %q, held %v; want nothing, held", payloads(recs), held)
		}
		if err := txA.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		got := readAll(t, b.reader, 0, store.Position{})
		if want := []string{"event A", "event B"}; fmt.Sprint(payloads(got)) != fmt.Sprint(want) {
			t.Fatalf("after A commits: got %q, want %q (xid order)", payloads(got), want)
		}
	})

	// Reading in small batches across the gap: the batch before the gap
	// comes back, and the rows after it wait for A.
	t.Run("reads up to the open transaction", func(t *testing.T) {
		b := setup(t, "", 1)
		ctx := context.Background()
		insert(t, b.app, "", "PO-1", "before 1")
		insert(t, b.app, "", "PO-1", "before 2")
		var early []store.Record
		testwait.Until(t, horizonPatience, "the committed rows to be readable", func() bool {
			recs, _, err := b.reader.Read(ctx, 0, store.Position{}, 10)
			if err != nil {
				t.Fatal(err)
			}
			early = recs
			return len(recs) == 2
		})
		txA, err := b.app.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer txA.Rollback(ctx)
		insert(t, txA, "", "PO-1", "A")
		insert(t, b.app, "", "PO-1", "after A")

		recs, held, err := b.reader.Read(ctx, 0, early[1].Position, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != 0 || !held {
			t.Fatalf("read past the committed rows while A is open: got %q, held %v; want nothing, held", payloads(recs), held)
		}
		// A full batch right before a held row reports held too.
		recs, held, err = b.reader.Read(ctx, 0, early[0].Position, 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != 1 || string(recs[0].Payload) != "before 2" || !held {
			t.Fatalf("read of one: got %q, held %v; want [before 2], held", payloads(recs), held)
		}
		if err := txA.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		got := readAll(t, b.reader, 0, early[1].Position)
		if want := []string{"A", "after A"}; fmt.Sprint(payloads(got)) != fmt.Sprint(want) {
			t.Fatalf("after A commits: got %q, want %q", payloads(got), want)
		}
	})

	// A rolled-back writer leaves a gap in the ids that is never waited on.
	t.Run("rolled back writer", func(t *testing.T) {
		b := setup(t, "", 1)
		ctx := context.Background()
		txA, err := b.app.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		insert(t, txA, "", "PO-1", "rolled back")
		insert(t, b.app, "", "PO-1", "kept")
		if err := txA.Rollback(ctx); err != nil {
			t.Fatal(err)
		}
		got := readAll(t, b.reader, 0, store.Position{})
		if want := []string{"kept"}; fmt.Sprint(payloads(got)) != fmt.Sprint(want) {
			t.Fatalf("got %q, want %q", payloads(got), want)
		}
	})
}

func TestPartitions(t *testing.T) {
	const n = 4
	b := setup(t, "", n)
	ctx := context.Background()

	// Several transactions, each writing events of several instances, so
	// that one instance's events are spread over many xids.
	want := map[string][]string{} // instance -> payloads in writing order
	for tx := 0; tx < 10; tx++ {
		batch := &pgx.Batch{}
		for i := 0; i < 20; i++ {
			inst := fmt.Sprintf("PO-%d", (tx*7+i)%30)
			ev := eventJSON(inst, tx*100+i)
			want[inst] = append(want[inst], ev)
			batch.Queue("INSERT INTO bam_outbox (instance_id, event) VALUES ($1, $2)", inst, ev)
		}
		if err := b.app.SendBatch(ctx, batch).Close(); err != nil {
			t.Fatal(err)
		}
	}

	partOf := map[string]int{}
	got := map[string][]string{}
	nonEmpty := 0
	for p := 0; p < n; p++ {
		recs := readAll(t, b.reader, p, store.Position{})
		if len(recs) > 0 {
			nonEmpty++
		}
		for _, rec := range recs {
			var inst string
			if _, err := fmt.Sscanf(string(rec.Payload), `{"activity":"PurchaseOrder","instance":%q`, &inst); err != nil {
				t.Fatalf("parse %s: %v", rec.Payload, err)
			}
			if q, ok := partOf[inst]; ok && q != p {
				t.Fatalf("instance %s is in partitions %d and %d", inst, q, p)
			}
			partOf[inst] = p
			got[inst] = append(got[inst], string(rec.Payload))
		}
		backlog, err := b.reader.Backlog(ctx, p, store.Position{})
		if err != nil {
			t.Fatal(err)
		}
		if backlog != int64(len(recs)) {
			t.Fatalf("partition %d: backlog %d, read %d", p, backlog, len(recs))
		}
	}
	if nonEmpty < 2 {
		t.Fatalf("%d of %d partitions hold events; want them spread", nonEmpty, n)
	}
	if len(got) != len(want) {
		t.Fatalf("read %d instances, wrote %d", len(got), len(want))
	}
	for inst, evs := range want {
		if fmt.Sprint(got[inst]) != fmt.Sprint(evs) {
			t.Fatalf("instance %s: got %q, want %q (all of them, in writing order)", inst, got[inst], evs)
		}
		// The rule docs/outbox.md gives applications.
		var p int
		err := b.app.QueryRow(ctx, "SELECT (hashtextextended($1, 0) & 9223372036854775807) % $2", inst, n).Scan(&p)
		if err != nil {
			t.Fatal(err)
		}
		if p != partOf[inst] {
			t.Fatalf("instance %s: read from partition %d, the documented rule says %d", inst, partOf[inst], p)
		}
	}

	if _, _, err := b.reader.Read(ctx, n, store.Position{}, 1); err == nil {
		t.Fatalf("read of partition %d of %d: want an error", n, n)
	}
}

func TestTrim(t *testing.T) {
	b := setup(t, "", 2)
	ctx := context.Background()
	for i := 0; i < 40; i++ {
		insert(t, b.app, "", fmt.Sprintf("PO-%d", i%8), eventJSON(fmt.Sprintf("PO-%d", i%8), i))
	}
	p0 := readAll(t, b.reader, 0, store.Position{})
	p1 := readAll(t, b.reader, 1, store.Position{})
	if len(p0) < 3 || len(p1) == 0 {
		t.Fatalf("partitions hold %d and %d events; the test needs at least 3 and 1", len(p0), len(p1))
	}
	upTo := p0[len(p0)/2].Position

	for i := 0; i < 2; i++ { // the second trim finds nothing to do
		if err := b.reader.Trim(ctx, 0, upTo); err != nil {
			t.Fatalf("trim %d: %v", i+1, err)
		}
		if got, want := payloads(readAll(t, b.reader, 0, store.Position{})), payloads(p0[len(p0)/2+1:]); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("partition 0 after trim %d: got %q, want %q", i+1, got, want)
		}
	}
	// An older position (a node replaying a stale checkpoint) deletes nothing more.
	if err := b.reader.Trim(ctx, 0, p0[0].Position); err != nil {
		t.Fatal(err)
	}
	if n, err := b.reader.Backlog(ctx, 0, store.Position{}); err != nil || n != int64(len(p0)-len(p0)/2-1) {
		t.Fatalf("backlog of partition 0: got %d, %v; want %d", n, err, len(p0)-len(p0)/2-1)
	}
	// The other partition is untouched, even by a trim past all its rows.
	if got := readAll(t, b.reader, 1, store.Position{}); len(got) != len(p1) {
		t.Fatalf("partition 1 after trimming partition 0: %d events, want %d", len(got), len(p1))
	}
	if err := b.reader.Trim(ctx, 0, p1[len(p1)-1].Position); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, b.reader, 1, store.Position{}); len(got) != len(p1) {
		t.Fatalf("partition 1 after trimming partition 0 past it: %d events, want %d", len(got), len(p1))
	}
}

func TestWatch(t *testing.T) {
	for _, table := range []string{
		"",
		"Odd schema.Out box",
		// Too long for "bam:schema.table" as a channel: the oid stands in.
		strings.Repeat("s", 40) + "." + strings.Repeat("t", 40),
	} {
		t.Run(table, func(t *testing.T) {
			b := setup(t, table, 1)
			ctx, cancel := context.WithCancel(context.Background())
			var wakes atomic.Int64
			woke := make(chan struct{}, 100)
			done := make(chan error, 1)
			go func() {
				done <- b.reader.Watch(ctx, func() {
					wakes.Add(1)
					woke <- struct{}{}
				})
			}()
			waitWake := func(what string) {
				t.Helper()
				select {
				case <-woke:
				case err := <-done:
					t.Fatalf("watch ended waiting for %s: %v", what, err)
				case <-time.After(15 * time.Second):
					t.Fatalf("no wake after %s", what)
				}
			}
			waitWake("listening") // the first wake says it listens

			insert(t, b.app, table, "PO-1", "committed")
			waitWake("a committed insert")

			tx, err := b.app.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			insert(t, tx, table, "PO-1", "rolled back")
			if err := tx.Rollback(ctx); err != nil {
				t.Fatal(err)
			}
			// Notifications arrive in commit order: had the rollback sent
			// one, it would come before this commit's.
			before := wakes.Load()
			insert(t, b.app, table, "PO-1", "committed again")
			waitWake("a second committed insert")
			select {
			case <-woke:
				t.Fatalf("woken %d times after a rollback and one commit; want once", wakes.Load()-before)
			case <-time.After(200 * time.Millisecond):
			}

			cancel()
			if err := <-done; !errors.Is(err, context.Canceled) {
				t.Fatalf("watch after its context ended: %v, want context.Canceled", err)
			}
		})
	}

	t.Run("close ends it", func(t *testing.T) {
		b := setup(t, "", 1)
		woke := make(chan struct{}, 1)
		done := make(chan error, 1)
		go func() {
			done <- b.reader.Watch(context.Background(), func() {
				select {
				case woke <- struct{}{}:
				default:
				}
			})
		}()
		<-woke
		_ = b.reader.Close()
		select {
		case err := <-done:
			if !errors.Is(err, ErrClosed) {
				t.Fatalf("watch after Close: %v, want ErrClosed", err)
			}
			if _, _, err := b.reader.Read(context.Background(), 0, store.Position{}, 1); !errors.Is(err, ErrClosed) {
				t.Fatalf("read after Close: %v, want ErrClosed", err)
			}
		case <-time.After(15 * time.Second):
			t.Fatal("watch still runs after Close")
		}
	})

	t.Run("a dead connection ends it", func(t *testing.T) {
		b := setup(t, "", 1)
		b.reader.pingEvery = 50 * time.Millisecond
		woke := make(chan struct{}, 1)
		done := make(chan error, 1)
		go func() {
			done <- b.reader.Watch(context.Background(), func() {
				select {
				case woke <- struct{}{}:
				default:
				}
			})
		}()
		<-woke
		if _, err := b.app.Exec(context.Background(),
			"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%'"); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-done:
			if err == nil || errors.Is(err, ErrClosed) {
				t.Fatalf("watch after its connection died: %v, want the failure", err)
			}
		case <-time.After(15 * time.Second):
			t.Fatal("watch still runs after its connection died")
		}
	})
}

// TestHorizonHeldByUnrelatedTransaction: any transaction with an xid holds
// the horizon, even one that never touches the outbox; reads resume once it
// ends.
func TestHorizonHeldByUnrelatedTransaction(t *testing.T) {
	b := setup(t, "", 1)
	ctx := context.Background()
	if _, err := b.app.Exec(ctx, "CREATE TABLE unrelated (x int)"); err != nil {
		t.Fatal(err)
	}
	long, err := b.app.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer long.Rollback(ctx)
	if _, err := long.Exec(ctx, "INSERT INTO unrelated VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	insert(t, b.app, "", "PO-1", "behind the long transaction")

	recs, held, err := b.reader.Read(ctx, 0, store.Position{}, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 0 || !held {
		t.Fatalf("read while the long transaction runs: got %q, held %v; want nothing, held", payloads(recs), held)
	}
	if err := long.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	got := readAll(t, b.reader, 0, store.Position{})
	if want := []string{"behind the long transaction"}; fmt.Sprint(payloads(got)) != fmt.Sprint(want) {
		t.Fatalf("after it ends: got %q, want %q", payloads(got), want)
	}
}

// TestMalformedEvent: the column is text so the application's insert never
// fails on a bad event; the reader hands it over byte for byte and the bus
// quarantines it.
func TestMalformedEvent(t *testing.T) {
	b := setup(t, "", 1)
	evs := []string{`{"activity": "PurchaseOrder", "instance": `, "not json at all ✗", `{"kind":"begin"}`}
	for _, ev := range evs {
		insert(t, b.app, "", "PO-1", ev)
	}
	got := readAll(t, b.reader, 0, store.Position{})
	if fmt.Sprint(payloads(got)) != fmt.Sprint(evs) {
		t.Fatalf("got %q, want %q", payloads(got), evs)
	}
}

func TestInstall(t *testing.T) {
	t.Run("twice", func(t *testing.T) {
		b := setup(t, "Odd schema.Out box", 1)
		if err := Install(context.Background(), b.app, "Odd schema.Out box"); err != nil {
			t.Fatalf("second install: %v", err)
		}
		if got, want := b.reader.channel, "bam:Odd schema.Out box"; got != want {
			t.Fatalf("channel %q, want %q", got, want)
		}
		// The unqualified name, found through the search_path, is the same
		// table, so its reader listens on the same channel.
		u, err := url.Parse(b.dsn)
		if err != nil {
			t.Fatal(err)
		}
		// pgx reads "+" literally: spaces go as %20.
		if u.RawQuery != "" {
			u.RawQuery += "&"
		}
		u.RawQuery += "search_path=" + url.PathEscape(`"Odd schema"`)
		r, err := Open(context.Background(), u.String(), "Out box", 1)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		if r.channel != b.reader.channel {
			t.Fatalf("channel through the search_path %q, want %q", r.channel, b.reader.channel)
		}
	})

	t.Run("sql runs as printed", func(t *testing.T) {
		dsn := testpg.NewDatabase(t)
		conn, err := pgx.Connect(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		for i := 0; i < 2; i++ {
			if _, err := conn.Exec(context.Background(), InstallSQL("outbox")); err != nil {
				t.Fatalf("run InstallSQL, time %d: %v", i+1, err)
			}
		}
		r, err := Open(context.Background(), dsn, "public.outbox", 1)
		if err != nil {
			t.Fatal(err)
		}
		_ = r.Close()
		// A refused name gives SQL that fails.
		if _, err := conn.Exec(context.Background(), InstallSQL(`"quoted"`)); err == nil {
			t.Fatal("InstallSQL of a refused name ran without error")
		}
	})

	t.Run("names", func(t *testing.T) {
		for _, bad := range []string{"a.b.c", ".x", "x.", `"x"`, strings.Repeat("x", 64)} {
			if _, err := ParseTable(bad); !errors.Is(err, ErrInvalidTable) {
				t.Errorf("ParseTable(%q): %v, want ErrInvalidTable", bad, err)
			}
		}
		got, err := ParseTable("")
		if err != nil || got.Sanitize() != `"bam_outbox"` {
			t.Errorf(`ParseTable(""): %v, %v; want "bam_outbox"`, got, err)
		}
	})
}

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	t.Run("no table", func(t *testing.T) {
		dsn := testpg.NewDatabase(t)
		_, err := Open(ctx, dsn, "", 1)
		if err == nil || !strings.Contains(err.Error(), "install-outbox") {
			t.Fatalf("open without the table: %v, want advice to install it", err)
		}
	})
	t.Run("wrong shape", func(t *testing.T) {
		dsn := testpg.NewDatabase(t)
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "CREATE TABLE bam_outbox (id bigserial, event jsonb)"); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(ctx, dsn, "", 1); err == nil {
			t.Fatal("open of a table without xid: want an error")
		}
	})
	t.Run("password never shown", func(t *testing.T) {
		const secret = "pw-s3cret-value"
		for _, dsn := range []string{
			"postgres://bam:" + secret + "@127.0.0.1:1/app?connect_timeout=2",
			"host=127.0.0.1 port=1 user=bam password=" + secret + " connect_timeout=2",
			"postgres://bam:" + secret + "@127.0.0.1:notaport/app",
			"host=127.0.0.1 password='" + secret + " port=x",
		} {
			_, err := Open(ctx, dsn, "", 1)
			if err == nil {
				t.Fatalf("open of an unreachable database: want an error")
			}
			if strings.Contains(err.Error(), secret) {
				t.Fatalf("error shows the password: %v", err)
			}
		}
	})
	t.Run("bad arguments", func(t *testing.T) {
		if _, err := Open(ctx, "postgres://127.0.0.1/x", "", 0); err == nil {
			t.Fatal("open with 0 partitions: want an error")
		}
		if _, err := Open(ctx, "postgres://127.0.0.1/x", "a.b.c", 1); !errors.Is(err, ErrInvalidTable) {
			t.Fatalf("open with a bad table name: %v, want ErrInvalidTable", err)
		}
	})
}

func TestRedactedError(t *testing.T) {
	r := &Reader{password: "hunter2"}
	err := r.errorf("connect: %w", fmt.Errorf("server said: password hunter2 is wrong: %w", context.Canceled))
	if strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("error shows the password: %v", err)
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("redacted error lost its chain: %v", err)
	}
}

// TestDocShowsInstallSQL keeps docs/outbox.md's DDL the one Install runs.
func TestDocShowsInstallSQL(t *testing.T) {
	doc, err := os.ReadFile("../../../docs/outbox.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), "```sql\n"+InstallSQL("")+"```") {
		t.Fatalf("docs/outbox.md does not show InstallSQL(\"\"); paste it:\n%s", InstallSQL(""))
	}
}

// TestConformance holds the pg-outbox reader to the suite every
// source.Reader passes; its writers are applications' transactions.
func TestConformance(t *testing.T) {
	sourcetest.Run(t, func(t *testing.T, partitions int) sourcetest.Harness {
		b := setup(t, "", partitions)
		return sourcetest.Harness{
			Reader:     b.reader,
			Concurrent: true,
			Begin: func(ctx context.Context) (sourcetest.Tx, error) {
				tx, err := b.app.Begin(ctx)
				return appTx{tx}, err
			},
		}
	})
}

// appTx is an application's transaction writing to the outbox.
type appTx struct{ pgx.Tx }

func (tx appTx) Write(ctx context.Context, segment string, payload []byte) error {
	_, err := tx.Exec(ctx, `INSERT INTO bam_outbox (instance_id, event) VALUES ($1, $2)`, segment, payload)
	return err
}
