package bench

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/definition"
	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/search"
	"github.com/bam-dev/bam/internal/store"
)

// The search workload: a million purchase orders of the example's
// definition, begun 30 seconds apart over 347 days; 12 % of them, and
// every one begun in the last 3 days, still active, the others completed
// 3 to 72 hours after their begin; 5,000 customers of 200 orders each.
const (
	searchInstances = 1_000_000
	searchCustomers = 5_000
	searchRecent    = 3 * 24 * 3600 / 30 // the instances of the last 3 days, all active
	searchPage      = 100
	searchLastPage  = 10     // the later page of the sorted query: rows 901-1000
	searchCountCap  = 10_000 // the bounded count's cap
	searchReps      = 21     // timed runs of each query and its baseline, by default
	searchSlowReps  = 7      // of the sorted pages and equality-by-end-time (BenchmarkSearch)
)

// searchStart is the first instance's begin; instance g begins g × 30 s
// later.
var searchStart = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// searchDefinition is the purchase-order example's activity
// (examples/purchase-order) without its aggregations, which a deployment
// would compute over the million instances and no search reads: Customer
// is an indexed text, Amount a decimal(12,2), four milestones.
const searchDefinition = `activities:
  - name: PurchaseOrder
    items:
      - {name: Received,  type: milestone}
      - {name: Approved,  type: milestone}
      - {name: Shipped,   type: milestone}
      - {name: Delivered, type: milestone}
      - {name: Customer,  type: text, max_length: 100, index: true}
      - {name: Amount,    type: decimal, precision: 12, scale: 2}
      - {name: Quantity,  type: integer}
      - {name: Rush,      type: boolean}
`

// handColumns are the columns the hand-written queries read: what a
// search page's rows hold (the instance's columns and every item).
const handColumns = "instance_id, state, begin_time, end_time, last_modified, events, " +
	"received, approved, shipped, delivered, customer, amount, quantity, rush"

// handAmount is the position of amount in handColumns.
const handAmount = 11

// searchCase is one query: a search spec and the SQL a person would write
// by hand over the same view for the same rows.
type searchCase struct {
	name string
	spec search.Spec
	// page is the page timed (1: the first; n: read through the cursor of
	// page n-1); 0 for the bounded count.
	page int
	// hand is the hand-written statement of a page, after the last row of
	// the previous page (nil for the first page).
	hand func(d search.Dialect, after []any) (string, []any)
	// index is an index the search's plan must use ("" for none).
	index string
	// presorted: the search's plan must read the rows in the page's order
	// rather than sort every match, where text needs no COLLATE "C" (on
	// SQLite, and PostgreSQL in a bytewise collation).
	presorted bool
	// reps is the number of timed runs by default (0: searchReps).
	reps int
}

// BenchmarkSearch fills a store with a million PurchaseOrder instances
// (written straight into bam_instances in the drivers' items form, as
// a year of events would leave them), deploys the purchase-order example's
// activity (Customer indexed) and analyses the table, then times six
// queries through package search (search.Run and search.Count over the
// store's Searcher: compile, run, type the rows) beside the SQL a person
// would write over the same view for the same rows, run through the same
// Searcher, alternately:
//
//   - list-active: no filter over the active instances (~128,000), the
//     first page by instance id;
//   - equality: Customer = 'C0042', the first page of 100 (of 200) by
//     instance id;
//   - end-time-range: the instances completed on one day (~2,500), the
//     first page by instance id;
//   - sorted-first, sorted-later: the active instances with Quantity >= 10
//     (~116,000) by Amount DESC, the first page and the tenth through the
//     cursor (keyset);
//   - equality-by-end-time: Customer = 'C0042' over the completed
//     instances, the first page by end_time;
//   - count: Amount >= 1000 (~90 %), counted up to 10,000.
//
// Each query is checked first: its rows (every page up to the timed one)
// are the hand-written query's, in the same order, or the benchmark fails;
// the plans of both equalities use the Customer index, the range's
// bam_instances_completed, and list-active's reads the instances in order
// without sorting them (but on PostgreSQL under a collation that is not
// byte order, where search sorts COLLATE "C"), or it fails. Figures are per query: the median,
// minimum and maximum over BAM_BENCH_REPS runs (default 21; 7 for the
// sorted pages, which read every active instance, and for
// equality-by-end-time, which took seconds before PostgreSQL had the
// item's statistics), and
// search/hand, the ratio of the medians. -v logs both plans of each query.
func BenchmarkSearch(b *testing.B) {
	for _, driver := range []string{"postgres", "sqlite"} {
		b.Run(driver, func(b *testing.B) { benchSearch(b, driver) })
	}
}

