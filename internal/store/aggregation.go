package store

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/bam-dev/bam/internal/definition"
)

// Aggregations
//
// An activity's aggregation (definition.Aggregation) is kept in a table of
// cells, bam_agg_<hash>: one row per cell, that is per state of the
// instances (pending, active, completed), value of every dimension and,
// with a window, bucket of the end time of completed instances. A row
// counts the cell's instances and, per value a measure reads (an item, or
// the seconds between two milestones), how many of them have one and
// their sum. min and max are read from a second table per such value,
// bam_agg_<hash>_v<j>: the multiset of the cell's values (value, how many
// instances hold it), whose primary key (cell, value) gives the least and
// the greatest at once. Keeping the multiset costs a row write per changed
// instance and measured value, as an index would; it keeps min and max
// exact when an instance leaves a cell or its value changes, with no
// rescan of the instances and nothing to refresh later.
//
// The store keeps the cells in the transaction that changes the instances,
// by triggers on bam_instances that the deployment creates (the drivers'
// aggregation.go): whatever writes instances — a batch, the vocabulary's
// statements, a direct write, a failed event retried, the window's purge —
// moves each changed instance's contribution from its old cell to its new
// one, exactly once, under the batch's fence. An instance whose cell and
// measured values do not change (a milestone no aggregation reads) costs
// no cell write. (SQLite, whose triggers run row by row, keeps a batch's
// changes in one fold per batch instead, in Go: its batchfold.go.) Cells whose
// count falls to 0 are deleted, so that the
// cells are exactly a recomputation from the instances (RecomputeSQL,
// which the conformance suite and the chaos checker compare them with).
//
// The view "<activity>_<aggregation>" shows one row per state and
// dimension values, the measures computed (avg = sum / count), and, with a
// window, only the buckets within it: it needs no refresh and never reads
// the instances. A windowed aggregation's old buckets are deleted by the
// nodes' purge (PurgeAggregations), with the activity's window.

// AggregationSQL writes the SQL of aggregations in a driver's dialect:
// the tables, the view and the backfill are written once here; the
// drivers write the triggers (their SQL has nothing in common) from the
// same pieces (AggModel).
type AggregationSQL struct {
	ViewSQL
	// Bucket truncates a time expression (as Item or Time write it) to b,
	// in UTC, keeping its type.
	Bucket func(expr string, b definition.Bucket) string
	// Seconds is the time in seconds from one time expression to another.
	Seconds func(from, to string) string
	// Number is a number item's typed value as measures add and compare
	// it (SQLite reads a decimal's text as a REAL).
	Number func(it definition.Item, expr string) string
	// Key is text equal for equal values of the expressions, NULLs
	// included; times are marked, for dialects whose text of a time
	// depends on the session.
	Key func(parts []KeyPart) string
	// Type is the column type of a value of kind.
	Type func(kind ValueKind) string
	// Horizon is the earliest bucket a window of w keeps, as an
	// expression of the store's clock.
	Horizon func(g definition.Aggregation) string
	// Ranges is the index of the range a number expression falls in:
	// 0 below the first bound, i from bound i, NULL for NULL.
	Ranges func(expr string, bounds []float64) string
	// NotDistinct is the dialect's null-safe equality operator.
	NotDistinct string
	// Materialized ends a subquery whose expressions must be computed
	// once per row even where the query refers to them more than once
	// (PostgreSQL's OFFSET 0, which keeps the planner from inlining it).
	Materialized string
}

// ValueKind is the type of a column of an aggregation's tables.
type ValueKind string

// The kinds of value an aggregation stores.
const (
	KindText    ValueKind = "text"
	KindInteger ValueKind = "integer"
	KindFloat   ValueKind = "float"
	KindDecimal ValueKind = "decimal" // exact
	KindBoolean ValueKind = "boolean"
	KindTime    ValueKind = "time"
	KindCount   ValueKind = "count" // a count of instances
	KindSum     ValueKind = "sum"   // a sum of exact numbers
	KindSeconds ValueKind = "seconds"
)

// KeyPart is one expression of a cell's key.
type KeyPart struct {
	Expr string
	Time bool
}

