package postgres

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/bam-dev/bam/internal/definition"
	"github.com/bam-dev/bam/internal/store"
)

// aggregations writes the SQL of the activities' aggregations (store's
// "Aggregations"). Times are timestamptz, truncated in UTC whatever the
// session's time zone; a key holds a time as its epoch, since a
// timestamptz's text depends on the session's TimeZone; durations are
// numeric seconds, so that their sums are exact.
var aggregations = store.AggregationSQL{
	ViewSQL:     views,
	NotDistinct: "IS NOT DISTINCT FROM",
	Bucket: func(expr string, b definition.Bucket) string {
		return fmt.Sprintf("date_trunc('%s', %s, 'UTC')", b, expr)
	},
	Seconds: func(from, to string) string {
		return fmt.Sprintf("extract(epoch FROM %s - %s)", to, from)
	},
	Number: func(_ definition.Item, expr string) string { return expr },
	Key: func(parts []store.KeyPart) string {
		exprs := make([]string, len(parts))
		for i, p := range parts {
			exprs[i] = p.Expr
			if p.Time {
				exprs[i] = "extract(epoch FROM " + p.Expr + ")"
			}
		}
		return "json_build_array(" + strings.Join(exprs, ", ") + ")::text"
	},
	Type: func(k store.ValueKind) string {
		switch k {
		case store.KindInteger, store.KindCount:
			return "bigint"
		case store.KindFloat:
			return "double precision"
		case store.KindDecimal, store.KindSum, store.KindSeconds:
			return "numeric"
		case store.KindBoolean:
			return "boolean"
		case store.KindTime:
			return "timestamptz"
		}
		return "text"
	},
	Horizon: func(g definition.Aggregation) string {
		d := g.WindowDuration()
		return fmt.Sprintf("date_trunc('%s', now() - interval '%d seconds', 'UTC')", definition.WindowBucket(d), int64(d.Seconds()))
	},
	Ranges: func(expr string, bounds []float64) string {
		return fmt.Sprintf("width_bucket(%s, %s)", expr, boundsArray(bounds))
	},
	Materialized: " OFFSET 0",
}

// boundsArray writes range bounds as a numeric array.
func boundsArray(bounds []float64) string {
	parts := make([]string, len(bounds))
	for i, b := range bounds {
		parts[i] = strconv.FormatFloat(b, 'g', -1, 64)
	}
	return "ARRAY[" + strings.Join(parts, ", ") + "]::numeric[]"
}

// triggers create and drop the triggers that keep aggregations.
var triggers = store.AggregationTriggers{
	Create: aggregationTriggers,
	Drop:   dropAggregationTriggers,
	Lock:   "LOCK TABLE bam_instances IN SHARE ROW EXCLUSIVE MODE",
}

