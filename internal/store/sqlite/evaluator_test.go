package sqlite

import (
	"context"
	"database/sql"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/bam-dev/bam/internal/definition"
	"github.com/bam-dev/bam/internal/store"
)

// evaluatorTx is a transaction on a SQLite database in memory, for an
// evaluator.
func evaluatorTx(t *testing.T) *evaluator {
	t.Helper()
	db, err := sql.Open("sqlite", ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tx.Rollback() })
	return &evaluator{ctx: context.Background(), tx: tx}
}

// TestStepsAsSQLiteComputesThem holds the evaluator's Go to SQLite's own
// expressions (aggregations), the source of truth, on times of every era
// and fraction (those SQLite's millisecond rounding carries into the next
// second among them), texts that are not stored times, and numbers at and
// around the bounds of ranges.
func TestStepsAsSQLiteComputesThem(t *testing.T) {
	ev := evaluatorTx(t)
	rng := rand.New(rand.NewPCG(11, 12))
	times := []any{"2026-11-29T23:59:59.999600Z", "2026-11-30T00:00:00.000000Z", "2024-02-29T12:00:00.000000Z",
		"2023-02-29T12:00:00.000000Z", "2026-11-25T24:00:00.000000Z", "2026-11-25T10:00:60.000000Z",
		"2026-11-25T10:00:00Z", "2026-11-25 10:00:00.000000Z", "2026-11-25t10:00:00.000000Z", "0001-01-01T00:00:00.000000Z",
		"9999-12-31T23:59:59.999999Z", "not a time", "", "1969-12-31T23:59:59.500000Z"}
	for range 3000 {
		us := rng.Int64N(253402300800_000000+62135596800_000000) - 62135596800_000000 // years 1 to 9999
		if rng.IntN(3) == 0 {
			us = us/1_000_000*1_000_000 + 999_000 + rng.Int64N(1000) // the last millisecond of a second
		}
		times = append(times, time.UnixMicro(us).UTC().Format(storedTime))
	}
	for _, b := range []definition.Bucket{definition.Minute, definition.Hour, definition.Day, definition.Week, definition.Month} {
		for _, v := range times {
			sameStep(t, ev, store.Step{Op: store.BucketStep, Bucket: b}, nil, aggregations.Bucket("?1", b), v)
		}
	}
	for i := range times {
		sameStep(t, ev, store.Step{Op: store.SecondsStep, Input: 0, To: 1}, nil, aggregations.Seconds("?1", "?2"), times[i], times[rng.IntN(len(times))])
	}
	bounds := []float64{-1.5, 0, 0.1, 10, 49.99, 1e15, 9007199254740993}
	var sqliteBounds []float64
	for _, b := range bounds {
		v, err := ev.sql(boundLiteral(b))
		if err != nil {
			t.Fatal(err)
		}
		sqliteBounds = append(sqliteBounds, v.(float64))
	}
	numbers := []any{nil, int64(0), int64(-2), int64(10), int64(1 << 53), int64(1<<53 + 1), int64(math.MaxInt64), int64(math.MinInt64),
		0.1, 0.1 + 1e-17, math.Nextafter(0.1, 1), math.Nextafter(0.1, -1), 49.99, math.Nextafter(49.99, 0), -1.5, 1e15, 9007199254740992.0, math.Inf(1), "12"}
	for range 500 {
		numbers = append(numbers, rng.NormFloat64()*30, rng.Int64N(100)-20)
	}
	for _, v := range numbers {
		sameStep(t, ev, store.Step{Op: store.RangesStep, Bounds: bounds}, sqliteBounds, aggregations.Ranges("?1", bounds), v)
	}
}

// sameStep fails t unless the evaluator's step of the inputs is what
// SQLite computes of expr (of ?1, ?2, the inputs).
func sameStep(t *testing.T, ev *evaluator, st store.Step, bounds []float64, expr string, inputs ...any) {
	t.Helper()
	got, err := ev.step(st, inputs, bounds)
	if err != nil {
		t.Fatal(err)
	}
	want, err := ev.sql(expr, inputs...)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("%s of %q: Go %#v, SQLite %#v", expr, inputs, got, want)
	}
}

