package postgres

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bam-dev/bam/internal/definition"
	"github.com/bam-dev/bam/internal/store"
)

const poDefinition = `activities:
  - name: PurchaseOrder
    items:
      - {name: Received, type: milestone, index: true}
      - {name: Customer, type: text, max_length: 100, index: true}
      - {name: Amount, type: decimal, precision: 12, scale: 2, index: true}
      - {name: Quantity, type: integer}
`

func deployText(t *testing.T, b bundle, src string, force bool) store.Deployment {
	t.Helper()
	f, err := definition.Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	dep, err := b.s.Deploy(b.ctx, store.DeployRequest{File: f, Text: src, By: "t", Force: force})
	if err != nil {
		t.Fatalf("Deploy: %v", err)
	}
	return dep
}

// TestGuardedCastsNeverFail feeds the views' casts every kind of value that
// JSON can hold, and then some that look right and are not: none may fail.
func TestGuardedCastsNeverFail(t *testing.T) {
	t.Parallel()
	b := setup(t)
	values := []string{
		`null`, `true`, `false`, `0`, `-0`, `1`, `-1`, `1.5`, `1e3`, `1E-3`, `1e308`, `1e-400`, `-1e400`,
		`9223372036854775807`, `9223372036854775808`, `-9223372036854775809`, `123456789012345678901234567890`,
		`""`, `"x"`, `"1200.50"`, `"1e999999"`, `"NaN"`, `"Infinity"`, `"-"`, `"."`, `"1.2.3"`,
		`"2026-11-25T10:02:00Z"`, `"2026-02-31T00:00:00Z"`, `"2024-02-29T10:00:00+02:00"`, `"2023-02-29T10:00:00Z"`,
		`"2026-13-01T00:00:00Z"`, `"2026-11-25T24:00:00Z"`, `"0000-01-01T00:00:00Z"`, `"2026-11-25T10:02:00+16:00"`,
		`"2026-11-25T10:02:00"`, `"2026-11-25"`, `"yesterday"`, `[]`, `[1]`, `{}`, `{"v":1}`,
	}
	for _, v := range values {
		var (
			ts       *time.Time
			text     *string
			i        *int64
			f        *float64
			num      *string
			bo       *bool
			numLoose *string
		)
		err := b.s.work.QueryRow(b.ctx, `SELECT bam_ts($1::jsonb), bam_text($1::jsonb), bam_int($1::jsonb), bam_float($1::jsonb),
			(bam_num($1::jsonb, 12, 2)::numeric(12,2))::text, bam_bool($1::jsonb), (bam_num($1::jsonb, 38, 0)::numeric(38,0))::text`, v).
			Scan(&ts, &text, &i, &f, &num, &bo, &numLoose)
		if err != nil {
			t.Errorf("casts of %s: %v", v, err)
		}
	}
	check := func(expr, want string) {
		t.Helper()
		var got *string
		if err := b.s.work.QueryRow(b.ctx, `SELECT (`+expr+`)::text`).Scan(&got); err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		if g := "NULL"; got != nil {
			g = *got
			if g != want {
				t.Errorf("%s = %s, want %s", expr, g, want)
			}
		} else if want != "NULL" {
			t.Errorf("%s = NULL, want %s", expr, want)
		}
	}
	check(`bam_ts('"2024-02-29T10:00:00+02:00"') AT TIME ZONE 'UTC'`, "2024-02-29 08:00:00")
	check(`bam_ts('"2026-02-31T00:00:00Z"')`, "NULL")
	check(`bam_ts('"2026-11-25T10:02:00"')`, "NULL") // no offset: it would depend on TimeZone
	check(`bam_int('1e3')`, "1000")
	check(`bam_int('1.5')`, "NULL")
	check(`bam_int('9223372036854775808')`, "NULL")
	check(`bam_float('1e-400')`, "NULL")
	check(`bam_float('2.5')`, "2.5")
	check(`bam_num('"1200.5"', 12, 2)::numeric(12,2)`, "1200.50")
	check(`bam_num('1234567890.125', 12, 2)::numeric(12,2)`, "1234567890.13")
	check(`bam_num('"12345678901.00"', 12, 2)`, "NULL")
	check(`bam_num('"1e999999"', 12, 2)`, "NULL")
	check(`bam_text('42')`, "NULL")
	check(`bam_bool('"true"')`, "NULL")
}

