package sqlite

import (
	"context"
	"database/sql"
	"time"

	"github.com/bam-dev/bam/internal/definition"
	"github.com/bam-dev/bam/internal/store"
)

// evaluator computes the steps of an aggregation's dimensions and values
// (store.Step) from an instance's inputs as SQLite computes their
// expressions (aggregations): in Go where the inputs are in the form bam
// stores (times in storedTime's form, numbers within a float's exact
// integers), by asking SQLite otherwise, in the batch's transaction.
type evaluator struct {
	ctx   context.Context
	tx    *sql.Tx
	stmts map[string]*sql.Stmt
}

// storedTime is the form of the times bam stores: the text of
// event.StoredTimes, and of isoTime.
const storedTime = "2006-01-02T15:04:05.000000Z"

// step computes st of the inputs in; bounds are a Ranges step's bounds as
// SQLite reads them.
func (e *evaluator) step(st store.Step, in []any, bounds []float64) (any, error) {
	switch st.Op {
	case store.InputStep:
		return in[st.Input], nil
	case store.ProgressStep:
		for _, s := range st.Stages {
			if in[s.Input] != nil {
				return s.Name, nil
			}
		}
		return nil, nil
	case store.BucketStep:
		v := in[st.Input]
		if v == nil {
			return nil, nil
		}
		if s, ok := v.(string); ok {
			if b, ok := bucket(s, st.Bucket); ok {
				return b, nil
			}
		}
		return e.sql(aggregations.Bucket("?1", st.Bucket), v)
	case store.RangesStep:
		v := in[st.Input]
		if v == nil {
			return nil, nil
		}
		if x, ok := exactFloat(v); ok {
			i := 0
			for i < len(bounds) && !(x < bounds[i]) {
				i++
			}
			return int64(i), nil
		}
		return e.sql(aggregations.Ranges("?1", st.Bounds), v)
	case store.SecondsStep:
		from, to := in[st.Input], in[st.To]
		if from == nil || to == nil {
			return nil, nil
		}
		f, fok := from.(string)
		t, tok := to.(string)
		if fok && tok {
			fs, ffrac, ok1 := unixSeconds(f)
			ts, tfrac, ok2 := unixSeconds(t)
			if ok1 && ok2 {
				// As SQLite: the difference of the whole seconds (integers),
				// plus the later fraction, minus the earlier one.
				return float64(ts-fs) + tfrac - ffrac, nil
			}
		}
		return e.sql(aggregations.Seconds("?1", "?2"), from, to)
	}
	return e.sql("NULL")
}

// sql computes expr (of the parameters ?1, ?2) of args in SQLite.
func (e *evaluator) sql(expr string, args ...any) (any, error) {
	stmt := e.stmts[expr]
	if stmt == nil {
		var err error
		if stmt, err = e.tx.PrepareContext(e.ctx, "SELECT "+expr); err != nil {
			return nil, err
		}
		if e.stmts == nil {
			e.stmts = map[string]*sql.Stmt{}
		}
		e.stmts[expr] = stmt
	}
	var v any
	err := stmt.QueryRowContext(e.ctx, args...).Scan(&v)
	return v, err
}

// close closes the statements sql prepared.
func (e *evaluator) close() {
	for _, stmt := range e.stmts {
		stmt.Close()
	}
}

// bucket is aggregations.Bucket of a stored time; false for any other
// text. A week's bucket goes through SQLite's date arithmetic, which keeps
// times to the millisecond: as in unixSeconds, the last millisecond of a
// second is left to SQLite.
func bucket(s string, b definition.Bucket) (string, bool) {
	t, ok := parseStored(s)
	if !ok {
		return "", false
	}
	switch b {
	case definition.Minute:
		return s[:16] + ":00.000000Z", true
	case definition.Hour:
		return s[:13] + ":00:00.000000Z", true
	case definition.Day:
		return s[:10] + "T00:00:00.000000Z", true
	case definition.Month:
		return s[:7] + "-01T00:00:00.000000Z", true
	case definition.Week:
		if t.Nanosecond() >= 999_000_000 {
			return "", false
		}
		d := t.AddDate(0, 0, -6)
		d = d.AddDate(0, 0, (int(time.Monday)-int(d.Weekday())+7)%7)
		return d.Format("2006-01-02") + "T00:00:00.000000Z", true
	}
	return "", false
}

// unixSeconds is strftime('%s', s) and CAST(substr(s, 20, 7) AS REAL) of
// a stored time: its whole seconds since the epoch and their fraction.
// SQLite keeps a time to the millisecond, and some of its versions round
// a fraction from .9995 on into the next second: the last millisecond of
// a second, one time in a thousand, is left to SQLite (false), as is any
// other text.
func unixSeconds(s string) (int64, float64, bool) {
	t, ok := parseStored(s)
	if !ok || t.Nanosecond() >= 999_000_000 {
		return 0, 0, false
	}
	// Six digits: the quotient of two exact doubles, correctly rounded,
	// as SQLite's CAST of the text reads it.
	return t.Unix(), float64(t.Nanosecond()/1000) / 1e6, true
}

// parseStored parses a time in storedTime's form; false for any other
// text (another form, a date that does not exist, a leap second).
func parseStored(s string) (time.Time, bool) {
	if len(s) != len(storedTime) {
		return time.Time{}, false
	}
	t, err := time.Parse(storedTime, s)
	if err != nil || t.Format(storedTime) != s {
		return time.Time{}, false
	}
	return t, true
}

// exactFloat is v as a float64 that compares with others as v does in
// SQLite: a REAL, or an INTEGER that a float64 holds exactly.
func exactFloat(v any) (float64, bool) {
	switch v := v.(type) {
	case float64:
		return v, true
	case int64:
		if v >= -1<<53 && v <= 1<<53 {
			return float64(v), true
		}
	}
	return 0, false
}
