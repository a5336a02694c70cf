package store

import (
	"fmt"
	"strings"

	"github.com/bam-dev/bam/internal/definition"
)

// ViewSQL writes the statements that create and drop an activity's views
// and item indexes. The drivers differ only in how an item's typed value
// and a time column are read, which they supply.
type ViewSQL struct {
	// Item is an item's typed value read from the items column: NULL,
	// never an error, for a stored value that does not fit the type. An
	// indexed item's index is on this exact expression, so that
	// "WHERE <item> = v" on a view uses it.
	Item func(definition.Item) string
	// Time is a time column as the views show it.
	Time func(col string) string
	// Statistics: keep statistics of each indexed item's expression
	// (PostgreSQL's CREATE STATISTICS), filled at once by an ANALYZE when
	// an index is created. PostgreSQL takes none from a partial index:
	// without them it guesses that an equality on the item matches 0.5 %
	// of the instances, and at a million instances, asked for a page in an
	// order another index holds (the primary key, bam_instances_completed),
	// walks that index filtering row by row instead of reading the item's
	// few matches (docs/BENCHMARKS.md, section 11).
	Statistics bool
}

// Ident quotes an SQL identifier.
func Ident(name string) string { return `"` + strings.ReplaceAll(name, `"`, `""`) + `"` }

// Literal quotes an SQL string constant.
func Literal(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// selectFrom is the SELECT of a view of the activity over table, with an
// extra condition (empty for none).
func (v ViewSQL) selectFrom(a definition.Activity, table, cond string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "SELECT instance_id, state,\n    %s AS begin_time,\n    %s AS end_time,\n    %s AS last_modified,\n    events",
		v.Time("begin_time"), v.Time("end_time"), v.Time("last_modified"))
	for _, it := range a.Items {
		fmt.Fprintf(&b, ",\n    %s AS %s", v.Item(it), Ident(strings.ToLower(it.Name)))
	}
	fmt.Fprintf(&b, "\nFROM %s WHERE activity = %s", table, Literal(a.Name))
	if cond != "" {
		b.WriteString(" AND " + cond)
	}
	return b.String()
}

// CreateViews returns the statements that create an activity's views over
// bam_instances, and its archive view when archived.
func (v ViewSQL) CreateViews(a definition.Activity, archived bool) []string {
	base := strings.ToLower(a.Name)
	var out []string
	for _, vs := range viewStates {
		cond := ""
		if vs.State != "" {
			cond = "state = " + Literal(vs.State)
		}
		out = append(out, "CREATE VIEW "+Ident(base+vs.Suffix)+" AS\n"+v.selectFrom(a, "bam_instances", cond))
	}
	if archived {
		out = append(out, v.CreateArchiveView(a))
	}
	return out
}

// CreateArchiveView creates the <name>_archive view over
// bam_instances_archive, with the columns of the other views.
func (v ViewSQL) CreateArchiveView(a definition.Activity) string {
	return "CREATE VIEW " + Ident(strings.ToLower(a.Name)+ArchiveSuffix) + " AS\n" + v.selectFrom(a, "bam_instances_archive", "")
}

// DropViews returns the statements that drop every view of an activity.
// Without CASCADE: on PostgreSQL, a view a user built on one of them makes
// the deployment fail with a message naming it, rather than vanish.
func DropViews(name string) []string {
	var out []string
	for _, view := range ViewNames(name, true) {
		out = append(out, "DROP VIEW IF EXISTS "+Ident(view))
	}
	return out
}

// Redeploy returns the statements that bring an activity's views and item
// indexes from prev (nil for a new activity) to a: drop the views, drop and
// create the indexes whose expression changes, create the views.
func (v ViewSQL) Redeploy(prev *DeployedActivity, a definition.Activity) []string {
	var (
		old      *definition.Activity
		archived bool
	)
	if prev != nil {
		old, archived = &prev.Activity, prev.Archived
	}
	drop, create := v.indexChanges(old, a)
	stmts := append(DropViews(a.Name), v.IndexStatements(a.Name, drop, create)...)
	return append(stmts, v.CreateViews(a, archived)...)
}

// Remove returns the statements that drop an activity's views and item
// indexes.
func (v ViewSQL) Remove(a DeployedActivity) []string {
	return append(DropViews(a.Name), v.IndexStatements(a.Name, Indexed(a.Activity), nil)...)
}

// indexChanges says which item indexes a deployment of next over prev
// (nil for a new activity) drops and creates. An index whose expression
// changes (the item was retyped or renamed) is dropped and created again;
// one whose expression stays (a longer text) is kept, not rebuilt.
func (v ViewSQL) indexChanges(prev *definition.Activity, next definition.Activity) (drop, create []definition.Item) {
	old := map[string]definition.Item{}
	if prev != nil {
		for _, it := range prev.Items {
			if it.Index {
				old[strings.ToLower(it.Name)] = it
			}
		}
	}
	for _, it := range next.Items {
		key := strings.ToLower(it.Name)
		was, had := old[key]
		delete(old, key)
		same := had && v.Item(was) == v.Item(it)
		switch {
		case !it.Index:
			if had {
				drop = append(drop, was)
			}
		case same:
		default:
			if had {
				drop = append(drop, was)
			}
			create = append(create, it)
		}
	}
	if prev != nil {
		for _, it := range prev.Items { // indexed items the file removes
			if _, gone := old[strings.ToLower(it.Name)]; gone {
				drop = append(drop, it)
			}
		}
	}
	return drop, create
}

// IndexStatements returns the statements that drop and create an
// activity's item indexes, and their statistics when v keeps them.
func (v ViewSQL) IndexStatements(activity string, drop, create []definition.Item) []string {
	var out []string
	for _, it := range drop {
		out = append(out, "DROP INDEX IF EXISTS "+Ident(IndexName(activity, it.Name)))
		if v.Statistics {
			out = append(out, "DROP STATISTICS IF EXISTS "+Ident(StatisticsName(activity, it.Name)))
		}
	}
	for _, it := range create {
		out = append(out, fmt.Sprintf("CREATE INDEX IF NOT EXISTS %s ON bam_instances ((%s)) WHERE activity = %s",
			Ident(IndexName(activity, it.Name)), v.Item(it), Literal(activity)))
		if v.Statistics {
			out = append(out, fmt.Sprintf("CREATE STATISTICS IF NOT EXISTS %s ON (%s) FROM bam_instances",
				Ident(StatisticsName(activity, it.Name)), v.Item(it)))
		}
	}
	if v.Statistics && len(create) > 0 {
		out = append(out, "ANALYZE bam_instances")
	}
	return out
}

// StatisticsName is the name of the statistics an indexed item's index
// has beside it (ViewSQL.Statistics): its IndexName with bam_st_ for
// bam_ix_.
func StatisticsName(activity, item string) string {
	return "bam_st_" + strings.TrimPrefix(IndexName(activity, item), "bam_ix_")
}

// Indexed returns the items of a that are indexed.
func Indexed(a definition.Activity) []definition.Item {
	var out []definition.Item
	for _, it := range a.Items {
		if it.Index {
			out = append(out, it)
		}
	}
	return out
}
