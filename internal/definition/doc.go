// Package definition reads and checks activity definitions: the activities
// an analyst deploys, and their items, before anything touches the store.
//
// # The file
//
//	activities:
//	  - name: PurchaseOrder
//	    items:
//	      - {name: Received, type: milestone}
//	      - {name: Approved, type: milestone}
//	      - {name: Customer, type: text, max_length: 100, index: true}
//	      - {name: Amount,   type: decimal, precision: 12, scale: 2}
//	      - {name: Quantity, type: integer}
//	      - {name: Weight,   type: float}
//	      - {name: Rush,     type: boolean}
//
// The order of the items is kept: it is the order of the columns of the
// activity's views. Unknown fields are refused, so a misspelt option never
// passes silently.
//
// # Rules
//
//   - Names (activities and items) are a letter followed by letters, digits
//     and underscores. Activity names are at most MaxActivityName bytes
//     (they name the views "<name>_active", "<name>_completed" and
//     "<name>_all", within PostgreSQL's 63-byte identifiers), item names at
//     most MaxItemName.
//   - Names are unique without regard to case (two columns "Amount" and
//     "amount" would confuse every SQL and BI tool), activities among
//     activities and items within their activity.
//   - Item names that bam's own columns use are reserved (Reserved), again
//     without regard to case, and so are activity names that start with
//     ReservedPrefix ("bam_"), the prefix of bam's own tables.
//   - Types: milestone (a timestamp), text (max_length 1..MaxTextLength,
//     required), integer (64-bit), float (64-bit), decimal (precision
//     1..MaxPrecision, default 18; scale 0..precision, default 4), boolean.
//     An option that does not belong to the type is refused.
//   - index: true (any type) asks the store for an index on the item's
//     typed value, so that the activity's views find instances by it
//     quickly; every write of the activity's instances pays for it.
//   - An activity has 1..MaxItems items; a file at least one activity.
//
// # Aggregations
//
// An activity may declare aggregations: named summaries of its instances
// that the store keeps up to date as it applies events (package store,
// "Aggregations"), read through a view "<activity>_<aggregation>":
//
//	aggregations:
//	  - name: ByCustomer
//	    dimensions:
//	      - {item: Customer}
//	      - {item: Received, bucket: month}           # a time, truncated (UTC)
//	      - {item: Amount, ranges: [100, 1000, 10000]} # a number, in ranges
//	      - {name: stage, progress: [Received, Approved, Shipped]}
//	    measures:
//	      - {name: total,   function: sum, item: Amount}
//	      - {name: largest, function: max, item: Amount}
//	      - {name: to_ship, function: avg, from: Received, to: Shipped}
//	    window: 24h
//
// A cell is one state of the instances (pending, active, completed) and one
// value of every dimension; it counts its instances and holds each
// measure. Rules:
//
//   - An aggregation name is a name (as items'), unique in its activity
//     without regard to case, not one of the views' suffixes (active,
//     completed, all, archive), and short enough for its view's name,
//     "<activity>_<aggregation>" in lower case, to fit PostgreSQL's 63 bytes.
//   - 0..MaxDimensions dimensions, 0..MaxMeasures measures. A dimension is
//     one of: an item of any type but milestone, as it is; a milestone or
//     begin_time / end_time with a bucket (minute, hour, day, week — from
//     Monday —, month); a number item with ranges (ascending boundaries,
//     1..MaxRanges of them: the cells are "below the first", "from one to
//     the next", "from the last"); a progress: an ordered list of the
//     activity's milestones, whose value is the last of them an instance
//     has reached (empty before the first). Its column is named by name:,
//     by default after the item in lower case ("received_month" with a
//     bucket) or "progress".
//   - A measure has a name and a function: count (the instances with a
//     value of item, or every instance without one), sum, avg, min or max
//     of a number item, or of the duration in seconds from one milestone
//     to another (from:, to:; an instance with both). Column names —
//     dimensions', measures', and "state" and "instances" — are unique
//     without regard to case.
//   - window: a duration ("24h", "7d"): completed instances count only
//     while their end time is within it, to the minute, hour or day
//     (minute up to 2 hours, hour up to 7 days, day beyond). Active and
//     pending instances always count.
//
// A deployment adds, changes and removes aggregations online: their cells
// are derived from the instances, so a change rebuilds them from the
// instances and a removal drops only its view and cells (AddAggregation,
// ChangeAggregation, RemoveAggregation).
//
// # Deploying over a deployed definition
//
// Plan compares a file with what is deployed and lists the changes: adding
// activities and items, and widening an item (a longer text, a decimal
// with more digits and the same scale), never lose data; removing an item
// (absent from the file's activity), retyping one (any other change of
// type or options) and renaming one (the same name in another case) may,
// and are Destructive: a deployment makes them only when forced, with the
// plan shown. Adding or dropping an index (AddIndex, DropIndex) never loses
// data. An activity absent from the file is left alone. Format writes a
// file back, every option spelt out, that Parse reads as the same
// definition (`bam definition export`).
//
// # Events against a definition
//
// Activity.Validate checks an event's data: every item set must be defined
// (names are case-sensitive; a near miss is named), and its value must fit:
// a milestone is an RFC 3339 time in a string; text a string of at most
// max_length characters; integer a whole number within 64 bits; float a
// number within 64 bits; decimal a number, or a string holding one, with at
// most scale digits after the point and precision − scale before it;
// boolean true or false. null sets nothing and always passes. The error is
// an *event.Error naming "data.<item>" and the rule.
//
// Parse reports every problem it finds, not only the first, each with its
// line and the activity and item it concerns, so that one deploy attempt
// shows everything to fix.
package definition
