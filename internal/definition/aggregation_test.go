package definition

import (
	"reflect"
	"strings"
	"testing"
)

const aggregated = `activities:
  - name: PurchaseOrder
    items:
      - {name: Received,  type: milestone}
      - {name: Approved,  type: milestone}
      - {name: Shipped,   type: milestone}
      - {name: Customer,  type: text, max_length: 100}
      - {name: Amount,    type: decimal, precision: 12, scale: 2}
    aggregations:
      - name: ByCustomer
        dimensions:
          - {item: Customer}
          - {item: Received, bucket: month}
          - {item: Amount, ranges: [100, 1000.5, 10000]}
          - {name: stage, progress: [Received, Approved, Shipped]}
          - {item: end_time, bucket: week}
        measures:
          - {name: total,   function: sum, item: Amount}
          - {name: largest, function: max, item: Amount}
          - {name: orders,  function: count}
          - {name: to_ship, function: avg, from: Received, to: Shipped}
        window: 7d
`

func TestAggregationsRoundTrip(t *testing.T) {
	f := mustParse(t, aggregated)
	g := f.Activities[0].Aggregations[0]
	if g.WindowDuration().Hours() != 168 || len(g.Dimensions) != 5 || g.Dimensions[3].Column() != "stage" ||
		g.Dimensions[1].Column() != "received_month" || g.Dimensions[4].Column() != "end_time_week" {
		t.Fatalf("aggregation %+v", g)
	}
	roundTrip(t, f)
}

func TestAggregationProblems(t *testing.T) {
	src := `activities:
  - name: PurchaseOrder
    items:
      - {name: Received, type: milestone}
      - {name: Customer, type: text, max_length: 100}
      - {name: Amount,   type: integer}
    aggregations:
      - name: all
        dimensions:
          - {item: Custmer}
          - {item: Received}
          - {item: Customer, bucket: day}
          - {item: Amount, ranges: [10, 5]}
          - {progress: [Received, Customer]}
        measures:
          - {name: Customer, function: sum, item: Customer}
          - {name: x, function: avg, from: Received, to: Received}
          - {name: y, function: median, item: Amount}
          - {name: instances, function: count}
        window: soon
      - name: ThisNameIsLongEnoughToPushTheViewNamePastSixtyThreeBytes
        measures:
          - {name: n, function: count}
`
	_, err := Parse([]byte(src))
	if err == nil {
		t.Fatal("parsed")
	}
	for _, want := range []string{
		`aggregation "all": the name is taken by the activity's own views`,
		`dimension 1: no item "Custmer" in the activity (did you mean Customer?)`,
		`dimension 2: Received is a time: give it a bucket (minute, hour, day, week, month)`,
		`dimension 3: a bucket applies to a milestone, begin_time or end_time, not Customer (text)`,
		`dimension 4: ranges must ascend (5 after 10)`,
		`dimension 5: progress: Customer is text, not a milestone`,
		`sum of Customer: Customer is text, not a number`,
		`from and to are the same milestone`,
		`unknown function "median" (one of count, sum, avg, min, max)`,
		`measure 4 (instances): its column "instances" is also bam's own column`,
		`window: "soon" is not a duration`,
		`its view "purchaseorder_thisnameislongenoughtopushtheviewnamepastsixtythreebytes" would be 70 bytes`,
		"line 8:",
		"line 21:",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
}

func TestAggregationPlan(t *testing.T) {
	old := mustParse(t, aggregated)
	// Retyping an item an aggregation reads rebuilds it; adding one adds
	// it; leaving one out removes it (and says what that drops).
	next := mustParse(t, strings.Replace(strings.Replace(aggregated, "precision: 12, scale: 2", "precision: 14, scale: 3", 1),
		"        window: 7d\n", "        window: 7d\n      - name: Plain\n        measures:\n          - {name: n, function: count}\n", 1))
	var got []string
	for _, c := range Plan(old, next) {
		got = append(got, c.String())
	}
	want := []string{"retype item PurchaseOrder.Amount: decimal(12,2) → decimal(14,3)", "rebuild aggregation PurchaseOrder.ByCustomer", "add aggregation PurchaseOrder.Plain"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("plan %q, want %q", got, want)
	}
	var removed []string
	for _, c := range Plan(next, old) {
		if c.Kind == RemoveAggregation {
			removed = append(removed, c.String())
			if c.Destructive() {
				t.Errorf("%s is destructive: the cells come back from the instances", c)
			}
		}
	}
	if len(removed) != 1 || removed[0] != "remove aggregation PurchaseOrder.Plain (drops its view purchaseorder_plain and its cells; the instances stay)" {
		t.Fatalf("removals %q", removed)
	}
}