// AggModel is one aggregation as SQL pieces: its tables, the expressions
// that place an instance (a row with bam_instances' columns) in a cell,
// and the values its measures read.
type AggModel struct {
	Activity    definition.Activity
	Aggregation definition.Aggregation
	Table, View string
	// Inputs are the typed values of the items and times the dimensions
	// and measures read, i1..im, each computed once per row (an item's
	// typed read parses the items and checks the value's type: a range
	// dimension names it once per bound, a duration twice per end).
	Inputs []string
	// Reads say what each input reads, for a driver that reads the
	// inputs outside SQL (SQLite's batch fold).
	Reads []Input
	// Dims are the dimensions' expressions, d1..dn in the tables, of the
	// columns state and i1..im.
	Dims []AggColumn
	// Window is the window bucket's expression (wb), "" without a window;
	// WindowStep is the same as a Step (of completed instances only).
	Window     string
	WindowStep Step
	// Values are the values the measures read, v1..vk, of the columns
	// i1..im.
	Values []AggValue
	// measureValues is, per measure, the index of the value it reads; -1
	// for a count of instances.
	measureValues []int
	// Grp and Cell are the keys of a cell's group (state and dimensions)
	// and of the cell (those and the window bucket: Grp without a
	// window), as expressions of the columns state, d1..dn and wb.
	Grp, Cell string
	// InputColumns and InputItems are what the cell of an instance
	// depends on: its columns (state, begin_time, end_time) and items.
	InputColumns, InputItems []string
	// materialized is AggregationSQL.Materialized.
	materialized string
}

// AggColumn is an expression and the kind of its value.
type AggColumn struct {
	Expr string
	Kind ValueKind
	// Step is Expr as a step over the inputs' values, for a driver that
	// computes contributions outside SQL (SQLite's batch fold).
	Step Step
}

// Step is how a dimension or a value is computed from an instance's
// inputs (AggModel.Inputs, by index): the same computation as its SQL
// expression, given as data.
type Step struct {
	Op    StepOp
	Input int // the input the step reads (Seconds: the earlier time)
	// To is Seconds' later time.
	To int
	// Bucket is the bucket a Bucket step truncates its time to.
	Bucket definition.Bucket
	// Bounds are a Ranges step's bounds.
	Bounds []float64
	// Stages are a Progress step's milestones, the latest first: the
	// first whose input is not NULL names the stage.
	Stages []Stage
}

// StepOp is what a Step computes.
type StepOp int

// The steps.
const (
	InputStep    StepOp = iota // the input's value
	BucketStep                 // the input's time truncated to Bucket
	RangesStep                 // the index of the range of Bounds the input's number is in
	ProgressStep               // the name of the stage reached (Stages)
	SecondsStep                // the seconds from Input's time to To's
)

// Input is what an input of an aggregation reads: an item's typed value
// (ViewSQL.Item), or the column begin_time or end_time as a time
// (ViewSQL.Time); Number, as a number its measures add and compare
// (AggregationSQL.Number).
type Input struct {
	Item   definition.Item
	Column string // begin_time or end_time; "" for an item
	Number bool
}

// Stage is a milestone of a progress dimension.
type Stage struct {
	Input int
	Name  string
}

// AggValue is a value measures read, and what they need of it.
type AggValue struct {
	AggColumn
	// Sum: a sum or avg reads it; Extremes: a min or max does (its
	// multiset table is Table + "_v" + index).
	Sum, Extremes bool
}

// AggregationTable is the name of an aggregation's table of cells: bam_agg_
// and a hash of the activity's and the aggregation's names in lower case,
// within PostgreSQL's 63-byte names whatever their length.
func AggregationTable(activity, aggregation string) string {
	sum := sha256.Sum256([]byte(strings.ToLower(activity) + "\x00" + strings.ToLower(aggregation)))
	return "bam_agg_" + hex.EncodeToString(sum[:6])
}

