package search_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/search"
	"github.com/bam-dev/bam/internal/store"
	"github.com/bam-dev/bam/internal/store/postgres"
	"github.com/bam-dev/bam/internal/store/sqlite"
	"github.com/bam-dev/bam/internal/testpg"
)

const planDefinition = `
activities:
  - name: PlanPO
    items:
      - {name: Customer, type: text, max_length: 100, index: true}
      - {name: Amount,   type: decimal, precision: 12, scale: 2}
`

// planInstances writes n completed instances of PlanPO, one customer
// each, ending a minute apart.
func planInstances(t *testing.T, ctx context.Context, s testStore, n int) time.Time {
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for from := 0; from < n; from += 500 {
		var events []event.Event
		for i := from; i < min(from+500, n); i++ {
			id := fmt.Sprintf("PO-%05d", i)
			events = append(events,
				ev("PlanPO", id, event.Begin, base.Add(time.Duration(i)*time.Minute), map[string]any{"Customer": fmt.Sprintf("c%05d", i), "Amount": i}),
				ev("PlanPO", id, event.End, base.Add(time.Duration(i+30)*time.Minute), nil))
		}
		write(t, ctx, s, events...)
	}
	return base.Add(time.Duration(n+30) * time.Minute)
}

// explain returns the plan of one page of q.
func explain(t *testing.T, ctx context.Context, s testStore, d search.Dialect, q *search.Query, prefix string) string {
	t.Helper()
	st, err := q.Compile(d, search.PageRequest{Limit: 50})
	if err != nil {
		t.Fatal(err)
	}
	rows, err := s.SearchRows(ctx, prefix+st.SQL, st.Args)
	if err != nil {
		t.Fatalf("%s%s: %v", prefix, st.SQL, err)
	}
	var plan []string
	for _, r := range rows {
		plan = append(plan, fmt.Sprint(r...))
	}
	return strings.Join(plan, "\n")
}

// TestPlansUseTheIndexes: on PostgreSQL with a few thousand instances
// analysed, equality on an indexed item reads its expression index, and a
// range of end times over the completed scope reads
// bam_instances_completed.
func TestPlansUseTheIndexes(t *testing.T) {
	ctx := t.Context()
	s, err := postgres.Open(ctx, testpg.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, _, err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	a := deploy(t, ctx, s, planDefinition)
	last := planInstances(t, ctx, s, 3000)
	if _, err := s.SearchRows(ctx, "ANALYZE bam_instances", nil); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		spec  search.Spec
		index string
	}{
		{search.Spec{Where: "customer = 'c01234'"}, store.IndexName("PlanPO", "Customer")},
		{search.Spec{Where: "Customer IN ('c00007', 'c02000') AND Amount > 5", Order: "Amount DESC"}, store.IndexName("PlanPO", "Customer")},
		{search.Spec{Where: "end_time > " + quote(last.Add(-20*time.Minute)), Scope: search.ScopeCompleted, Order: "end_time DESC"}, "bam_instances_completed"},
		{search.Spec{Where: "end_time BETWEEN '2026-01-01T10:00:00Z' AND '2026-01-01T11:00:00Z'", Scope: search.ScopeCompleted}, "bam_instances_completed"},
	} {
		q, err := search.Prepare(a, tc.spec)
		if err != nil {
			t.Fatal(err)
		}
		if plan := explain(t, ctx, s, search.Postgres, q, "EXPLAIN "); !strings.Contains(plan, tc.index) {
			t.Errorf("%q over %s: the plan does not use %s:\n%s", q.Filter.String(), q.Scope, tc.index, plan)
		}
	}
	// The counter-check: a filter on an item without an index reads them all.
	q, _ := search.Prepare(a, search.Spec{Where: "Amount = 5"})
	if plan := explain(t, ctx, s, search.Postgres, q, "EXPLAIN "); strings.Contains(plan, "bam_ix_") {
		t.Errorf("Amount = 5 uses an item index it has not:\n%s", plan)
	}
}

