package definition

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

const purchaseOrder = `
# A purchase order, as an analyst would deploy it.
activities:
  - name: PurchaseOrder
    items:
      - {name: Received, type: milestone}
      - {name: Customer, type: text, max_length: 100}
      - {name: Amount,   type: decimal, precision: 12, scale: 2}
      - {name: Quantity, type: integer}
      - {name: Weight,   type: float}
      - {name: Rush,     type: boolean}
      - {name: Total,    type: decimal}
  - name: Shipment
    items:
      - name: Shipped
        type: milestone
`

func TestParse(t *testing.T) {
	f, err := Parse([]byte(purchaseOrder))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Activities) != 2 || f.Activities[0].Name != "PurchaseOrder" || f.Activities[1].Name != "Shipment" {
		t.Fatalf("activities %+v", f.Activities)
	}
	items := f.Activities[0].Items
	var names []string
	for _, it := range items {
		names = append(names, it.Name)
	}
	if got := strings.Join(names, ","); got != "Received,Customer,Amount,Quantity,Weight,Rush,Total" {
		t.Fatalf("items in order %s", got)
	}
	if items[1].MaxLength != 100 || items[2].Precision != 12 || *items[2].Scale != 2 {
		t.Fatalf("options %+v %+v", items[1], items[2])
	}
	if items[6].Precision != DefaultPrecision || *items[6].Scale != DefaultScale {
		t.Fatalf("decimal defaults: %+v", items[6])
	}
}

// TestProblems: every problem is found in one pass, each named by its line,
// activity, item and rule.
func TestProblems(t *testing.T) {
	src := `activities:
  - name: 9Lives
    items:
      - {name: ok, type: integer}
  - name: Order
    items:
      - {name: Amount, type: decimal, precision: 40}
      - {name: amount, type: integer}
      - {name: instance_id, type: text, max_length: 10}
      - {name: Note, type: text}
      - {name: Flag, type: boolean, max_length: 3}
      - {name: Price, type: money}
      - {name: "bad-name", type: float}
      - {name: Qty}
  - name: ORDER
    items:
      - {name: x, type: decimal, precision: 4, scale: 5}
  - name: Empty
    items: []
`
	_, err := Parse([]byte(src))
	var perr *Error
	if !errors.As(err, &perr) {
		t.Fatalf("want *Error, got %v", err)
	}
	want := []string{
		`line 2: activity "9Lives": activity name "9Lives" must start with a letter`,
		`line 7: activity "Order": item "Amount": decimal precision must be between 1 and 38 (got 40)`,
		`line 8: activity "Order": item "amount": defined twice in the activity (also on line 7`,
		`line 9: activity "Order": item "instance_id": the name is reserved`,
		`line 10: activity "Order": item "Note": text needs max_length between 1 and 65535 (got 0)`,
		`line 11: activity "Order": item "Flag": max_length applies to text items only, not boolean`,
		`line 12: activity "Order": item "Price": unknown type "money" (one of milestone, text, integer, float, decimal, boolean)`,
		`line 13: activity "Order": item "bad-name": item name "bad-name" may hold only letters, digits and underscores (found '-')`,
		`line 14: activity "Order": item "Qty": no type`,
		`line 15: activity "ORDER": defined twice (also on line 5`,
		`line 17: activity "ORDER": item "x": decimal scale must be between 0 and the precision 4 (got 5)`,
		`line 18: activity "Empty": no items`,
	}
	if len(perr.Problems) != len(want) {
		t.Errorf("%d problems, want %d:\n%v", len(perr.Problems), len(want), err)
	}
	for i, w := range want {
		if i < len(perr.Problems) && !strings.HasPrefix(perr.Problems[i].String(), w) {
			t.Errorf("problem %d:\n got %s\nwant %s…", i, perr.Problems[i], w)
		}
	}
}