// Model returns g of a as SQL pieces.
func (s AggregationSQL) Model(a definition.Activity, g definition.Aggregation) AggModel {
	m := AggModel{Activity: a, Aggregation: g, Table: AggregationTable(a.Name, g.Name), View: definition.ViewName(a.Name, g.Name),
		materialized: s.Materialized, InputColumns: []string{"state"}}
	for _, name := range g.ItemsRead() {
		if name == definition.BeginTime || name == definition.EndTime {
			m.InputColumns = append(m.InputColumns, name)
		} else {
			m.InputItems = append(m.InputItems, name)
		}
	}
	if g.Window != "" && !slices.Contains(m.InputColumns, definition.EndTime) {
		m.InputColumns = append(m.InputColumns, definition.EndTime)
	}
	for _, d := range g.Dimensions {
		m.Dims = append(m.Dims, s.dimension(&m, d))
	}
	if g.Window != "" {
		end, b := s.read(&m, definition.EndTime, false), definition.WindowBucket(g.WindowDuration())
		m.Window = fmt.Sprintf("CASE WHEN state = 'completed' THEN %s END", s.Bucket(m.inputColumn(end), b))
		m.WindowStep = Step{Op: BucketStep, Input: end, Bucket: b}
	}
	for _, ms := range g.Measures {
		col, ok := s.measured(&m, ms)
		if !ok {
			m.measureValues = append(m.measureValues, -1)
			continue
		}
		j := m.value(col)
		m.measureValues = append(m.measureValues, j)
		switch ms.Function {
		case definition.Sum, definition.Avg:
			m.Values[j].Sum = true
		case definition.Min, definition.Max:
			m.Values[j].Extremes = true
		}
	}
	parts := []KeyPart{{Expr: "state"}}
	for i, d := range m.Dims {
		parts = append(parts, KeyPart{Expr: fmt.Sprintf("d%d", i+1), Time: d.Kind == KindTime})
	}
	m.Grp = s.Key(parts)
	m.Cell = m.Grp
	if m.Window != "" {
		m.Cell = s.Key(append(parts, KeyPart{Expr: "wb", Time: true}))
	}
	return m
}

// value returns the index of col in m.Values, adding it.
func (m *AggModel) value(col AggColumn) int {
	for j, v := range m.Values {
		if v.Expr == col.Expr {
			return j
		}
	}
	m.Values = append(m.Values, AggValue{AggColumn: col})
	return len(m.Values) - 1
}

// input returns the index of m's input expr, which reads in, adding it.
func (m *AggModel) input(expr string, in Input) int {
	i := slices.Index(m.Inputs, expr)
	if i < 0 {
		i = len(m.Inputs)
		m.Inputs = append(m.Inputs, expr)
		m.Reads = append(m.Reads, in)
	}
	return i
}

// read returns the index of the input of the item (or begin_time or
// end_time) name, as a number when number, adding it.
func (s AggregationSQL) read(m *AggModel, name string, number bool) int {
	it, expr := s.item(m.Activity, name)
	in := Input{Item: it, Number: number}
	if name == definition.BeginTime || name == definition.EndTime {
		in.Column = name
	}
	if number {
		expr = s.Number(it, expr)
	}
	return m.input(expr, in)
}

// inputColumn is the column of input i: i1..im.
func (m *AggModel) inputColumn(i int) string { return fmt.Sprintf("i%d", i+1) }

// item is an item or begin_time / end_time as an expression.
func (s AggregationSQL) item(a definition.Activity, name string) (definition.Item, string) {
	if name == definition.BeginTime || name == definition.EndTime {
		return definition.Item{Name: name, Type: definition.Milestone}, s.Time(name)
	}
	for _, it := range a.Items {
		if it.Name == name {
			return it, s.Item(it)
		}
	}
	return definition.Item{}, "NULL" // Parse refuses it; a newer bam's definition may hold one
}