// TestSQLitePlanUsesTheItemIndex: SQLite too finds an indexed item by its
// expression index through the view.
func TestSQLitePlanUsesTheItemIndex(t *testing.T) {
	ctx := t.Context()
	s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "bam.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, _, err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	a := deploy(t, ctx, s, planDefinition)
	planInstances(t, ctx, s, 1000)
	if _, err := s.SearchRows(ctx, "ANALYZE", nil); err != nil {
		t.Fatal(err)
	}
	q, _ := search.Prepare(a, search.Spec{Where: "Customer = 'c00500'"})
	if plan := explain(t, ctx, s, search.SQLite, q, "EXPLAIN QUERY PLAN "); !strings.Contains(plan, store.IndexName("PlanPO", "Customer")) {
		t.Errorf("the plan does not use the item's index:\n%s", plan)
	}
}

func quote(t time.Time) string { return "'" + t.Format(time.RFC3339) + "'" }

var _ search.TextOrder = (*postgres.Store)(nil)

// openPostgres opens a migrated store on a database of its own created
// with the given options (its collation).
func openPostgres(t *testing.T, ctx context.Context, options string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(ctx, testpg.NewDatabaseWith(t, options))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if _, _, err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestBytewiseDatabaseUsesTheKeysForOrders: on a database whose collation
// is C, text needs no COLLATE "C", so a page in the default order walks
// the primary key instead of sorting every instance, and a range and an
// order on an indexed text read its index.
func TestBytewiseDatabaseUsesTheKeysForOrders(t *testing.T) {
	ctx := t.Context()
	s := openPostgres(t, ctx, "TEMPLATE template0 LOCALE 'C'")
	if d, err := search.DialectFor(ctx, s); err != nil || d != search.PostgresBytewise {
		t.Fatalf("DialectFor a C database = %v, %v; want PostgresBytewise", d, err)
	}
	a := deploy(t, ctx, s, planDefinition)
	planInstances(t, ctx, s, 3000)
	if _, err := s.SearchRows(ctx, "ANALYZE bam_instances", nil); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		spec  search.Spec
		index string
	}{
		{search.Spec{}, "bam_instances_pkey"},
		{search.Spec{Where: "Customer >= 'c02990'", Order: "Customer"}, store.IndexName("PlanPO", "Customer")},
	} {
		q, err := search.Prepare(a, tc.spec)
		if err != nil {
			t.Fatal(err)
		}
		plan := explain(t, ctx, s, search.PostgresBytewise, q, "EXPLAIN ")
		if !strings.Contains(plan, tc.index) || sortsAll(plan) {
			t.Errorf("%q ordered by %q: the plan sorts every match, or does not read %s:\n%s", q.Filter.String(), q.Order.String(), tc.index, plan)
		}
	}
}

// sortsAll: a plan has a Sort node (not an Incremental Sort, which sorts
// only the rows of equal presorted keys: the tie-break by instance id).
func sortsAll(plan string) bool {
	for _, line := range strings.Split(plan, "\n") {
		if strings.HasPrefix(strings.TrimPrefix(strings.TrimSpace(line), "->  "), "Sort  (") {
			return true
		}
	}
	return false
}

// TestOtherCollationsSortByBytes: on a database whose collation is not
// byte order (ICU's en-US puts 'a' before 'B'), search keeps COLLATE "C":
// the order is still the bytes', as on SQLite and in Match.
func TestOtherCollationsSortByBytes(t *testing.T) {
	ctx := t.Context()
	s := openPostgres(t, ctx, "TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'")
	if d, err := search.DialectFor(ctx, s); err != nil || d != search.Postgres {
		t.Fatalf("DialectFor an en-US database = %v, %v; want Postgres", d, err)
	}
	a := deploy(t, ctx, s, planDefinition)
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, id := range []string{"a-1", "B-1", "b-2", "A-2"} {
		write(t, ctx, s, ev("PlanPO", id, event.Begin, at, map[string]any{"Customer": id}))
	}
	for _, order := range []string{"", "Customer"} {
		q, err := search.Prepare(a, search.Spec{Order: order})
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(ids(t, ctx, s, q, 3, at), ","); got != "A-2,B-1,a-1,b-2" {
			t.Errorf("ordered by %q: %s, want the bytes' order A-2,B-1,a-1,b-2", order, got)
		}
	}
}