// aggregationTriggers are the statements that keep an activity's
// aggregations: one plpgsql function, run once per statement that
// inserts, updates or deletes instances (AFTER ... FOR EACH STATEMENT,
// with the statement's rows as transition tables), which moves the
// changed instances' contributions between cells set-based, in cell order
// (so that two transactions lock cells in one order and never deadlock
// on them). An updated instance none of whose columns and items an
// aggregation reads changed costs that aggregation a comparison, nothing
// more. None for an activity without aggregations.
func aggregationTriggers(a definition.Activity) []string {
	if len(a.Aggregations) == 0 {
		return nil
	}
	name := triggerName(a.Name)
	act := store.Literal(a.Name)
	var ins, upd, del strings.Builder
	values := 0
	for _, g := range a.Aggregations {
		m := aggregations.Model(a, g)
		values = max(values, len(m.Values))
		signed := func(sign int, src string) string {
			return fmt.Sprintf("SELECT %d AS sign, c.* FROM (%s) c", sign, m.Contribution(src))
		}
		ins.WriteString(moveStatement(m, "r AS ("+signed(1, "newt WHERE activity = "+act)+")"))
		del.WriteString(moveStatement(m, "r AS ("+signed(-1, "oldt WHERE activity = "+act)+")"))
		side := func(p string) string {
			return fmt.Sprintf("(SELECT %[1]s_state AS state, %[1]s_begin_time AS begin_time, %[1]s_end_time AS end_time, %[1]s_items AS items FROM ch) s", p)
		}
		upd.WriteString(moveStatement(m, fmt.Sprintf(`ch AS (SELECT o.state AS o_state, o.begin_time AS o_begin_time, o.end_time AS o_end_time, o.items AS o_items,
			n.state AS n_state, n.begin_time AS n_begin_time, n.end_time AS n_end_time, n.items AS n_items
			FROM oldt o JOIN newt n ON n.instance_id = o.instance_id AND n.activity = o.activity
			WHERE o.activity = %s AND %s),
		r AS (%s UNION ALL %s)`, act, m.Changed("o", "n", "IS DISTINCT FROM", rawItem), signed(1, side("n")), signed(-1, side("o")))))
	}
	gone := make([]string, values+1)
	for i := range gone {
		gone[i] = fmt.Sprintf("gone%d text[];", i)
	}
	// The planner knows nothing of a transition table's size and takes it
	// for one row: the join of an update's old and new rows would be a
	// nested loop, a million comparisons for a batch of 1000 (115 ms where
	// a hash join takes 1). The function's own setting keeps it off for
	// its statements, and for nothing else.
	fn := fmt.Sprintf(`CREATE FUNCTION %[1]s() RETURNS trigger LANGUAGE plpgsql SET enable_nestloop = off AS $fn$
DECLARE
	%[5]s
BEGIN
	IF TG_OP = 'INSERT' THEN
%[2]s	ELSIF TG_OP = 'UPDATE' THEN
%[3]s	ELSE
%[4]s	END IF;
	RETURN NULL;
END
$fn$`, name, ins.String(), upd.String(), del.String(), strings.Join(gone, " "))
	return []string{fn,
		fmt.Sprintf("CREATE TRIGGER %[1]s_ins AFTER INSERT ON bam_instances REFERENCING NEW TABLE AS newt FOR EACH STATEMENT EXECUTE FUNCTION %[1]s()", name),
		fmt.Sprintf("CREATE TRIGGER %[1]s_upd AFTER UPDATE ON bam_instances REFERENCING OLD TABLE AS oldt NEW TABLE AS newt FOR EACH STATEMENT EXECUTE FUNCTION %[1]s()", name),
		fmt.Sprintf("CREATE TRIGGER %[1]s_del AFTER DELETE ON bam_instances REFERENCING OLD TABLE AS oldt FOR EACH STATEMENT EXECUTE FUNCTION %[1]s()", name),
	}
}

// rawItem is an item's stored value in the row alias row.
func rawItem(row, item string) string {
	return row + ".items -> " + store.Literal(item) + " -> 'v'"
}

// dropAggregationTriggers drops an activity's triggers and their function.
func dropAggregationTriggers(a definition.Activity) []string {
	name := triggerName(a.Name)
	return []string{
		fmt.Sprintf("DROP TRIGGER IF EXISTS %[1]s_ins ON bam_instances", name),
		fmt.Sprintf("DROP TRIGGER IF EXISTS %[1]s_upd ON bam_instances", name),
		fmt.Sprintf("DROP TRIGGER IF EXISTS %[1]s_del ON bam_instances", name),
		fmt.Sprintf("DROP FUNCTION IF EXISTS %s()", name),
	}
}

// triggerName names an activity's trigger function (and, with a suffix,
// its triggers): PostgreSQL fires a table's triggers in the order of their
// names, which is then the same in every transaction.
func triggerName(activity string) string {
	return "bam_aggt_" + strings.TrimPrefix(store.AggregationTable(activity, ""), "bam_agg_")
}