// dimension is d's expression, of m's inputs (which it adds).
func (s AggregationSQL) dimension(m *AggModel, d definition.Dimension) AggColumn {
	if len(d.Progress) > 0 {
		var b strings.Builder
		step := Step{Op: ProgressStep}
		b.WriteString("CASE")
		for i := len(d.Progress) - 1; i >= 0; i-- {
			in := s.read(m, d.Progress[i], false)
			fmt.Fprintf(&b, " WHEN %s IS NOT NULL THEN %s", m.inputColumn(in), Literal(d.Progress[i]))
			step.Stages = append(step.Stages, Stage{Input: in, Name: d.Progress[i]})
		}
		b.WriteString(" END")
		return AggColumn{b.String(), KindText, step}
	}
	it, _ := s.item(m.Activity, d.Item)
	switch {
	case d.Bucket != "":
		in := s.read(m, d.Item, false)
		return AggColumn{s.Bucket(m.inputColumn(in), d.Bucket), KindTime, Step{Op: BucketStep, Input: in, Bucket: d.Bucket}}
	case len(d.Ranges) > 0:
		in := s.read(m, d.Item, true)
		return AggColumn{s.Ranges(m.inputColumn(in), d.Ranges), KindInteger, Step{Op: RangesStep, Input: in, Bounds: d.Ranges}}
	}
	in := s.read(m, d.Item, false)
	return AggColumn{m.inputColumn(in), itemKind(it), Step{Input: in}}
}

// measured is the value a measure reads, of m's inputs (which it adds);
// false for a count of instances.
func (s AggregationSQL) measured(m *AggModel, ms definition.Measure) (AggColumn, bool) {
	if ms.Duration() {
		f, t := s.read(m, ms.From, false), s.read(m, ms.To, false)
		return AggColumn{s.Seconds(m.inputColumn(f), m.inputColumn(t)), KindSeconds, Step{Op: SecondsStep, Input: f, To: t}}, true
	}
	if ms.Item == "" {
		return AggColumn{}, false
	}
	it, _ := s.item(m.Activity, ms.Item)
	in := s.read(m, ms.Item, ms.Function != definition.Count)
	return AggColumn{m.inputColumn(in), itemKind(it), Step{Input: in}}, true
}

func itemKind(it definition.Item) ValueKind {
	switch it.Type {
	case definition.Milestone:
		return KindTime
	case definition.Integer:
		return KindInteger
	case definition.Float:
		return KindFloat
	case definition.Decimal:
		return KindDecimal
	case definition.Boolean:
		return KindBoolean
	}
	return KindText
}

// Contribution selects, for each row of src (a FROM item with the
// columns of bam_instances state, begin_time, end_time and items), where
// it contributes: cell, grp, state, wb (with a window), d1..dn and the
// values v1..vk; each expression, and each input they read, is computed
// once per row. extra are more columns of src to select, first.
func (m AggModel) Contribution(src string, extra ...string) string {
	inputs := append(slices.Clone(extra), "state")
	for i, in := range m.Inputs {
		inputs = append(inputs, fmt.Sprintf("%s AS i%d", in, i+1))
	}
	src = fmt.Sprintf("(SELECT %s FROM %s%s) y", strings.Join(inputs, ", "), src, m.materialized)
	cols := append(slices.Clone(extra), "state")
	if m.Window != "" {
		cols = append(cols, m.Window+" AS wb")
	}
	for i, d := range m.Dims {
		cols = append(cols, fmt.Sprintf("%s AS d%d", d.Expr, i+1))
	}
	for j, v := range m.Values {
		cols = append(cols, fmt.Sprintf("%s AS v%d", v.Expr, j+1))
	}
	return fmt.Sprintf("SELECT %s AS cell, %s AS grp, x.* FROM (SELECT %s FROM %s%s) x",
		m.Cell, m.Grp, strings.Join(cols, ", "), src, m.materialized)
}

// Changed is true when an update of a row from old to new (aliases of
// bam_instances rows) may move its contribution: a column or an item
// value the aggregation reads differs. ne is the dialect's IS DISTINCT
// FROM; raw reads an item's stored value.
func (m AggModel) Changed(old, new, ne string, raw func(row, item string) string) string {
	var conds []string
	for _, c := range m.InputColumns {
		conds = append(conds, fmt.Sprintf("%s.%s %s %s.%s", old, c, ne, new, c))
	}
	for _, it := range m.InputItems {
		conds = append(conds, fmt.Sprintf("%s %s %s", raw(old, it), ne, raw(new, it)))
	}
	return "(" + strings.Join(conds, " OR ") + ")"
}

