package definition

import (
	"strings"
	"testing"
)

func mustParse(t *testing.T, src string) File {
	t.Helper()
	f, err := Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestPlan(t *testing.T) {
	deployed := mustParse(t, `activities:
  - name: PurchaseOrder
    items:
      - {name: Received, type: milestone}
      - {name: Customer, type: text, max_length: 100}
      - {name: Amount, type: decimal, precision: 12, scale: 2}
      - {name: Quantity, type: integer}
      - {name: Rush, type: boolean}
      - {name: Note, type: text, max_length: 500}
  - name: Untouched
    items: [{name: m, type: milestone}]
`)
	next := mustParse(t, `activities:
  - name: purchaseorder
    items:
      - {name: Received, type: milestone}
      - {name: Customer, type: text, max_length: 200}
      - {name: Amount, type: decimal, precision: 14, scale: 2}
      - {name: Quantity, type: float}
      - {name: rush, type: boolean}
      - {name: Note, type: text, max_length: 50}
      - {name: Shipped, type: milestone}
  - name: Shipment
    items: [{name: Carrier, type: text, max_length: 40}]
`)
	var got []string
	destructive := 0
	for _, c := range Plan(deployed, next) {
		got = append(got, c.String())
		if c.Destructive() {
			destructive++
		}
	}
	want := []string{
		"widen item purchaseorder.Customer: text(100) → text(200)",
		"widen item purchaseorder.Amount: decimal(12,2) → decimal(14,2)",
		"retype item purchaseorder.Quantity: integer → float",
		"rename item purchaseorder.rush: Rush → rush",
		"retype item purchaseorder.Note: text(500) → text(50)",
		"add item purchaseorder.Shipped: milestone",
		"add activity Shipment",
		"add item Shipment.Carrier: text(40)",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("plan:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if destructive != 3 {
		t.Errorf("%d destructive changes, want 3 (retype, rename, narrowing)", destructive)
	}

	// An item left out of the file is removed; the same file again is no change.
	fewer := mustParse(t, `activities:
  - name: Untouched
    items: [{name: n, type: integer}]
`)
	plan := Plan(deployed, fewer)
	if len(plan) != 2 || plan[1].String() != "remove item Untouched.m (was milestone)" || !plan[1].Destructive() || plan[0].Destructive() {
		t.Fatalf("plan %v", plan)
	}
	if p := Plan(deployed, deployed); len(p) != 0 {
		t.Fatalf("deploying the same file again plans %v", p)
	}
}

func TestPlanIndexes(t *testing.T) {
	deployed := mustParse(t, `activities:
  - name: A
    items:
      - {name: Customer, type: text, max_length: 100, index: true}
      - {name: Amount, type: integer}
      - {name: Gone, type: integer, index: true}
`)
	next := mustParse(t, `activities:
  - name: A
    items:
      - {name: Customer, type: text, max_length: 100}
      - {name: Amount, type: integer, index: true}
      - {name: New, type: milestone, index: true}
  - name: B
    items: [{name: Tracking, type: text, max_length: 64, index: true}]
`)
	var got []string
	for _, c := range Plan(deployed, next) {
		got = append(got, c.String())
		if (c.Kind == AddIndex || c.Kind == DropIndex) && c.Destructive() {
			t.Errorf("%s is destructive; an index never loses data", c)
		}
	}
	want := []string{
		"drop index A.Customer",
		"add index A.Amount",
		"add item A.New: milestone",
		"add index A.New",
		"remove item A.Gone (was integer)",
		"drop index A.Gone",
		"add activity B",
		"add item B.Tracking: text(64)",
		"add index B.Tracking",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("plan:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
