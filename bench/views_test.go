package bench

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bam-dev/bam/internal/definition"
	"github.com/bam-dev/bam/internal/store"
)

// The view workload: a million instances of one activity, a tenth active.
const (
	viewInstances = 1_000_000
	viewCustomers = 50_000 // so an active customer has ~2 instances
	viewQueries   = 200    // of each kind, alternating view and baseline
)

// viewStart is the first instance's begin; instance g begins g seconds
// later and, if completed, ends an hour after its begin.
var viewStart = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

const viewDefinition = `activities:
  - name: PurchaseOrder
    items:
      - {name: Customer, type: text, max_length: 40, index: true}
      - {name: Amount,   type: decimal, precision: 12, scale: 2}
`

// BenchmarkViewQuery fills a store with a million PurchaseOrder instances
// (written straight into bam_instances, as years of events would leave
// them), deploys a definition with Customer indexed (timing the index
// build over them), and times the two queries docs/DEFINITIONS.md promises
// to keep fast, through the typed views:
//
//   - active instances of a customer: SELECT … FROM purchaseorder_active
//     WHERE customer = $1 (~2 rows);
//   - completed in an hour: SELECT count(*) FROM purchaseorder_completed
//     WHERE end_time >= $1 AND end_time < $2 (~3,240 rows).
//
// The baseline is what a hand-made schema gives: a plain table of the same
// rows with typed columns and the same two indexes, queried the same way,
// alternately with the views. Figures are per query, median over
// viewQueries random arguments.
func BenchmarkViewQuery(b *testing.B) {
	for _, driver := range []string{"postgres", "sqlite"} {
		b.Run(driver, func(b *testing.B) { benchViewQuery(b, driver) })
	}
}

func benchViewQuery(b *testing.B, driver string) {
	b.StopTimer()
	var m spreads
	reps := 0
	for range b.N {
		for range repsOr(1) {
			reps++
			u := storeURL(b, driver)
			st := openStore(b, u)
			q := openViewDB(b, driver, u)
			start := time.Now()
			q.fill(b)
			m.add("fill_s", time.Since(start).Seconds())
			file, err := definition.Parse([]byte(viewDefinition))
			if err != nil {
				b.Fatal(err)
			}
			start = time.Now()
			if _, err := st.Deploy(context.Background(), store.DeployRequest{File: file, Text: viewDefinition, By: "bench"}); err != nil {
				b.Fatal(err)
			}
			m.add("deploy_with_index_s", time.Since(start).Seconds())
			q.exec(b, "ANALYZE")

			rng := rand.New(rand.NewPCG(uint64(reps), 7))
			var viewCust, plainCust, viewDone, plainDone []float64
			found := 0
			for range viewQueries {
				// An active customer: instances g ≡ 0 (mod 10) are active.
				g := 10 * (1 + rng.IntN(viewInstances/10-1))
				cust := fmt.Sprintf("C%05d", g%viewCustomers)
				d, n := q.timed(b, "SELECT instance_id FROM purchaseorder_active WHERE customer = "+q.arg(1), cust)
				viewCust, found = append(viewCust, d), found+n
				d, _ = q.timed(b, "SELECT instance_id FROM plain_po WHERE state = 'active' AND customer = "+q.arg(1), cust)
				plainCust = append(plainCust, d)

				from := viewStart.Add(time.Duration(rng.IntN(viewInstances-7200)) * time.Second).Add(time.Hour)
				to := from.Add(time.Hour)
				d, _ = q.timed(b, "SELECT count(*) FROM purchaseorder_completed WHERE end_time >= "+q.arg(1)+" AND end_time < "+q.arg(2),
					q.viewTime(from), q.viewTime(to))
				viewDone = append(viewDone, d)
				d, _ = q.timed(b, "SELECT count(*) FROM plain_po WHERE state = 'completed' AND end_time >= "+q.arg(1)+" AND end_time < "+q.arg(2),
					q.plainTime(from), q.plainTime(to))
				plainDone = append(plainDone, d)
			}
			if found == 0 {
				b.Fatal("the customer queries found no instance: the workload is not what the queries expect")
			}
			m.add("view_active_by_customer_ms", median(viewCust))
			m.add("plain_active_by_customer_ms", median(plainCust))
			m.add("view_completed_in_hour_ms", median(viewDone))
			m.add("plain_completed_in_hour_ms", median(plainDone))
			m.add("view/plain_customer", median(viewCust)/median(plainCust))
			m.add("view/plain_completed", median(viewDone)/median(plainDone))
			q.close()
			b.Logf("%s, %d instances: active by customer %.3f ms (plain table %.3f), completed in an hour %.3f ms (plain %.3f)",
				driver, viewInstances, median(viewCust), median(plainCust), median(viewDone), median(plainDone))
		}
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(reps), "reps")
	b.ReportMetric(viewInstances, "instances")
	m.report(b)
}

// viewDB is a plain connection to the store's database.
type viewDB struct {
	driver string
	pg     *pgx.Conn
	db     *sql.DB
}