func benchSearch(b *testing.B, driver string) {
	ctx := context.Background()
	u := storeURL(b, driver)
	st := openStore(b, u)
	s, ok := st.(store.Searcher)
	if !ok {
		b.Fatalf("the %s store is no store.Searcher", driver)
	}
	d, err := search.DialectFor(ctx, s)
	if err != nil {
		b.Fatal(err)
	}
	file, fill, deploy, analyze := prepareSearchStore(b, driver, u, st)
	b.Logf("%s: %d instances written in %.1f s, definition deployed (Customer's index built) in %.1f s, analysed in %.1f s",
		driver, searchInstances, fill.Seconds(), deploy.Seconds(), analyze.Seconds())
	b.Run("fill", func(b *testing.B) {
		b.ReportMetric(0, "ns/op")
		b.ReportMetric(searchInstances, "instances")
		b.ReportMetric(fill.Seconds(), "fill_s")
		b.ReportMetric(deploy.Seconds(), "deploy_with_index_s")
		b.ReportMetric(analyze.Seconds(), "analyze_s")
	})

	for _, c := range searchCases(d) {
		b.Run(c.name, func(b *testing.B) { benchSearchCase(b, s, d, file.Activities[0], c) })
	}
}

// prepareSearchStore fills the store at u (st) with the search workload,
// deploys searchDefinition (Customer's index built) and analyses the
// table, as autovacuum would have after a year of writes. It returns the
// definition and how long each step took.
func prepareSearchStore(b *testing.B, driver, u string, st store.Store) (file definition.File, fill, deploy, analyze time.Duration) {
	b.Helper()
	db := openViewDB(b, driver, u)
	defer db.close()
	start := time.Now()
	fillSearch(b, db)
	fill = time.Since(start)
	file, err := definition.Parse([]byte(searchDefinition))
	if err != nil {
		b.Fatal(err)
	}
	start = time.Now()
	if _, err := st.Deploy(context.Background(), store.DeployRequest{File: file, Text: searchDefinition, By: "bench"}); err != nil {
		b.Fatal(err)
	}
	deploy = time.Since(start)
	start = time.Now()
	if driver == "postgres" {
		db.exec(b, "VACUUM ANALYZE bam_instances")
	} else {
		db.exec(b, "ANALYZE")
	}
	return file, fill, deploy, time.Since(start)
}

