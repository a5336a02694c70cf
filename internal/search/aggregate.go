package search

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/bam-dev/bam/internal/definition"
	"github.com/bam-dev/bam/internal/store"
)

// Selection compiles the ids of the instances the query matches, for an
// aggregation of them (store.AggregationReader.Aggregation's of).
func (q *Query) Selection(d Dialect, now time.Time) *store.Selection {
	w := &builder{d: d}
	w.write("SELECT instance_id FROM ", q.view(), " WHERE ")
	w.where(q.where, now.UTC().Truncate(time.Microsecond), false)
	return &store.Selection{SQL: w.b.String(), Args: w.args}
}

// CellFilter is the filter of the instances in one cell of an
// aggregation: its drill-down. row is the cell as store's
// AggregationResult holds it: the state, nil for a cell merged over the
// states, then each dimension's value as text, nil for none), read at
// now. A window keeps the completed instances whose end is in a bucket
// at or after its horizon (WindowHorizon): the filter names that time, so
// that it selects what the cell counted when it was read, in a merged
// cell too (its active and pending instances, and its completed ones
// within the window).
func CellFilter(a definition.Activity, g definition.Aggregation, row []*string, now time.Time) string {
	var terms []string
	if row[0] != nil {
		terms = append(terms, "state = "+quoteString(*row[0]))
	}
	for i, d := range g.Dimensions {
		terms = append(terms, dimensionFilter(a, d, row[1+i])...)
	}
	if g.Window != "" {
		within := "end_time >= " + quoteString(WindowHorizon(g, now).Format(time.RFC3339))
		switch {
		case row[0] == nil:
			terms = append(terms, "(state != 'completed' OR "+within+")")
		case *row[0] == "completed":
			terms = append(terms, within)
		}
	}
	return strings.Join(terms, " AND ")
}

// WindowHorizon is the earliest end a window keeps at now: now less the
// window, down to the bucket the window is kept in
// (definition.WindowBucket), as the store's Horizon computes it.
func WindowHorizon(g definition.Aggregation, now time.Time) time.Time {
	d := g.WindowDuration()
	t := now.UTC().Add(-d)
	switch definition.WindowBucket(d) {
	case definition.Minute:
		return t.Truncate(time.Minute)
	case definition.Hour:
		return t.Truncate(time.Hour)
	}
	return t.Truncate(24 * time.Hour) // UTC days: Truncate counts from a UTC midnight
}

func dimensionFilter(a definition.Activity, d definition.Dimension, v *string) []string {
	if len(d.Progress) > 0 {
		var out []string
		reached := -1
		for i, m := range d.Progress {
			if v != nil && *v == m {
				reached = i
			}
		}
		for i, m := range d.Progress {
			if i == reached {
				out = append(out, fieldString(m)+" IS NOT EMPTY")
			} else if i > reached {
				out = append(out, fieldString(m)+" IS EMPTY")
			}
		}
		return out
	}
	field := fieldString(d.Item)
	if v == nil {
		return []string{field + " IS EMPTY"}
	}
	switch {
	case d.Bucket != "":
		from, err := time.Parse(time.RFC3339Nano, *v)
		if err != nil {
			return []string{field + " = " + quoteString(*v)} // matches nothing: the store wrote no time
		}
		return []string{fmt.Sprintf("%s >= %s AND %s < %s", field, quoteString(from.Format(time.RFC3339)),
			field, quoteString(nextBucket(from, d.Bucket).Format(time.RFC3339)))}
	case len(d.Ranges) > 0:
		i := rangeIndex(*v, d.Ranges)
		bound := func(k int) string { return strconv.FormatFloat(d.Ranges[k], 'f', -1, 64) }
		switch {
		case i == 0:
			return []string{field + " < " + bound(0)}
		case i == len(d.Ranges):
			return []string{field + " >= " + bound(i-1)}
		case i > 0:
			return []string{fmt.Sprintf("%s >= %s AND %s < %s", field, bound(i-1), field, bound(i))}
		}
		return []string{field + " = " + quoteString(*v)}
	}
	for _, it := range a.Items {
		if it.Name != d.Item {
			continue
		}
		switch it.Type {
		case definition.Text:
			return []string{field + " = " + quoteString(*v)}
		case definition.Boolean:
			return []string{field + " = " + strconv.FormatBool(*v == "true" || *v == "1")}
		}
	}
	return []string{field + " = " + *v}
}

// rangeIndex finds which range's label (the aggregation's view's) text is,
// -1 for none.
func rangeIndex(text string, ranges []float64) int {
	for i := 0; i <= len(ranges); i++ {
		if store.RangeLabel(ranges, i) == text {
			return i
		}
	}
	return -1
}

// nextBucket is the start of the bucket after the one starting at t.
func nextBucket(t time.Time, b definition.Bucket) time.Time {
	switch b {
	case definition.Minute:
		return t.Add(time.Minute)
	case definition.Hour:
		return t.Add(time.Hour)
	case definition.Day:
		return t.AddDate(0, 0, 1)
	case definition.Week:
		return t.AddDate(0, 0, 7)
	}
	return t.AddDate(0, 1, 0)
}

// AggregationJSON is an aggregation's cells as bam's JSON shows them (the
// CLI's --format json, the HTTP API): each cell's values typed, and the
// filter of its instances.
type AggregationJSON struct {
	Activity    string               `json:"activity"`
	Aggregation string               `json:"aggregation"`
	View        string               `json:"view"`
	State       string               `json:"state,omitempty"` // the cells' state asked for: "" for every cell
	Where       string               `json:"where,omitempty"` // the filter of the instances aggregated: "" for all
	Columns     []store.ResultColumn `json:"columns"`
	Cells       []map[string]any     `json:"cells"`
	// More: a limit left cells out (the HTTP API's ?limit=).
	More bool `json:"more,omitempty"`
}

// NewAggregationJSON types res's values and adds each cell's drill-down
// filter ("filter"): where (the filter the cells were computed for, ""
// for none) and the cell's own conditions. A merged cell's state is all
// of them.
func NewAggregationJSON(res store.AggregationResult, state, where string) AggregationJSON {
	now := time.Now() // about when the store read the cells: their window's horizon
	out := AggregationJSON{Activity: res.Activity.Name, Aggregation: res.Aggregation.Name,
		View: definition.ViewName(res.Activity.Name, res.Aggregation.Name), State: state, Where: where,
		Columns: res.Columns, Cells: []map[string]any{}, More: res.More}
	for _, row := range res.Rows {
		cell := make(map[string]any, len(row)+1)
		for i, c := range res.Columns {
			cell[c.Name] = typedValue(row[i], c.Kind)
		}
		key := row
		if row[0] != nil && *row[0] == "all" {
			key = append([]*string{nil}, row[1:]...)
		}
		filter := CellFilter(res.Activity, res.Aggregation, key, now)
		if where != "" {
			filter = strings.TrimSuffix("("+where+") AND "+filter, " AND ")
		}
		cell["filter"] = filter
		out.Cells = append(out.Cells, cell)
	}
	return out
}

// typedValue is a value's text as JSON: a number, a boolean, or text.
func typedValue(v *string, kind store.ValueKind) any {
	if v == nil {
		return nil
	}
	switch kind {
	case store.KindInteger, store.KindFloat, store.KindDecimal, store.KindCount, store.KindSum, store.KindSeconds:
		if _, err := strconv.ParseFloat(*v, 64); err == nil {
			return json.Number(*v)
		}
	case store.KindBoolean:
		return *v == "true" || *v == "1"
	}
	return *v
}