// TestInputsAsSQLiteReadsThem holds readInput to SQLite's typed reads
// (itemExpr, aggregations.Number), the source of truth, for values of
// every JSON type under every item type: where Go answers, its answer is
// SQLite's; where it does not, SQLite is asked.
func TestInputsAsSQLiteReadsThem(t *testing.T) {
	ev := evaluatorTx(t)
	raws := []string{`null`, `true`, `false`, `[1]`, `{"a":1}`, `""`, `"x"`, `"O'Brien"`, `"caf\u00e9"`, `"café"`, `"a\"b"`, `"\\"`,
		`"2026-11-25T10:00:00.000000Z"`, `"2026-11-25 10:00"`, `"2026-19-39T29:59:69"`, `"2026-11-25"`, `"12.50"`, `"7.25"`, `"1e3"`, `"-"`, `"1.2.3"`, `"+-e"`,
		`0`, `-0`, `1`, `-7`, `12.50`, `12.5`, `0.1`, `1e3`, `1E3`, `1e+2`, `-1.5e-3`, `2.5`, `1.0`, `1e22`, `1e23`, `123456789012345678`, `1234567890123456789`,
		`99999999999999999999`, `9223372036854775807`, `-9223372036854775808`, `0.30000000000000004`, `123456.789012345`, `1.7976931348623157e308`, `5e-324`, `49.99`}
	rng := rand.New(rand.NewPCG(13, 14))
	for range 300 {
		raws = append(raws, strconv.FormatFloat(rng.NormFloat64()*1e4, 'f', rng.IntN(5), 64), strconv.FormatInt(rng.Int64N(1e12)-5e11, 10))
	}
	types := []definition.Item{{Type: definition.Text}, {Type: definition.Milestone}, {Type: definition.Integer}, {Type: definition.Float},
		{Type: definition.Decimal}, {Type: definition.Boolean}, {Type: "nonesuch"}}
	sure := 0
	for _, it := range types {
		it.Name = "X"
		for _, number := range []bool{false, true} {
			expr := views.Item(it)
			if number {
				expr = aggregations.Number(it, expr)
			}
			for _, raw := range raws {
				items := `{"X":{"v":` + raw + `,"t":1}}`
				got, ok := readInput(store.Input{Item: it, Number: number}, nil, nil, gjson.Get(items, "X.v"))
				want, err := ev.sql(expr+" FROM (SELECT ?1 AS items)", items)
				if err != nil {
					t.Fatal(err)
				}
				if ok {
					sure++
					if got != want {
						t.Errorf("%s (number %v) of %s: Go %#v, SQLite %#v", it.Type, number, raw, got, want)
					}
				}
			}
		}
	}
	t.Logf("Go read %d of %d", sure, 2*len(raws)*len(types))
	if sure*10 < 9*2*len(raws)*len(types) { // Go reads nine in ten itself
		t.Fatalf("Go read only %d of %d values itself", sure, 2*len(raws)*len(types))
	}
	for _, us := range []any{nil, int64(0), int64(-1), int64(1764061200123456), int64(-62135596800000000), int64(253402300799999999), int64(253402300800000000), int64(-62135596800000001)} {
		got, ok := readInput(store.Input{Column: definition.BeginTime}, us, nil, gjson.Result{})
		want, err := ev.sql(views.Time("?1"), us)
		if err != nil {
			t.Fatal(err)
		}
		if ok && got != want {
			t.Errorf("begin_time %v: Go %#v, SQLite %#v", us, got, want)
		}
	}
}

// TestStoredTimesAsTimeReadsThem holds parseStored and appendStored to
// package time's Parse and Format of storedTime, on stored times and on
// texts one character away from one.
func TestStoredTimesAsTimeReadsThem(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 16))
	for range 20000 {
		us := rng.Int64N(253402300800_000000+62135596800_000000) - 62135596800_000000
		tm := time.UnixMicro(us).UTC()
		s := tm.Format(storedTime)
		if got := string(appendStored(nil, tm)); got != s {
			t.Fatalf("appendStored(%v) = %s, want %s", tm, got, s)
		}
		b := []byte(s)
		if rng.IntN(2) == 0 {
			b[rng.IntN(len(b))] = "0123456789-T:.Z 9"[rng.IntN(17)]
		}
		want, err := time.Parse(storedTime, string(b))
		wantOK := err == nil && want.Format(storedTime) == string(b) && want.Year() >= 1
		got, ok := parseStored(string(b))
		if ok != wantOK || ok && !got.Equal(want) {
			t.Fatalf("parseStored(%q) = %v, %v; time.Parse: %v, %v", b, got, ok, want, wantOK)
		}
	}
}
