package store

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/bam-dev/bam/internal/definition"
	"github.com/bam-dev/bam/internal/suggest"
)

// AggregationReader reads aggregations. Both drivers embed an
// AggregationAccess, which implements it.
type AggregationReader interface {
	// Aggregation reads the cells of an activity's aggregation as its
	// view shows them, in the order of the state and the dimensions.
	// Names match without regard to case; an unknown one is an error
	// wrapping ErrNotFound that names the closest.
	Aggregation(ctx context.Context, activity, name string, q AggregationQuery) (AggregationResult, error)
	// VerifyAggregations recomputes every deployed aggregation from the
	// instances and returns an error describing every cell that differs
	// from what the store keeps (nil when all are equal).
	VerifyAggregations(ctx context.Context) error
	// PurgeAggregations deletes the buckets of windowed aggregations that
	// left their window. The nodes run it with the activities' windows.
	PurgeAggregations(ctx context.Context) error
}

// Selection is a query that selects instance ids (one column) of an
// activity, and its arguments, numbered from 1 in the store's dialect.
type Selection struct {
	SQL  string
	Args []any
}

// AggregationQuery says which cells Aggregation reads.
type AggregationQuery struct {
	// State keeps the cells of one state of the instances (pending,
	// active, completed); "all" merges every state into one row per
	// dimension values; "" keeps every cell, with its state.
	State string
	// Of, when set, has the cells computed at once from the instances
	// whose ids it selects, rather than read from those the store keeps:
	// an aggregation of the instances a filter matches, which costs a
	// read of each of them.
	Of *Selection
	// Limit, when above 0, reads at most that many cells, in their order
	// (state, then the dimensions); More says when there were more.
	Limit int
	// Offset, with Limit, skips that many cells first (the alerts read a
	// large aggregation a page a round).
	Offset int
}

// AggregationResult is an aggregation's cells.
type AggregationResult struct {
	Activity    definition.Activity
	Aggregation definition.Aggregation
	// More: the query's Limit left cells out.
	More    bool
	Columns []ResultColumn
	// Rows hold each column's value as text (nil for NULL): times as
	// RFC 3339 UTC, numbers as the store writes them.
	Rows [][]*string
}

// ResultColumn is a column of a result, and the kind of its values.
type ResultColumn struct {
	Name string    `json:"name"`
	Kind ValueKind `json:"kind"`
}

// AggregationAccess implements AggregationReader through a driver's Query
// and Exec.
type AggregationAccess struct {
	Query Query
	Exec  func(ctx context.Context, sql string) error
	SQL   AggregationSQL
	// Text writes an expression of kind as text for reading: a time as
	// RFC 3339 UTC.
	Text func(expr string, kind ValueKind) string
	// Definitions reads the deployed activities.
	Deployed func(ctx context.Context) ([]DeployedActivity, int64, error)
}

// Columns returns the columns of m's view, in order.
func (m AggModel) Columns() []ResultColumn {
	cols := []ResultColumn{{"state", KindText}}
	for i, d := range m.Aggregation.Dimensions {
		kind := m.Dims[i].Kind
		if len(d.Ranges) > 0 {
			kind = KindText
		}
		cols = append(cols, ResultColumn{d.Column(), kind})
	}
	cols = append(cols, ResultColumn{"instances", KindCount})
	for _, ms := range m.Aggregation.Measures {
		kind := KindFloat
		switch {
		case ms.Function == definition.Count:
			kind = KindCount
		case ms.Duration():
			kind = KindSeconds
		case ms.Function == definition.Avg:
		default:
			if it, ok := itemOf(m.Activity, ms.Item); ok {
				kind = itemKind(it)
			}
		}
		cols = append(cols, ResultColumn{strings.ToLower(ms.Name), kind})
	}
	return cols
}

func itemOf(a definition.Activity, name string) (definition.Item, bool) {
	for _, it := range a.Items {
		if it.Name == name {
			return it, true
		}
	}
	return definition.Item{}, false
}

// find returns the deployed activity and aggregation named.
func (r AggregationAccess) find(ctx context.Context, activity, name string) (definition.Activity, definition.Aggregation, error) {
	deployed, _, err := r.Deployed(ctx)
	if err != nil {
		return definition.Activity{}, definition.Aggregation{}, err
	}
	a, err := FindActivity(deployed, activity)
	if err != nil {
		names := make([]string, len(deployed))
		for i, d := range deployed {
			names[i] = d.Name
		}
		return definition.Activity{}, definition.Aggregation{}, &NotDeployedError{Name: activity, Closest: suggest.Closest(activity, names), Lacks: "aggregations"}
	}
	g, ok := a.Aggregation(name)
	if !ok {
		var names []string
		for _, g := range a.Aggregations {
			names = append(names, g.Name)
		}
		return definition.Activity{}, definition.Aggregation{}, &NoAggregationError{Activity: a.Name, Name: name, Known: names}
	}
	return a.Activity, g, nil
}