func TestRefused(t *testing.T) {
	for _, tc := range []struct{ name, src, want string }{
		{"empty", ``, "the file is empty"},
		{"no activities", `activities: []`, "no activities"},
		{"unknown field", "activities:\n  - name: A\n    itemz: []\n", `line 3: unknown field "itemz" in an activity`},
		{"misspelt option", "activities:\n  - name: A\n    items:\n      - {name: t, type: text, maxlength: 3}\n", `line 4: unknown field "maxlength" in an item`},
		{"syntax", "activities: [", "invalid definition"},
		{"two documents", "activities:\n  - {name: A, items: [{name: m, type: milestone}]}\n---\nactivities: []\n", "more than one YAML document"},
		{"long activity name", "activities:\n  - name: " + strings.Repeat("a", MaxActivityName+1) + "\n    items: [{name: m, type: milestone}]\n", "more than the limit of 48"},
		{"not a list", "activities: PurchaseOrder\n", "line 1: expected a list of activities, found text"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.src))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestErrorListsFiftyProblems(t *testing.T) {
	src := "activities:\n" + strings.Repeat("  - {name: A, items: [{name: m, type: milestone}]}\n", 80)
	_, err := Parse([]byte(src))
	var perr *Error
	if !errors.As(err, &perr) || len(perr.Problems) != 79 {
		t.Fatalf("want 79 problems, got %v", err)
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "invalid definition (79 problems):") || !strings.Contains(msg, "… and 29 more") || strings.Count(msg, "defined twice") != 50 {
		t.Fatalf("message:\n%s", msg)
	}
}

func TestParseIndex(t *testing.T) {
	f := mustParse(t, `activities:
  - name: A
    items:
      - {name: Customer, type: text, max_length: 10, index: true}
      - {name: Amount, type: integer}
`)
	if !f.Activities[0].Items[0].Index || f.Activities[0].Items[1].Index {
		t.Fatalf("index flags = %v, %v; want true, false", f.Activities[0].Items[0].Index, f.Activities[0].Items[1].Index)
	}
	_, err := Parse([]byte(`activities:
  - name: A
    items:
      - {name: Customer, type: text, max_length: 10, index: maybe}
`))
	if err == nil || !strings.Contains(err.Error(), "maybe") {
		t.Fatalf("index: maybe = %v, want an error naming the value", err)
	}
}

func TestActivityNamesReservedPrefix(t *testing.T) {
	_, err := Parse([]byte("activities:\n  - name: BAM_instances\n    items: [{name: X, type: integer}]\n"))
	if err == nil || !strings.Contains(err.Error(), `activity names starting with "bam_" are reserved`) {
		t.Fatalf("activity BAM_instances = %v, want the reserved prefix named", err)
	}
	mustParse(t, "activities:\n  - name: bamboo\n    items: [{name: X, type: integer}]\n")
}

// TestShapeProblemsWithTheOthers: a problem of the file's shape is said in
// the file's words (no Go type names) and reported with every other
// problem at once, not alone until it is fixed.
func TestShapeProblemsWithTheOthers(t *testing.T) {
	_, err := Parse([]byte("activities:\n  - name: PO\n    items: {a: 1}\n  - name: X\n    items:\n      - {name: A, type: bogus}\n      - {name: B, type: text, max_length: abc}\n"))
	var de *Error
	if !errors.As(err, &de) {
		t.Fatalf("Parse = %v, want an *Error", err)
	}
	var got []string
	for _, p := range de.Problems {
		got = append(got, p.String())
		if strings.Contains(p.String(), "definition.") || strings.Contains(p.String(), "!!") {
			t.Errorf("a problem speaks Go or YAML tags: %s", p)
		}
	}
	for _, want := range []string{
		"line 3: expected a list of items, found a mapping",
		`line 6: activity "X": item "A": unknown type "bogus"`,
		"line 7: expected a number, found text (abc)",
	} {
		if !slices.ContainsFunc(got, func(s string) bool { return strings.HasPrefix(s, want) }) {
			t.Errorf("problems %q lack %q", got, want)
		}
	}
	if len(got) != 3 {
		t.Errorf("problems = %q; want those 3 (PO's items, which could not be read, are not reported again)", got)
	}
}
