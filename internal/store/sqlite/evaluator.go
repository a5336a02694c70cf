package sqlite

import (
	"context"
	"database/sql"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/tidwall/gjson"

	"github.com/bam-dev/bam/internal/definition"
	"github.com/bam-dev/bam/internal/event"
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
// text (another form, a date that does not exist, a leap second, a year
// before 1). It reads the digits itself: time.Parse and the Format that
// would check the form again cost more than the rest of a contribution.
func parseStored(s string) (time.Time, bool) {
	if len(s) != len(storedTime) || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' || s[19] != '.' || s[26] != 'Z' {
		return time.Time{}, false
	}
	num := func(from, to int) (int, bool) {
		n := 0
		for i := from; i < to; i++ {
			c := s[i]
			if c < '0' || c > '9' {
				return 0, false
			}
			n = n*10 + int(c-'0')
		}
		return n, true
	}
	year, ok1 := num(0, 4)
	month, ok2 := num(5, 7)
	day, ok3 := num(8, 10)
	hour, ok4 := num(11, 13)
	minute, ok5 := num(14, 16)
	sec, ok6 := num(17, 19)
	micro, ok7 := num(20, 26)
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6 && ok7) || year < 1 || month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, false
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, micro*1000, time.UTC)
	if t.Day() != day { // 30 February
		return time.Time{}, false
	}
	return t, true
}

// appendStored appends t (UTC, years 1 to 9999) in storedTime's form.
func appendStored(b []byte, t time.Time) []byte {
	year, month, day := t.Date()
	hour, minute, sec := t.Clock()
	two := func(b []byte, n int) []byte { return append(b, byte('0'+n/10), byte('0'+n%10)) }
	b = append(b, byte('0'+year/1000), byte('0'+year/100%10), byte('0'+year/10%10), byte('0'+year%10), '-')
	b = append(two(b, int(month)), '-')
	b = append(two(b, day), 'T')
	b = append(two(b, hour), ':')
	b = append(two(b, minute), ':')
	b = append(two(b, sec), '.')
	us := t.Nanosecond() / 1000
	for div := 100000; div > 0; div /= 10 {
		b = append(b, byte('0'+us/div%10))
	}
	return append(b, 'Z')
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

// readInput is in's value (store.Input) as SQLite's expression of it
// computes it (itemExpr, isoTime, aggregations.Number), of an instance's
// begin and end times (microseconds, or nil) and the raw value of the item
// it reads (v, its "v" in the items' JSON; not Exists when absent). false
// when Go cannot be sure to compute what SQLite would (escaped text,
// numbers beyond a float's exact digits, times beyond year 9999): the
// caller asks SQLite.
func readInput(in store.Input, begin, end any, v gjson.Result) (any, bool) {
	if in.Column != "" {
		t := begin
		if in.Column == definition.EndTime {
			t = end
		}
		us, isInt := t.(int64)
		if t == nil || !isInt {
			return nil, t == nil
		}
		tm := time.UnixMicro(us).UTC()
		if tm.Year() < 1 || tm.Year() > 9999 {
			return nil, false
		}
		var buf [len(storedTime)]byte
		return string(appendStored(buf[:0], tm)), true
	}
	if !v.Exists() {
		return nil, true
	}
	switch v.Type {
	case gjson.Null, gjson.JSON: // null, an array or an object: no type reads them
		return nil, true
	case gjson.True, gjson.False:
		if in.Item.Type == definition.Boolean {
			if v.Type == gjson.True {
				return int64(1), true
			}
			return int64(0), true
		}
		return nil, true
	case gjson.String:
		s := v.Raw
		if len(s) < 2 || strings.IndexByte(s, '\\') >= 0 {
			return nil, false // SQLite unescapes it
		}
		s = s[1 : len(s)-1]
		switch in.Item.Type {
		case definition.Text:
			return s, true
		case definition.Milestone:
			if timeShaped(s) {
				return s, true
			}
		case definition.Decimal:
			if s != "" && strings.Trim(s, "0123456789.eE+-") == "" {
				return decimal(s, in.Number)
			}
		}
		return nil, true
	case gjson.Number:
		n, ok := parseNumber(v.Raw)
		if !ok {
			return nil, false
		}
		switch in.Item.Type {
		case definition.Integer:
			if n.integer {
				return n.i, true
			}
			if n.f == math.Trunc(n.f) && math.Abs(n.f) < 9.2e18 {
				return int64(n.f), true
			}
			return nil, true
		case definition.Float:
			if n.integer {
				return float64(n.i), true
			}
			return n.f, true
		case definition.Decimal:
			return decimal(v.Raw, in.Number)
		}
		return nil, true
	}
	return nil, false
}

// decimal is a decimal's text, or as a number its REAL (CAST of the
// text).
func decimal(s string, number bool) (any, bool) {
	if !number {
		return s, true
	}
	n, ok := parseNumber(s)
	if !ok {
		return nil, false // CAST reads what it can of it
	}
	if n.integer {
		return float64(n.i), true
	}
	return n.f, true
}

// timeShaped is whether s matches rfc3339Shape.
func timeShaped(s string) bool {
	const shape = "dddd-Md-Xd?Hd:md:sd" // d a digit, M [01], X [0-3], ? [Tt ], H [0-2], m [0-5], s [0-6]
	if len(s) < len(shape) {
		return false
	}
	for i := range len(shape) {
		c := s[i]
		var ok bool
		switch shape[i] {
		case 'd':
			ok = '0' <= c && c <= '9'
		case 'M':
			ok = c == '0' || c == '1'
		case 'X':
			ok = '0' <= c && c <= '3'
		case '?':
			ok = c == 'T' || c == 't' || c == ' '
		case 'H':
			ok = '0' <= c && c <= '2'
		case 'm':
			ok = '0' <= c && c <= '5'
		case 's':
			ok = '0' <= c && c <= '6'
		default:
			ok = c == shape[i]
		}
		if !ok {
			return false
		}
	}
	return true
}

// number is a JSON number: an integer (no fraction, no exponent) or a
// float.
type number struct {
	integer bool
	i       int64
	f       float64
}

// parseNumber parses a JSON number that SQLite and Go read alike: an
// integer of at most 18 digits, or a number of at most 15 significant
// digits and a small exponent (a float's exact integers scaled by an exact
// power of ten: one rounding, the same in any correct reader). false for
// anything else, and for text that is not a number in JSON's grammar.
func parseNumber(s string) (number, bool) {
	p, ok := event.SplitNumber([]byte(s))
	if !ok || len(p.Int) > 1 && p.Int[0] == '0' || p.Dot && len(p.Frac) == 0 {
		return number{}, false // SQLite reads JSON5's numbers too: left to it
	}
	if !p.Dot && !p.HasExp {
		if len(p.Int) > 18 {
			return number{}, false
		}
		n, err := strconv.ParseInt(s, 10, 64)
		return number{integer: true, i: n}, err == nil
	}
	digits := strings.TrimLeft(string(p.Int)+string(p.Frac), "0")
	if scale := p.Exp - int64(len(p.Frac)); len(digits) > 15 || scale > 22 || scale < -22 {
		return number{}, false
	}
	f, err := strconv.ParseFloat(s, 64)
	return number{f: f}, err == nil
}
