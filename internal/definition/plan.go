package definition

import (
	"fmt"
	"reflect"
	"strings"
)

// ChangeKind is what a deployment does to one activity or item.
type ChangeKind string

// The kinds of change. Adding, widening and indexing never lose data; the
// others may, and a deployment makes them only when forced (and, for an
// item, only when asked to even though the item holds data). An index
// changes how fast the views answer and how fast instances are written,
// never what they hold.
const (
	AddActivity ChangeKind = "add activity"
	AddItem     ChangeKind = "add item"
	WidenItem   ChangeKind = "widen item" // a longer text, a decimal with more digits before the point
	RemoveItem  ChangeKind = "remove item"
	RetypeItem  ChangeKind = "retype item" // any other change of type or options
	RenameItem  ChangeKind = "rename item" // the same name in another case
	AddIndex    ChangeKind = "add index"   // index: true on an item that had none
	DropIndex   ChangeKind = "drop index"  // index: true taken off an item, or an indexed item removed
	// The aggregations' cells are derived from the instances: adding or
	// changing one builds its cells from them, removing one drops its
	// view and cells and nothing else.
	AddAggregation    ChangeKind = "add aggregation"
	ChangeAggregation ChangeKind = "rebuild aggregation" // its dimensions, measures or window, or the type of an item it reads, change
	RemoveAggregation ChangeKind = "remove aggregation"
	// Alerts read the instances and aggregations and change nothing in
	// them; removing one clears its open firings and keeps its history.
	AddAlert    ChangeKind = "add alert"
	ChangeAlert ChangeKind = "change alert"
	RemoveAlert ChangeKind = "remove alert"
)

// Change is one step of a deployment plan.
type Change struct {
	Kind     ChangeKind
	Activity string
	Item     string // empty for an activity; an aggregation's name for its changes
	From, To string // the item's type before and after, as Describe writes it
}

// Destructive reports whether the change may lose data.
func (c Change) Destructive() bool {
	switch c.Kind {
	case RemoveItem, RetypeItem, RenameItem:
		return true
	}
	return false
}

func (c Change) String() string {
	var b strings.Builder
	b.WriteString(string(c.Kind))
	fmt.Fprintf(&b, " %s", c.Activity)
	if c.Item != "" {
		fmt.Fprintf(&b, ".%s", c.Item)
	}
	switch {
	case c.Kind == RemoveAggregation:
		fmt.Fprintf(&b, " (drops its view %s and its cells; the instances stay)", ViewName(c.Activity, c.Item))
	case c.From != "" && c.To != "":
		fmt.Fprintf(&b, ": %s → %s", c.From, c.To)
	case c.To != "":
		fmt.Fprintf(&b, ": %s", c.To)
	case c.From != "":
		fmt.Fprintf(&b, " (was %s)", c.From)
	}
	return b.String()
}

// Describe writes an item's type with its options: "text(100)",
// "decimal(12,2)", "milestone".
func (it Item) Describe() string {
	switch it.Type {
	case Text:
		return fmt.Sprintf("text(%d)", it.MaxLength)
	case Decimal:
		scale := 0
		if it.Scale != nil {
			scale = *it.Scale
		}
		return fmt.Sprintf("decimal(%d,%d)", it.Precision, scale)
	}
	return string(it.Type)
}

// Plan returns the changes that deploying next over deployed makes, in the
// order of next, then the removals in the order of deployed. Names match
// without regard to case. An activity deployed but absent from next is
// left alone: a file deploys what it holds, and `bam activity remove`
// removes an activity.
func Plan(deployed, next File) []Change {
	have := map[string]Activity{}
	for _, a := range deployed.Activities {
		have[strings.ToLower(a.Name)] = a
	}
	var out []Change
	for _, a := range next.Activities {
		old, ok := have[strings.ToLower(a.Name)]
		if !ok {
			out = append(out, Change{Kind: AddActivity, Activity: a.Name})
			for _, it := range a.Items {
				out = append(out, Change{Kind: AddItem, Activity: a.Name, Item: it.Name, To: it.Describe()})
				if it.Index {
					out = append(out, Change{Kind: AddIndex, Activity: a.Name, Item: it.Name})
				}
			}
			out = append(out, planAggregations(Activity{}, a)...)
			out = append(out, planAlerts(Activity{}, a)...)
			continue
		}
		out = append(out, planItems(old, a)...)
		out = append(out, planAggregations(old, a)...)
		out = append(out, planAlerts(old, a)...)
	}
	return out
}

