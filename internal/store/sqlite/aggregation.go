package sqlite

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/bam-dev/bam/internal/definition"
	"github.com/bam-dev/bam/internal/store"
)

// aggregations writes the SQL of the activities' aggregations (store's
// "Aggregations"). Times are ISO 8601 UTC text with microseconds, which
// bam writes every time in data as: a bucket is a prefix of that text
// completed to a time, and durations are computed from the text's seconds
// and its fraction, to the microsecond. A decimal measure is read as a
// REAL (SQLite has no exact decimal arithmetic): its sums are kept to
// within a float's rounding.
var aggregations = store.AggregationSQL{
	ViewSQL:     views,
	NotDistinct: "IS",
	Bucket: func(expr string, b definition.Bucket) string {
		switch b {
		case definition.Minute:
			return "substr(" + expr + ", 1, 16) || ':00.000000Z'"
		case definition.Hour:
			return "substr(" + expr + ", 1, 13) || ':00:00.000000Z'"
		case definition.Day:
			return "substr(" + expr + ", 1, 10) || 'T00:00:00.000000Z'"
		case definition.Week:
			return "date(" + expr + ", '-6 days', 'weekday 1') || 'T00:00:00.000000Z'"
		}
		return "substr(" + expr + ", 1, 7) || '-01T00:00:00.000000Z'"
	},
	Seconds: func(from, to string) string {
		return fmt.Sprintf("(strftime('%%s', %[2]s) - strftime('%%s', %[1]s) + CAST(substr(%[2]s, 20, 7) AS REAL) - CAST(substr(%[1]s, 20, 7) AS REAL))", from, to)
	},
	Number: func(it definition.Item, expr string) string {
		if it.Type == definition.Decimal {
			return "CAST(" + expr + " AS REAL)"
		}
		return expr
	},
	Key: func(parts []store.KeyPart) string {
		exprs := make([]string, len(parts))
		for i, p := range parts {
			exprs[i] = p.Expr
		}
		return "json_array(" + strings.Join(exprs, ", ") + ")"
	},
	Type: func(k store.ValueKind) string {
		switch k {
		case store.KindInteger, store.KindCount, store.KindBoolean:
			return "INTEGER"
		case store.KindFloat, store.KindSeconds:
			return "REAL"
		case store.KindSum:
			return "INTEGER"
		case store.KindDecimal:
			// No type, hence no conversion: a decimal dimension keeps the
			// text the view shows, a decimal measure the REAL it is read as.
			return ""
		}
		return "TEXT"
	},
	Ranges: func(expr string, bounds []float64) string {
		var b strings.Builder
		fmt.Fprintf(&b, "CASE WHEN %s IS NULL THEN NULL", expr)
		for i, r := range bounds {
			fmt.Fprintf(&b, " WHEN %s < %s THEN %d", expr, strconv.FormatFloat(r, 'g', -1, 64), i)
		}
		fmt.Fprintf(&b, " ELSE %d END", len(bounds))
		return b.String()
	},
	// An OFFSET keeps SQLite from flattening the subquery into the
	// query (its rule 14), which would compute each expression as often
	// as the query names its column.
	Materialized: " LIMIT -1 OFFSET 0",
	Horizon: func(g definition.Aggregation) string {
		d := g.WindowDuration()
		format := map[definition.Bucket]string{
			definition.Minute: "%Y-%m-%dT%H:%M:00.000000Z",
			definition.Hour:   "%Y-%m-%dT%H:00:00.000000Z",
			definition.Day:    "%Y-%m-%dT00:00:00.000000Z",
		}[definition.WindowBucket(d)]
		return fmt.Sprintf("strftime('%s', 'now', '-%d seconds')", format, int64(d.Seconds()))
	},
}

// triggers create and drop the triggers that keep aggregations.
var triggers = store.AggregationTriggers{Create: aggregationTriggers, Drop: dropAggregationTriggers}

