package search

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/definition"
	"github.com/bam-dev/bam/internal/store"
)

// purchaseOrder is the example's activity, with a float item added.
const purchaseOrder = `
activities:
  - name: PurchaseOrder
    items:
      - {name: Received,  type: milestone}
      - {name: Shipped,   type: milestone}
      - {name: Customer,  type: text, max_length: 40, index: true}
      - {name: Amount,    type: decimal, precision: 12, scale: 2}
      - {name: Quantity,  type: integer}
      - {name: Weight,    type: float}
      - {name: Rush,      type: boolean}
`

func activity(t testing.TB) definition.Activity {
	t.Helper()
	f, err := definition.Parse([]byte(purchaseOrder))
	if err != nil {
		t.Fatal(err)
	}
	return f.Activities[0]
}

func TestPrepareResolvesNamesInAnyCase(t *testing.T) {
	q, err := Prepare(activity(t), Spec{Where: "customer = 'ACME' AND AMOUNT > 5 AND State = 'active'", Order: "quantity desc, END_TIME", Columns: []string{"rush", "Amount"}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := q.Filter.String(), "Customer = 'ACME' AND Amount > 5 AND state = 'active'"; got != want {
		t.Errorf("filter %q, want %q", got, want)
	}
	if got, want := q.Order.String(), "Quantity DESC, end_time"; got != want {
		t.Errorf("order %q, want %q", got, want)
	}
	if len(q.Columns) != 2 || q.Columns[0].Name != "Rush" || q.Columns[1].Name != "Amount" {
		t.Errorf("columns %+v", q.Columns)
	}
}

func TestPrepareErrors(t *testing.T) {
	a := activity(t)
	for _, tc := range []struct {
		spec Spec
		want string
	}{
		{Spec{Where: "Custmer = 'x'"}, `filter: at 1: "Custmer" is no item of activity PurchaseOrder, nor instance_id, state, begin_time, end_time, last_modified or events (did you mean Customer?)`},
		{Spec{Where: "Quantity CONTAINS '1'"}, "filter: at 1: CONTAINS does not apply to Quantity (an integer item): use =, !=, IN, NOT IN, IS EMPTY, IS NOT EMPTY, <, <=, >, >=, BETWEEN"},
		{Spec{Where: "Customer IN LAST 2h"}, "at 1: IN LAST does not apply to Customer"},
		{Spec{Where: "Rush > true"}, "at 1: > does not apply to Rush"},
		{Spec{Where: "state < 'b'"}, "at 1: < does not apply to state"},
		{Spec{Where: "Quantity = 2.5"}, "at 12: 2.5 does not fit item Quantity: integer: 2.5 is not a whole number"},
		{Spec{Where: "Quantity = '2'"}, "at 12: Quantity (an integer item) takes a number, found '2'"},
		{Spec{Where: "Amount = 1.005"}, "at 10: 1.005 does not fit item Amount: decimal(12,2): 1.005 has more than 2 digits after the point"},
		{Spec{Where: "Customer = '" + strings.Repeat("x", 41) + "'"}, "text(40): 41 characters, more than the 40 allowed"},
		{Spec{Where: "Received > 'yesterday'"}, "at 12: Received (a milestone item) takes an RFC 3339 time"},
		{Spec{Where: "state = 'done'"}, "takes 'pending', 'active' or 'completed'"},
		{Spec{Where: "Rush = 1"}, "takes true or false"},
		{Spec{Where: "events = 1e999999999"}, "a number within range"},
		{Spec{Where: "Weight = 1e309"}, "float: 1e309 is outside the 64-bit range"},
		{Spec{Where: "Quantity BETWEEN 5 AND 1"}, "the first value is after the second"},
		{Spec{Where: "end_time IN LAST 99999999999999w"}, "longer than bam can count"},
		{Spec{Order: "Amount, amount"}, "order: at 9: Amount is in the order twice"},
		{Spec{Order: "Amont"}, "did you mean Amount?"},
		{Spec{Columns: []string{"Amont"}}, `column "Amont": "Amont" is no item`},
		{Spec{Columns: []string{"state"}}, `column "state": every row has`},
		{Spec{Scope: "archived"}, `scope "archived"`},
	} {
		_, err := Prepare(a, tc.spec)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Prepare(%+v) = %v, want an error with %q", tc.spec, err, tc.want)
		}
	}
}

func TestPrepareAcceptsADateAsMidnightUTC(t *testing.T) {
	q, err := Prepare(activity(t), Spec{Where: "Received >= '2026-11-01'"})
	if err != nil {
		t.Fatal(err)
	}
	got := q.where.cond.values[0].(time.Time)
	if want := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Fatalf("'2026-11-01' = %v, want %v", got, want)
	}
}

