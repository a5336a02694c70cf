package eventstream_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	neturl "net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"

	"github.com/bam-dev/bam/eventstream"
	"github.com/bam-dev/bam/eventstream/pgstream"
	"github.com/bam-dev/bam/eventstream/sqlitestream"
	"github.com/bam-dev/bam/internal/definition"
	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/store"
	"github.com/bam-dev/bam/internal/store/storeurl"
	"github.com/bam-dev/bam/internal/testpg"
	"github.com/bam-dev/bam/internal/testwait"
)

func openDirect(t *testing.T, url string, opts eventstream.DirectOptions) *eventstream.Direct {
	t.Helper()
	d, err := eventstream.OpenDirect(context.Background(), driverFor(url), url, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Close(context.Background()); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return d
}

// deploy deploys a definitions file to st.
func deploy(t *testing.T, st store.Store, yaml string) {
	t.Helper()
	file, err := definition.Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Deploy(context.Background(), store.DeployRequest{File: file, By: "test"}); err != nil {
		t.Fatal(err)
	}
}

const quantityIsAnInteger = "activities:\n  - name: PurchaseOrder\n    items:\n      - {name: Quantity, type: integer}\n"

// instanceOf returns the instance, or fails the test.
func instanceOf(t *testing.T, st store.Store, activity, id string) store.Instance {
	t.Helper()
	in, err := st.Instance(context.Background(), event.Key{Activity: activity, Instance: id})
	if err != nil {
		t.Fatalf("instance %s %s: %v", activity, id, err)
	}
	return in
}

// noInstance fails the test if the instance exists.
func noInstance(t *testing.T, st store.Store, activity, id string) {
	t.Helper()
	if in, err := st.Instance(context.Background(), event.Key{Activity: activity, Instance: id}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("instance %s %s = %+v, %v; want none", activity, id, in, err)
	}
}

// TestDirectIsSynchronous: once a method returns nil, the store shows its
// event, with no node running.
func TestDirectIsSynchronous(t *testing.T) {
	storeURLs(t, func(t *testing.T, url string, st store.Store) {
		ctx := context.Background()
		d := openDirect(t, url, eventstream.DirectOptions{})
		at := time.Date(2026, 11, 25, 9, 30, 0, 0, time.UTC)
		if err := d.BeginActivity(ctx, "PurchaseOrder", "PO-1", eventstream.At(at)); err != nil {
			t.Fatal(err)
		}
		if in := instanceOf(t, st, "PurchaseOrder", "PO-1"); in.Events != 1 || in.Begin == nil || !in.Begin.Equal(at) {
			t.Fatalf("after BeginActivity: %+v, want one event and its begin", in)
		}
		steps := []error{
			d.UpdateActivity(ctx, "PurchaseOrder", "PO-1", eventstream.Data{"Amount": "1200.00", "Quantity": 12}),
			d.EnableContinuation(ctx, "PurchaseOrder", "PO-1", "ship-PO-1"),
			d.AddRelatedActivity(ctx, "PurchaseOrder", "PO-1", "Shipment", "SHP-1"),
			d.AddReference(ctx, "PurchaseOrder", "PO-1", eventstream.Reference{Type: "url", Name: "order", Value: "https://erp.example.com/po/1"}),
			d.EndActivity(ctx, "PurchaseOrder", "PO-1"),
			d.UpdateContinuation(ctx, "PurchaseOrder", "ship-PO-1", eventstream.Data{"Carrier": "DHL"}),
		}
		if err := errors.Join(steps...); err != nil {
			t.Fatal(err)
		}
		in := instanceOf(t, st, "PurchaseOrder", "PO-1")
		if in.State == store.StateCompleted {
			t.Fatalf("completed with a continuation still open: %+v", in)
		}
		if err := d.EndContinuation(ctx, "PurchaseOrder", "ship-PO-1"); err != nil {
			t.Fatal(err)
		}
		in = instanceOf(t, st, "PurchaseOrder", "PO-1")
		data := dataOf(in)
		if in.State != store.StateCompleted || in.Events != 8 || data != `Amount="1200.00" Carrier="DHL" Quantity=12` ||
			len(in.Continuations) != 1 || len(in.Related) != 1 || len(in.References) != 1 {
			t.Fatalf("after every event: %s, %d events, data %s, %d continuations, %d related, %d references; want completed, 8 events, each one",
				in.State, in.Events, data, len(in.Continuations), len(in.Related), len(in.References))
		}
	})
}

// dataOf is an instance's data as one line, sorted by name.
func dataOf(in store.Instance) string {
	var out []string
	for name, v := range in.Data {
		out = append(out, name+"="+string(v))
	}
	slices.Sort(out)
	return strings.Join(out, " ")
}

// callerTx is a caller's transaction on a store's database, with a Writer
// bound to it and a business table, orders.
type callerTx struct {
	w        eventstream.Writer
	order    func(id string) error // inserts an order row in the transaction
	commit   func() error
	rollback func() error
}

// binders returns the ways a caller binds a Direct to its own transaction
// on the store at url: pgx and database/sql on PostgreSQL, database/sql on
// SQLite. Each makes the orders table first.
func binders(t *testing.T, url string) map[string]func(d *eventstream.Direct) callerTx {
	t.Helper()
	ctx := context.Background()
	if strings.HasPrefix(url, "sqlite:") {
		db := sqliteAppDB(t, url)
		return map[string]func(d *eventstream.Direct) callerTx{"sql": func(d *eventstream.Direct) callerTx { return sqlCallerTx(t, db, d, "?") }}
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	if _, err := conn.Exec(ctx, "CREATE TABLE orders (id text PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	u, err := neturl.Parse(url)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("default_query_exec_mode", "simple_protocol") // as behind PgBouncer
	u.RawQuery = q.Encode()
	simple, err := sql.Open("pgx", u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { simple.Close() })
	return map[string]func(d *eventstream.Direct) callerTx{
		"sql-simple-protocol": func(d *eventstream.Direct) callerTx { return sqlCallerTx(t, simple, d, "$1") },
		"pgx": func(d *eventstream.Direct) callerTx {
			tx, err := conn.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			return callerTx{
				w: pgstream.DirectTx(d, tx),
				order: func(id string) error {
					_, err := tx.Exec(ctx, "INSERT INTO orders (id) VALUES ($1)", id)
					return err
				},
				commit:   func() error { return tx.Commit(ctx) },
				rollback: func() error { return tx.Rollback(ctx) },
			}
		},
		"sql": func(d *eventstream.Direct) callerTx { return sqlCallerTx(t, db, d, "$1") },
	}
}

// sqliteAppDB opens the SQLite store at url as the application's own
// database, with an orders table.
func sqliteAppDB(t *testing.T, url string) *sql.DB {
	t.Helper()
	dsn, err := sqlitestream.DSN(url)
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Exec("CREATE TABLE orders (id TEXT PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	return db
}

func sqlCallerTx(t *testing.T, db *sql.DB, d *eventstream.Direct, param string) callerTx {
	t.Helper()
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	return callerTx{
		w: d.SQL(tx),
		order: func(id string) error {
			_, err := tx.Exec("INSERT INTO orders (id) VALUES ("+param+")", id)
			return err
		},
		commit:   tx.Commit,
		rollback: tx.Rollback,
	}
}

// ordersOf counts the order rows with id in the store's database.
func ordersOf(t *testing.T, url, id string) int {
	t.Helper()
	db := openSQL(t, url)
	var n int
	q := "SELECT count(*) FROM orders WHERE id = $1"
	if strings.HasPrefix(url, "sqlite:") {
		q = "SELECT count(*) FROM orders WHERE id = ?"
	}
	if err := db.QueryRow(q, id).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func openSQL(t testing.TB, url string) *sql.DB {
	t.Helper()
	driver, dsn := "pgx", url
	if strings.HasPrefix(url, "sqlite:") {
		var err error
		if dsn, err = sqlitestream.DSN(url); err != nil {
			t.Fatal(err)
		}
		driver = "sqlite"
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestDirectInCallersTransaction is the promise of Pgx and SQL: the events
// are applied if and only if the caller's transaction commits, with its
// business change.
func TestDirectInCallersTransaction(t *testing.T) {
	storeURLs(t, func(t *testing.T, url string, st store.Store) {
		ctx := context.Background()
		d := openDirect(t, url, eventstream.DirectOptions{})
		for name, bind := range binders(t, url) {
			t.Run(name, func(t *testing.T) {
				place := func(tx callerTx, id string) {
					t.Helper()
					if err := errors.Join(
						tx.order(id),
						tx.w.BeginActivity(ctx, "PurchaseOrder", id),
						tx.w.UpdateActivity(ctx, "PurchaseOrder", id, eventstream.Data{"Quantity": 3}),
						tx.w.EnableContinuation(ctx, "PurchaseOrder", id, "ship-"+id),
					); err != nil {
						t.Fatal(err)
					}
				}
				committed, rolledBack := name+"-committed", name+"-rolled-back"

				tx := bind(d)
				place(tx, committed)
				if strings.HasPrefix(url, "postgres") {
					// SQLite's IMMEDIATE transaction would hold a reader
					// in WAL mode back from nothing, but PostgreSQL's
					// isolation is what is tested here.
					noInstance(t, st, "PurchaseOrder", committed)
				}
				if err := tx.commit(); err != nil {
					t.Fatal(err)
				}
				in := instanceOf(t, st, "PurchaseOrder", committed)
				if in.Events != 3 || dataOf(in) != "Quantity=3" || len(in.Continuations) != 1 || ordersOf(t, url, committed) != 1 {
					t.Fatalf("after commit: %d events, data %s, %d continuations, %d orders; want 3, Quantity=3, 1, 1",
						in.Events, dataOf(in), len(in.Continuations), ordersOf(t, url, committed))
				}

				tx = bind(d)
				place(tx, rolledBack)
				if err := tx.rollback(); err != nil {
					t.Fatal(err)
				}
				noInstance(t, st, "PurchaseOrder", rolledBack)
				if _, err := st.Continuation(ctx, "PurchaseOrder", "ship-"+rolledBack); !errors.Is(err, store.ErrNotFound) {
					t.Fatalf("a rolled back transaction left its continuation: %v", err)
				}
				if n := ordersOf(t, url, rolledBack); n != 0 {
					t.Fatalf("a rolled back transaction left %d orders", n)
				}
			})
		}
	})
}

// TestDirectRefusesInvalidEvents: an event the deployed definition
// refuses is an *EventError naming the item and the rule; nothing is
// written, and the caller's transaction goes on.
func TestDirectRefusesInvalidEvents(t *testing.T) {
	storeURLs(t, func(t *testing.T, url string, st store.Store) {
		ctx := context.Background()
		deploy(t, st, quantityIsAnInteger)
		d := openDirect(t, url, eventstream.DirectOptions{})
		refused := func(t *testing.T, err error) {
			t.Helper()
			var evErr *eventstream.EventError
			if !errors.As(err, &evErr) || !errors.Is(err, eventstream.ErrInvalidEvent) || evErr.Field != "data.Quantity" || !strings.Contains(evErr.Reason, "integer") {
				t.Fatalf("a text in an integer item: %v, want an *EventError on data.Quantity saying it must be an integer", err)
			}
			if !strings.Contains(err.Error(), `data.Quantity`) {
				t.Errorf("the message %q does not name the item", err)
			}
		}

		refused(t, d.UpdateActivity(ctx, "PurchaseOrder", "PO-1", eventstream.Data{"Quantity": "three"}))
		noInstance(t, st, "PurchaseOrder", "PO-1")

		for name, bind := range binders(t, url) {
			t.Run(name, func(t *testing.T) {
				id := "PO-" + name
				tx := bind(d)
				if err := tx.w.BeginActivity(ctx, "PurchaseOrder", id); err != nil {
					t.Fatal(err)
				}
				refused(t, tx.w.UpdateActivity(ctx, "PurchaseOrder", id, eventstream.Data{"Quantity": "three"}))
				// The transaction is usable: more writes, then commit.
				if err := errors.Join(tx.order(id), tx.w.UpdateActivity(ctx, "PurchaseOrder", id, eventstream.Data{"Quantity": 3}), tx.commit()); err != nil {
					t.Fatalf("the transaction after a refused event: %v", err)
				}
				if in := instanceOf(t, st, "PurchaseOrder", id); in.Events != 2 || dataOf(in) != "Quantity=3" {
					t.Fatalf("%d events, data %s; want the 2 valid events only", in.Events, dataOf(in))
				}
			})
		}
	})
}

// TestDirectSeesDefinitionsDeployedLater: the stream checks events against
// the definitions deployed now, not those of when it opened.
func TestDirectSeesDefinitionsDeployedLater(t *testing.T) {
	storeURLs(t, func(t *testing.T, url string, st store.Store) {
		ctx := context.Background()
		deploy(t, st, quantityIsAnInteger)
		d := openDirect(t, url, eventstream.DirectOptions{})
		if err := d.UpdateActivity(ctx, "PurchaseOrder", "PO-1", eventstream.Data{"Quantity": 3}); err != nil {
			t.Fatal(err)
		}

		// A deployment that accepts what the copy refuses is seen at once:
		// a refusal first asks the store again.
		deploy(t, st, quantityIsAnInteger+"      - {name: Rush, type: boolean}\n")
		if err := d.UpdateActivity(ctx, "PurchaseOrder", "PO-1", eventstream.Data{"Rush": true}); err != nil {
			t.Fatalf("an item of the new deployment: %v", err)
		}

		// One that refuses what the copy accepts (an activity that had no
		// definition) is seen once the copy is catalog.Options.MaxAge (1 s)
		// old.
		if err := d.UpdateActivity(ctx, "Invoice", "INV-0", eventstream.Data{"Total": "twelve"}); err != nil {
			t.Fatalf("no definition of Invoice deployed: %v", err)
		}
		deploy(t, st, quantityIsAnInteger+"      - {name: Rush, type: boolean}\n  - name: Invoice\n    items:\n      - {name: Total, type: integer}\n")
		var err error
		i := 0
		testwait.Until(t, 5*time.Second, "the definition deployed after the stream opened to be applied", func() bool {
			i++
			err = d.UpdateActivity(ctx, "Invoice", fmt.Sprintf("INV-%d", i), eventstream.Data{"Total": "twelve"})
			return err != nil
		})
		var evErr *eventstream.EventError
		if !errors.As(err, &evErr) || evErr.Field != "data.Total" {
			t.Fatalf("after the deployment: %v, want an *EventError on data.Total", err)
		}
	})
}

// TestDirectConcurrentWriters: writers share one stream, on one instance
// and on their own, in the stream's transactions and in their own; every
// event is applied once.
func TestDirectConcurrentWriters(t *testing.T) {
	storeURLs(t, func(t *testing.T, url string, st store.Store) {
		ctx := context.Background()
		d := openDirect(t, url, eventstream.DirectOptions{})
		const writers, each = 8, 15
		var wg sync.WaitGroup
		errs := make(chan error, writers*each*3)
		for w := range writers {
			wg.Go(func() {
				own := fmt.Sprintf("PO-w%d", w)
				for i := range each {
					errs <- d.UpdateActivity(ctx, "PurchaseOrder", "PO-shared", eventstream.Data{fmt.Sprintf("W%d", w): i})
					errs <- d.UpdateActivity(ctx, "PurchaseOrder", own, eventstream.Data{"N": i})
				}
			})
		}
		// And in transactions of their own, on the shared instance.
		db := openSQL(t, url)
		for w := range writers {
			wg.Go(func() {
				for i := range each {
					tx, err := db.BeginTx(ctx, nil)
					if err != nil {
						errs <- err
						return
					}
					err = d.SQL(tx).UpdateActivity(ctx, "PurchaseOrder", "PO-shared", eventstream.Data{fmt.Sprintf("T%d", w): i})
					if err != nil {
						errs <- errors.Join(err, tx.Rollback())
						continue
					}
					errs <- tx.Commit()
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if in := instanceOf(t, st, "PurchaseOrder", "PO-shared"); in.Events != 2*writers*each || len(in.Data) != 2*writers {
			t.Fatalf("the shared instance: %d events, %d items; want %d, %d", in.Events, len(in.Data), 2*writers*each, 2*writers)
		}
		for w := range writers {
			if in := instanceOf(t, st, "PurchaseOrder", fmt.Sprintf("PO-w%d", w)); in.Events != each {
				t.Fatalf("writer %d's instance: %d events, want %d", w, in.Events, each)
			}
		}
	})
}

// TestDirectRefusesTransactionsOffTheStore: a transaction of the wrong
// driver or on another database is refused before anything is written,
// and stays usable.
func TestDirectRefusesTransactionsOffTheStore(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	sqliteURL := "sqlite:" + filepath.Join(dir, "bam.db")
	migrate(t, sqliteURL)
	pgURL := testpg.NewDatabase(t)
	migrate(t, pgURL)
	otherPG := testpg.NewDatabase(t)
	migrate(t, otherPG)
	otherSQLite := "sqlite:" + filepath.Join(dir, "other.db")
	migrate(t, otherSQLite)

	onSQLite := openDirect(t, sqliteURL, eventstream.DirectOptions{})
	onPG := openDirect(t, pgURL, eventstream.DirectOptions{})

	cases := []struct {
		name string
		d    *eventstream.Direct
		db   *sql.DB // the caller's database/sql database, or
		pgx  string  // the URL of a pgx transaction's database
		want string
	}{
		{"pgx tx on a SQLite store", onSQLite, nil, pgURL, "a pgx transaction cannot write to the sqlite store"},
		{"PostgreSQL sql tx on a SQLite store", onSQLite, openSQL(t, pgURL), "", "the transaction is on PostgreSQL"},
		{"sql tx on another SQLite file", onSQLite, openSQL(t, otherSQLite), "", "other.db"},
		{"SQLite sql tx on a PostgreSQL store", onPG, openSQL(t, sqliteURL), "", "not of pgx's database/sql driver"},
		{"sql tx on another PostgreSQL database", onPG, openSQL(t, otherPG), "", "the transaction is on database"},
		{"pgx tx on another PostgreSQL database", onPG, nil, otherPG, "the transaction is on database"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var w *eventstream.DirectWriter
			var usable func() error
			if c.pgx != "" {
				conn, err := pgx.Connect(ctx, c.pgx)
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close(ctx)
				tx, err := conn.Begin(ctx)
				if err != nil {
					t.Fatal(err)
				}
				defer tx.Rollback(ctx)
				w, usable = pgstream.DirectTx(c.d, tx), func() error { _, err := tx.Exec(ctx, "SELECT 1"); return err }
			} else {
				tx, err := c.db.BeginTx(ctx, nil)
				if err != nil {
					t.Fatal(err)
				}
				defer tx.Rollback()
				w, usable = c.d.SQL(tx), func() error { _, err := tx.Exec("SELECT 1"); return err }
			}
			err := w.BeginActivity(ctx, "PurchaseOrder", "PO-1")
			if !errors.Is(err, eventstream.ErrNotOnStore) || !strings.Contains(err.Error(), c.want) || errors.Is(err, eventstream.ErrInvalidEvent) {
				t.Fatalf("write = %v, want an error saying %q", err, c.want)
			}
			if err := usable(); err != nil {
				t.Fatalf("the transaction after the refusal: %v", err)
			}
		})
	}
}

// TestDirectFailedWriteLeavesSQLiteTransactionAsItWas: a database error in
// the middle of an event's writes undoes all of them, so that a caller that
// commits anyway commits no half event.
func TestDirectFailedWriteLeavesSQLiteTransactionAsItWas(t *testing.T) {
	ctx := context.Background()
	url := "sqlite:" + filepath.Join(t.TempDir(), "bam.db")
	migrate(t, url)
	d := openDirect(t, url, eventstream.DirectOptions{})
	db := sqliteAppDB(t, url)
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	w := d.SQL(tx)
	if err := w.BeginActivity(ctx, "PurchaseOrder", "PO-1"); err != nil {
		t.Fatal(err)
	}
	// A relate event counts on the instance, then writes bam_relations.
	if _, err := tx.Exec("DROP TABLE bam_relations"); err != nil {
		t.Fatal(err)
	}
	err = w.AddRelatedActivity(ctx, "PurchaseOrder", "PO-1", "Shipment", "SHP-1")
	if err == nil || errors.Is(err, eventstream.ErrInvalidEvent) || !strings.Contains(err.Error(), "caller's transaction") {
		t.Fatalf("relate without bam_relations = %v, want the database's error", err)
	}
	var events int
	if err := tx.QueryRow("SELECT events FROM bam_instances WHERE activity = 'PurchaseOrder' AND instance_id = 'PO-1'").Scan(&events); err != nil {
		t.Fatal(err)
	}
	if events != 1 {
		t.Fatalf("the instance counts %d events after the failed write, want 1: the failed event's writes were kept", events)
	}
}

// TestDirectFailedWriteInPostgresTransaction: a database error in the
// caller's PostgreSQL transaction is returned as the database's, not as a
// transaction off the store, and the transaction commits nothing.
func TestDirectFailedWriteInPostgresTransaction(t *testing.T) {
	ctx := context.Background()
	url := testpg.NewDatabase(t)
	migrate(t, url)
	d := openDirect(t, url, eventstream.DirectOptions{})
	st, err := storeurl.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for name, bind := range binders(t, url) {
		t.Run(name, func(t *testing.T) {
			id := "PO-" + name
			tx := bind(d)
			if err := errors.Join(tx.order(id), tx.w.BeginActivity(ctx, "PurchaseOrder", id)); err != nil {
				t.Fatal(err)
			}
			if err := tx.order(id); err == nil { // aborts the transaction
				t.Fatal("a duplicate order was inserted")
			}
			err = tx.w.EndActivity(ctx, "PurchaseOrder", id)
			if err == nil || errors.Is(err, eventstream.ErrInvalidEvent) || errors.Is(err, eventstream.ErrNotOnStore) || !strings.Contains(err.Error(), "caller's transaction") {
				t.Fatalf("a write in an aborted transaction = %v, want the database's error", err)
			}
			if err := tx.commit(); err == nil {
				t.Fatal("an aborted transaction committed")
			}
			noInstance(t, st, "PurchaseOrder", id)
		})
	}
}

// TestDirectClose: a closed stream, and the Writers bound through it,
// return ErrClosed.
func TestDirectClose(t *testing.T) {
	ctx := context.Background()
	url := "sqlite:" + filepath.Join(t.TempDir(), "bam.db")
	migrate(t, url)
	d, err := eventstream.OpenDirect(ctx, sqlitestream.New(), url, eventstream.DirectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tx, err := sqliteAppDB(t, url).BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	w := d.SQL(tx)
	if err := errors.Join(d.Close(ctx), d.Close(ctx)); err != nil {
		t.Fatalf("Close twice: %v", err)
	}
	if err := d.BeginActivity(ctx, "PurchaseOrder", "PO-1"); !errors.Is(err, eventstream.ErrClosed) {
		t.Errorf("write after Close = %v, want ErrClosed", err)
	}
	if err := w.BeginActivity(ctx, "PurchaseOrder", "PO-1"); !errors.Is(err, eventstream.ErrClosed) {
		t.Errorf("write through a transaction after Close = %v, want ErrClosed", err)
	}
}

// TestDirectWriterOnAFinishedTransaction says the transaction is done, not
// that it is off the store.
func TestDirectWriterOnAFinishedTransaction(t *testing.T) {
	storeURLs(t, func(t *testing.T, url string, st store.Store) {
		ctx := context.Background()
		d := openDirect(t, url, eventstream.DirectOptions{})
		tx, err := openSQL(t, url).BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := tx.Rollback(); err != nil {
			t.Fatal(err)
		}
		if err := d.SQL(tx).BeginActivity(ctx, "PurchaseOrder", "PO-1"); !errors.Is(err, sql.ErrTxDone) || errors.Is(err, eventstream.ErrNotOnStore) {
			t.Fatalf("a write in a rolled back transaction = %v, want sql.ErrTxDone", err)
		}
	})
}

func TestOpenDirectSaysWhatIsWrong(t *testing.T) {
	ctx := context.Background()
	url := "sqlite:" + filepath.Join(t.TempDir(), "bam.db")
	if _, err := eventstream.OpenDirect(ctx, sqlitestream.New(), url, eventstream.DirectOptions{}); err == nil || !strings.Contains(err.Error(), "migrat") {
		t.Errorf("OpenDirect on a store without schema = %v, want an error saying to migrate", err)
	}
	migrate(t, url)
	if _, err := eventstream.OpenDirect(ctx, sqlitestream.New(), url, eventstream.DirectOptions{MaxEventSize: -1}); err == nil || !strings.Contains(err.Error(), "MaxEventSize") {
		t.Errorf("OpenDirect with a negative MaxEventSize = %v", err)
	}
	d := openDirect(t, url, eventstream.DirectOptions{})
	if err := d.SQL(nil).BeginActivity(ctx, "PurchaseOrder", "PO-1"); !errors.Is(err, eventstream.ErrNotOnStore) || !strings.Contains(err.Error(), "nil transaction") {
		t.Errorf("a Writer bound to a nil *sql.Tx: %v", err)
	}
	if err := pgstream.DirectTx(d, nil).BeginActivity(ctx, "PurchaseOrder", "PO-1"); !errors.Is(err, eventstream.ErrNotOnStore) || !strings.Contains(err.Error(), "nil transaction") {
		t.Errorf("a Writer bound to a nil pgx.Tx: %v", err)
	}
	if _, err := sqlitestream.DSN("postgres://localhost/bam"); err == nil {
		t.Errorf("sqlitestream.DSN of a PostgreSQL URL succeeded")
	}
}

func TestDirectOptionsAreApplied(t *testing.T) {
	ctx := context.Background()
	url := "sqlite:" + filepath.Join(t.TempDir(), "bam.db")
	migrate(t, url)
	errNo := errors.New("no rush orders")
	d := openDirect(t, url, eventstream.DirectOptions{MaxEventSize: 200, Validate: func(ev eventstream.Event) error {
		if _, rush := ev.Data["Rush"]; rush {
			return errNo
		}
		return nil
	}})
	if err := d.UpdateActivity(ctx, "PurchaseOrder", "PO-1", eventstream.Data{"Rush": true}); !errors.Is(err, errNo) || !errors.Is(err, eventstream.ErrInvalidEvent) {
		t.Errorf("an event the Validator refuses: %v, want an *EventError wrapping its error", err)
	}
	if err := d.UpdateActivity(ctx, "PurchaseOrder", "PO-1", eventstream.Data{"Note": strings.Repeat("x", 200)}); !errors.Is(err, eventstream.ErrInvalidEvent) || !strings.Contains(err.Error(), "over the limit of 200") {
		t.Errorf("an event over MaxEventSize: %v", err)
	}
	st, err := storeurl.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	noInstance(t, st, "PurchaseOrder", "PO-1")

	deploy(t, st, quantityIsAnInteger)
	strict := openDirect(t, url, eventstream.DirectOptions{RequireDefinitions: true})
	err = strict.BeginActivity(ctx, "Invoice", "INV-1")
	var evErr *eventstream.EventError
	if !errors.As(err, &evErr) || evErr.Field != "activity" || !strings.Contains(evErr.Reason, "not deployed") {
		t.Errorf("RequireDefinitions, an activity without a definition: %v, want an *EventError on activity", err)
	}
	if err := strict.BeginActivity(ctx, "PurchaseOrder", "PO-2"); err != nil {
		t.Errorf("RequireDefinitions, a deployed activity: %v", err)
	}
	noInstance(t, st, "Invoice", "INV-1")
}

// TestDirectConflictingEnableIsQuarantined: a token enabled from a second
// instance is filed among the failed events, as a node files it, and the
// call succeeds.
func TestDirectConflictingEnableIsQuarantined(t *testing.T) {
	storeURLs(t, func(t *testing.T, url string, st store.Store) {
		ctx := context.Background()
		d := openDirect(t, url, eventstream.DirectOptions{})
		if err := errors.Join(
			d.EnableContinuation(ctx, "PurchaseOrder", "PO-1", "ship"),
			d.EnableContinuation(ctx, "PurchaseOrder", "PO-2", "ship"),
		); err != nil {
			t.Fatalf("a conflicting enable: %v, want nil", err)
		}
		failed, err := st.FailedEvents(ctx, store.DirectSource, 0)
		if err != nil || len(failed) != 1 || !strings.Contains(failed[0].Reason, `"PO-2"`) {
			t.Fatalf("failed events of %s: %+v, %v; want PO-2's enable", store.DirectSource, failed, err)
		}
		if c, err := st.Continuation(ctx, "PurchaseOrder", "ship"); err != nil || c.Instance != "PO-1" {
			t.Fatalf("continuation ship: %+v, %v; want PO-1's", c, err)
		}
	})
}

// BenchmarkDirectUpdate is the cost of one UpdateActivity on a direct
// stream, in a store transaction of its own (one commit per event: on
// SQLite an fsync), and in a caller's transaction that commits every 100
// events, on each store.
func BenchmarkDirectUpdate(b *testing.B) {
	for _, driver := range []string{"sqlite", "postgres"} {
		b.Run(driver, func(b *testing.B) {
			url := newStoreURL(b, driver)
			migrate(b, url)
			ctx := context.Background()
			d, err := eventstream.OpenDirect(ctx, driverFor(url), url, eventstream.DirectOptions{})
			if err != nil {
				b.Fatal(err)
			}
			defer d.Close(ctx)
			data := eventstream.Data{"Amount": "1200.00", "Customer": "Contoso", "Quantity": 12}

			b.Run("own-transaction", func(b *testing.B) {
				for b.Loop() {
					if err := d.UpdateActivity(ctx, "PurchaseOrder", "PO-1042", data); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("caller-transaction", func(b *testing.B) {
				db := openSQL(b, url)
				var tx *sql.Tx
				var w eventstream.Writer
				n := 0
				for b.Loop() {
					if tx == nil {
						if tx, err = db.BeginTx(ctx, nil); err != nil {
							b.Fatal(err)
						}
						w = d.SQL(tx)
					}
					if err := w.UpdateActivity(ctx, "PurchaseOrder", "PO-1042", data); err != nil {
						b.Fatal(err)
					}
					if n++; n%100 == 0 {
						if err := tx.Commit(); err != nil {
							b.Fatal(err)
						}
						tx = nil
					}
				}
				if tx != nil {
					if err := tx.Commit(); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}