// NoAggregationError is an aggregation that the activity does not have.
// It is ErrNotFound.
type NoAggregationError struct {
	Activity, Name string
	Known          []string // the activity's aggregations
}

func (e *NoAggregationError) Error() string {
	known := "it has none: declare them in its definition (docs/QUERY.md)"
	if len(e.Known) > 0 {
		known = "it has " + strings.Join(e.Known, ", ")
	}
	return fmt.Sprintf("activity %s has no aggregation %q%s (%s)", e.Activity, e.Name, suggest.DidYouMean(e.Name, e.Known), known)
}

func (e *NoAggregationError) Is(target error) bool { return target == ErrNotFound }

// Aggregation implements AggregationReader.
func (r AggregationAccess) Aggregation(ctx context.Context, activity, name string, q AggregationQuery) (AggregationResult, error) {
	switch q.State {
	case "", "all", string(StatePending), string(StateActive), string(StateCompleted):
	default:
		return AggregationResult{}, fmt.Errorf("state %q: use pending, active, completed or all", q.State)
	}
	a, g, err := r.find(ctx, activity, name)
	if err != nil {
		return AggregationResult{}, err
	}
	m := r.SQL.Model(a, g)
	res := AggregationResult{Activity: a, Aggregation: g, Columns: m.Columns()}
	merged := q.State == "all"
	var (
		sel, order []string
		src        string
		args       []any
	)
	for i, c := range res.Columns {
		col := Ident(c.Name)
		if q.Of != nil {
			col = fmt.Sprintf("c%d", i)
		}
		sel = append(sel, r.Text("x."+col, c.Kind))
		if i <= len(g.Dimensions) {
			order = append(order, "x."+col)
		}
	}
	switch {
	case q.Of != nil:
		src = "(" + r.SQL.RecomputeSQL(m, "instance_id IN ("+q.Of.SQL+")", merged) + ")"
		args = q.Of.Args
	default:
		src = "(" + r.SQL.SelectCells(m, merged) + ")"
	}
	where := ""
	if q.State != "" && !merged {
		where = " WHERE " + order[0] + " = " + Literal(q.State) // order[0] is the state column
	}
	limit := ""
	if q.Limit > 0 {
		limit = fmt.Sprintf(" LIMIT %d", q.Limit+1) // one more: are there more?
		if q.Offset > 0 {
			limit += fmt.Sprintf(" OFFSET %d", q.Offset)
		}
	}
	res.Rows, err = r.textRows(ctx, fmt.Sprintf("SELECT %s FROM %s x%s ORDER BY %s%s", strings.Join(sel, ", "), src, where, strings.Join(order, ", "), limit), len(sel), args...)
	if err != nil {
		return AggregationResult{}, fmt.Errorf("read aggregation %s.%s: %w", a.Name, g.Name, err)
	}
	if q.Limit > 0 && len(res.Rows) > q.Limit {
		res.Rows, res.More = res.Rows[:q.Limit], true
	}
	return res, nil
}

// textRows runs sql, whose n columns are text, and returns its rows.
func (r AggregationAccess) textRows(ctx context.Context, sql string, n int, args ...any) ([][]*string, error) {
	var out [][]*string
	err := r.Query(ctx, func(rows Rows) error {
		for rows.Next() {
			row := make([]*string, n)
			dest := make([]any, n)
			for i := range row {
				dest[i] = &row[i]
			}
			if err := rows.Scan(dest...); err != nil {
				return err
			}
			out = append(out, row)
		}
		return rows.Err()
	}, sql, args...)
	return out, err
}