// KeyColumns are the columns of a cell that its key decides: grp, state,
// wb and the dimensions.
func (m AggModel) KeyColumns() []string {
	cols := []string{"grp", "state"}
	if m.Window != "" {
		cols = append(cols, "wb")
	}
	for i := range m.Dims {
		cols = append(cols, fmt.Sprintf("d%d", i+1))
	}
	return cols
}

// ValueTable is the multiset table of value j.
func (m AggModel) ValueTable(j int) string { return fmt.Sprintf("%s_v%d", m.Table, j+1) }

// sumKind is the kind a sum of values of kind k is kept as: integers in
// a wider integer, decimals exactly where the store can.
func sumKind(k ValueKind) ValueKind {
	if k == KindInteger {
		return KindSum
	}
	return k
}

// CreateTables creates m's tables: the cells, and the multiset of each
// value a min or max reads.
func (s AggregationSQL) CreateTables(m AggModel) []string {
	var b strings.Builder
	fmt.Fprintf(&b, "CREATE TABLE %s (\n    cell %s PRIMARY KEY,\n    grp %s NOT NULL,\n    state %s NOT NULL",
		m.Table, s.Type(KindText), s.Type(KindText), s.Type(KindText))
	if m.Window != "" {
		fmt.Fprintf(&b, ",\n    wb %s", s.Type(KindTime))
	}
	for i, d := range m.Dims {
		fmt.Fprintf(&b, ",\n    d%d %s", i+1, s.Type(d.Kind))
	}
	fmt.Fprintf(&b, ",\n    instances %s NOT NULL", s.Type(KindCount))
	for j, v := range m.Values {
		fmt.Fprintf(&b, ",\n    n%d %s NOT NULL DEFAULT 0", j+1, s.Type(KindCount))
		if v.Sum {
			fmt.Fprintf(&b, ",\n    s%d %s NOT NULL DEFAULT 0", j+1, s.Type(sumKind(v.Kind)))
		}
	}
	b.WriteString("\n)")
	out := []string{b.String()}
	for j, v := range m.Values {
		if !v.Extremes {
			continue
		}
		wb := ""
		if m.Window != "" {
			wb = ", wb " + s.Type(KindTime)
		}
		out = append(out,
			fmt.Sprintf("CREATE TABLE %s (cell %s NOT NULL, grp %s NOT NULL%s, value %s NOT NULL, n %s NOT NULL, PRIMARY KEY (cell, value))",
				m.ValueTable(j), s.Type(KindText), s.Type(KindText), wb, s.Type(v.Kind), s.Type(KindCount)),
			fmt.Sprintf("CREATE INDEX %s ON %s (grp, value)", Ident(m.ValueTable(j)+"_grp"), m.ValueTable(j)))
	}
	if m.Window != "" {
		out = append(out, fmt.Sprintf("CREATE INDEX %s ON %s (wb) WHERE wb IS NOT NULL", Ident(m.Table+"_wb"), m.Table))
	}
	return out
}

// DropTables drops m's tables (and with them their triggers' targets).
func (m AggModel) DropTables() []string {
	out := []string{"DROP TABLE IF EXISTS " + m.Table}
	for j, v := range m.Values {
		if v.Extremes {
			out = append(out, "DROP TABLE IF EXISTS "+m.ValueTable(j))
		}
	}
	return out
}

