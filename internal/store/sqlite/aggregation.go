package sqlite

import (
	"fmt"
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
	ViewSQL: views,
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
		case store.KindDecimal, store.KindSum:
			return "NUMERIC"
		}
		return "TEXT"
	},
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
// aggregations: row triggers (SQLite has no others), each moving one
// instance's contribution, old then new, under the write lock the batch
// holds. An update that leaves an instance's contribution as it was moves
// nothing. None for an activity without aggregations.
func aggregationTriggers(a definition.Activity) []string {
	if len(a.Aggregations) == 0 {
		return nil
	}
	name := triggerName(a.Name)
	act := store.Literal(a.Name)
	var ins, upd, del strings.Builder
	for _, g := range a.Aggregations {
		m := aggregations.Model(a, g)
		newRow := fmt.Sprintf("(SELECT %s FROM (SELECT NEW.state AS state, NEW.begin_time AS begin_time, NEW.end_time AS end_time, NEW.items AS items))", m.Contribution())
		oldRow := fmt.Sprintf("(SELECT %s FROM (SELECT OLD.state AS state, OLD.begin_time AS begin_time, OLD.end_time AS end_time, OLD.items AS items))", m.Contribution())
		ins.WriteString(addStatements(m, newRow, "true"))
		del.WriteString(subtractStatements(m, oldRow, "true"))
		compared := []string{"cell"}
		for j := range m.Values {
			compared = append(compared, fmt.Sprintf("v%d", j+1))
		}
		list := strings.Join(compared, ", ")
		changed := fmt.Sprintf("(SELECT %[1]s FROM %[2]s) IS NOT (SELECT %[1]s FROM %[3]s)", list, newRow, oldRow)
		upd.WriteString(subtractStatements(m, oldRow, changed))
		upd.WriteString(addStatements(m, newRow, changed))
	}
	return []string{
		fmt.Sprintf("CREATE TRIGGER %s_ins AFTER INSERT ON bam_instances WHEN NEW.activity = %s BEGIN\n%sEND", name, act, ins.String()),
		fmt.Sprintf("CREATE TRIGGER %s_upd AFTER UPDATE ON bam_instances WHEN NEW.activity = %s BEGIN\n%sEND", name, act, upd.String()),
		fmt.Sprintf("CREATE TRIGGER %s_del AFTER DELETE ON bam_instances WHEN OLD.activity = %s BEGIN\n%sEND", name, act, del.String()),
	}
}

// addStatements add the contribution of row (a one-row subquery of
// Contribution's columns) to m's cell and value multisets when cond holds.
func addStatements(m store.AggModel, row, cond string) string {
	keys := strings.Join(m.KeyColumns(), ", ")
	cols, vals, set := []string{"cell", keys, "instances"}, []string{"cell", keys, "1"}, []string{"instances = instances + 1"}
	for j, v := range m.Values {
		cols = append(cols, fmt.Sprintf("n%d", j+1))
		vals = append(vals, fmt.Sprintf("v%d IS NOT NULL", j+1))
		set = append(set, fmt.Sprintf("n%[1]d = n%[1]d + excluded.n%[1]d", j+1))
		if v.Sum {
			cols = append(cols, fmt.Sprintf("s%d", j+1))
			vals = append(vals, fmt.Sprintf("coalesce(v%d, 0)", j+1))
			set = append(set, fmt.Sprintf("s%[1]d = s%[1]d + excluded.s%[1]d", j+1))
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "  INSERT INTO %s (%s) SELECT %s FROM %s WHERE %s\n    ON CONFLICT (cell) DO UPDATE SET %s;\n",
		m.Table, strings.Join(cols, ", "), strings.Join(vals, ", "), row, cond, strings.Join(set, ", "))
	wb := ""
	if m.Window != "" {
		wb = ", wb"
	}
	for j, v := range m.Values {
		if v.Extremes {
			fmt.Fprintf(&b, "  INSERT INTO %[1]s (cell, grp%[2]s, value, n) SELECT cell, grp%[2]s, v%[3]d, 1 FROM %[4]s WHERE v%[3]d IS NOT NULL AND %[5]s\n    ON CONFLICT (cell, value) DO UPDATE SET n = n + 1;\n",
				m.ValueTable(j), wb, j+1, row, cond)
		}
	}
	return b.String()
}

// subtractStatements take the contribution of row out of m's cell and
// value multisets when cond holds, and delete what falls to zero. A cell
// already gone (its bucket left the window) is left gone.
func subtractStatements(m store.AggModel, row, cond string) string {
	set := []string{"instances = instances - 1"}
	for j, v := range m.Values {
		set = append(set, fmt.Sprintf("n%[1]d = n%[1]d - (o.v%[1]d IS NOT NULL)", j+1))
		if v.Sum {
			set = append(set, fmt.Sprintf("s%[1]d = s%[1]d - coalesce(o.v%[1]d, 0)", j+1))
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "  UPDATE %[1]s SET %[2]s FROM %[3]s AS o WHERE %[1]s.cell = o.cell AND %[4]s;\n  DELETE FROM %[1]s WHERE instances <= 0 AND cell = (SELECT cell FROM %[3]s);\n",
		m.Table, strings.Join(set, ", "), row, cond)
	for j, v := range m.Values {
		if v.Extremes {
			fmt.Fprintf(&b, "  UPDATE %[1]s SET n = n - 1 FROM %[2]s AS o WHERE %[1]s.cell = o.cell AND %[1]s.value = o.v%[3]d AND %[4]s;\n  DELETE FROM %[1]s WHERE n <= 0 AND cell = (SELECT cell FROM %[2]s);\n",
				m.ValueTable(j), row, j+1, cond)
		}
	}
	return b.String()
}

// dropAggregationTriggers drops an activity's triggers.
func dropAggregationTriggers(activity string) []string {
	name := triggerName(activity)
	return []string{
		"DROP TRIGGER IF EXISTS " + name + "_ins",
		"DROP TRIGGER IF EXISTS " + name + "_upd",
		"DROP TRIGGER IF EXISTS " + name + "_del",
	}
}

// triggerName names an activity's triggers.
func triggerName(activity string) string {
	return "bam_aggt_" + strings.TrimPrefix(store.AggregationTable(activity, ""), "bam_agg_")
}