// aggregationTriggers are the triggers that keep an activity's
// aggregations. SQLite has row triggers only, and a trigger costs every
// row its statement writes in proportion to its program, whether its WHEN
// lets it run or not: a batch (Apply), which silences the triggers and
// folds its changes itself (batchfold.go), would pay for every aggregation
// program on each of its thousand rows. So the work is handed down three
// levels, the first as small as can be:
//
//  1. Three gates on bam_instances for the activity (insert, update,
//     delete), whose WHEN says whether the row is the activity's and not
//     in a batch that folds, and whose body hands its old and new values
//     to the activity's table of changes (<activity>_changes), and empties
//     it again.
//  2. For each aggregation, a trigger on the table of changes that hands
//     the old values (with the sign -1) and the new ones (1) to the
//     aggregation's table of moves (<table>_moves), if there are such
//     values and, for an update, a column or an item the aggregation reads
//     changed (a parse of the items' JSON).
//  3. The aggregation's mover: a BEFORE INSERT trigger on its table of
//     moves that moves the row's contribution into or out of the cells
//     and value multisets, then drops the row it was given
//     (RAISE(IGNORE)): the table of moves stays empty.
//
// The cells a move or a fold leaves at zero are found by a partial index
// of what is at or below zero, which holds nothing otherwise. None for an
// activity without aggregations.
func aggregationTriggers(a definition.Activity) []string {
	if len(a.Aggregations) == 0 {
		return nil
	}
	act := store.Literal(a.Name)
	const immediate = "NOT EXISTS (SELECT 1 FROM bam_agg_deferred)"
	base := activityTriggers(a.Name)
	changes := base + "_changes"
	side := func(r string) string {
		if r == "" {
			return "NULL, NULL, NULL, NULL"
		}
		return fmt.Sprintf("%[1]s.state, %[1]s.begin_time, %[1]s.end_time, %[1]s.items", r)
	}
	gate := func(op, row, old, new string) string {
		return fmt.Sprintf("CREATE TRIGGER %s_%s AFTER %s ON bam_instances WHEN %s.activity = %s AND %s BEGIN\n  INSERT INTO %s VALUES (%s, %s);\n  DELETE FROM %s;\nEND",
			base, strings.ToLower(op[:3]), op, row, act, immediate, changes, side(old), side(new), changes)
	}
	out := []string{
		fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s (o_state TEXT, o_begin_time INTEGER, o_end_time INTEGER, o_items TEXT, n_state TEXT, n_begin_time INTEGER, n_end_time INTEGER, n_items TEXT)", changes),
		gate("INSERT", "NEW", "", "NEW"),
		gate("UPDATE", "NEW", "OLD", "NEW"),
		gate("DELETE", "OLD", "OLD", ""),
	}
	for _, g := range a.Aggregations {
		m := aggregations.Model(a, g)
		moves := movesTable(m)
		row := fmt.Sprintf("(%s)", m.Contribution("(SELECT NEW.state AS state, NEW.begin_time AS begin_time, NEW.end_time AS end_time, NEW.items AS items)"))
		pick := func(col string) string { return fmt.Sprintf("iif(s.sign < 0, NEW.o_%[1]s, NEW.n_%[1]s)", col) }
		out = append(out,
			fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s (sign INTEGER NOT NULL, state TEXT, begin_time INTEGER, end_time INTEGER, items TEXT)", moves),
			fmt.Sprintf("CREATE TRIGGER %s_move BEFORE INSERT ON %s BEGIN\n%s  SELECT RAISE(IGNORE);\nEND", m.Table, moves, moveStatements(m, row)),
			fmt.Sprintf(`CREATE TRIGGER %[1]s_change AFTER INSERT ON %[2]s BEGIN
  INSERT INTO %[3]s (sign, state, begin_time, end_time, items)
    SELECT s.sign, %[4]s, %[5]s, %[6]s, %[7]s FROM (SELECT -1 AS sign UNION ALL SELECT 1) AS s
    WHERE %[4]s IS NOT NULL AND (NEW.o_state IS NULL OR NEW.n_state IS NULL OR %[8]s);
END`, m.Table, changes, moves, pick("state"), pick("begin_time"), pick("end_time"), pick("items"), changed(m, "NEW.o_", "NEW.n_")))
		out = append(out, zeroIndexes(m)...)
	}
	return out
}

// activityTriggers is the prefix of the names of an activity's gates and
// table of changes (aggregationTriggers).
func activityTriggers(activity string) string {
	return "bam_aggt_" + strings.TrimPrefix(store.AggregationTable(activity, ""), "bam_agg_")
}

// movesTable is the table an aggregation's changes are handed to its
// mover through (aggregationTriggers).
func movesTable(m store.AggModel) string { return m.Table + "_moves" }

// windowColumn is ", wb" for an aggregation with a window: the column of
// its value multisets that a cell's row has too.
func windowColumn(m store.AggModel) string {
	if m.Window == "" {
		return ""
	}
	return ", wb"
}

// zeroIndexes index the rows of m's tables at or below zero, which a
// fold deletes: an index that holds nothing but between a fold's writes
// and its deletes.
func zeroIndexes(m store.AggModel) []string {
	out := []string{fmt.Sprintf("CREATE INDEX IF NOT EXISTS %s ON %s (cell) WHERE instances <= 0", store.Ident(m.Table+"_zero"), m.Table)}
	for j, v := range m.Values {
		if v.Extremes {
			out = append(out, fmt.Sprintf("CREATE INDEX IF NOT EXISTS %s ON %s (cell, value) WHERE n <= 0", store.Ident(m.ValueTable(j)+"_zero"), m.ValueTable(j)))
		}
	}
	return out
}

