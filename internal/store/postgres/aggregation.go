package postgres

import (
	"fmt"
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
	ViewSQL: views,
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
// on them). None for an activity without aggregations.
func aggregationTriggers(a definition.Activity) []string {
	if len(a.Aggregations) == 0 {
		return nil
	}
	name := triggerName(a.Name)
	var ins, upd, del strings.Builder
	for _, g := range a.Aggregations {
		m := aggregations.Model(a, g)
		act := store.Literal(a.Name)
		ins.WriteString(moveStatements(m, fmt.Sprintf("SELECT 1 AS sign, %s FROM newt WHERE activity = %s", m.Contribution(), act)))
		del.WriteString(moveStatements(m, fmt.Sprintf("SELECT -1 AS sign, %s FROM oldt WHERE activity = %s", m.Contribution(), act)))
		// An updated instance whose contribution is the same before and
		// after moves nothing.
		upd.WriteString(moveStatements(m, fmt.Sprintf(`WITH o AS (SELECT instance_id AS iid, %[1]s FROM oldt WHERE activity = %[2]s),
		     n AS (SELECT instance_id AS iid, %[1]s FROM newt WHERE activity = %[2]s),
		     ch AS (SELECT o.iid AS oiid, n.iid AS niid FROM o FULL JOIN n ON o.iid = n.iid WHERE o IS DISTINCT FROM n)
		SELECT 1 AS sign, n.* FROM n WHERE n.iid IN (SELECT niid FROM ch)
		UNION ALL SELECT -1, o.* FROM o WHERE o.iid IN (SELECT oiid FROM ch)`, m.Contribution(), act)))
	}
	fn := fmt.Sprintf(`CREATE FUNCTION %[1]s() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
	gone text[];
BEGIN
	IF TG_OP = 'INSERT' THEN
%[2]s	ELSIF TG_OP = 'UPDATE' THEN
%[3]s	ELSE
%[4]s	END IF;
	RETURN NULL;
END
$fn$`, name, ins.String(), upd.String(), del.String())
	return []string{fn,
		fmt.Sprintf("CREATE TRIGGER %[1]s_ins AFTER INSERT ON bam_instances REFERENCING NEW TABLE AS newt FOR EACH STATEMENT EXECUTE FUNCTION %[1]s()", name),
		fmt.Sprintf("CREATE TRIGGER %[1]s_upd AFTER UPDATE ON bam_instances REFERENCING OLD TABLE AS oldt NEW TABLE AS newt FOR EACH STATEMENT EXECUTE FUNCTION %[1]s()", name),
		fmt.Sprintf("CREATE TRIGGER %[1]s_del AFTER DELETE ON bam_instances REFERENCING OLD TABLE AS oldt FOR EACH STATEMENT EXECUTE FUNCTION %[1]s()", name),
	}
}

// dropAggregationTriggers drops an activity's triggers and their function.
func dropAggregationTriggers(activity string) []string {
	name := triggerName(activity)
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

// moveStatements are the plpgsql statements that apply the signed
// contributions rows (sign, then Contribution's columns) to m's cells and
// value multisets, then delete what fell to zero.
func moveStatements(m store.AggModel, rows string) string {
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
	fmt.Fprintf(&b, `		WITH r AS (%s),
		d AS (SELECT cell, %s, %s FROM r GROUP BY cell, %s HAVING %s),
		u AS (INSERT INTO %s AS c (%s) SELECT %s FROM d ORDER BY cell
			ON CONFLICT (cell) DO UPDATE SET %s RETURNING c.cell, c.instances)
		SELECT array(SELECT cell FROM u WHERE instances <= 0) INTO gone;
		IF cardinality(gone) > 0 THEN
			DELETE FROM %s WHERE cell = ANY(gone) AND instances <= 0;
		END IF;
`, rows, keys, strings.Join(sums, ", "), keys, strings.Join(nonzero, " OR "),
		m.Table, strings.Join(cols, ", "), strings.Join(cols, ", "), strings.Join(set, ", "), m.Table)
	wb := ""
	if m.Window != "" {
		wb = ", wb"
	}
	for j, v := range m.Values {
		if !v.Extremes {
			continue
		}
		fmt.Fprintf(&b, `		WITH r AS (%[1]s),
		u AS (INSERT INTO %[2]s AS c (cell, grp%[3]s, value, n)
			SELECT cell, grp%[3]s, v%[4]d, sum(sign) FROM r WHERE v%[4]d IS NOT NULL
			GROUP BY cell, grp%[3]s, v%[4]d HAVING sum(sign) <> 0 ORDER BY cell, v%[4]d
			ON CONFLICT (cell, value) DO UPDATE SET n = c.n + excluded.n RETURNING c.cell, c.n)
		SELECT array(SELECT DISTINCT cell FROM u WHERE n <= 0) INTO gone;
		IF cardinality(gone) > 0 THEN
			DELETE FROM %[2]s WHERE cell = ANY(gone) AND n <= 0;
		END IF;
`, rows, m.ValueTable(j), wb, j+1)
	}
	return b.String()
}
