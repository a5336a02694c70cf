package storetest

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/definition"
	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/search"
	"github.com/bam-dev/bam/internal/store"
)

// aggregatedItems is the activity the aggregation tests deploy; each
// aggregation reads items of every type and kind of dimension.
const aggregatedItems = `activities:
  - name: PO
    items:
      - {name: Amount,   type: decimal, precision: 12, scale: 2}
      - {name: Status,   type: text, max_length: 20}
      - {name: Carrier,  type: integer}
      - {name: Weight,   type: float}
      - {name: Rush,     type: boolean}
      - {name: Received, type: milestone}
      - {name: Shipped,  type: milestone}
`

const aggregationsYAML = `    aggregations:
      - name: ByStatus
        dimensions:
          - {item: Status}
          - {name: stage, progress: [Received, Shipped]}
          - {item: Received, bucket: minute}
        measures:
          - {name: orders, function: count}
          - {name: with_carrier, function: count, item: Carrier}
          - {name: total, function: sum, item: Amount}
          - {name: mean, function: avg, item: Amount}
          - {name: least, function: min, item: Amount}
          - {name: most, function: max, item: Amount}
          - {name: heaviest, function: max, item: Weight}
          - {name: to_ship, function: avg, from: Received, to: Shipped}
          - {name: longest, function: max, from: begin_time, to: end_time}
      - name: ByAmount
        dimensions:
          - {item: Amount, ranges: [10, 50]}
          - {item: Carrier}
          - {item: Rush}
          - {item: end_time, bucket: day}
        measures:
          - {name: carriers, function: sum, item: Carrier}
          - {name: weight, function: sum, item: Weight}
          - {name: lightest, function: min, item: Weight}
      - name: Everything
        measures:
          - {name: amount, function: sum, item: Amount}
          - {name: least, function: min, item: Amount}
          - {name: most, function: max, item: Amount}
          - {name: heaviest, function: max, item: Weight}
`