// TestViewQueriesUseIndexes: "active instances of X with item Y = v" uses
// the item's expression index, "completed between t1 and t2" the partial
// (activity, end_time) index.
func TestViewQueriesUseIndexes(t *testing.T) {
	t.Parallel()
	b := setup(t)
	deployText(t, b, poDefinition, false)
	if _, err := b.s.work.Exec(b.ctx, `INSERT INTO bam_instances
		(activity, instance_id, state, begin_time, end_time, last_modified, items)
		SELECT CASE WHEN g % 4 = 0 THEN 'Other' ELSE 'PurchaseOrder' END, 'I-' || g,
		       CASE WHEN g % 3 = 0 THEN 'completed' ELSE 'active' END,
		       now() - g * interval '1 minute', CASE WHEN g % 3 = 0 THEN now() - g * interval '30 seconds' END, now(),
		       jsonb_build_object('Customer', jsonb_build_object('v', 'C-' || (g % 5000), 't', 0),
		                          'Amount', jsonb_build_object('v', g, 't', 0),
		                          'Received', jsonb_build_object('v', '2026-11-25T10:00:00Z', 't', 0))
		FROM generate_series(1, 40000) AS g`); err != nil {
		t.Fatal(err)
	}
	if _, err := b.s.work.Exec(b.ctx, `ANALYZE bam_instances`); err != nil {
		t.Fatal(err)
	}
	plan := func(q string) string {
		t.Helper()
		rows, err := b.s.work.Query(b.ctx, `EXPLAIN `+q)
		if err != nil {
			t.Fatalf("EXPLAIN %s: %v", q, err)
		}
		defer rows.Close()
		var lines []string
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				t.Fatal(err)
			}
			lines = append(lines, line)
		}
		return strings.Join(lines, "\n")
	}
	for q, index := range map[string]string{
		`SELECT * FROM purchaseorder_active WHERE customer = 'C-42'`:                                          "bam_ix_purchaseorder_customer",
		`SELECT * FROM purchaseorder_all WHERE amount = 1200`:                                                 "bam_ix_purchaseorder_amount",
		`SELECT * FROM purchaseorder_all WHERE received > now()`:                                              "bam_ix_purchaseorder_received",
		`SELECT * FROM purchaseorder_completed WHERE end_time BETWEEN now() - interval '2 minutes' AND now()`: "bam_instances_completed",
	} {
		if p := plan(q); !strings.Contains(p, index) {
			t.Errorf("%s does not use %s:\n%s", q, index, p)
		}
	}
	var n, want int
	if err := b.s.work.QueryRow(b.ctx, `SELECT (SELECT count(*) FROM purchaseorder_active WHERE customer = 'C-42'),
		(SELECT count(*) FROM generate_series(1, 40000) AS g WHERE g % 5000 = 42 AND g % 4 <> 0 AND g % 3 <> 0)`).Scan(&n, &want); err != nil || n != want {
		t.Fatalf("active with customer C-42 = %d, %v; want %d", n, err, want)
	}

	// Taking index: true off drops the index; a retype rebuilds it; an
	// index whose item did not change is left as it is.
	var receivedIndex uint32
	indexOID := `SELECT 'bam_ix_purchaseorder_received'::regclass::oid`
	if err := b.s.work.QueryRow(b.ctx, indexOID).Scan(&receivedIndex); err != nil {
		t.Fatal(err)
	}
	next := strings.Replace(poDefinition, "{name: Customer, type: text, max_length: 100, index: true}", "{name: Customer, type: text, max_length: 100}", 1)
	next = strings.Replace(next, "{name: Amount, type: decimal, precision: 12, scale: 2, index: true}", "{name: Amount, type: integer, index: true}", 1)
	deployText(t, b, next, true)
	indexes := map[string]string{}
	rows, err := b.s.work.Query(b.ctx, `SELECT indexname, indexdef FROM pg_indexes WHERE indexname LIKE 'bam_ix_%'`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var name, def string
		if err := rows.Scan(&name, &def); err != nil {
			t.Fatal(err)
		}
		indexes[name] = def
	}
	var after uint32
	if err := b.s.work.QueryRow(b.ctx, indexOID).Scan(&after); err != nil || after != receivedIndex {
		t.Errorf("the index of the unchanged Received was rebuilt (oid %d, then %d, %v)", receivedIndex, after, err)
	}
	if _, ok := indexes["bam_ix_purchaseorder_customer"]; ok || len(indexes) != 2 || !strings.Contains(indexes["bam_ix_purchaseorder_amount"], "bam_int") {
		t.Fatalf("indexes after the change: %v", indexes)
	}
	if p := plan(`SELECT * FROM purchaseorder_all WHERE amount = 1200`); !strings.Contains(p, "bam_ix_purchaseorder_amount") {
		t.Errorf("the retyped item's index is not used:\n%s", p)
	}
}