// Backfill fills m's empty tables from the instances, as the triggers
// would have had they always existed.
func (m AggModel) Backfill() []string {
	src := "(" + m.Contribution("bam_instances WHERE activity = "+Literal(m.Activity.Name)) + ") r"
	keys := strings.Join(m.KeyColumns(), ", ")
	cols, sel := []string{"cell", keys, "instances"}, []string{"cell", keys, "count(*)"}
	for j, v := range m.Values {
		cols = append(cols, fmt.Sprintf("n%d", j+1))
		sel = append(sel, fmt.Sprintf("count(v%d)", j+1))
		if v.Sum {
			cols = append(cols, fmt.Sprintf("s%d", j+1))
			sel = append(sel, fmt.Sprintf("coalesce(sum(v%d), 0)", j+1))
		}
	}
	out := []string{fmt.Sprintf("INSERT INTO %s (%s)\nSELECT %s FROM %s GROUP BY cell, %s",
		m.Table, strings.Join(cols, ", "), strings.Join(sel, ", "), src, keys)}
	for j, v := range m.Values {
		if !v.Extremes {
			continue
		}
		wb := ""
		if m.Window != "" {
			wb = ", wb"
		}
		out = append(out, fmt.Sprintf("INSERT INTO %[1]s (cell, grp%[2]s, value, n)\nSELECT cell, grp%[2]s, v%[3]d, count(*) FROM %[4]s WHERE v%[3]d IS NOT NULL GROUP BY cell, grp%[2]s, v%[3]d",
			m.ValueTable(j), wb, j+1, src))
	}
	return out
}

// CreateView creates m's view: one row per state and dimension values,
// over the buckets within the window.
func (s AggregationSQL) CreateView(m AggModel) string {
	return "CREATE VIEW " + Ident(m.View) + " AS\n" + s.SelectCells(m, false)
}

// SelectCells selects the cells of m as its view shows them; merged,
// over every state of the instances at once ("all" in the state column).
func (s AggregationSQL) SelectCells(m AggModel, merged bool) string {
	g := m.Aggregation
	cols, group := m.keyColumns("c", true)
	if merged {
		cols[0], group = "'all' AS state", group[2:]
	}
	count := func(col string) string { return fmt.Sprintf("CAST(sum(%s) AS %s)", col, s.Type(KindCount)) }
	cols = append(cols, count("c.instances")+" AS instances")
	window, vwindow, cwindow := "", "", ""
	if m.Window != "" {
		horizon := s.Horizon(g)
		window = fmt.Sprintf("\nWHERE c.wb IS NULL OR c.wb >= %s", horizon)
		vwindow = fmt.Sprintf(" AND (v.wb IS NULL OR v.wb >= %s)", horizon)
		cwindow = fmt.Sprintf(" AND (c2.wb IS NULL OR c2.wb >= %s)", horizon)
	}
	// A min or max reads the multiset of the group's cells: those of the
	// row's state and dimensions, or, merged, of its dimensions in every
	// state.
	extreme := func(fn, table string) string {
		return fmt.Sprintf("(SELECT %s(v.value) FROM %s v WHERE v.grp = c.grp AND v.n > 0%s)", fn, table, vwindow)
	}
	if merged {
		// The extreme of the groups' extremes, each read from the
		// multiset's index as the view reads one.
		same := []string{"TRUE"}
		for i := range g.Dimensions {
			same = append(same, fmt.Sprintf("c2.d%[1]d %[2]s c.d%[1]d", i+1, s.NotDistinct))
		}
		extreme = func(fn, table string) string {
			return fmt.Sprintf("(SELECT %[1]s(x.m) FROM (SELECT (SELECT %[1]s(v.value) FROM %[2]s v WHERE v.grp = c2.grp AND v.n > 0%[3]s) AS m FROM %[4]s c2 WHERE %[5]s%[6]s) x)",
				fn, table, vwindow, m.Table, strings.Join(same, " AND "), cwindow)
		}
	}
	for k, ms := range g.Measures {
		var expr string
		switch {
		case m.measureValues[k] < 0:
			expr = count("c.instances")
		default:
			j := m.measureValues[k] + 1
			switch ms.Function {
			case definition.Count:
				expr = count(fmt.Sprintf("c.n%d", j))
			case definition.Sum:
				expr = fmt.Sprintf("CASE WHEN sum(c.n%[1]d) > 0 THEN sum(c.s%[1]d) END", j)
			case definition.Avg:
				expr = fmt.Sprintf("sum(c.s%[1]d) / %[2]s", j, s.avgDivisor(fmt.Sprintf("sum(c.n%d)", j)))
			case definition.Min, definition.Max:
				fn := "min"
				if ms.Function == definition.Max {
					fn = "max"
				}
				expr = extreme(fn, m.ValueTable(j-1))
			}
		}
		cols = append(cols, expr+" AS "+Ident(strings.ToLower(ms.Name)))
	}
	return fmt.Sprintf("SELECT %s\nFROM %s c%s%s", strings.Join(cols, ",\n    "), m.Table, window, groupBy(group))
}

