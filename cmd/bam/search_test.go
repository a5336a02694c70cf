package main

import (
	"encoding/csv"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/bam-dev/bam/internal/event"
)

// searchBench is a store with the purchase-order example deployed and
// four purchase orders applied.
func searchBench(t *testing.T) *bench {
	b := migrated(t)
	b.ok("deploy", exampleDefinitions)
	ap := b.applier("src")
	var events = []string{
		`{"activity":"PurchaseOrder","instance":"PO-1","kind":"begin","time":"2026-11-25T10:00:00Z","data":{"Customer":"ACME","Amount":"1200.50","Received":"2026-11-25T10:00:00Z"}}`,
		`{"activity":"PurchaseOrder","instance":"PO-1","kind":"end","time":"2026-11-25T12:00:00Z"}`,
		`{"activity":"PurchaseOrder","instance":"PO-2","kind":"begin","time":"2026-11-25T10:05:00Z","data":{"Customer":"Contoso","Amount":80,"Rush":true}}`,
		`{"activity":"PurchaseOrder","instance":"PO-3","kind":"begin","time":"2026-11-25T10:10:00Z","data":{"Customer":"it's ACME","Amount":5000}}`,
		`{"activity":"PurchaseOrder","instance":"PO-4","kind":"update","time":"2026-11-25T10:15:00Z","data":{"Customer":"ACME"}}`,
	}
	for _, raw := range events {
		ap.apply([]event.Event{mustDecode(t, raw)})
	}
	return b
}

func TestInstanceListWhere(t *testing.T) {
	b := searchBench(t)
	ids := func(r result) []string {
		var out []string
		for _, l := range strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")[1:] {
			if l == "" {
				break
			}
			out = append(out, strings.Fields(l)[0])
		}
		return out
	}
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--where", "Customer = 'ACME'"}, []string{"PO-1", "PO-4"}},
		{[]string{"--where", "customer contains 'ACME'", "--order", "Amount DESC"}, []string{"PO-3", "PO-1", "PO-4"}},
		{[]string{"--where", "Amount > 100", "--state", "active"}, []string{"PO-3"}},
		{[]string{"--where", "Amount > 100", "--state", "completed"}, []string{"PO-1"}},
		{[]string{"--state", "pending", "--where", "Customer STARTS WITH 'AC'"}, []string{"PO-4"}},
		{[]string{"--state", "all", "--order", "Amount"}, []string{"PO-2", "PO-1", "PO-3", "PO-4"}},
		{[]string{"--where", "Rush IS EMPTY OR NOT Rush = true", "--order", "instance_id DESC"}, []string{"PO-4", "PO-3", "PO-1"}},
	} {
		args := append([]string{"instance", "list", "PurchaseOrder"}, tc.args...)
		if got := ids(b.ok(args...)); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("bam %s = %v, want %v", strings.Join(args, " "), got, tc.want)
		}
	}

	r := b.ok("instance", "list", "PurchaseOrder", "--where", "Customer = 'ACME'", "--columns", "customer,Amount")
	lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
	if got := strings.Fields(lines[0]); !reflect.DeepEqual(got, []string{"ID", "STATE", "BEGIN", "END", "LAST", "MODIFIED", "EVENTS", "CUSTOMER", "AMOUNT"}) {
		t.Errorf("header %q", lines[0])
	}
	if got := strings.Fields(lines[1]); got[len(got)-2] != "ACME" || got[len(got)-1] != "1200.50" {
		t.Errorf("row %q", lines[1])
	}
	if got := strings.Fields(lines[2]); got[len(got)-1] != "-" {
		t.Errorf("an empty amount is not shown as -: %q", lines[2])
	}
}