// RunAggregations tests that the cells of every aggregation equal a
// recomputation from the instances, whatever the order and the batches of
// the events (continuations and out-of-order updates included), across
// deployments that add, change and remove aggregations, purges and a
// failed event retried.
func RunAggregations(t *testing.T, open func(t *testing.T) store.Store) {
	deploy := func(t *testing.T, ctx context.Context, s store.Store, text string) store.Deployment {
		t.Helper()
		f, err := definition.Parse([]byte(text))
		if err != nil {
			t.Fatal(err)
		}
		dep, err := s.Deploy(ctx, store.DeployRequest{File: f, Text: text, By: "test"})
		if err != nil {
			t.Fatalf("deploy: %v", err)
		}
		return dep
	}
	verify := func(t *testing.T, ctx context.Context, s store.Store, when string) {
		t.Helper()
		if err := s.VerifyAggregations(ctx); err != nil {
			t.Fatalf("%s: %v", when, err)
		}
	}

	t.Run("cells equal a recomputation after random batches", func(t *testing.T) {
		t.Parallel()
		s, ctx := prepared(t, open)
		deploy(t, ctx, s, aggregatedItems+aggregationsYAML)
		a := newApplier(t, ctx, s)
		seed := testSeed(t)
		rng := rand.New(rand.NewPCG(seed, seed>>7|1))
		var events []event.Event
		for i := range 40 {
			events = append(events, aggregatedEvents(rng, fmt.Sprintf("i%d", i))...)
		}
		rng.Shuffle(len(events), func(i, j int) { events[i], events[j] = events[j], events[i] })
		for len(events) > 0 {
			n := 1 + rng.IntN(min(len(events), 25))
			a.apply(events[:n]...)
			events = events[n:]
			verify(t, ctx, s, fmt.Sprintf("seed %d, after a batch of %d", seed, n))
		}
		res, err := s.Aggregation(ctx, "po", "everything", store.AggregationQuery{})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Rows) == 0 {
			t.Fatalf("no cells in Everything: %+v", res)
		}
	})

	t.Run("an update moves the cells of each aggregation that reads what it carries", func(t *testing.T) {
		t.Parallel()
		s, ctx := prepared(t, open)
		deploy(t, ctx, s, aggregatedItems+`    aggregations:
      - name: ByStatus
        dimensions: [{item: Status}]
        measures: [{name: total, function: sum, item: Amount}]
      - name: ByRush
        dimensions: [{item: Rush}]
        measures: [{name: heaviest, function: max, item: Weight}]
      - name: ByCarrier
        dimensions: [{item: Carrier}]
`)
		a := newApplier(t, ctx, s)
		for i := range 6 {
			a.apply(ev("PO", fmt.Sprintf("u%d", i), event.Begin, 0, map[string]string{"Status": `"new"`, "Amount": "10", "Rush": "false", "Weight": "1.5", "Carrier": "1"}))
		}
		verify(t, ctx, s, "begun")
		// Each batch carries items one aggregation reads and the others
		// do not, each of them in turn.
		// An update of an instance not begun yet creates it, pending,
		// though it carries nothing an aggregation reads.
		a.apply(ev("PO", "p0", event.Update, 1, map[string]string{"Received": `"2026-11-25T10:00:00Z"`}),
			ev("PO", "p1", event.Update, 1, map[string]string{"Rush": "true"}))
		verify(t, ctx, s, "an update of instances not begun")
		for step, data := range []map[string]string{
			{"Rush": "true"},
			{"Status": `"paid"`},
			{"Carrier": "2"},
			{"Weight": "9.5", "Carrier": "3"},
			{"Amount": "12"},
		} {
			var evs []event.Event
			for i := range 3 {
				evs = append(evs, ev("PO", fmt.Sprintf("u%d", i), event.Update, step+1, data))
			}
			a.apply(evs...)
			verify(t, ctx, s, fmt.Sprintf("after an update of %v", data))
		}
	})

	t.Run("a cell's drill-down filter matches its instances; a filter's cells are those of its instances", func(t *testing.T) {
		t.Parallel()
		s, ctx := prepared(t, open)
		deploy(t, ctx, s, aggregatedItems+aggregationsYAML)
		a := newApplier(t, ctx, s)
		rng := rand.New(rand.NewPCG(5, 6))
		for i := range 30 {
			a.apply(aggregatedEvents(rng, fmt.Sprintf("f%d", i))...)
		}
		searcher := s.(store.Searcher)
		dialect, err := search.DialectOf(s.Driver())
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"ByStatus", "ByAmount", "Everything"} {
			res, err := s.Aggregation(ctx, "PO", name, store.AggregationQuery{})
			if err != nil {
				t.Fatal(err)
			}
			total := 0
			for _, row := range res.Rows {
				filter := search.CellFilter(res.Activity, res.Aggregation, row, time.Now())
				q, err := search.Prepare(res.Activity, search.Spec{Where: filter})
				if err != nil {
					t.Fatalf("%s: drill-down %q: %v", name, filter, err)
				}
				n, _, err := search.Count(ctx, searcher, q, 100000, time.Now())
				if err != nil {
					t.Fatal(err)
				}
				if want := textOf(row[1+len(res.Aggregation.Dimensions)]); strconv.FormatInt(n, 10) != want {
					t.Errorf("%s: %q matches %d instances, the cell holds %s", name, filter, n, want)
				}
				total += int(n)
			}
			// Merged over the states, the cells count every instance once.
			all, err := s.Aggregation(ctx, "PO", name, store.AggregationQuery{State: "all"})
			if err != nil {
				t.Fatal(err)
			}
			merged := 0
			for _, row := range all.Rows {
				n, _ := strconv.Atoi(textOf(row[1+len(all.Aggregation.Dimensions)]))
				merged += n
				if textOf(row[0]) != "all" {
					t.Fatalf("merged row %v", row)
				}
			}
			if merged != total || total == 0 {
				t.Errorf("%s: merged cells count %d instances, the cells %d", name, merged, total)
			}
			// Merged, the kept cells are those computed from every instance.
			q, err := search.Prepare(res.Activity, search.Spec{})
			if err != nil {
				t.Fatal(err)
			}
			recomputed, err := s.Aggregation(ctx, "PO", name, store.AggregationQuery{State: "all", Of: q.Selection(dialect, time.Now())})
			if err != nil {
				t.Fatal(err)
			}
			if got, want := rowsText(all.Rows), rowsText(recomputed.Rows); !sameRows(got, want) {
				t.Errorf("%s merged:\n%s\nrecomputed:\n%s", name, strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		}
		// The cells of the instances a filter selects, computed at once,
		// are the kept cells of those instances.
		q, err := search.Prepare(definitionOf(t, ctx, s, "PO"), search.Spec{Where: "Status = 'open'"})
		if err != nil {
			t.Fatal(err)
		}
		of, err := s.Aggregation(ctx, "PO", "ByStatus", store.AggregationQuery{Of: q.Selection(dialect, time.Now())})
		if err != nil {
			t.Fatal(err)
		}
		kept, err := s.Aggregation(ctx, "PO", "ByStatus", store.AggregationQuery{})
		if err != nil {
			t.Fatal(err)
		}
		var want [][]*string
		for _, row := range kept.Rows {
			if textOf(row[1]) == "open" {
				want = append(want, row)
			}
		}
		if got, wanted := fmt.Sprint(rowsText(of.Rows)), fmt.Sprint(rowsText(want)); got != wanted || len(want) == 0 {
			t.Errorf("cells of Status = 'open':\n%s\nkept:\n%s", got, wanted)
		}
	})

	t.Run("a failed event retried and a direct write move cells too", func(t *testing.T) {
		t.Parallel()
		s, ctx := prepared(t, open)
		deploy(t, ctx, s, aggregatedItems+aggregationsYAML)
		a := newApplier(t, ctx, s)
		a.apply(aggregatedEvents(rand.New(rand.NewPCG(7, 8)), "r0")...)
		b := a.next()
		b.Failures = []store.Failure{{SessionID: store.SessionID{Source: "src"}, Position: b.Checkpoint, Reason: "refused",
			Payload: []byte(`{"activity":"PO","instance":"r0","kind":"update","time":"2026-11-25T10:30:00Z","data":{"Amount":1000,"Status":"held"}}`)}}
		if err := s.Apply(ctx, b); err != nil {
			t.Fatal(err)
		}
		a.pos = b.Checkpoint.Minor
		failed, err := s.FailedEvents(ctx, "src", 0)
		if err != nil || len(failed) != 1 {
			t.Fatalf("FailedEvents = %+v, %v", failed, err)
		}
		if err := s.RetryFailed(ctx, failed[0].ID, nil, 0); err != nil {
			t.Fatal(err)
		}
		verify(t, ctx, s, "after a retry")
		res, err := s.Aggregation(ctx, "PO", "Everything", store.AggregationQuery{State: "all"})
		if err != nil || len(res.Rows) != 1 || textOf(res.Rows[0][4]) != "1000.0" && textOf(res.Rows[0][4]) != "1000.00" {
			t.Fatalf("the retried event's amount is not the largest: %v, %v", rowsText(res.Rows), err)
		}
		if d, ok := s.(interface {
			WriteEvents(context.Context, []event.Event) error
		}); ok {
			if err := d.WriteEvents(ctx, aggregatedEvents(rand.New(rand.NewPCG(9, 10)), "w0")); err != nil {
				t.Fatal(err)
			}
			verify(t, ctx, s, "after a direct write")
		}
	})

	t.Run("a deployment builds new cells from the instances and rebuilds changed ones", func(t *testing.T) {
		t.Parallel()
		s, ctx := prepared(t, open)
		deploy(t, ctx, s, aggregatedItems)
		a := newApplier(t, ctx, s)
		rng := rand.New(rand.NewPCG(1, 2))
		for i := range 6 {
			a.apply(aggregatedEvents(rng, fmt.Sprintf("d%d", i))...)
		}
		dep := deploy(t, ctx, s, aggregatedItems+aggregationsYAML)
		if !strings.Contains(strings.Join(dep.Changes, "\n"), "add aggregation PO.ByStatus") {
			t.Fatalf("changes %q", dep.Changes)
		}
		verify(t, ctx, s, "after adding")
		a.apply(aggregatedEvents(rng, "d6")...)
		verify(t, ctx, s, "after events")
		changed := strings.Replace(aggregationsYAML, "bucket: minute", "bucket: hour", 1)
		changed = changed[:strings.Index(changed, "      - name: Everything")]
		dep = deploy(t, ctx, s, aggregatedItems+changed)
		joined := strings.Join(dep.Changes, "\n")
		if !strings.Contains(joined, "rebuild aggregation PO.ByStatus") || !strings.Contains(joined, "remove aggregation PO.Everything") ||
			strings.Contains(joined, "ByAmount") {
			t.Fatalf("changes %q", dep.Changes)
		}
		verify(t, ctx, s, "after changing")
		if _, err := s.Aggregation(ctx, "PO", "Everything", store.AggregationQuery{}); err == nil {
			t.Fatal("a removed aggregation is still read")
		}
		a.apply(aggregatedEvents(rng, "d7")...)
		verify(t, ctx, s, "after more events")
	})

	t.Run("purged and removed instances leave their cells", func(t *testing.T) {
		t.Parallel()
		s, ctx := prepared(t, open)
		deploy(t, ctx, s, aggregatedItems+aggregationsYAML)
		a := newApplier(t, ctx, s)
		rng := rand.New(rand.NewPCG(3, 4))
		for i := range 6 {
			a.apply(aggregatedEvents(rng, fmt.Sprintf("p%d", i))...)
		}
		if _, err := s.SetWindow(ctx, "PO", store.Window{Keep: time.Hour, Archive: true}, "test"); err != nil {
			t.Fatal(err)
		}
		n, err := s.PurgeCompleted(ctx, "PO")
		if err != nil || n == 0 {
			t.Fatalf("purge: %d, %v", n, err)
		}
		verify(t, ctx, s, "after the purge")
		if _, err := s.RemoveActivity(ctx, "PO", "test", true); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Aggregation(ctx, "PO", "ByStatus", store.AggregationQuery{}); err == nil {
			t.Fatal("a removed activity's aggregation is still read")
		}
	})

	t.Run("a window keeps completed instances while their end is within it", func(t *testing.T) {
		t.Parallel()
		s, ctx := prepared(t, open)
		deploy(t, ctx, s, aggregatedItems+`    aggregations:
      - name: Recent
        dimensions:
          - {item: Status}
        measures:
          - {name: total, function: sum, item: Amount}
          - {name: most, function: max, item: Amount}
        window: 1h
`)
		a := newApplier(t, ctx, s)
		now := time.Now().UTC()
		old, recent := now.Add(-3*time.Hour), now.Add(-10*time.Minute)
		at := func(id string, kind event.Kind, when time.Time, data map[string]string) event.Event {
			e := ev("PO", id, kind, 0, data)
			e.Time = when
			return e
		}
		a.apply(
			at("old", event.Begin, old, map[string]string{"Status": `"x"`, "Amount": "100"}), at("old", event.End, old, nil),
			at("new", event.Begin, recent, map[string]string{"Status": `"x"`, "Amount": "7"}), at("new", event.End, recent, nil),
			at("open", event.Begin, old, map[string]string{"Status": `"x"`, "Amount": "5"}),
			// An end the writer's clock put ahead: its bucket is within
			// the window.
			at("ahead", event.Begin, old, map[string]string{"Status": `"x"`, "Amount": "3"}), at("ahead", event.End, now.Add(30*time.Minute), nil),
		)
		verify(t, ctx, s, "with a window")
		// Every cell's drill-down selects what it counts, in each state
		// and merged: a merged cell's filter once took every completed
		// instance, in the window or not.
		searcher := s.(store.Searcher)
		for _, state := range []string{"", "all"} {
			res, err := s.Aggregation(ctx, "PO", "Recent", store.AggregationQuery{State: state})
			if err != nil {
				t.Fatal(err)
			}
			for _, row := range res.Rows {
				key := row
				if textOf(row[0]) == "all" {
					key = append([]*string{nil}, row[1:]...)
				}
				filter := search.CellFilter(res.Activity, res.Aggregation, key, time.Now())
				q, err := search.Prepare(res.Activity, search.Spec{Where: filter})
				if err != nil {
					t.Fatalf("drill-down %q: %v", filter, err)
				}
				n, _, err := search.Count(ctx, searcher, q, 1000, time.Now())
				if err != nil {
					t.Fatal(err)
				}
				if strconv.FormatInt(n, 10) != textOf(row[2]) {
					t.Errorf("cell %v: drill-down %q matches %d instances, the cell holds %s", textOf(row[0]), filter, n, textOf(row[2]))
				}
			}
		}
		res, err := s.Aggregation(ctx, "PO", "Recent", store.AggregationQuery{})
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, row := range res.Rows {
			got[textOf(row[0])] = fmt.Sprintf("instances=%s total=%s most=%s", textOf(row[2]), textOf(row[3]), textOf(row[4]))
		}
		if !strings.HasPrefix(got["completed"], "instances=2 total=10") || !strings.HasPrefix(got["active"], "instances=1 total=5") {
			t.Fatalf("cells %v: want the old completed instance out of the window", got)
		}
		if _, err := store.PurgeWindows(ctx, s); err != nil { // purges the aggregations' windows too
			t.Fatal(err)
		}
		verify(t, ctx, s, "after purging the window")
	})
}

