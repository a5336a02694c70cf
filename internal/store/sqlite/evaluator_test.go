package sqlite

import (
	"context"
	"database/sql"
	"math"
	"math/rand/v2"
	"testing"
	"time"

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
			got, err := ev.step(store.Step{Op: store.BucketStep, Bucket: b}, []any{v}, nil)
			if err != nil {
				t.Fatal(err)
			}
			want, err := ev.sql(aggregations.Bucket("?1", b), v)
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Fatalf("bucket %s of %q: Go %v, SQLite %v", b, v, got, want)
			}
		}
	}
	for i := range times {
		from, to := times[i], times[rng.IntN(len(times))]
		got, err := ev.step(store.Step{Op: store.SecondsStep, Input: 0, To: 1}, []any{from, to}, nil)
		if err != nil {
			t.Fatal(err)
		}
		want, err := ev.sql(aggregations.Seconds("?1", "?2"), from, to)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Fatalf("seconds from %q to %q: Go %v, SQLite %v", from, to, got, want)
		}
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
		got, err := ev.step(store.Step{Op: store.RangesStep, Bounds: bounds}, []any{v}, sqliteBounds)
		if err != nil {
			t.Fatal(err)
		}
		want, err := ev.sql(aggregations.Ranges("?1", bounds), v)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Fatalf("range of %v: Go %v, SQLite %v", v, got, want)
		}
	}
}
