package postgres

import (
	"fmt"

	"github.com/bam-dev/bam/internal/definition"
	"github.com/bam-dev/bam/internal/store"
)

// views writes an activity's views and indexes. Items are read through the
// guarded casts of migrations/0003_definitions.sql (bam_ts, bam_text,
// bam_int, bam_float, bam_num, bam_bool), which return NULL for a value
// that does not fit; times are the timestamptz columns themselves. An
// indexed item's expression has statistics beside its partial index, which
// the planner does not take statistics from.
var views = store.ViewSQL{Item: itemExpr, Time: func(col string) string { return col }, Statistics: true}

func itemExpr(it definition.Item) string {
	v := "items -> " + store.Literal(it.Name) + " -> 'v'"
	switch it.Type {
	case definition.Milestone:
		return "bam_ts(" + v + ")"
	case definition.Text:
		return "bam_text(" + v + ")"
	case definition.Integer:
		return "bam_int(" + v + ")"
	case definition.Float:
		return "bam_float(" + v + ")"
	case definition.Decimal:
		scale := 0
		if it.Scale != nil {
			scale = *it.Scale
		}
		return fmt.Sprintf("bam_num(%s, %d, %d)::numeric(%d,%d)", v, it.Precision, scale, it.Precision, scale)
	case definition.Boolean:
		return "bam_bool(" + v + ")"
	}
	// Parse refuses unknown types; a definition stored by a newer bam may
	// hold one this bam cannot read: its column is NULL, not a crash.
	return "NULL"
}