// VerifyAggregations implements AggregationReader.
func (r AggregationAccess) VerifyAggregations(ctx context.Context) error {
	deployed, _, err := r.Deployed(ctx)
	if err != nil {
		return err
	}
	var problems []string
	for _, a := range deployed {
		for _, g := range a.Aggregations {
			m := r.SQL.Model(a.Activity, g)
			cols := m.Columns()
			kept, err := r.viewText(ctx, m, cols)
			if err != nil {
				return fmt.Errorf("read aggregation %s.%s: %w", a.Name, g.Name, err)
			}
			sel := make([]string, len(cols))
			for i, c := range cols {
				sel[i] = r.Text(fmt.Sprintf("c%d", i), c.Kind)
			}
			recomputed, err := r.textRows(ctx, fmt.Sprintf("SELECT %s FROM (%s) AS x",
				strings.Join(sel, ", "), r.SQL.RecomputeSQL(m, "", false)), len(cols))
			if err != nil {
				return fmt.Errorf("recompute aggregation %s.%s: %w", a.Name, g.Name, err)
			}
			for _, p := range compareCells(cols, 1+len(g.Dimensions), kept, recomputed) {
				problems = append(problems, fmt.Sprintf("%s.%s: %s", a.Name, g.Name, p))
			}
		}
	}
	if len(problems) > 0 {
		if len(problems) > 20 {
			problems = append(problems[:20], fmt.Sprintf("… and %d more", len(problems)-20))
		}
		return &AggregationMismatchError{Cells: problems}
	}
	return nil
}

// AggregationMismatchError is VerifyAggregations' answer when cells differ
// from the recomputation (any other error is one of reading them).
type AggregationMismatchError struct {
	Cells []string // one line per cell that differs, at most 21
}

func (e *AggregationMismatchError) Error() string {
	return "aggregations differ from a recomputation from the instances:\n  " + strings.Join(e.Cells, "\n  ")
}

func (r AggregationAccess) viewText(ctx context.Context, m AggModel, cols []ResultColumn) ([][]*string, error) {
	sel := make([]string, len(cols))
	for i, c := range cols {
		sel[i] = r.Text(Ident(c.Name), c.Kind)
	}
	return r.textRows(ctx, fmt.Sprintf("SELECT %s FROM %s", strings.Join(sel, ", "), Ident(m.View)), len(cols))
}

// compareCells compares two sets of cells keyed by their first keys
// columns: the same keys, and the same values, numbers to within a
// float's rounding.
func compareCells(cols []ResultColumn, keys int, kept, want [][]*string) []string {
	key := func(row []*string) string {
		parts := make([]string, keys)
		for i := range parts {
			parts[i] = textOf(row[i])
		}
		return strings.Join(parts, " | ")
	}
	index := func(rows [][]*string) map[string][]*string {
		out := map[string][]*string{}
		for _, row := range rows {
			out[key(row)] = row
		}
		return out
	}
	k, w := index(kept), index(want)
	var out []string
	for _, id := range sortedKeys(w) {
		got, ok := k[id]
		if !ok {
			out = append(out, fmt.Sprintf("cell [%s] missing (recomputed: %s)", id, rowText(cols[keys:], w[id][keys:])))
			continue
		}
		for i := keys; i < len(cols); i++ {
			if !sameValue(got[i], w[id][i]) {
				out = append(out, fmt.Sprintf("cell [%s] %s = %s, recomputed %s", id, cols[i].Name, textOf(got[i]), textOf(w[id][i])))
			}
		}
	}
	for _, id := range sortedKeys(k) {
		if _, ok := w[id]; !ok {
			out = append(out, fmt.Sprintf("cell [%s] kept but no instance is in it (%s)", id, rowText(cols[keys:], k[id][keys:])))
		}
	}
	return out
}

func sortedKeys(m map[string][]*string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func rowText(cols []ResultColumn, row []*string) string {
	parts := make([]string, len(cols))
	for i, c := range cols {
		parts[i] = c.Name + "=" + textOf(row[i])
	}
	return strings.Join(parts, " ")
}

func textOf(s *string) string {
	if s == nil {
		return "NULL"
	}
	return *s
}

// sameValue compares two values as text, or as numbers to within a
// relative 1e-9 (sums of floats kept incrementally round differently from
// a sum computed at once).
func sameValue(a, b *string) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	if *a == *b {
		return true
	}
	x, err1 := strconv.ParseFloat(*a, 64)
	y, err2 := strconv.ParseFloat(*b, 64)
	if err1 != nil || err2 != nil {
		return false
	}
	return math.Abs(x-y) <= 1e-9*math.Max(1, math.Max(math.Abs(x), math.Abs(y)))
}

// PurgeAggregations implements AggregationReader.
func (r AggregationAccess) PurgeAggregations(ctx context.Context) error {
	deployed, _, err := r.Deployed(ctx)
	if err != nil {
		return err
	}
	for _, a := range deployed {
		for _, g := range a.Aggregations {
			for _, stmt := range r.SQL.PurgeStatements(r.SQL.Model(a.Activity, g)) {
				if err := r.Exec(ctx, stmt); err != nil {
					return fmt.Errorf("purge the window of aggregation %s.%s: %w", a.Name, g.Name, err)
				}
			}
		}
	}
	return nil
}
