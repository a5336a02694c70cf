package search

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/store"
)

// Dialect is the SQL a store speaks.
type Dialect int

// The dialects.
const (
	// Postgres compares and sorts text COLLATE "C", by bytes, whatever
	// the database's collation.
	Postgres Dialect = iota
	SQLite
	// PostgresBytewise is PostgreSQL on a database whose collation orders
	// text by bytes already (C, POSIX, C.UTF-8): text is compared as it
	// is, so that the primary key, bam_instances_state and the text items'
	// indexes, all in the database's collation, serve the order and the
	// ranges. Under COLLATE "C" none of them does: a page in the default
	// order (instance_id) sorted every match, 0.8 s over a million
	// instances where the primary key gives the first rows at once.
	PostgresBytewise
)

// DialectOf returns the dialect of a store driver ("postgres", "sqlite"):
// for PostgreSQL the one that holds whatever the database's collation.
func DialectOf(driver string) (Dialect, error) {
	switch driver {
	case "postgres":
		return Postgres, nil
	case "sqlite":
		return SQLite, nil
	}
	return 0, fmt.Errorf("search: no SQL dialect for store driver %q", driver)
}

// TextOrder is an optional extra of a PostgreSQL store.Searcher: whether
// its database's collation orders text by bytes, as Go and SQLite do.
type TextOrder interface {
	TextSortsByBytes(ctx context.Context) (bool, error)
}

// DialectFor returns the dialect of store s: PostgresBytewise when s says
// its database orders text by bytes.
func DialectFor(ctx context.Context, s store.Searcher) (Dialect, error) {
	d, err := DialectOf(s.Driver())
	if err != nil || d != Postgres {
		return d, err
	}
	if t, ok := s.(TextOrder); ok {
		bytewise, err := t.TextSortsByBytes(ctx)
		if err != nil {
			return 0, fmt.Errorf("search: the collation of the store's database: %w", err)
		}
		if bytewise {
			return PostgresBytewise, nil
		}
	}
	return Postgres, nil
}

// postgres: d is one of PostgreSQL's dialects.
func (d Dialect) postgres() bool { return d != SQLite }

// Statement is compiled SQL and its parameters.
type Statement struct {
	SQL  string
	Args []any
}

// builder writes one statement: SQL text from checked identifiers and
// operators only, every value a parameter.
type builder struct {
	d    Dialect
	b    strings.Builder
	args []any
}

func (w *builder) write(parts ...string) {
	for _, p := range parts {
		w.b.WriteString(p)
	}
}

// param adds a parameter and returns its placeholder.
func (w *builder) param(v any) string {
	w.args = append(w.args, v)
	if w.d.postgres() {
		return "$" + strconv.Itoa(len(w.args))
	}
	// Numbered, as $n: the keyset condition writes a placeholder twice.
	return "?" + strconv.Itoa(len(w.args))
}

// view is the scope's view of the query's activity (the pending
// instances are the all view's under a condition: Prepare).
func (q *Query) view() string {
	scope := q.Scope
	if scope == ScopePending {
		scope = ScopeAll
	}
	return store.Ident(strings.ToLower(q.Activity.Name) + "_" + string(scope))
}

// column is a field's view column, as selected.
func (w *builder) column(f Field) string { return store.Ident(f.Column) }

// ordered is a field's column as it compares and sorts: text by bytes on
// PostgreSQL (COLLATE "C" unless the database's collation does so
// already), decimals as numbers on SQLite (where the view has their text).
func (w *builder) ordered(f Field) string {
	switch {
	case w.d == Postgres && (f.Kind == KindText || f.Kind == KindState):
		return w.column(f) + ` COLLATE "C"`
	case w.d == SQLite && f.Kind == KindDecimal:
		return "CAST(" + w.column(f) + " AS REAL)"
	}
	return w.column(f)
}

// value is the placeholder of a typed value, converted for the dialect.
func (w *builder) value(f Field, v any) string {
	switch v := v.(type) {
	case time.Time:
		if w.d == SQLite {
			return w.param(v.UTC().Format(event.StoredTimeLayout))
		}
		return w.param(v)
	case Decimal:
		if w.d == SQLite {
			return "CAST(" + w.param(v.Text) + " AS REAL)"
		}
		return "CAST(" + w.param(v.Text) + "::text AS numeric)"
	case bool:
		if w.d == SQLite {
			if v {
				return w.param(int64(1))
			}
			return w.param(int64(0))
		}
	}
	return w.param(v)
}

// where writes a checked filter; negated: under a NOT, where a condition
// on an empty field must read false, not SQL's NULL.
func (w *builder) where(n node, now time.Time, negated bool) {
	switch n.kind {
	case nodeAll:
		w.write("TRUE")
	case nodeAnd, nodeOr:
		sep := " AND "
		if n.kind == nodeOr {
			sep = " OR "
		}
		w.write("(")
		for i, t := range n.terms {
			if i > 0 {
				w.write(sep)
			}
			w.where(t, now, negated)
		}
		w.write(")")
	case nodeNot:
		w.write("NOT ")
		w.where(n.terms[0], now, !negated)
	case nodeCond:
		w.cond(n.cond, now, negated)
	}
}