func openViewDB(b *testing.B, driver, storeURL string) *viewDB {
	b.Helper()
	q := &viewDB{driver: driver}
	ctx := context.Background()
	if driver == "postgres" {
		c, err := pgx.Connect(ctx, storeURL)
		if err != nil {
			b.Fatal(err)
		}
		q.pg = c
		return q
	}
	u := url.URL{Scheme: "file", Path: strings.TrimPrefix(storeURL, "sqlite:"), RawQuery: "_pragma=busy_timeout(10000)"}
	db, err := sql.Open("sqlite", u.String())
	if err != nil {
		b.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	q.db = db
	return q
}

func (q *viewDB) close() {
	if q.pg != nil {
		_ = q.pg.Close(context.Background())
	}
	if q.db != nil {
		_ = q.db.Close()
	}
}

func (q *viewDB) arg(n int) string {
	if q.driver == "postgres" {
		return fmt.Sprintf("$%d", n)
	}
	return "?"
}

func (q *viewDB) exec(b *testing.B, stmt string, args ...any) {
	b.Helper()
	var err error
	if q.pg != nil {
		_, err = q.pg.Exec(context.Background(), stmt, args...)
	} else {
		_, err = q.db.Exec(stmt, args...)
	}
	if err != nil {
		b.Fatalf("%.80s: %v", stmt, err)
	}
}

// timed runs a query, reads every row, and returns its time in
// milliseconds and the number of rows.
func (q *viewDB) timed(b *testing.B, query string, args ...any) (float64, int) {
	b.Helper()
	start := time.Now()
	n := 0
	if q.pg != nil {
		rows, err := q.pg.Query(context.Background(), query, args...)
		if err != nil {
			b.Fatal(err)
		}
		for rows.Next() {
			n++
		}
		if err := rows.Err(); err != nil {
			b.Fatal(err)
		}
	} else {
		rows, err := q.db.Query(query, args...)
		if err != nil {
			b.Fatal(err)
		}
		for rows.Next() {
			n++
		}
		if err := rows.Err(); err != nil {
			b.Fatal(err)
		}
		rows.Close()
	}
	return float64(time.Since(start).Microseconds()) / 1000, n
}

// viewTime and plainTime are a time as the views and the plain table hold
// end_time: timestamptz on PostgreSQL; ISO text in a SQLite view, integer
// microseconds in the SQLite plain table.
func (q *viewDB) viewTime(t time.Time) any {
	if q.driver == "postgres" {
		return t
	}
	return t.UTC().Format("2006-01-02T15:04:05.000000Z")
}

func (q *viewDB) plainTime(t time.Time) any {
	if q.driver == "postgres" {
		return t
	}
	return t.UnixMicro()
}

// fill writes the instances into bam_instances and the same rows, typed,
// into the baseline's plain table with its two indexes.
func (q *viewDB) fill(b *testing.B) {
	b.Helper()
	startUS := viewStart.UnixMicro()
	if q.driver == "postgres" {
		q.exec(b, fmt.Sprintf(`INSERT INTO bam_instances (activity, instance_id, state, begin_time, end_time, last_modified, events, items, first_event_at)
			SELECT 'PurchaseOrder', 'PO-' || g, CASE WHEN g %% 10 = 0 THEN 'active' ELSE 'completed' END,
				t, CASE WHEN g %% 10 = 0 THEN NULL ELSE t + interval '1 hour' END, t + interval '1 hour', 2,
				jsonb_build_object('Customer', jsonb_build_object('v', 'C' || lpad((g %% %d)::text, 5, '0'), 't', 0),
				                   'Amount', jsonb_build_object('v', (g %% 100000) / 100.0, 't', 0)), t
			FROM generate_series(1, %d) AS g, LATERAL (SELECT timestamptz '%s' + g * interval '1 second' AS t) AS x`,
			viewCustomers, viewInstances, viewStart.Format(time.RFC3339)))
		q.exec(b, `CREATE TABLE plain_po (instance_id text PRIMARY KEY, state text NOT NULL, customer text, amount numeric(12,2), end_time timestamptz)`)
		q.exec(b, `INSERT INTO plain_po SELECT instance_id, state, items->'Customer'->>'v', (items->'Amount'->>'v')::numeric, end_time FROM bam_instances`)
	} else {
		q.exec(b, fmt.Sprintf(`WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < %d)
			INSERT INTO bam_instances (activity, instance_id, state, begin_time, end_time, last_modified, events, items, updated_at, first_event_at)
			SELECT 'PurchaseOrder', 'PO-' || n, CASE WHEN n %% 10 = 0 THEN 'active' ELSE 'completed' END,
				%[2]d + n * 1000000, CASE WHEN n %% 10 = 0 THEN NULL ELSE %[2]d + n * 1000000 + 3600000000 END, %[2]d + n * 1000000 + 3600000000, 2,
				json_object('Customer', json_object('v', printf('C%%05d', n %% %[3]d), 't', 0), 'Amount', json_object('v', (n %% 100000) / 100.0, 't', 0)),
				%[2]d, %[2]d + n * 1000000
			FROM g`, viewInstances, startUS, viewCustomers))
		q.exec(b, `CREATE TABLE plain_po (instance_id TEXT PRIMARY KEY, state TEXT NOT NULL, customer TEXT, amount TEXT, end_time INTEGER)`)
		q.exec(b, `INSERT INTO plain_po SELECT instance_id, state, json_extract(items, '$.Customer.v'), json_extract(items, '$.Amount.v'), end_time FROM bam_instances`)
	}
	q.exec(b, `CREATE INDEX plain_po_customer ON plain_po (customer)`)
	q.exec(b, `CREATE INDEX plain_po_completed ON plain_po (end_time) WHERE state = 'completed'`)
}