// changed is true when an update of a row from OLD to NEW may move its
// contribution to m: a column or an item value m reads differs. The items
// are read with one json_extract a side (one parse of the items' text),
// not one each.
func changed(m store.AggModel, old, new string) string {
	var conds []string
	for _, c := range m.InputColumns {
		conds = append(conds, fmt.Sprintf("%[2]s%[1]s IS NOT %[3]s%[1]s", c, old, new))
	}
	if len(m.InputItems) > 0 {
		paths := make([]string, len(m.InputItems))
		for i, it := range m.InputItems {
			paths[i] = itemPath(it)
		}
		p := strings.Join(paths, ", ")
		conds = append(conds, fmt.Sprintf("json_extract(%[2]sitems, %[1]s) IS NOT json_extract(%[3]sitems, %[1]s)", p, old, new))
	}
	return "(" + strings.Join(conds, " OR ") + ")"
}

// moveStatements add NEW.sign (1 or -1, in the mover) times the
// contribution of row (a one-row subquery of Contribution's columns) to
// m's cells and value multisets: one upsert a table (so that the
// contribution is computed once a table, and the row is found by its
// key), then, for a subtraction, the delete of what fell to zero: a cell
// already gone (its bucket left the window) gets a row of negative counts,
// deleted at once. A delete's NEW.sign < 0 is constant in its statement,
// which SQLite tests before it computes anything.
func moveStatements(m store.AggModel, row string) string {
	keys := strings.Join(m.KeyColumns(), ", ")
	cols, vals, set := []string{"cell", keys, "instances"}, []string{"cell", keys, "NEW.sign"}, []string{"instances = instances + excluded.instances"}
	for j, v := range m.Values {
		cols = append(cols, fmt.Sprintf("n%d", j+1))
		vals = append(vals, fmt.Sprintf("NEW.sign * (v%d IS NOT NULL)", j+1))
		set = append(set, fmt.Sprintf("n%[1]d = n%[1]d + excluded.n%[1]d", j+1))
		if v.Sum {
			cols = append(cols, fmt.Sprintf("s%d", j+1))
			vals = append(vals, fmt.Sprintf("NEW.sign * coalesce(v%d, 0)", j+1))
			set = append(set, fmt.Sprintf("s%[1]d = s%[1]d + excluded.s%[1]d", j+1))
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "  INSERT INTO %s (%s) SELECT %s FROM %s WHERE true\n    ON CONFLICT (cell) DO UPDATE SET %s;\n",
		m.Table, strings.Join(cols, ", "), strings.Join(vals, ", "), row, strings.Join(set, ", "))
	fmt.Fprintf(&b, "  DELETE FROM %s WHERE NEW.sign < 0 AND cell = (SELECT cell FROM %s) AND instances <= 0;\n", m.Table, row)
	wb := windowColumn(m)
	for j, v := range m.Values {
		if !v.Extremes {
			continue
		}
		fmt.Fprintf(&b, "  INSERT INTO %[1]s (cell, grp%[2]s, value, n) SELECT cell, grp%[2]s, v%[3]d, NEW.sign FROM %[4]s WHERE v%[3]d IS NOT NULL\n    ON CONFLICT (cell, value) DO UPDATE SET n = n + excluded.n;\n",
			m.ValueTable(j), wb, j+1, row)
		fmt.Fprintf(&b, "  DELETE FROM %[1]s WHERE NEW.sign < 0 AND (cell, value) = (SELECT cell, v%[3]d FROM %[2]s) AND n <= 0;\n", m.ValueTable(j), row, j+1)
	}
	return b.String()
}

// dropAggregationTriggers drops the triggers of an activity's
// aggregations.
func dropAggregationTriggers(a definition.Activity) []string {
	base := activityTriggers(a.Name)
	var out []string
	for _, op := range []string{"ins", "upd", "del"} {
		out = append(out, "DROP TRIGGER IF EXISTS "+base+"_"+op)
	}
	out = append(out, "DROP TABLE IF EXISTS "+base+"_changes") // and the triggers on it
	for _, g := range a.Aggregations {
		table := store.AggregationTable(a.Name, g.Name)
		for _, op := range []string{"ins", "upd", "del"} { // the row triggers of a bam before version 17
			out = append(out, "DROP TRIGGER IF EXISTS "+table+"_"+op)
		}
		out = append(out, "DROP TABLE IF EXISTS "+table+"_moves") // and its mover
	}
	return out
}