func (w *builder) cond(c *cond, now time.Time, negated bool) {
	col := w.column(c.field)
	switch c.op {
	case OpIsEmpty:
		w.write(col, " IS NULL")
		return
	case OpIsNotEmpty:
		w.write(col, " IS NOT NULL")
		return
	}
	guard := negated && c.field.Nullable
	w.write("(")
	if guard {
		w.write(col, " IS NOT NULL AND ")
	}
	switch c.op {
	case OpEq, OpNe:
		op := map[Op]string{OpEq: " = ", OpNe: " <> "}[c.op]
		w.write(w.equal(c.field), op, w.value(c.field, c.values[0]))
	case OpLt, OpLe, OpGt, OpGe:
		w.write(w.ordered(c.field), " ", string(c.op), " ", w.value(c.field, c.values[0]))
	case OpBetween:
		w.write(w.ordered(c.field), " BETWEEN ", w.value(c.field, c.values[0]), " AND ", w.value(c.field, c.values[1]))
	case OpInLast:
		d := c.values[0].(time.Duration)
		w.write(w.ordered(c.field), " BETWEEN ", w.value(c.field, now.Add(-d)), " AND ", w.value(c.field, now))
	case OpIn, OpNotIn:
		w.write(w.equal(c.field), map[Op]string{OpIn: " IN (", OpNotIn: " NOT IN ("}[c.op])
		for i, v := range c.values {
			if i > 0 {
				w.write(", ")
			}
			w.write(w.value(c.field, v))
		}
		w.write(")")
	case OpContains:
		if w.d.postgres() {
			w.write("strpos(", col, ", ", w.param(c.values[0]), ") > 0")
		} else {
			w.write("instr(", col, ", ", w.param(c.values[0]), ") > 0")
		}
	case OpStartsWith:
		if w.d.postgres() {
			w.write("starts_with(", col, ", ", w.param(c.values[0]), ")")
		} else {
			w.write("substr(", col, ", 1, length(", w.param(c.values[0]), ")) = ", w.param(c.values[0]))
		}
	}
	w.write(")")
}

// equal is a field's column as = and IN compare it: as it is (so that an
// item's index serves), but a decimal on SQLite as a number.
func (w *builder) equal(f Field) string {
	if w.d == SQLite && f.Kind == KindDecimal {
		return w.ordered(f)
	}
	return w.column(f)
}

// selectList is what a page's rows hold: the instance's columns, the
// query's item columns, then the order's keys (for the cursor).
func (w *builder) selectList(q *Query) string {
	cols := []string{ColInstanceID, ColState, ColBeginTime, ColEndTime, ColLastModified, ColEvents}
	// The others are named by position: PostgreSQL's ORDER BY "price"
	// would take an output column "price" (the decimal's text) over the
	// view's numeric column.
	for _, f := range q.Columns {
		cols = append(cols, w.selected(f)+" AS c"+strconv.Itoa(len(cols)+1))
	}
	for _, k := range q.keys {
		cols = append(cols, w.selected(k.field)+" AS c"+strconv.Itoa(len(cols)+1))
	}
	return strings.Join(cols, ", ")
}

// selected is a field as a row carries it: a decimal as its text, exact.
func (w *builder) selected(f Field) string {
	if w.d.postgres() && f.Kind == KindDecimal {
		return w.column(f) + "::text"
	}
	return w.column(f)
}

// orderBy writes the ORDER BY clause: the keys, empty values last, then
// instance_id.
func (w *builder) orderBy(q *Query) {
	w.write(" ORDER BY ")
	for _, k := range q.keys {
		w.write(w.ordered(k.field))
		if k.desc {
			w.write(" DESC")
		}
		if k.field.Nullable {
			w.write(" NULLS LAST")
		}
		w.write(", ")
	}
	w.write(w.ordered(builtins[0]))
}

// after writes the keyset condition of a cursor: the rows after its
// position in the order.
func (w *builder) after(q *Query, c *cursor) {
	w.write("(")
	var equal []string // the conditions that the keys so far equal the cursor's
	for i, k := range q.keys {
		v := c.keys[i]
		if v != nil {
			op := " > "
			if k.desc {
				op = " < "
			}
			w.write("(")
			for _, e := range equal {
				w.write(e, " AND ")
			}
			w.write("(", w.ordered(k.field), op, w.value(k.field, v))
			if k.field.Nullable {
				w.write(" OR ", w.column(k.field), " IS NULL")
			}
			w.write(")) OR ")
			equal = append(equal, w.equal(k.field)+" = "+w.value(k.field, v))
		} else {
			equal = append(equal, w.column(k.field)+" IS NULL")
		}
	}
	w.write("(")
	for _, e := range equal {
		w.write(e, " AND ")
	}
	w.write(w.ordered(builtins[0]), " > ", w.param(c.id), "))")
}

// SQL compiles the query for dialect d: the rows after cursor c (nil: from
// the start), at most limit of them (0: all), with relative times counted
// back from now.
func (q *Query) sql(d Dialect, c *cursor, limit int, now time.Time) Statement {
	w := &builder{d: d}
	w.write("SELECT ", w.selectList(q), " FROM ", q.view(), " WHERE ")
	w.where(q.where, now, false)
	if c != nil {
		w.write(" AND ")
		w.after(q, c)
	}
	w.orderBy(q)
	if limit > 0 {
		w.write(" LIMIT ", strconv.Itoa(limit))
	}
	return Statement{SQL: w.b.String(), Args: w.args}
}

// CountSQL compiles a count of the query's matches that stops at limit+1:
// an answer above limit means "more than limit", and no more than limit+1
// rows are read.
func (q *Query) CountSQL(d Dialect, limit int, now time.Time) Statement {
	w := &builder{d: d}
	w.write("SELECT count(*) FROM (SELECT 1 FROM ", q.view(), " WHERE ")
	w.where(q.where, now.UTC().Truncate(time.Microsecond), false)
	w.write(" LIMIT ", strconv.Itoa(limit+1), ") AS matches")
	return Statement{SQL: w.b.String(), Args: w.args}
}
