package store

import (
	"strings"
	"time"
)

// FailedQuery selects failed events, oldest (lowest id) first:
// Store.FailedEventsWhere lists them a page at a time and
// Store.CountFailed counts them up to a bound. Zero fields select
// everything.
type FailedQuery struct {
	Source string // one source's (DirectSource for the direct writes')
	// Partition selects one partition of Source; nil: every partition.
	Partition *int
	// Reason selects the events whose reason contains this text
	// (case-sensitive, as `bam failed retry --reason`).
	Reason string
	// Since and Until bound the time the events failed at: Since <=
	// failed at < Until. Zero: unbounded.
	Since, Until time.Time
	// AfterID lists the events after this id (paging).
	AfterID int64
	// Limit bounds the list; 0: no limit.
	Limit int
}

// FailedDialect is how a driver writes FailedQuery.Where's SQL.
type FailedDialect struct {
	// Placeholder writes the nth argument's placeholder, from 1.
	Placeholder func(n int) string
	// Position is the function that finds a text in another, answering
	// 0 when it is absent: instr (SQLite), strpos (PostgreSQL).
	Position string
	// Time is a time as the driver stores failed_at.
	Time func(time.Time) any
}

// Where returns the conditions on bam_failed that select q's events (always
// a valid WHERE clause body) and their arguments. AfterID is included when
// paging is true; Limit never is.
func (q FailedQuery) Where(d FailedDialect, paging bool) (string, []any) {
	conds := []string{"1 = 1"}
	var args []any
	add := func(cond string, arg any) {
		args = append(args, arg)
		conds = append(conds, strings.ReplaceAll(cond, "?", d.Placeholder(len(args))))
	}
	if q.Source != "" {
		add("source = ?", q.Source)
	}
	if q.Partition != nil {
		add("partition = ?", *q.Partition)
	}
	if q.Reason != "" {
		add(d.Position+"(reason, ?) > 0", q.Reason)
	}
	if !q.Since.IsZero() {
		add("failed_at >= ?", d.Time(q.Since))
	}
	if !q.Until.IsZero() {
		add("failed_at < ?", d.Time(q.Until))
	}
	if paging && q.AfterID > 0 {
		add("id > ?", q.AfterID)
	}
	return strings.Join(conds, " AND "), args
}
