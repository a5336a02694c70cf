package sqlite

import (
	"fmt"

	"github.com/bam-dev/bam/internal/definition"
	"github.com/bam-dev/bam/internal/store"
)

// views writes an activity's views and indexes. They use SQLite's built-in
// functions only, so that the sqlite3 shell and any SQLite client read them
// without bam's Go functions.
var views = store.ViewSQL{Item: itemExpr, Time: isoTime}

// isoTime writes a column of microseconds since the Unix epoch as ISO 8601
// UTC text with microseconds (2026-11-25T10:02:00.000000Z), which sorts as
// the time does. The floor division keeps times before 1970 right.
// migrations/0004_definitions.sql indexes the same expression of end_time.
func isoTime(col string) string {
	return fmt.Sprintf("strftime('%%Y-%%m-%%dT%%H:%%M:%%S', (%[1]s - (%[1]s %% 1000000 + 1000000) %% 1000000) / 1000000, 'unixepoch')"+
		"\n        || printf('.%%06dZ', (%[1]s %% 1000000 + 1000000) %% 1000000)", col)
}

// itemPath is the JSON path of an item's value in items.
func itemPath(item string) string {
	return store.Literal(`$."` + item + `"."v"`)
}

// rfc3339Shape is the GLOB an RFC 3339 time's start matches.
const rfc3339Shape = "'[0-9][0-9][0-9][0-9]-[01][0-9]-[0-3][0-9][Tt ][0-2][0-9]:[0-5][0-9]:[0-6][0-9]*'"

// itemExpr is the typed value of an item, NULL when the stored value does
// not fit the type: a view never fails on one bad value.
func itemExpr(it definition.Item) string {
	p := itemPath(it.Name)
	typ := "json_type(items, " + p + ")"
	val := "json_extract(items, " + p + ")"
	switch it.Type {
	case definition.Milestone:
		return fmt.Sprintf("CASE WHEN %s = 'text' AND %s GLOB %s THEN %s END", typ, val, rfc3339Shape, val)
	case definition.Text:
		return fmt.Sprintf("CASE WHEN %s = 'text' THEN %s END", typ, val)
	case definition.Integer:
		// A whole number written as 1.0 or 1e3 counts, as Validate says;
		// one beyond 64 bits is read as a REAL by json_extract: NULL.
		return fmt.Sprintf("CASE %[1]s WHEN 'integer' THEN CASE WHEN typeof(%[2]s) = 'integer' THEN %[2]s END"+
			" WHEN 'real' THEN CASE WHEN abs(%[2]s) < 9.2e18 AND %[2]s = CAST(%[2]s AS INTEGER) THEN CAST(%[2]s AS INTEGER) END END", typ, val)
	case definition.Float:
		return fmt.Sprintf("CASE WHEN %s IN ('integer', 'real') THEN CAST(%s AS REAL) END", typ, val)
	case definition.Decimal:
		// Exact: the number's text as written, or a string holding one.
		return fmt.Sprintf("CASE %[1]s WHEN 'integer' THEN items -> %[3]s WHEN 'real' THEN items -> %[3]s"+
			" WHEN 'text' THEN CASE WHEN %[2]s <> '' AND %[2]s NOT GLOB '*[^0-9.eE+-]*' THEN %[2]s END END", typ, val, p)
	case definition.Boolean:
		return fmt.Sprintf("CASE %s WHEN 'true' THEN 1 WHEN 'false' THEN 0 END", typ)
	}
	// Parse refuses unknown types; a definition stored by a newer bam may
	// hold one this bam cannot read: its column is NULL, not a crash.
	return "NULL"
}