// groupBy is the GROUP BY of group; with no group (every cell in one), a
// HAVING that leaves out the one row of no cells at all.
func groupBy(group []string) string {
	if len(group) == 0 {
		return "\nHAVING count(*) > 0"
	}
	return "\nGROUP BY " + strings.Join(group, ", ")
}

// keyColumns are the state and the dimensions of the rows aliased alias,
// as the view shows them (named after the dimensions when named), and the
// GROUP BY that gives one row per group of cells.
func (m AggModel) keyColumns(alias string, named bool) (cols, group []string) {
	cols = append(cols, alias+".state")
	group = append(group, alias+".grp", alias+".state")
	for i, d := range m.Aggregation.Dimensions {
		col := fmt.Sprintf("%s.d%d", alias, i+1)
		group = append(group, col)
		if len(d.Ranges) > 0 {
			col = rangeLabels(col, d.Ranges)
		}
		if named {
			col += " AS " + Ident(d.Column())
		}
		cols = append(cols, col)
	}
	return cols, group
}

// avgDivisor is a count as the divisor of an average: a float, NULL for 0.
func (s AggregationSQL) avgDivisor(count string) string {
	return fmt.Sprintf("CAST(NULLIF(%s, 0) AS %s)", count, s.Type(KindFloat))
}

// rangeLabels writes a range dimension's index as its label (RangeLabel).
func rangeLabels(col string, ranges []float64) string {
	var b strings.Builder
	fmt.Fprintf(&b, "CASE %s", col)
	for i := 0; i <= len(ranges); i++ {
		fmt.Fprintf(&b, " WHEN %d THEN %s", i, Literal(RangeLabel(ranges, i)))
	}
	b.WriteString(" END")
	return b.String()
}

// RangeLabel is how an aggregation's view shows range i of a range
// dimension: "below 100", "100 to 1000", "10000 and above".
func RangeLabel(ranges []float64, i int) string {
	bound := func(k int) string { return strconv.FormatFloat(ranges[k], 'g', -1, 64) }
	switch {
	case i == 0:
		return "below " + bound(0)
	case i == len(ranges):
		return bound(i-1) + " and above"
	}
	return bound(i-1) + " to " + bound(i)
}

// RecomputeSQL selects what m's view shows, computed from the instances
// alone: the conformance suite and the chaos checker compare the two.
// Its columns are the view's, in its order, named c0, c1, ... cond, when
// not empty, is a further condition on the instances (bam_instances'
// columns): the cells of the instances a filter selects. merged, over
// every state at once, as SelectCells.
func (s AggregationSQL) RecomputeSQL(m AggModel, cond string, merged bool) string {
	g := m.Aggregation
	cols, group := m.keyColumns("r", false)
	if merged {
		cols[0], group = "'all'", group[2:]
	}
	cols = append(cols, "count(*)")
	for k, ms := range g.Measures {
		j := m.measureValues[k]
		if j < 0 {
			cols = append(cols, "count(*)")
			continue
		}
		v := fmt.Sprintf("r.v%d", j+1)
		switch ms.Function {
		case definition.Count:
			cols = append(cols, "count("+v+")")
		case definition.Sum:
			cols = append(cols, "sum("+v+")")
		case definition.Avg:
			cols = append(cols, fmt.Sprintf("sum(%s) / %s", v, s.avgDivisor("count("+v+")")))
		default:
			cols = append(cols, string(ms.Function)+"("+v+")")
		}
	}
	where := ""
	if m.Window != "" {
		where = fmt.Sprintf("\nWHERE r.wb IS NULL OR r.wb >= %s", s.Horizon(g))
	}
	for i := range cols {
		cols[i] += fmt.Sprintf(" AS c%d", i)
	}
	src := "bam_instances WHERE activity = " + Literal(m.Activity.Name)
	if cond != "" {
		src += " AND " + cond
	}
	return fmt.Sprintf("SELECT %s\nFROM (%s) r%s%s",
		strings.Join(cols, ", "), m.Contribution(src), where, groupBy(group))
}