// definitionOf reads an activity's deployed definition.
func definitionOf(t *testing.T, ctx context.Context, s store.Store, name string) definition.Activity {
	t.Helper()
	deployed, _, err := s.Definitions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	a, err := store.FindActivity(deployed, name)
	if err != nil {
		t.Fatal(err)
	}
	return a.Activity
}

// sameRows compares rows of text values, numbers to within a float's
// rounding (a sum kept incrementally rounds differently from one computed
// at once).
func sameRows(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := strings.Split(a[i], " | "), strings.Split(b[i], " | ")
		if len(x) != len(y) {
			return false
		}
		for k := range x {
			if x[k] == y[k] {
				continue
			}
			f, err1 := strconv.ParseFloat(x[k], 64)
			g, err2 := strconv.ParseFloat(y[k], 64)
			if err1 != nil || err2 != nil || math.Abs(f-g) > 1e-9*math.Max(1, math.Max(math.Abs(f), math.Abs(g))) {
				return false
			}
		}
	}
	return true
}

// rowsText writes rows of text values.
func rowsText(rows [][]*string) []string {
	var out []string
	for _, row := range rows {
		var cells []string
		for _, v := range row {
			cells = append(cells, textOf(v))
		}
		out = append(out, strings.Join(cells, " | "))
	}
	return out
}

