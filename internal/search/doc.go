// Package search is bam's one filter language: the CLI (bam instance list
// --where), the HTTP API and the browser's query builder all send the same
// string, so a filter can be shared as one line or one URL parameter.
//
// A filter is parsed on its own (Parse: syntax only, no definition needed),
// then checked against the deployed definition of an activity (Prepare),
// which resolves names, types the values and refuses what cannot mean
// anything. A prepared Query compiles to parameterised SQL over the
// activity's views for PostgreSQL or SQLite, and evaluates in Go (Match)
// with the same semantics: the SQL is held to Match by a property test on
// both stores.
//
// # Grammar
//
// In EBNF; keywords are case-insensitive, spaces separate tokens freely.
//
//	filter    = [ or ] .
//	or        = and { "OR" and } .
//	and       = unary { "AND" unary } .
//	unary     = "NOT" unary | "(" or ")" | condition .
//	condition = field ( cmp value
//	                  | "BETWEEN" value "AND" value
//	                  | [ "NOT" ] "IN" "(" value { "," value } ")"
//	                  | "IN" "LAST" duration
//	                  | "CONTAINS" string
//	                  | "STARTS" "WITH" string
//	                  | "IS" [ "NOT" ] "EMPTY" ) .
//	cmp       = "=" | "!=" | "<" | "<=" | ">" | ">=" .
//	field     = name | '"' name '"' .          (quoted: a field named like a keyword)
//	name      = letter { letter | digit | "_" } .
//	value     = string | number | "TRUE" | "FALSE" .
//	string    = "'" { char | "''" } "'" .      ('' is one quote; UTF-8, no NUL)
//	number    = [ "-" ] digits [ "." digits ] [ ( "e" | "E" ) [ "+" | "-" ] digits ] .
//	duration  = digits ( "s" | "m" | "h" | "d" | "w" ) .
//
//	order     = [ key { "," key } ] .
//	key       = field [ "ASC" | "DESC" ] .
//
// NOT binds tighter than AND, AND tighter than OR. The empty filter matches
// every instance. String writes a filter back in one canonical form
// (keywords in upper case, values as parsed, parentheses only where
// precedence needs them) that Parse reads as the same filter; OrderString
// does the same for an order ("Amount DESC, begin_time").
//
// # Fields
//
// A field is an item of the activity, named in any case (item names are
// unique without regard to case), or one of the built-in columns:
// instance_id (text), state (pending, active or completed), begin_time,
// end_time and last_modified (times) and events (integer). An unknown name
// is an error naming the closest one.
//
// # Operators and values per type
//
//	type                   values                      operators
//	text, instance_id      'string'                    = != < <= > >= BETWEEN IN, NOT IN, CONTAINS, STARTS WITH
//	integer, events        whole number (64 bits)      = != < <= > >= BETWEEN IN, NOT IN
//	float                  number                      = != < <= > >= BETWEEN IN, NOT IN
//	decimal                number (fits the item)      = != < <= > >= BETWEEN IN, NOT IN
//	boolean                true, false                 = != IN, NOT IN
//	milestone, *_time      'RFC 3339' or 'YYYY-MM-DD'   = != < <= > >= BETWEEN IN, NOT IN, IN LAST
//	state                  'pending' 'active' 'completed'  = != IN, NOT IN
//
// IS EMPTY and IS NOT EMPTY take every field. A value must fit the field
// the way an event's value must fit the item (definition.Activity.Validate:
// a text no longer than max_length, a decimal with no more digits than its
// precision and scale allow); a time is an RFC 3339 string, or a date alone
// ('2026-11-01'), which means midnight UTC of that day; times compare to the
// microsecond, as stores keep them. BETWEEN x AND y is inclusive at both
// ends, and refused when x is after y. IN LAST 90m matches times from Now
// minus 90 minutes to Now, both included (a time in the future is not in
// the last 90 minutes); units are s, m, h, d (24 hours) and w (7 days).
// Text compares by bytes (code points), case-sensitively: CONTAINS 'x'
// and STARTS WITH 'x' match the text holding x anywhere or at the start;
// the empty string is in every text.
//
// # Empty values
//
// A field is empty when the instance has no value for it: the item was
// never set, was set to null, or holds a value that does not fit its type
// (which the views show as NULL); begin_time and end_time are empty until
// the begin and end events arrive. An empty string is a value, not empty.
// Every condition but IS EMPTY is false on an empty field, != and NOT IN
// included, and NOT negates a condition as in two-valued logic: NOT Amount
// > 10 matches the instances without an amount, Amount <= 10 does not.
//
// # Ordering and paging
//
// An order lists keys: any item, state, begin_time, end_time,
// last_modified, events or instance_id, each ascending unless DESC. Empty
// values sort last in either direction (NULLS LAST), and instance_id
// ascending is always the final tie-breaker, so the order is total. The
// default order is instance_id alone. Text sorts by bytes; booleans false
// before true.
//
// A page ends with a cursor, an opaque token holding the last row's sort
// values and instance id, the Now the first page was computed with (so
// that IN LAST ranges stay put while paging), and a fingerprint of the
// activity, scope, filter and order: a cursor used with another one is
// refused. The next page is the rows after that position in the order
// (keyset paging, never OFFSET): a row whose sort values do not change
// between pages is never skipped nor shown twice, whatever else is
// written meanwhile. A row whose sort values change may be shown twice (it
// moved after the cursor) or not at all (it moved before); a row that
// starts or stops matching the filter is shown or not depending on when
// its page is read.
//
// # How it compiles
//
// A query selects from the activity's view for a scope (<name>_active,
// <name>_completed or <name>_all), whose columns are typed expressions
// over bam_instances. Values are always parameters ($1… on PostgreSQL,
// ?1… on SQLite, numbered because the keyset condition repeats one), never
// text in the statement; identifiers come only from the
// checked definition and are quoted (store.Ident). Relative times are
// computed from Now in Go and sent as parameters. Per dialect:
//
//   - PostgreSQL: milestones and times are timestamptz, decimals numeric
//     (the parameter sent as text and cast), booleans boolean. Ranges and
//     ordering of text use COLLATE "C", so that they sort by bytes as SQLite
//     and Go do whatever the database's collation, except on a database
//     whose collation orders by bytes already (C, POSIX, C.UTF-8: the
//     PostgresBytewise dialect, which DialectFor finds through the store's
//     TextSortsByBytes): there text is compared as it is, so that the
//     primary key and the text items' indexes, which are in the database's
//     collation, serve the order and the ranges. CONTAINS is strpos,
//     STARTS WITH is starts_with: no LIKE, no metacharacters to escape.
//   - SQLite: times are text in the stored form 2006-01-02T15:04:05.000000Z,
//     whose text order is time order, and parameters are sent in that form;
//     booleans are 1 and 0; decimals are text as sent and compare and sort
//     as CAST(… AS REAL): a 64-bit float, exact to about 15 significant
//     digits. CONTAINS is instr, STARTS WITH compares a substr.
//
// A condition under a NOT is guarded with "col IS NOT NULL AND …" so that
// NOT sees false, not SQL's NULL, on an empty field. The order becomes
// ORDER BY key [DESC] NULLS LAST, …, instance_id, and the cursor becomes
// the keyset condition (k1 > v1) OR (k1 = v1 AND k2 > v2) … OR (all equal
// AND instance_id > id), where "k > v" also holds for an empty k (empties
// come last) and an empty v is passed by no k. CountSQL counts the matches
// up to a cap: SELECT count(*) FROM (SELECT 1 … LIMIT cap+1), so an answer
// of cap+1 reads "more than cap" without counting the whole store.
//
// # Which filters are fast
//
// An indexed item (index: true) has an expression index on the view's
// exact expression, used by =, IN, <, <=, >, >= and BETWEEN on that item
// (on PostgreSQL, text ranges only when the database's collation orders by
// bytes; otherwise they are compared in "C", which no index holds), and on
// PostgreSQL statistics of that expression, without which the planner
// guessed that an equality matches 0.5 % of the instances and walked the
// index of the order asked for instead. A range on end_time over the
// completed scope uses the bam_instances_completed index. The default
// order, instance_id, reads the primary key (bam_instances_state in the
// active and completed scopes) in order and stops at the page's end, on
// PostgreSQL only when the database's collation orders by bytes; else
// every match is sorted. bench.BenchmarkSearch measures these at a million
// instances (docs/QUERY.md has the figures). Every other condition (CONTAINS,
// STARTS WITH, IS EMPTY, != and NOT IN, items without an index, and on
// SQLite any decimal comparison, which goes through CAST) is checked row by
// row over the activity's instances of the scope: fine for thousands,
// slow for millions. OR of indexed conditions may use the indexes
// together (a bitmap OR); a NOT of anything is read row by row.
//
// The store runs a compiled statement through a store.Searcher (each
// driver's SearchRows returns the rows as its client reads them); Run
// types the rows and builds the page's cursor, Count the bounded count.
// The item columns and the sort keys are selected under positional names
// (c7, c8, …): PostgreSQL's ORDER BY "amount" would otherwise sort by an
// output column "amount" (the decimal's exact text) over the view's
// numeric one.
package search