func TestInstanceListPagesWithTheCursor(t *testing.T) {
	b := searchBench(t)
	var seen []string
	args := []string{"instance", "list", "PurchaseOrder", "--order", "Amount DESC", "--limit", "1", "--format", "json"}
	for range 10 {
		var page struct {
			Rows []struct {
				ID    string         `json:"instance_id"`
				Items map[string]any `json:"items"`
			} `json:"rows"`
			Next *string `json:"next"`
		}
		r := b.ok(args...)
		if err := json.Unmarshal([]byte(r.stdout), &page); err != nil {
			t.Fatalf("%v\n%s", err, r.stdout)
		}
		for _, row := range page.Rows {
			seen = append(seen, row.ID)
		}
		if page.Next == nil {
			break
		}
		args = []string{"instance", "list", "PurchaseOrder", "--order", "Amount DESC", "--limit", "1", "--format", "json", "--cursor", *page.Next}
	}
	if want := []string{"PO-3", "PO-1", "PO-2", "PO-4"}; !reflect.DeepEqual(seen, want) {
		t.Errorf("pages gave %v, want %v", seen, want)
	}

	// The table tells the command of the next page; it runs as printed.
	r := b.ok("instance", "list", "PurchaseOrder", "--where", "Customer CONTAINS 'ACME'", "--limit", "2")
	_, cmdLine, ok := strings.Cut(r.stdout, "next page: ")
	if !ok || !strings.Contains(cmdLine, `--where 'Customer CONTAINS '\''ACME'\'''`) {
		t.Fatalf("no next page command:\n%s", r.stdout)
	}
	cursor := strings.Fields(cmdLine)[len(strings.Fields(cmdLine))-1]
	r = b.ok("instance", "list", "PurchaseOrder", "--where", "Customer CONTAINS 'ACME'", "--limit", "2", "--cursor", cursor)
	if strings.Contains(r.stdout, "next page") || !strings.Contains(r.stdout, "PO-4") {
		t.Errorf("last page:\n%s", r.stdout)
	}
	b.fails(exitUsage, "", []string{"instance", "list", "PurchaseOrder", "--where", "Customer = 'ACME'", "--cursor", cursor}, "invalid cursor", "another activity, scope, filter or order")

	// CSV: a header, RFC 3339 times, empty cells, the next cursor on stderr.
	r = b.ok("instance", "list", "PurchaseOrder", "--columns", "Customer,Amount,Rush", "--format", "csv", "--limit", "3")
	recs, err := csv.NewReader(strings.NewReader(r.stdout)).ReadAll()
	if err != nil || len(recs) != 4 {
		t.Fatalf("csv %v:\n%s", err, r.stdout)
	}
	if want := []string{"PO-1", "completed", "2026-11-25T10:00:00Z", "2026-11-25T12:00:00Z", "2026-11-25T12:00:00Z", "2", "ACME", "1200.50", ""}; !reflect.DeepEqual(recs[1], want) {
		t.Errorf("csv row %q, want %q", recs[1], want)
	}
	if !strings.Contains(r.stderr, "next page: bam instance list PurchaseOrder --columns 'Customer,Amount,Rush' --format csv --limit 3 --cursor ") {
		t.Errorf("stderr %q", r.stderr)
	}
}

func TestInstanceListWhereErrors(t *testing.T) {
	b := searchBench(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--where", "Custmer = 'x'"}, `filter: at 1: "Custmer" is no item of activity PurchaseOrder`},
		{[]string{"--where", "Custmer = 'x'"}, "did you mean Customer?"},
		{[]string{"--where", "Customer ="}, `filter: at 11: expected a value after "="`},
		{[]string{"--where", "Quantity CONTAINS '1'"}, "CONTAINS does not apply to Quantity (an integer item)"},
		{[]string{"--order", "Amount; DROP TABLE bam_instances"}, "order: at 7: unexpected ';'"},
		{[]string{"--columns", "Amont"}, "did you mean Amount?"},
		{[]string{"--format", "xml"}, `--format "xml"`},
		{[]string{"--where", "Amount > 1", "--after", "PO-1"}, "page with --cursor"},
		{[]string{"--cursor", "garbage!"}, "invalid cursor"},
	} {
		b.fails(exitUsage, "", append([]string{"instance", "list", "PurchaseOrder"}, tc.args...), tc.want)
	}
	b.fails(exitError, "", []string{"instance", "list", "PurchaseOrdr", "--where", "Amount > 1"}, "did you mean PurchaseOrder?")
}