// searchCases are the queries, with their hand-written SQL for dialect d.
func searchCases(d search.Dialect) []searchCase {
	p := func(n int) string {
		if d != search.SQLite {
			return fmt.Sprintf("$%d", n)
		}
		return fmt.Sprintf("?%d", n)
	}
	// A day of end times, and a time as the dialect's views hold it.
	dayFrom, dayTo := time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 7, 1, 23, 59, 59, 999999000, time.UTC)
	viewTime := func(t time.Time) any {
		if d != search.SQLite {
			return t
		}
		return t.Format(event.StoredTimeLayout)
	}
	// Amount as it compares: a decimal on PostgreSQL, its text as a
	// number on SQLite.
	amount, amountOrder := "amount", "amount DESC NULLS LAST"
	if d == search.SQLite {
		amount, amountOrder = "CAST(amount AS REAL)", "CAST(amount AS REAL) DESC"
	}
	sortedHand := func(d search.Dialect, after []any) (string, []any) {
		q := "SELECT " + handColumns + " FROM purchaseorder_active WHERE quantity >= " + p(1)
		args := []any{10}
		if after != nil {
			q += " AND (" + amount + " < " + p(2) + " OR (" + amount + " = " + p(2) + " AND instance_id > " + p(3) + "))"
			args = append(args, after[handAmount], after[0])
			if d == search.SQLite {
				q = strings.ReplaceAll(q, p(2), "CAST("+p(2)+" AS REAL)")
			}
		}
		return q + " ORDER BY " + amountOrder + ", instance_id LIMIT " + fmt.Sprint(searchPage), args
	}
	sorted := search.Spec{Scope: search.ScopeActive, Where: "Quantity >= 10", Order: "Amount DESC"}
	return []searchCase{{
		name:      "list-active",
		spec:      search.Spec{Scope: search.ScopeActive},
		page:      1,
		presorted: true,
		hand: func(search.Dialect, []any) (string, []any) {
			return "SELECT " + handColumns + " FROM purchaseorder_active ORDER BY instance_id LIMIT " + fmt.Sprint(searchPage), nil
		},
	}, {
		name:  "equality",
		spec:  search.Spec{Scope: search.ScopeAll, Where: "Customer = 'C0042'"},
		page:  1,
		index: store.IndexName("PurchaseOrder", "Customer"),
		hand: func(search.Dialect, []any) (string, []any) {
			return "SELECT " + handColumns + " FROM purchaseorder_all WHERE customer = " + p(1) +
				" ORDER BY instance_id LIMIT " + fmt.Sprint(searchPage), []any{"C0042"}
		},
	}, {
		name: "end-time-range",
		spec: search.Spec{Scope: search.ScopeCompleted, Where: fmt.Sprintf("end_time BETWEEN '%s' AND '%s'",
			dayFrom.Format(time.RFC3339Nano), dayTo.Format(time.RFC3339Nano))},
		page:  1,
		index: "bam_instances_completed",
		hand: func(search.Dialect, []any) (string, []any) {
			return "SELECT " + handColumns + " FROM purchaseorder_completed WHERE end_time BETWEEN " + p(1) + " AND " + p(2) +
				" ORDER BY instance_id LIMIT " + fmt.Sprint(searchPage), []any{viewTime(dayFrom), viewTime(dayTo)}
		},
	}, {
		name: "sorted-first", spec: sorted, page: 1, hand: sortedHand, reps: searchSlowReps,
	}, {
		name: "sorted-later", spec: sorted, page: searchLastPage, hand: sortedHand, reps: searchSlowReps,
	}, {
		name:  "equality-by-end-time",
		spec:  search.Spec{Scope: search.ScopeCompleted, Where: "Customer = 'C0042'", Order: "end_time"},
		page:  1,
		reps:  searchSlowReps,
		index: store.IndexName("PurchaseOrder", "Customer"),
		hand: func(search.Dialect, []any) (string, []any) {
			return "SELECT " + handColumns + " FROM purchaseorder_completed WHERE customer = " + p(1) +
				" ORDER BY end_time NULLS LAST, instance_id LIMIT " + fmt.Sprint(searchPage), []any{"C0042"}
		},
	}, {
		name: "count",
		spec: search.Spec{Scope: search.ScopeAll, Where: "Amount >= 1000"},
		hand: func(search.Dialect, []any) (string, []any) {
			return fmt.Sprintf("SELECT count(*) FROM (SELECT 1 FROM purchaseorder_all WHERE %s >= %s LIMIT %d) AS m",
				amount, p(1), searchCountCap+1), []any{1000}
		},
	}}
}