// TestDeployDoesNotQueueBehindAReader: a transaction that read a view holds
// it; a deployment that must drop the view gives up after its lock timeout
// with a message that says so, and changes nothing.
func TestDeployDoesNotQueueBehindAReader(t *testing.T) {
	t.Parallel()
	b := setup(t)
	deployText(t, b, poDefinition, false)
	reader := connect(t, b.url)
	if _, err := reader.Exec(b.ctx, `BEGIN; SET idle_in_transaction_session_timeout = 0; SELECT count(*) FROM purchaseorder_all`); err != nil {
		t.Fatal(err)
	}
	f, err := definition.Parse([]byte(poDefinition + "      - {name: Rush, type: boolean}\n"))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = b.s.Deploy(b.ctx, store.DeployRequest{File: f, By: "t"})
	if err == nil || !strings.Contains(err.Error(), "lock timeout") || !strings.Contains(err.Error(), "nothing changed") {
		t.Fatalf("deploy behind a reader = %v, want a lock timeout that says nothing changed", err)
	}
	if took := time.Since(start); took > 30*time.Second {
		t.Errorf("the deployment waited %v", took)
	}
	if v, _ := b.s.DefinitionsVersion(b.ctx); v != 1 {
		t.Fatalf("version %d after a failed deployment, want 1", v)
	}
}

// TestIndexedItemsHaveStatistics: an indexed item's expression has
// statistics, filled by the deployment that creates its index, so the
// planner knows that one customer is a handful of instances. Without them
// it guessed 0.5 % and, for a page ordered by end_time, walked
// bam_instances_completed, filtering, instead of reading the customer's
// instances through the item's index. Taking index: true off drops them.
func TestIndexedItemsHaveStatistics(t *testing.T) {
	t.Parallel()
	b := setup(t)
	if _, err := b.s.work.Exec(b.ctx, `INSERT INTO bam_instances
		(activity, instance_id, state, begin_time, end_time, last_modified, items)
		SELECT 'PurchaseOrder', 'I-' || lpad(g::text, 6, '0'), 'completed',
		       timestamptz '2026-01-01' + g * interval '1 minute', timestamptz '2026-01-01' + g * interval '1 minute', now(),
		       jsonb_build_object('Customer', jsonb_build_object('v', 'C-' || (g % 5000), 't', 0))
		FROM generate_series(1, 100000) AS g`); err != nil {
		t.Fatal(err)
	}
	deployText(t, b, poDefinition, false)
	plan := textColumn(t, b, `EXPLAIN SELECT * FROM purchaseorder_completed WHERE customer = 'C-42' ORDER BY end_time LIMIT 10`)
	if p := strings.Join(plan, "\n"); !strings.Contains(p, "bam_ix_purchaseorder_customer") {
		t.Errorf("a customer's first completed instances do not come through the customer's index:\n%s", p)
	}

	next := strings.Replace(poDefinition, "{name: Customer, type: text, max_length: 100, index: true}", "{name: Customer, type: text, max_length: 100}", 1)
	deployText(t, b, next, false)
	stats := textColumn(t, b, `SELECT stxname FROM pg_statistic_ext ORDER BY stxname`)
	if got := strings.Join(stats, ","); got != "bam_st_purchaseorder_amount,bam_st_purchaseorder_received" {
		t.Errorf("statistics after Customer's index: true is taken off: %s", got)
	}
}