func TestAggregate(t *testing.T) {
	b := searchBench(t)
	r := b.ok("aggregate", "PurchaseOrder", "ByCustomer")
	for _, want := range []string{"STATE", "CUSTOMER", "RECEIVED_MONTH", "INSTANCES", "ORDERS", "TOTAL", "AVERAGE", "LARGEST",
		"completed  ACME", "2026-11-01T00:00:00Z ", "1200.5", "active     Contoso", "4 cells"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("bam aggregate: no %q in\n%s", want, r.stdout)
		}
	}
	var out struct {
		Cells []map[string]any `json:"cells"`
	}
	r = b.ok("aggregate", "PurchaseOrder", "ByCustomer", "--state", "all", "--format", "json")
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatal(err)
	}
	byCustomer := map[string]any{}
	for _, c := range out.Cells {
		if c["state"] != "all" {
			t.Errorf("merged cell %v", c)
		}
		byCustomer[c["customer"].(string)] = c["instances"]
		// A cell's filter selects exactly its instances.
		list := b.ok("instance", "list", "PurchaseOrder", "--state", "all", "--where", c["filter"].(string), "--format", "json")
		var page struct {
			Rows []any `json:"rows"`
		}
		if err := json.Unmarshal([]byte(list.stdout), &page); err != nil {
			t.Fatal(err)
		}
		if n := c["instances"].(float64); int(n) != len(page.Rows) {
			t.Errorf("cell %v: its filter lists %d instances", c, len(page.Rows))
		}
	}
	if byCustomer["ACME"] != float64(1) || byCustomer["Contoso"] != float64(1) || byCustomer["it's ACME"] != float64(1) {
		t.Errorf("merged cells by customer %v", byCustomer)
	}
	// One cell is "1 cell".
	if r := b.ok("aggregate", "PurchaseOrder", "ByCustomer", "--where", "Customer = 'Contoso'"); !strings.Contains(r.stdout, "\n1 cell (durations") {
		t.Errorf("bam aggregate of one cell:\n%s", r.stdout)
	}
	// --where aggregates the instances it matches, at once.
	r = b.ok("aggregate", "PurchaseOrder", "ByCustomer", "--where", "Amount >= 1000", "--format", "csv")
	rows, err := csv.NewReader(strings.NewReader(r.stdout)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 || rows[0][0] != "state" || rows[0][len(rows[0])-1] != "filter" ||
		!strings.HasPrefix(rows[1][len(rows[1])-1], "(Amount >= 1000) AND state = 'active' AND Customer = 'it''s ACME'") {
		t.Errorf("csv %q", rows)
	}
	for _, tc := range []struct {
		code int
		args []string
		want string
	}{
		{1, []string{"aggregate", "PurchaseOrder", "ByCustomr"}, `has no aggregation "ByCustomr" (did you mean ByCustomer?)`},
		{1, []string{"aggregate", "PurchaseOrdr", "ByCustomer"}, "did you mean PurchaseOrder?"},
		// Aggregations are read from the deployed definitions only: the
		// answer says no more than they tell (before: "no activity is
		// deployed or has instances", untrue of one with instances).
		{1, []string{"aggregate", "Nope", "X"}, `no deployed activity is named "Nope", so it has no aggregations`},
		{2, []string{"aggregate", "PurchaseOrder", "ByCustomer", "--where", "Amont > 1"}, "did you mean Amount?"},
		{2, []string{"aggregate", "PurchaseOrder", "ByCustomer", "--state", "done"}, `--state "done"`},
		{2, []string{"aggregate", "PurchaseOrder", "ByCustomer", "--format", "xml"}, `--format "xml"`},
	} {
		b.fails(tc.code, "", tc.args, tc.want)
	}
}

// TestInstanceListJSONAgainstFormat: --json with --format csv asks for two
// output formats, a usage error naming both (it printed JSON silently);
// given in different ways, the stronger wins (a typed flag over a
// variable); --json --format json is the same format twice.
func TestInstanceListJSONAgainstFormat(t *testing.T) {
	b := searchBench(t)
	list := []string{"instance", "list", "PurchaseOrder"}
	b.fails(exitUsage, "", append(list, "--json", "--format", "csv"), "--json and --format csv ask for two output formats: give one")
	b.fails(exitUsage, "", append(list, "--format", "table", "--json", "--where", "Amount > 100"), "--json and --format table")
	if r := b.ok(append(list, "--json", "--format", "json")...); !strings.HasPrefix(strings.TrimSpace(r.stdout), "{") && !strings.HasPrefix(strings.TrimSpace(r.stdout), "[") {
		t.Errorf("--json --format json printed %q", r.stdout)
	}
	b.env["BAM_FORMAT"] = "csv"
	if r := b.ok(append(list, "--json")...); strings.HasPrefix(r.stdout, "instance_id,") || !json.Valid([]byte(r.stdout)) {
		t.Errorf("--json typed, BAM_FORMAT=csv: printed %q, want JSON", r.stdout)
	}
	delete(b.env, "BAM_FORMAT")
	b.env["BAM_JSON"] = "true"
	if r := b.ok(append(list, "--format", "csv")...); json.Valid([]byte(r.stdout)) {
		t.Errorf("--format csv typed, BAM_JSON=true: printed %q, want CSV", r.stdout)
	}
}