// planAggregations lists the aggregations a deployment of next over old
// adds, rebuilds and removes. One is rebuilt when it changes, or when an
// item it reads changes type (its cells would hold values of the old one).
func planAggregations(old, next Activity) []Change {
	var out []Change
	for _, g := range next.Aggregations {
		prev, ok := old.Aggregation(g.Name)
		switch {
		case !ok:
			out = append(out, Change{Kind: AddAggregation, Activity: next.Name, Item: g.Name})
		case !reflect.DeepEqual(aggregationShape(old, prev), aggregationShape(next, g)):
			out = append(out, Change{Kind: ChangeAggregation, Activity: next.Name, Item: g.Name})
		}
	}
	for _, g := range old.Aggregations {
		if _, kept := next.Aggregation(g.Name); !kept {
			out = append(out, Change{Kind: RemoveAggregation, Activity: next.Name, Item: g.Name})
		}
	}
	return out
}

// aggregationShape is what an aggregation's cells depend on: its
// definition and the types of the items it reads.
func aggregationShape(a Activity, g Aggregation) []string {
	g.line = 0 // where it was read from is not what it is
	shape := []string{fmt.Sprintf("%#v", g)}
	for _, name := range g.ItemsRead() {
		if it, ok := a.aggregatedItem(name); ok {
			shape = append(shape, it.Name+" "+it.Describe())
		}
	}
	return shape
}

func planItems(old, next Activity) []Change {
	was := map[string]Item{}
	for _, it := range old.Items {
		was[strings.ToLower(it.Name)] = it
	}
	kept := map[string]bool{}
	var out []Change
	for _, it := range next.Items {
		key := strings.ToLower(it.Name)
		prev, ok := was[key]
		if !ok {
			out = append(out, Change{Kind: AddItem, Activity: next.Name, Item: it.Name, To: it.Describe()})
			if it.Index {
				out = append(out, Change{Kind: AddIndex, Activity: next.Name, Item: it.Name})
			}
			continue
		}
		kept[key] = true
		if prev.Name != it.Name {
			out = append(out, Change{Kind: RenameItem, Activity: next.Name, Item: it.Name, From: prev.Name, To: it.Name})
		}
		from, to := prev.Describe(), it.Describe()
		switch {
		case from == to:
		case widens(prev, it):
			out = append(out, Change{Kind: WidenItem, Activity: next.Name, Item: it.Name, From: from, To: to})
		default:
			out = append(out, Change{Kind: RetypeItem, Activity: next.Name, Item: it.Name, From: from, To: to})
		}
		switch {
		case it.Index && !prev.Index:
			out = append(out, Change{Kind: AddIndex, Activity: next.Name, Item: it.Name})
		case !it.Index && prev.Index:
			out = append(out, Change{Kind: DropIndex, Activity: next.Name, Item: it.Name})
		}
	}
	for _, it := range old.Items {
		if !kept[strings.ToLower(it.Name)] {
			out = append(out, Change{Kind: RemoveItem, Activity: next.Name, Item: it.Name, From: it.Describe()})
			if it.Index {
				out = append(out, Change{Kind: DropIndex, Activity: next.Name, Item: it.Name})
			}
		}
	}
	return out
}

// widens reports whether every value of a fits b: a longer text, or a
// decimal with the same scale and more digits.
func widens(a, b Item) bool {
	switch {
	case a.Type != b.Type:
		return false
	case a.Type == Text:
		return b.MaxLength >= a.MaxLength
	case a.Type == Decimal:
		return a.Scale != nil && b.Scale != nil && *a.Scale == *b.Scale && b.Precision >= a.Precision
	}
	return false
}
