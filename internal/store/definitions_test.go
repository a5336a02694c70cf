package store

import (
	"strings"
	"testing"

	"github.com/bam-dev/bam/internal/definition"
)

func TestIndexName(t *testing.T) {
	if got := IndexName("PurchaseOrder", "Customer"); got != "bam_ix_purchaseorder_customer" {
		t.Errorf("IndexName = %q", got)
	}
	long := IndexName(strings.Repeat("A", 48), strings.Repeat("b", 63))
	other := IndexName(strings.Repeat("A", 48), strings.Repeat("b", 62)+"c")
	if len(long) > 63 || long == other || !strings.HasPrefix(long, "bam_ix_aaa") {
		t.Errorf("long names: %q and %q; want distinct, at most 63 bytes", long, other)
	}
}

func TestIndexChanges(t *testing.T) {
	parse := func(src string) definition.Activity {
		t.Helper()
		f, err := definition.Parse([]byte("activities:\n  - name: A\n    items:\n" + src))
		if err != nil {
			t.Fatal(err)
		}
		return f.Activities[0]
	}
	prev := parse(`      - {name: Kept, type: integer, index: true}
      - {name: Retyped, type: integer, index: true}
      - {name: Renamed, type: integer, index: true}
      - {name: Unindexed, type: integer, index: true}
      - {name: Removed, type: integer, index: true}
      - {name: Plain, type: integer}
`)
	next := parse(`      - {name: Kept, type: integer, index: true}
      - {name: Retyped, type: float, index: true}
      - {name: renamed, type: integer, index: true}
      - {name: Unindexed, type: integer}
      - {name: Plain, type: integer, index: true}
`)
	names := func(items []definition.Item) string {
		var out []string
		for _, it := range items {
			out = append(out, it.Name)
		}
		return strings.Join(out, ",")
	}
	v := ViewSQL{Item: func(it definition.Item) string { return it.Name + " as " + it.Describe() }}
	drop, create := v.indexChanges(&prev, next)
	if got := names(drop); got != "Retyped,Renamed,Unindexed,Removed" {
		t.Errorf("drop %s", got)
	}
	if got := names(create); got != "Retyped,renamed,Plain" {
		t.Errorf("create %s", got)
	}
	// An index whose expression stays is kept: a longer text on a store
	// whose text expression ignores the length.
	text := ViewSQL{Item: func(it definition.Item) string { return it.Name + " " + string(it.Type) }}
	short, long := parse("      - {name: C, type: text, max_length: 10, index: true}\n"), parse("      - {name: C, type: text, max_length: 20, index: true}\n")
	if drop, create := text.indexChanges(&short, long); len(drop)+len(create) != 0 {
		t.Errorf("widening an indexed text rebuilds its index: drop %v, create %v", drop, create)
	}
	drop, create = v.indexChanges(nil, next)
	if len(drop) != 0 || names(create) != "Kept,Retyped,renamed,Plain" {
		t.Errorf("new activity: drop %v, create %s", drop, names(create))
	}
}

func TestViewClashes(t *testing.T) {
	deployed := []DeployedActivity{{Activity: definition.Activity{Name: "Order_Line", Items: []definition.Item{{Name: "x", Type: definition.Integer}}}}}
	f, err := definition.Parse([]byte(`activities:
  - name: Order
    items:
      - {name: x, type: integer}
    aggregations:
      - name: Line_all
        measures:
          - {name: n, function: count}
`))
	if err != nil {
		t.Fatal(err)
	}
	_, err = PlanDeployment(deployed, f)
	if err == nil || !strings.Contains(err.Error(), "order_line_all") {
		t.Fatalf("PlanDeployment: %v, want the clash of order_line_all named", err)
	}
}