// TestMigrationGivesOldIndexesStatistics: an item indexed by a bam that
// made no statistics (before schema version 11) has them after Migrate,
// under the name a later deployment drops them by.
func TestMigrationGivesOldIndexesStatistics(t *testing.T) {
	t.Parallel()
	b := setup(t)
	deployText(t, b, poDefinition, false)
	for _, q := range []string{
		`DROP STATISTICS bam_st_purchaseorder_customer, bam_st_purchaseorder_amount, bam_st_purchaseorder_received`,
		`DROP TABLE bam_alert_deliveries, bam_alert_firings`, // versions 12 and 13, made again
		`ALTER TABLE bam_sessions DROP COLUMN applied_by_activity`,
		`DROP TABLE bam_pool, bam_audit`, // version 14
		`ALTER TABLE bam_nodes DROP COLUMN draining`,
		`ALTER TABLE bam_sessions DROP COLUMN move_to`,
		`DROP TABLE bam_pool_settings`, // version 15, made again
		`DELETE FROM bam_schema WHERE version >= 11`,
	} {
		if _, err := b.s.work.Exec(b.ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if from, to, err := b.s.Migrate(b.ctx); err != nil || from != 10 || to < 11 {
		t.Fatalf("Migrate: from %d to %d, %v", from, to, err)
	}
	want := "bam_st_purchaseorder_amount,bam_st_purchaseorder_customer,bam_st_purchaseorder_received"
	if got := strings.Join(textColumn(t, b, `SELECT stxname FROM pg_statistic_ext ORDER BY stxname`), ","); got != want {
		t.Errorf("statistics after the migration: %s, want %s", got, want)
	}
	// The same expressions as a deployment's: taking an index off drops its statistics.
	deployText(t, b, strings.Replace(poDefinition, "{name: Customer, type: text, max_length: 100, index: true}", "{name: Customer, type: text, max_length: 100}", 1), false)
	if got := strings.Join(textColumn(t, b, `SELECT stxname FROM pg_statistic_ext ORDER BY stxname`), ","); got != "bam_st_purchaseorder_amount,bam_st_purchaseorder_received" {
		t.Errorf("statistics after Customer's index: true is taken off: %s", got)
	}
}

// textColumn runs a query of one text column and returns its rows.
func textColumn(t *testing.T, b bundle, query string) []string {
	t.Helper()
	rows, err := b.s.work.Query(b.ctx, query)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return out
}

// TestReadOnlyRoleReadsAggregationViews: the role docs/QUERY.md tells BI
// tools to use reads an aggregation's view (views run with their owner's
// rights) and nothing of bam's own tables, and keeps its grants when a
// deployment creates the views again.
func TestReadOnlyRoleReadsAggregationViews(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const def = `activities:
  - name: PurchaseOrder
    items:
      - {name: Customer, type: text, max_length: 100}
      - {name: Amount, type: decimal, precision: 12, scale: 2}
    aggregations:
      - name: ByCustomer
        dimensions: [{item: Customer}]
        measures:
          - {name: largest, function: max, item: Amount}
`
	deployText(t, b, def, false)
	if _, err := b.s.work.Exec(b.ctx, `INSERT INTO bam_instances (activity, instance_id, state, begin_time, last_modified, items)
		VALUES ('PurchaseOrder', 'PO-1', 'active', now(), now(), '{"Customer": {"v": "Contoso", "t": 0}, "Amount": {"v": 12.5, "t": 0}}')`); err != nil {
		t.Fatal(err)
	}
	c := connect(t, b.url)
	var role string // roles are the server's: one of this test's database
	if err := c.QueryRow(b.ctx, `SELECT 'reader_' || current_database()`).Scan(&role); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		"CREATE ROLE " + role + " NOLOGIN",
		"GRANT USAGE ON SCHEMA public TO " + role,
		"GRANT SELECT ON purchaseorder_bycustomer, purchaseorder_active TO " + role,
	} {
		if _, err := c.Exec(b.ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		ctx := context.Background()
		_, _ = c.Exec(ctx, "RESET ROLE")
		_, _ = c.Exec(ctx, "DROP OWNED BY "+role)
		_, _ = c.Exec(ctx, "DROP ROLE "+role)
	})
	read := func(when string) {
		t.Helper()
		if _, err := c.Exec(b.ctx, "SET ROLE "+role); err != nil {
			t.Fatal(err)
		}
		defer func() {
			if _, err := c.Exec(b.ctx, "RESET ROLE"); err != nil {
				t.Fatal(err)
			}
		}()
		var customer, largest string
		if err := c.QueryRow(b.ctx, `SELECT customer, largest::text FROM purchaseorder_bycustomer`).Scan(&customer, &largest); err != nil {
			t.Fatalf("%s: the reader cannot read the aggregation's view: %v", when, err)
		}
		if customer != "Contoso" || largest != "12.50" {
			t.Errorf("%s: view row %s %s", when, customer, largest)
		}
		var n int
		if err := c.QueryRow(b.ctx, `SELECT count(*) FROM purchaseorder_active`).Scan(&n); err != nil || n != 1 {
			t.Errorf("%s: the reader reads %d active instances: %v", when, n, err)
		}
		if _, err := c.Exec(b.ctx, `SELECT count(*) FROM bam_instances`); err == nil || !strings.Contains(err.Error(), "permission denied") {
			t.Errorf("%s: the reader reads bam_instances: %v", when, err)
		}
		if _, err := c.Exec(b.ctx, `SELECT count(*) FROM purchaseorder_completed`); err == nil || !strings.Contains(err.Error(), "permission denied") {
			t.Errorf("%s: the reader reads a view it was given no grant on: %v", when, err)
		}
	}
	read("deployed")
	// A new item and a new measure: the deployment drops and creates both
	// views again (the aggregation's is rebuilt).
	deployText(t, b, strings.Replace(def, "      - {name: Amount,", "      - {name: Region, type: text, max_length: 20}\n      - {name: Amount,", 1)+
		"          - {name: total, function: sum, item: Amount}\n", false)
	read("deployed again")
}