// moveStatement is the plpgsql statement that applies the signed
// contributions r (sign, then Contribution's columns), which the CTEs
// with define, to m's cells and value multisets, and deletes what fell
// to zero. One statement, so that r is computed once.
func moveStatement(m store.AggModel, with string) string {
	keys := strings.Join(m.KeyColumns(), ", ")
	cols, sums, set := []string{"cell", keys, "instances"}, []string{"sum(sign) AS instances"}, []string{"instances = c.instances + excluded.instances"}
	nonzero := []string{"sum(sign) <> 0"}
	for j, v := range m.Values {
		n, s := fmt.Sprintf("n%d", j+1), fmt.Sprintf("s%d", j+1)
		cols = append(cols, n)
		sums = append(sums, fmt.Sprintf("coalesce(sum(sign) FILTER (WHERE v%d IS NOT NULL), 0) AS %s", j+1, n))
		set = append(set, fmt.Sprintf("%[1]s = c.%[1]s + excluded.%[1]s", n))
		nonzero = append(nonzero, fmt.Sprintf("coalesce(sum(sign) FILTER (WHERE v%d IS NOT NULL), 0) <> 0", j+1))
		if v.Sum {
			cols = append(cols, s)
			sums = append(sums, fmt.Sprintf("coalesce(sum(sign * v%d), 0) AS %s", j+1, s))
			set = append(set, fmt.Sprintf("%[1]s = c.%[1]s + excluded.%[1]s", s))
			nonzero = append(nonzero, fmt.Sprintf("coalesce(sum(sign * v%d), 0) <> 0", j+1))
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, `		WITH %s,
		d AS (SELECT cell, %s, %s FROM r GROUP BY cell, %s HAVING %s),
		u AS (INSERT INTO %s AS c (%s) SELECT %s FROM d ORDER BY cell
			ON CONFLICT (cell) DO UPDATE SET %s RETURNING c.cell, c.instances)`,
		with, keys, strings.Join(sums, ", "), keys, strings.Join(nonzero, " OR "),
		m.Table, strings.Join(cols, ", "), strings.Join(cols, ", "), strings.Join(set, ", "))
	wb := ""
	if m.Window != "" {
		wb = ", wb"
	}
	gone, into := []string{"array(SELECT cell FROM u WHERE instances <= 0)"}, []string{"gone0"}
	var deletes strings.Builder
	fmt.Fprintf(&deletes, "		IF cardinality(gone0) > 0 THEN\n			DELETE FROM %s WHERE cell = ANY(gone0) AND instances <= 0;\n		END IF;\n", m.Table)
	for j, v := range m.Values {
		if !v.Extremes {
			continue
		}
		fmt.Fprintf(&b, `,
		x%[4]d AS (INSERT INTO %[1]s AS c (cell, grp%[2]s, value, n)
			SELECT cell, grp%[2]s, v%[4]d, sum(sign) FROM r WHERE v%[4]d IS NOT NULL
			GROUP BY cell, grp%[2]s, v%[4]d HAVING sum(sign) <> 0 ORDER BY cell, v%[4]d
			ON CONFLICT (cell, value) DO UPDATE SET n = c.n + excluded.n RETURNING c.cell, c.n)`, m.ValueTable(j), wb, "", j+1)
		gone = append(gone, fmt.Sprintf("array(SELECT DISTINCT cell FROM x%d WHERE n <= 0)", j+1))
		into = append(into, fmt.Sprintf("gone%d", j+1))
		fmt.Fprintf(&deletes, "		IF cardinality(gone%[2]d) > 0 THEN\n			DELETE FROM %[1]s WHERE cell = ANY(gone%[2]d) AND n <= 0;\n		END IF;\n", m.ValueTable(j), j+1)
	}
	fmt.Fprintf(&b, "\n		SELECT %s INTO %s;\n%s", strings.Join(gone, ", "), strings.Join(into, ", "), deletes.String())
	return b.String()
}
