package eventstream_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"

	"github.com/bam-dev/bam/eventstream"
	"github.com/bam-dev/bam/eventstream/pgstream"
	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/source/pgoutbox"
	"github.com/bam-dev/bam/internal/store"
	"github.com/bam-dev/bam/internal/store/storeurl"
	"github.com/bam-dev/bam/internal/testpg"
	"github.com/bam-dev/bam/internal/testwait"
)

// appDB is an application's database with an outbox table installed and a
// business table, orders.
type appDB struct {
	dsn   string
	pool  *pgxpool.Pool
	sql   *sql.DB
	table string
}

func newAppDB(t *testing.T, table string) *appDB {
	t.Helper()
	ctx := context.Background()
	dsn := testpg.NewDatabase(t)
	p, err := pgxpool.New(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if id, err := pgoutbox.ParseTable(table); err == nil && len(id) == 2 {
		if _, err := p.Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{id[0]}.Sanitize()); err != nil {
			t.Fatal(err)
		}
	}
	if err := pgoutbox.Install(ctx, p, table); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Exec(ctx, "CREATE TABLE orders (id text PRIMARY KEY, amount numeric NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	return &appDB{dsn: dsn, pool: p, sql: db, table: table}
}

type outboxRow struct {
	instance string
	event    event.Event
}

// rows returns the outbox's rows in the order they were written, decoded.
func (a *appDB) rows(t *testing.T) []outboxRow {
	t.Helper()
	id, _ := pgoutbox.ParseTable(a.table)
	rs, err := a.pool.Query(context.Background(), "SELECT instance_id, event FROM "+id.Sanitize()+" ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	var out []outboxRow
	for rs.Next() {
		var inst, payload string
		if err := rs.Scan(&inst, &payload); err != nil {
			t.Fatal(err)
		}
		ev, err := event.Decode([]byte(payload), time.Time{}, 0)
		if err != nil {
			t.Fatalf("outbox row of %s does not decode: %v", inst, err)
		}
		out = append(out, outboxRow{inst, ev})
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func newOutbox(t *testing.T, table string) *eventstream.Outbox {
	t.Helper()
	ob, err := eventstream.NewOutbox(eventstream.OutboxConfig{Table: table})
	if err != nil {
		t.Fatal(err)
	}
	return ob
}

// placeOrder is a business transaction's body: the order row and its
// events.
func placeOrder(ctx context.Context, w eventstream.Writer, exec func(sql string, args ...any) error, id string) error {
	if err := exec("INSERT INTO orders (id, amount) VALUES ($1, 1200)", id); err != nil {
		return err
	}
	if err := w.BeginActivity(ctx, "PurchaseOrder", id); err != nil {
		return err
	}
	if err := w.UpdateActivity(ctx, "PurchaseOrder", id, eventstream.Data{"Amount": "1200.00", "Customer": "Contoso"}); err != nil {
		return err
	}
	if err := w.EnableContinuation(ctx, "PurchaseOrder", id, "ship-"+id); err != nil {
		return err
	}
	return w.UpdateContinuation(ctx, "PurchaseOrder", "ship-"+id, eventstream.Data{"Shipped": time.Now()})
}

// TestOutboxAtomicWithBusinessTransaction is the outbox's promise: events
// are in the outbox if and only if the business transaction commits, through
// pgx and through database/sql alike.
func TestOutboxAtomicWithBusinessTransaction(t *testing.T) {
	for _, table := range []string{"", "Sales.Order Outbox"} {
		t.Run("table "+table, func(t *testing.T) {
			a := newAppDB(t, table)
			ob := newOutbox(t, table)
			ctx := context.Background()

			pgxTx := func(id string, commit bool) {
				t.Helper()
				tx, err := a.pool.Begin(ctx)
				if err != nil {
					t.Fatal(err)
				}
				defer tx.Rollback(ctx)
				exec := func(q string, args ...any) error { _, err := tx.Exec(ctx, q, args...); return err }
				if err := placeOrder(ctx, pgstream.OutboxTx(ob, tx), exec, id); err != nil {
					t.Fatal(err)
				}
				if commit {
					if err := tx.Commit(ctx); err != nil {
						t.Fatal(err)
					}
				}
			}
			sqlTx := func(id string, commit bool) {
				t.Helper()
				tx, err := a.sql.BeginTx(ctx, nil)
				if err != nil {
					t.Fatal(err)
				}
				defer tx.Rollback()
				exec := func(q string, args ...any) error { _, err := tx.ExecContext(ctx, q, args...); return err }
				if err := placeOrder(ctx, ob.SQL(tx), exec, id); err != nil {
					t.Fatal(err)
				}
				if commit {
					if err := tx.Commit(); err != nil {
						t.Fatal(err)
					}
				}
			}
			pgxTx("PO-pgx-rolled-back", false)
			pgxTx("PO-pgx", true)
			sqlTx("PO-sql-rolled-back", false)
			sqlTx("PO-sql", true)

			var got []string
			for _, r := range a.rows(t) {
				got = append(got, r.instance+" "+string(r.event.Kind))
				if r.instance != r.event.Segment() {
					t.Errorf("row instance_id %q holds an event of segment %q", r.instance, r.event.Segment())
				}
			}
			want := []string{
				"PO-pgx begin", "PO-pgx update", "PO-pgx enable-continuation", "ship-PO-pgx update",
				"PO-sql begin", "PO-sql update", "PO-sql enable-continuation", "ship-PO-sql update",
			}
			if strings.Join(got, ", ") != strings.Join(want, ", ") {
				t.Errorf("outbox rows:\n%s\nwant:\n%s", strings.Join(got, ", "), strings.Join(want, ", "))
			}
		})
	}
}

// TestOutboxRefusedEventLeavesTransactionUsable: an invalid event is
// refused before it reaches the database, so the business transaction can
// go on and commit.
func TestOutboxRefusedEventLeavesTransactionUsable(t *testing.T) {
	a := newAppDB(t, "")
	ob := newOutbox(t, "")
	ctx := context.Background()
	err := pgx.BeginFunc(ctx, a.pool, func(tx pgx.Tx) error {
		w := pgstream.OutboxTx(ob, tx)
		err := w.UpdateActivity(ctx, "PurchaseOrder", "PO-1", eventstream.Data{"Lines": []int{1, 2}})
		if !errors.Is(err, eventstream.ErrInvalidEvent) {
			t.Errorf("invalid event = %v, want ErrInvalidEvent", err)
		}
		return w.BeginActivity(ctx, "PurchaseOrder", "PO-1")
	})
	if err != nil {
		t.Fatal(err)
	}
	if rows := a.rows(t); len(rows) != 1 || rows[0].event.Kind != event.Begin {
		t.Errorf("outbox rows = %+v, want the begin only", rows)
	}
}

func TestOutboxWriteErrorsSayWhere(t *testing.T) {
	a := newAppDB(t, "")
	ctx := context.Background()
	ob := newOutbox(t, "missing_outbox")
	tx, err := a.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	err = pgstream.OutboxTx(ob, tx).BeginActivity(ctx, "PurchaseOrder", "PO-1")
	if err == nil || !strings.Contains(err.Error(), `begin event of PurchaseOrder "PO-1" into outbox "missing_outbox"`) {
		t.Errorf("write to a missing table = %v", err)
	}
	if errors.Is(err, eventstream.ErrInvalidEvent) {
		t.Errorf("a database error is reported as an invalid event")
	}
}

func TestNewOutboxChecksTheTable(t *testing.T) {
	for _, table := range []string{`"quoted"`, "a.b.c", ".x", strings.Repeat("x", 64)} {
		if _, err := eventstream.NewOutbox(eventstream.OutboxConfig{Table: table}); !errors.Is(err, pgoutbox.ErrInvalidTable) {
			t.Errorf("table %q: %v, want ErrInvalidTable", table, err)
		}
	}
	if _, err := eventstream.NewOutbox(eventstream.OutboxConfig{MaxEventSize: -5}); err == nil {
		t.Error("a negative MaxEventSize was accepted")
	}
}

// TestOutboxThroughNode runs a node that reads the outbox: the events of
// committed business transactions become instances, those of rolled-back
// ones never do.
func TestOutboxThroughNode(t *testing.T) {
	a := newAppDB(t, "")
	ob := newOutbox(t, "")
	ctx := context.Background()
	st, err := storeurl.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "bam.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	// One partition: its events are read in transaction order, so once
	// PO-3 is applied, PO-2 would have been, had it committed.
	if err := st.AddSource(ctx, store.Source{Name: "shop", Kind: store.KindPgOutbox, Partitions: 1, Enabled: true,
		DSN: a.dsn, Table: "bam_outbox"}); err != nil {
		t.Fatal(err)
	}
	runNode(t, st)

	order := func(id string, fail bool) error {
		return pgx.BeginFunc(ctx, a.pool, func(tx pgx.Tx) error {
			exec := func(q string, args ...any) error { _, err := tx.Exec(ctx, q, args...); return err }
			if err := placeOrder(ctx, pgstream.OutboxTx(ob, tx), exec, id); err != nil {
				return err
			}
			if fail {
				// The business transaction fails after the events were
				// written: a duplicate order.
				return exec("INSERT INTO orders (id, amount) VALUES ($1, 1)", id)
			}
			return nil
		})
	}
	if err := order("PO-1", false); err != nil {
		t.Fatal(err)
	}
	if err := order("PO-2", true); err == nil {
		t.Fatal("the duplicate order committed")
	}
	// A committed order after the failed one.
	if err := order("PO-3", false); err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, 20*time.Second, "PO-1 and PO-3 to be applied", func() bool {
		for _, id := range []string{"PO-1", "PO-3"} {
			if in, err := st.Instance(ctx, event.Key{Activity: "PurchaseOrder", Instance: id}); err != nil || in.Events < 3 {
				return false
			}
		}
		return true
	})
	for _, id := range []string{"PO-1", "PO-3"} {
		in, err := st.Instance(ctx, event.Key{Activity: "PurchaseOrder", Instance: id})
		if err != nil {
			t.Fatal(err)
		}
		if in.State != store.StateActive || string(in.Data["Customer"]) != `"Contoso"` || string(in.Data["Amount"]) != `"1200.00"` {
			t.Errorf("%s = %+v, data %s", id, in, in.Data)
		}
	}
	if _, err := st.Instance(ctx, event.Key{Activity: "PurchaseOrder", Instance: "PO-2"}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("PO-2, rolled back, is in the store: %v", err)
	}
	failed, err := st.FailedEvents(ctx, "shop", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(failed) != 0 {
		t.Errorf("failed events: %+v", failed)
	}
}

// execRecorder is a pgstream.Execer and an eventstream.SQLExecer that
// records statements.
type execRecorder struct{ stmts []string }

func (r *execRecorder) Exec(_ context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	r.stmts = append(r.stmts, fmt.Sprint(sql, args))
	return pgconn.CommandTag{}, nil
}

func (r *execRecorder) ExecContext(_ context.Context, query string, args ...any) (sql.Result, error) {
	r.stmts = append(r.stmts, fmt.Sprint(query, args))
	return nil, nil
}

func TestOutboxConfigIsApplied(t *testing.T) {
	errNo := errors.New("no")
	ob, err := eventstream.NewOutbox(eventstream.OutboxConfig{Table: "app.Events", MaxEventSize: 300, Validate: func(ev eventstream.Event) error {
		if ev.Instance == "PO-refused" {
			return errNo
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, w := range []func(*execRecorder) eventstream.Writer{
		func(r *execRecorder) eventstream.Writer { return pgstream.OutboxTx(ob, r) },
		func(r *execRecorder) eventstream.Writer { return ob.SQL(r) },
	} {
		r := &execRecorder{}
		if err := w(r).BeginActivity(ctx, "PurchaseOrder", "PO-refused"); !errors.Is(err, errNo) {
			t.Errorf("refused by the validator: %v", err)
		}
		if err := w(r).UpdateActivity(ctx, "PurchaseOrder", "PO-1", eventstream.Data{"Note": strings.Repeat("x", 300)}); !errors.Is(err, eventstream.ErrInvalidEvent) {
			t.Errorf("over MaxEventSize: %v", err)
		}
		if err := w(r).EndContinuation(ctx, "PurchaseOrder", "ship-PO-1"); err != nil {
			t.Fatal(err)
		}
		if len(r.stmts) != 1 || !strings.HasPrefix(r.stmts[0], `INSERT INTO "app"."Events" (instance_id, event) VALUES ($1, $2)[ship-PO-1 {"activity":"PurchaseOrder","continuation":"ship-PO-1","kind":"end"`) {
			t.Errorf("statements: %q", r.stmts)
		}
	}
}