// PurgeStatements delete a windowed aggregation's buckets that left its
// window; none without a window.
func (s AggregationSQL) PurgeStatements(m AggModel) []string {
	if m.Window == "" {
		return nil
	}
	horizon := s.Horizon(m.Aggregation)
	out := []string{fmt.Sprintf("DELETE FROM %s WHERE wb < %s", m.Table, horizon)}
	for j, v := range m.Values {
		if v.Extremes {
			out = append(out, fmt.Sprintf("DELETE FROM %s WHERE wb < %s", m.ValueTable(j), horizon))
		}
	}
	return out
}

// AggregationTriggers are a driver's statements that create and drop an
// activity's triggers.
type AggregationTriggers struct {
	// Create creates the triggers that keep every aggregation of an
	// activity; nothing for one without aggregations.
	Create func(a definition.Activity) []string
	// Drop drops those of the activity as deployed, if they exist.
	Drop func(a definition.Activity) []string
	// Lock, when set, is a statement that keeps every other writer of
	// bam_instances out until the deployment commits (SQLite's write lock
	// does it already).
	Lock string
}

// Redeploy returns the statements that bring an activity's aggregations
// from prev (nil for a new activity) to a, in the deployment's
// transaction: the triggers go first, then the views and the tables of the
// aggregations removed or changed; the tables of the new and changed ones
// are created, the triggers created again, and the new tables filled from
// the instances, while no other writer can change an instance (the
// triggers' lock), so that no change between the fill and the commit is
// missed. An aggregation that did not change keeps its cells.
func (s AggregationSQL) Redeploy(prev *definition.Activity, a definition.Activity, t AggregationTriggers) []string {
	var old []definition.Aggregation
	if prev != nil {
		old = prev.Aggregations
	}
	if len(old) == 0 && len(a.Aggregations) == 0 {
		return nil
	}
	var out []string
	if t.Lock != "" {
		out = append(out, t.Lock)
	}
	if prev != nil {
		out = append(out, t.Drop(*prev)...)
	}
	kept := map[string]bool{}
	for _, g := range old {
		m := s.Model(*prev, g)
		out = append(out, "DROP VIEW IF EXISTS "+Ident(m.View))
		if next, ok := a.Aggregation(g.Name); ok && s.sameCells(m, s.Model(a, next)) {
			kept[strings.ToLower(g.Name)] = true
			continue
		}
		out = append(out, m.DropTables()...)
	}
	var fill []string
	for _, g := range a.Aggregations {
		if kept[strings.ToLower(g.Name)] {
			continue
		}
		m := s.Model(a, g)
		out = append(out, s.CreateTables(m)...)
		fill = append(fill, m.Backfill()...)
	}
	out = append(out, t.Create(a)...)
	out = append(out, fill...)
	for _, g := range a.Aggregations {
		out = append(out, s.CreateView(s.Model(a, g)))
	}
	return out
}

// sameCells reports whether two models keep the same cells: the same
// tables, filled by the same expressions.
func (s AggregationSQL) sameCells(a, b AggModel) bool {
	return a.Table == b.Table && a.Contribution("t") == b.Contribution("t") &&
		strings.Join(s.CreateTables(a), ";") == strings.Join(s.CreateTables(b), ";")
}

// Remove returns the statements that drop an activity's aggregations:
// triggers, views and tables.
func (s AggregationSQL) Remove(a definition.Activity, t AggregationTriggers) []string {
	if len(a.Aggregations) == 0 {
		return nil
	}
	out := t.Drop(a)
	for _, g := range a.Aggregations {
		m := s.Model(a, g)
		out = append(out, "DROP VIEW IF EXISTS "+Ident(m.View))
		out = append(out, m.DropTables()...)
	}
	return out
}