func TestCompileKeepsValuesOutOfTheSQL(t *testing.T) {
	hostile := "x'; DROP TABLE bam_instances; --"
	q, err := Prepare(activity(t), Spec{Scope: ScopeActive, Where: "Customer = " + quoteString(hostile) + " OR Customer CONTAINS 'a''b' OR Amount IN (1, 2.5)", Order: "Amount DESC"})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []Dialect{Postgres, SQLite} {
		st, err := q.Compile(d, PageRequest{Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(st.SQL, "DROP") || strings.Contains(st.SQL, "a'b") || strings.Contains(st.SQL, "2.5") {
			t.Errorf("dialect %d: a value is in the SQL: %s", d, st.SQL)
		}
		if len(st.Args) != 4 || st.Args[0] != hostile {
			t.Errorf("dialect %d: args %v", d, st.Args)
		}
		if !strings.Contains(st.SQL, `FROM "purchaseorder_active"`) || !strings.Contains(st.SQL, "LIMIT 11") {
			t.Errorf("dialect %d: %s", d, st.SQL)
		}
	}
	pg, _ := q.Compile(Postgres, PageRequest{})
	if want := `WHERE (("customer" = $1) OR (strpos("customer", $2) > 0) OR ("amount" IN (CAST($3::text AS numeric), CAST($4::text AS numeric)))) ORDER BY "amount" DESC NULLS LAST, "instance_id" COLLATE "C"`; !strings.Contains(pg.SQL, want) {
		t.Errorf("PostgreSQL:\n%s\nwant it to hold\n%s", pg.SQL, want)
	}
	lite, _ := q.Compile(SQLite, PageRequest{})
	if want := `WHERE (("customer" = ?1) OR (instr("customer", ?2) > 0) OR (CAST("amount" AS REAL) IN (CAST(?3 AS REAL), CAST(?4 AS REAL)))) ORDER BY CAST("amount" AS REAL) DESC NULLS LAST, "instance_id"`; !strings.Contains(lite.SQL, want) {
		t.Errorf("SQLite:\n%s\nwant it to hold\n%s", lite.SQL, want)
	}
}

func TestCompileGuardsEmptyFieldsUnderNot(t *testing.T) {
	q, err := Prepare(activity(t), Spec{Where: "NOT Quantity > 1 AND Quantity < 5"})
	if err != nil {
		t.Fatal(err)
	}
	st, _ := q.Compile(Postgres, PageRequest{})
	if want := `(NOT ("quantity" IS NOT NULL AND "quantity" > $1) AND ("quantity" < $2))`; !strings.Contains(st.SQL, want) {
		t.Errorf("SQL %s, want it to hold %s", st.SQL, want)
	}
}

func TestCursorIsRefusedForAnotherQuery(t *testing.T) {
	a := activity(t)
	q, _ := Prepare(a, Spec{Where: "Quantity > 1", Order: "Amount"})
	token := (&cursor{keys: []any{Decimal{Text: "5"}}, id: "PO-1", now: time.Unix(0, 0)}).encode(q)
	if _, err := q.Compile(SQLite, PageRequest{Cursor: token, Limit: 5}); err != nil {
		t.Fatalf("own cursor: %v", err)
	}
	for _, spec := range []Spec{
		{Where: "Quantity > 2", Order: "Amount"},
		{Where: "Quantity > 1", Order: "Amount DESC"},
		{Where: "Quantity > 1", Order: "Amount", Scope: ScopeActive},
		{Where: "Quantity > 1", Order: "Amount", Scope: ScopePending},
	} {
		other, _ := Prepare(a, spec)
		if _, err := other.Compile(SQLite, PageRequest{Cursor: token}); !errors.Is(err, ErrCursor) {
			t.Errorf("cursor of %+v used with %+v: %v, want ErrCursor", q.Filter.String(), spec, err)
		}
	}
	if _, err := q.Compile(SQLite, PageRequest{Cursor: "bm90IGEgY3Vyc29y"}); !errors.Is(err, ErrCursor) {
		t.Errorf("garbage cursor: %v, want ErrCursor", err)
	}
}

// TestPendingScope: the pending instances, which have no view, are the
// all view's under state = 'pending', ANDed with the filter, which the
// query keeps as written (the API echoes it; bam instance list --state
// pending and ?state=pending are the same query).
func TestPendingScope(t *testing.T) {
	a := activity(t)
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	q, err := Prepare(a, Spec{Scope: ScopePending, Where: "Quantity > 1"})
	if err != nil {
		t.Fatal(err)
	}
	if got := q.Filter.String(); got != "Quantity > 1" {
		t.Errorf("the filter is %q, want it as written", got)
	}
	if v := q.view(); !strings.Contains(v, "purchaseorder_all") {
		t.Errorf("view %s, want the all view", v)
	}
	for _, tc := range []struct {
		state    store.InstanceState
		quantity string
		want     bool
	}{
		{store.StatePending, "3", true},
		{store.StatePending, "1", false},
		{store.StateActive, "3", false},
		{store.StateCompleted, "3", false},
	} {
		in := store.Instance{ID: "PO-1", State: tc.state, LastModified: now, Data: map[string]json.RawMessage{"Quantity": json.RawMessage(tc.quantity)}}
		if got := q.Match(in, now); got != tc.want {
			t.Errorf("a %s instance of Quantity %s: Match %v, want %v", tc.state, tc.quantity, got, tc.want)
		}
	}
	all, err := Prepare(a, Spec{Scope: ScopePending})
	if err != nil {
		t.Fatal(err)
	}
	if in := (store.Instance{ID: "PO-2", State: store.StatePending, LastModified: now}); !all.Match(in, now) {
		t.Errorf("no filter: a pending instance does not match")
	}
}

func TestMatch(t *testing.T) {
	a := activity(t)
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	begin := now.Add(-3 * time.Hour)
	in := store.Instance{ID: "PO-1", State: store.StateActive, Begin: &begin, LastModified: now.Add(-time.Hour), Events: 3,
		Data: map[string]json.RawMessage{
			"Customer": json.RawMessage(`"ACME Ltd"`), "Amount": json.RawMessage(`"12.50"`), "Quantity": json.RawMessage(`3`),
			"Rush": json.RawMessage(`false`), "Received": json.RawMessage(`"2026-11-25T11:00:00.000000Z"`),
			"Weight": json.RawMessage(`"heavy"`), // does not fit: empty
		}}
	for _, tc := range []struct {
		where string
		want  bool
	}{
		{"", true},
		{"Customer = 'ACME Ltd'", true},
		{"Customer CONTAINS 'ME L'", true},
		{"Customer STARTS WITH 'ACME'", true},
		{"Customer STARTS WITH 'Ltd'", false},
		{"Customer > 'ACME'", true},
		{"Amount = 12.5", true},
		{"Amount BETWEEN 12.5 AND 13", true},
		{"Amount > 12.5", false},
		{"Quantity IN (1, 3)", true},
		{"Quantity NOT IN (1, 3)", false},
		{"Rush = false", true},
		{"Received IN LAST 90m", true},
		{"Received IN LAST 30m", false},
		{"begin_time IN LAST 3h", true},
		{"end_time IS EMPTY", true},
		{"end_time > '2020-01-01'", false},
		{"NOT end_time > '2020-01-01'", true},
		{"Weight IS EMPTY", true},
		{"Weight != 1", false},
		{"NOT Weight = 1", true},
		{"Shipped IS NOT EMPTY", false},
		{"state = 'active' AND events >= 3", true},
		{"instance_id = 'PO-2' OR NOT (Quantity < 2 OR Rush = true)", true},
		{"last_modified <= '2026-11-25T11:00:00Z'", true},
	} {
		q, err := Prepare(a, Spec{Where: tc.where})
		if err != nil {
			t.Errorf("Prepare(%q): %v", tc.where, err)
			continue
		}
		if got := q.Match(in, now); got != tc.want {
			t.Errorf("Match(%q) = %v, want %v", tc.where, got, tc.want)
		}
	}
}
