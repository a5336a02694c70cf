package definition

import (
	"reflect"
	"strings"
	"testing"
)

func TestFormatRoundTrip(t *testing.T) {
	f := mustParse(t, `activities:
  - name: PurchaseOrder
    items:
      - {name: Received, type: milestone}
      - {name: Customer, type: text, max_length: 100, index: true}
      - {name: Amount, type: decimal, precision: 12, scale: 2}
      - {name: Plain, type: decimal}
      - {name: Quantity, type: integer}
      - {name: Weight, type: float}
      - {name: Rush, type: boolean, index: true}
    aggregations:
      - name: ByCustomer
        dimensions: [{item: Customer}]
        measures: [{name: total, function: sum, item: Amount}]
    alerts:
      - name: Big
        where: "Amount > 10000 AND Customer = 'a: \"quoted\" #1'"
        message: "{Customer}: {Amount} — #1"
        severity: critical
        subscribers:
          - {webhook: "https://example.com/hook?token=a&b=c", secret_env: HOOK_SECRET}
          - {email: ops@example.com}
      - name: Busy
        aggregation: ByCustomer
        state: active
        measure: total
        below: -2.5
  - name: "Yes"
    items:
      - {name: "null", type: text, max_length: 5}
      - {name: "Off", type: boolean}
`)
	out := roundTrip(t, f)
	// Defaults are written out: an export says exactly what is deployed.
	if !strings.Contains(string(out), "{name: Plain, type: decimal, precision: 18, scale: 4}") {
		t.Errorf("defaults missing from the export:\n%s", out)
	}
	if !strings.Contains(string(out), "{name: Customer, type: text, max_length: 100, index: true}") {
		t.Errorf("index flag missing from the export:\n%s", out)
	}
}

// strip forgets the line numbers, which Format does not keep.
func strip(f File) File {
	out := File{}
	for _, a := range f.Activities {
		a.line = 0
		items := make([]Item, len(a.Items))
		for i, it := range a.Items {
			it.line = 0
			items[i] = it
		}
		a.Items = items
		aggs := make([]Aggregation, len(a.Aggregations))
		for i, g := range a.Aggregations {
			g.line = 0
			aggs[i] = g
		}
		if len(aggs) == 0 {
			aggs = nil
		}
		a.Aggregations = aggs
		var alerts []Alert
		for _, al := range a.Alerts {
			al.line = 0
			alerts = append(alerts, al)
		}
		a.Alerts = alerts
		out.Activities = append(out.Activities, a)
	}
	return out
}

// roundTrip formats f, checks that Parse reads it back as f and that
// deploying it over f changes nothing, and returns it.
func roundTrip(t *testing.T, f File) []byte {
	t.Helper()
	out := Format(f)
	back, err := Parse(out)
	if err != nil {
		t.Fatalf("Parse(Format(f)): %v\n%s", err, out)
	}
	if got, want := strip(back), strip(f); !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip changed the file:\n%+v\nwant\n%+v\nformatted:\n%s", got, want, out)
	}
	if p := Plan(f, back); len(p) != 0 {
		t.Fatalf("round trip plans changes: %v", p)
	}
	return out
}