// benchSearchCase checks one query against its hand-written SQL and its
// plan, then times both, alternately.
func benchSearchCase(b *testing.B, s store.Searcher, d search.Dialect, a definition.Activity, c searchCase) {
	ctx := context.Background()
	q, err := search.Prepare(a, c.spec)
	if err != nil {
		b.Fatal(err)
	}
	now := searchStart.Add(searchInstances * 30 * time.Second)

	// The rows, checked page by page up to the timed one; the cursor and
	// the hand-written query's position before the timed page.
	var (
		cursor string
		after  []any
		rows   int
	)
	if c.page == 0 {
		n, _, err := search.Count(ctx, s, q, searchCountCap, now)
		if err != nil {
			b.Fatal(err)
		}
		hand := handRows(b, s, c.hand, d, nil)
		if got := fmt.Sprint(hand[0][0]); got != fmt.Sprint(n) {
			b.Fatalf("%s: search counts %d, the hand-written query %s", c.name, n, got)
		}
		rows = int(n)
	}
	for page := 1; page <= c.page; page++ {
		got, err := search.Run(ctx, s, q, search.PageRequest{Limit: searchPage, Cursor: cursor, Now: now})
		if err != nil {
			b.Fatal(err)
		}
		hand := handRows(b, s, c.hand, d, after)
		if err := sameRows(got.Rows, hand); err != nil {
			b.Fatalf("%s, page %d: %v", c.name, page, err)
		}
		if page < c.page {
			cursor, after = got.Next, hand[len(hand)-1]
		}
		rows = len(got.Rows)
	}
	if rows == 0 {
		b.Fatalf("%s: no rows: the workload is not what the query expects", c.name)
	}
	checkSearchPlan(b, s, d, q, c, cursor, after)

	searchQuery := func() {
		var err error
		if c.page == 0 {
			_, _, err = search.Count(ctx, s, q, searchCountCap, now)
		} else {
			_, err = search.Run(ctx, s, q, search.PageRequest{Limit: searchPage, Cursor: cursor, Now: now})
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	handQuery := func() { handRows(b, s, c.hand, d, after) }
	var m spreads
	var searchMS, handMS []float64
	for range b.N {
		for i := range repsOr(cmp.Or(c.reps, searchReps)) {
			first, second := searchQuery, handQuery
			if i%2 == 1 {
				first, second = handQuery, searchQuery
			}
			t1 := timedMS(first)
			t2 := timedMS(second)
			if i%2 == 1 {
				t1, t2 = t2, t1
			}
			searchMS, handMS = append(searchMS, m.add("search_ms", t1)), append(handMS, m.add("hand_ms", t2))
		}
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(rows), "rows")
	b.ReportMetric(median(searchMS)/median(handMS), "search/hand")
	m.report(b)
	b.Logf("%s: search %.2f ms (%.2f-%.2f), hand-written %.2f ms (%.2f-%.2f), %d rows",
		c.name, median(searchMS), slices.Min(searchMS), slices.Max(searchMS),
		median(handMS), slices.Min(handMS), slices.Max(handMS), rows)
}

func timedMS(f func()) float64 {
	start := time.Now()
	f()
	return ms(time.Since(start))
}

// handRows runs the hand-written query of a page through the store's
// Searcher, as search runs its own.
func handRows(b *testing.B, s store.Searcher, hand func(search.Dialect, []any) (string, []any), d search.Dialect, after []any) [][]any {
	b.Helper()
	sql, args := hand(d, after)
	rows, err := s.SearchRows(context.Background(), sql, args)
	if err != nil {
		b.Fatalf("%s: %v", sql, err)
	}
	return rows
}

// sameRows says how a search page differs from the hand-written query's
// rows: the instances, in order.
func sameRows(got []search.Row, hand [][]any) error {
	if len(got) != len(hand) {
		return fmt.Errorf("search returns %d rows, the hand-written query %d", len(got), len(hand))
	}
	for i, r := range got {
		if id := fmt.Sprint(hand[i][0]); r.ID != id {
			return fmt.Errorf("row %d: search returns %s, the hand-written query %s", i+1, r.ID, id)
		}
	}
	return nil
}

// checkSearchPlan logs the plans of the search's statement and of the
// hand-written one, and fails when the search's does not use c.index.
func checkSearchPlan(b *testing.B, s store.Searcher, d search.Dialect, q *search.Query, c searchCase, cursor string, after []any) {
	b.Helper()
	now := searchStart.Add(searchInstances * 30 * time.Second)
	var st search.Statement
	if c.page == 0 {
		st = q.CountSQL(d, searchCountCap, now)
	} else {
		var err error
		if st, err = q.Compile(d, search.PageRequest{Limit: searchPage, Cursor: cursor, Now: now}); err != nil {
			b.Fatal(err)
		}
	}
	prefix := "EXPLAIN (ANALYZE, BUFFERS) "
	if d == search.SQLite {
		prefix = "EXPLAIN QUERY PLAN "
	}
	plan := func(sql string, args []any) string {
		rows, err := s.SearchRows(context.Background(), prefix+sql, args)
		if err != nil {
			b.Fatalf("%s%s: %v", prefix, sql, err)
		}
		var lines []string
		for _, r := range rows {
			lines = append(lines, fmt.Sprint(r...))
		}
		return strings.Join(lines, "\n")
	}
	searchPlan := plan(st.SQL, st.Args)
	handSQL, handArgs := c.hand(d, after)
	b.Logf("%s, search: %s\n%s", c.name, st.SQL, searchPlan)
	b.Logf("%s, hand-written: %s\n%s", c.name, handSQL, plan(handSQL, handArgs))
	if c.index != "" && !strings.Contains(searchPlan, c.index) {
		b.Fatalf("%s: the search's plan does not use %s:\n%s", c.name, c.index, searchPlan)
	}
	if c.presorted && d != search.Postgres && sortsEveryMatch(searchPlan) {
		b.Fatalf("%s: the search's plan sorts every match instead of reading them in order:\n%s", c.name, searchPlan)
	}
}

// sortsEveryMatch: a plan has a Sort node (PostgreSQL; an Incremental
// Sort only sorts rows of equal presorted keys) or a temporary B-tree for
// the ORDER BY (SQLite).
func sortsEveryMatch(plan string) bool {
	for _, line := range strings.Split(plan, "\n") {
		line = strings.TrimPrefix(strings.TrimSpace(line), "->  ")
		if strings.HasPrefix(line, "Sort  (") || strings.Contains(line, "USE TEMP B-TREE FOR ORDER BY") {
			return true
		}
	}
	return false
}

// fillSearch writes the instances straight into bam_instances, with their
// items in the form the drivers store ({"Amount": {"v": 1234.5, "t":
// <micros>}}, times as event.StoredTimeLayout text): each instance's
// Received, Customer, Amount, Quantity and Rush are set at its begin,
// Approved two hours later (every completed one, two active ones in
// three), Shipped an hour before its end and Delivered at its end.
func fillSearch(b *testing.B, q *viewDB) {
	b.Helper()
	if q.driver == "postgres" {
		q.exec(b, fmt.Sprintf(`INSERT INTO bam_instances (activity, instance_id, state, begin_time, end_time, last_modified, events, items, first_event_at)
			SELECT 'PurchaseOrder', 'PO-' || lpad(g::text, 7, '0'), CASE WHEN done THEN 'completed' ELSE 'active' END,
				bt, et, coalesce(et, ap, bt), CASE WHEN done THEN 4 WHEN ap IS NULL THEN 1 ELSE 2 END,
				jsonb_build_object(
					'Received', jsonb_build_object('v', to_char(bt AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), 't', bus),
					'Customer', jsonb_build_object('v', 'C' || lpad(((g * 7919) %% %[2]d)::text, 4, '0'), 't', bus),
					'Amount', jsonb_build_object('v', round(((g * 104723) %% 1000000) / 100.0, 2), 't', bus),
					'Quantity', jsonb_build_object('v', 1 + (g * 31) %% 50, 't', bus),
					'Rush', jsonb_build_object('v', g %% 9 = 0, 't', bus))
				|| CASE WHEN ap IS NULL THEN '{}' ELSE jsonb_build_object(
					'Approved', jsonb_build_object('v', to_char(ap AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), 't', (extract(epoch FROM ap) * 1000000)::bigint)) END
				|| CASE WHEN et IS NULL THEN '{}' ELSE jsonb_build_object(
					'Shipped', jsonb_build_object('v', to_char((et - interval '1 hour') AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), 't', (extract(epoch FROM et) * 1000000)::bigint - 3600000000),
					'Delivered', jsonb_build_object('v', to_char(et AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), 't', (extract(epoch FROM et) * 1000000)::bigint)) END,
				bt
			FROM generate_series(1::bigint, %[1]d) AS g,
				LATERAL (SELECT timestamptz '%[3]s' + g * interval '30 seconds' AS bt,
				                (g * 7919) %% 100 >= 12 AND g <= %[1]d - %[4]d AS done) AS x,
				LATERAL (SELECT (extract(epoch FROM bt) * 1000000)::bigint AS bus,
				                CASE WHEN done OR g %% 3 <> 0 THEN bt + interval '2 hours' END AS ap,
				                CASE WHEN done THEN bt + (3 + (g * 104729) %% 70) * interval '1 hour' END AS et) AS y`,
			searchInstances, searchCustomers, searchStart.Format(time.RFC3339), searchRecent))
		return
	}
	// SQLite keeps times as microseconds; the CTE works in seconds.
	q.exec(b, fmt.Sprintf(`WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < %[1]d),
		x AS (SELECT n, %[3]d + n * 30 AS bt, (n * 7919) %% 100 >= 12 AND n <= %[1]d - %[4]d AS done FROM g),
		y AS (SELECT n, bt, done, CASE WHEN done OR n %% 3 <> 0 THEN bt + 7200 END AS ap,
		             CASE WHEN done THEN bt + (3 + (n * 104729) %% 70) * 3600 END AS et FROM x),
		z AS (SELECT *, json_object(
				'Received', json_object('v', strftime('%%Y-%%m-%%dT%%H:%%M:%%S.000000Z', bt, 'unixepoch'), 't', bt * 1000000),
				'Customer', json_object('v', printf('C%%04d', (n * 7919) %% %[2]d), 't', bt * 1000000),
				'Amount', json_object('v', ((n * 104723) %% 1000000) / 100.0, 't', bt * 1000000),
				'Quantity', json_object('v', 1 + (n * 31) %% 50, 't', bt * 1000000),
				'Rush', json_object('v', json(CASE WHEN n %% 9 = 0 THEN 'true' ELSE 'false' END), 't', bt * 1000000)) AS base FROM y)
		INSERT INTO bam_instances (activity, instance_id, state, begin_time, end_time, last_modified, events, items, updated_at, first_event_at)
		SELECT 'PurchaseOrder', printf('PO-%%07d', n), CASE WHEN done THEN 'completed' ELSE 'active' END,
			bt * 1000000, et * 1000000, coalesce(et, ap, bt) * 1000000, CASE WHEN done THEN 4 WHEN ap IS NULL THEN 1 ELSE 2 END,
			CASE WHEN done THEN json_set(base,
					'$.Approved', json_object('v', strftime('%%Y-%%m-%%dT%%H:%%M:%%S.000000Z', ap, 'unixepoch'), 't', ap * 1000000),
					'$.Shipped', json_object('v', strftime('%%Y-%%m-%%dT%%H:%%M:%%S.000000Z', et - 3600, 'unixepoch'), 't', (et - 3600) * 1000000),
					'$.Delivered', json_object('v', strftime('%%Y-%%m-%%dT%%H:%%M:%%S.000000Z', et, 'unixepoch'), 't', et * 1000000))
			     WHEN ap IS NOT NULL THEN json_set(base,
					'$.Approved', json_object('v', strftime('%%Y-%%m-%%dT%%H:%%M:%%S.000000Z', ap, 'unixepoch'), 't', ap * 1000000))
			     ELSE base END,
			coalesce(et, ap, bt) * 1000000, bt * 1000000
		FROM z`, searchInstances, searchCustomers, searchStart.Unix(), searchRecent))
}