func textOf(s *string) string {
	if s == nil {
		return "NULL"
	}
	return *s
}

// testSeed is BAM_TEST_SEED or a new seed, logged.
func testSeed(t *testing.T) uint64 {
	t.Helper()
	seed := rand.Uint64()
	if env := os.Getenv("BAM_TEST_SEED"); env != "" {
		var err error
		if seed, err = strconv.ParseUint(env, 10, 64); err != nil {
			t.Fatalf("BAM_TEST_SEED=%q: %v", env, err)
		}
	}
	t.Logf("seed %d (BAM_TEST_SEED=%d runs it again)", seed, seed)
	return seed
}

// aggregatedEvents draws one instance's events: begin, updates of every
// item (sometimes with a value that does not fit its type, which the views
// read as NULL), a continuation with updates, end, at distinct times.
func aggregatedEvents(rng *rand.Rand, id string) []event.Event {
	secs := rng.Perm(600)
	next := func() int { s := secs[0]; secs = secs[1:]; return s + 1 }
	value := func(item string) string {
		switch item {
		case "Amount":
			return []string{"5", "12.5", "49.99", "50", "120", `"7.25"`, `"x"`}[rng.IntN(7)]
		case "Status":
			return []string{`"new"`, `"open"`, `"held"`, "3"}[rng.IntN(4)]
		case "Carrier":
			return []string{"1", "2", "3", "2.5"}[rng.IntN(4)]
		case "Weight":
			return []string{"0.5", "1.25", "3", "1e2"}[rng.IntN(4)]
		case "Rush":
			return []string{"true", "false"}[rng.IntN(2)]
		}
		return strconv.Quote(at(next()).Format("2006-01-02T15:04:05.000000Z"))
	}
	items := []string{"Amount", "Status", "Carrier", "Weight", "Rush", "Received", "Shipped"}
	update := func() map[string]string {
		d := map[string]string{}
		for range 1 + rng.IntN(2) {
			it := items[rng.IntN(len(items))]
			d[it] = value(it)
		}
		return d
	}
	out := []event.Event{ev("PO", id, event.Begin, next(), update())}
	for range rng.IntN(4) {
		out = append(out, ev("PO", id, event.Update, next(), update()))
	}
	if rng.IntN(4) > 0 {
		out = append(out, ev("PO", id, event.End, next(), nil))
	}
	if rng.IntN(2) == 0 {
		token := id + "-c"
		e := ev("PO", id, event.EnableContinuation, next(), nil)
		e.Token = token
		out = append(out, e, cev("PO", token, event.Update, next(), update()))
		if rng.IntN(2) == 0 {
			out = append(out, cev("PO", token, event.End, next(), nil))
		}
	}
	return out
}
