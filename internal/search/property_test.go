package search_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/search"
	"github.com/bam-dev/bam/internal/store"
)

const propertyDefinition = `
activities:
  - name: Prop
    items:
      - {name: Due,   type: milestone}
      - {name: Name,  type: text, max_length: 20, index: true}
      - {name: Count, type: integer, index: true}
      - {name: Ratio, type: float}
      - {name: Price, type: decimal, precision: 10, scale: 2}
      - {name: Flag,  type: boolean}
`

// The small domains values are drawn from, so that filters hit and rows
// tie. Texts order differently by bytes than by a language's collation.
var (
	propBase   = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	propNames  = []string{"", "a", "ab", "b", "B", "a'b", "ä", "x%_", "Zed"}
	propCounts = []int64{-3, -1, 0, 1, 2, 7}
	propRatios = []string{"-1.5", "0", "0.25", "2", "10000000000"}
	propPrices = []string{"-1.5", "0", "0.25", "2", "2.00", "12.34"}
	propIDs    = []string{"a", "B", "b", "o'k", "Z9", "ä1", "10", "9"}
)

func propTime(rng *rand.Rand) time.Time {
	return propBase.Add(time.Duration(rng.IntN(12)-6) * 30 * time.Minute).Add(time.Duration(rng.IntN(3)) * time.Microsecond)
}

// propInstances writes n random instances of Prop.
func propInstances(t *testing.T, ctx context.Context, s testStore, rng *rand.Rand, n int) {
	var events []event.Event
	for i := range n {
		id := fmt.Sprintf("%s-%02d", propIDs[rng.IntN(len(propIDs))], i)
		data := map[string]any{}
		if rng.IntN(4) > 0 {
			data["Due"] = propTime(rng).Format(time.RFC3339Nano)
		}
		if rng.IntN(4) > 0 {
			data["Name"] = propNames[rng.IntN(len(propNames))]
		}
		if rng.IntN(4) > 0 {
			data["Count"] = propCounts[rng.IntN(len(propCounts))]
		}
		if rng.IntN(4) > 0 {
			data["Ratio"] = json.Number(propRatios[rng.IntN(len(propRatios))])
		}
		if rng.IntN(4) > 0 {
			p := propPrices[rng.IntN(len(propPrices))]
			if rng.IntN(2) == 0 {
				data["Price"] = p // a string, as exact clients send decimals
			} else {
				data["Price"] = json.Number(p)
			}
		}
		if rng.IntN(4) > 0 {
			data["Flag"] = rng.IntN(2) == 0
		}
		if rng.IntN(6) == 0 {
			data["Name"] = nil // null sets nothing
		}
		kinds := []event.Kind{event.Update}
		switch rng.IntN(4) {
		case 0:
			kinds = []event.Kind{event.Begin}
		case 1, 2:
			kinds = []event.Kind{event.Begin, event.End}
		}
		for j, k := range kinds {
			var d map[string]any
			if j == 0 {
				d = data
			}
			events = append(events, ev("Prop", id, k, propTime(rng), d))
		}
	}
	write(t, ctx, s, events...)
}

// propField is a field with the values a random condition on it takes.
type propField struct {
	name   string
	kind   search.Kind
	values []string // as the filter writes them
}

func propFields() []propField {
	quoted := func(list []string) []string {
		var out []string
		for _, s := range list {
			out = append(out, "'"+strings.ReplaceAll(s, "'", "''")+"'")
		}
		return out
	}
	var times []string
	for i := -7; i <= 7; i += 2 {
		times = append(times, propBase.Add(time.Duration(i)*30*time.Minute).Format(time.RFC3339))
	}
	times = append(times, "2026-11-25")
	var counts []string
	for _, c := range propCounts {
		counts = append(counts, strconv.FormatInt(c, 10))
	}
	idParts := []string{"a", "B", "b-01", "o'k", "Z9", "ä", "1", "9-0"}
	return []propField{
		{"Due", search.KindTime, quoted(times)},
		{"name", search.KindText, quoted(propNames)},
		{"COUNT", search.KindInteger, counts},
		{"Ratio", search.KindFloat, propRatios},
		{"Price", search.KindDecimal, propPrices},
		{"Flag", search.KindBoolean, []string{"true", "false"}},
		{"instance_id", search.KindText, quoted(idParts)},
		{"state", search.KindState, quoted([]string{"pending", "active", "completed"})},
		{"begin_time", search.KindTime, quoted(times)},
		{"end_time", search.KindTime, quoted(times)},
		{"last_modified", search.KindTime, quoted(times)},
		{"events", search.KindInteger, []string{"0", "1", "2", "3"}},
	}
}

// propCondition writes a random condition.
func propCondition(rng *rand.Rand, fields []propField) string {
	f := fields[rng.IntN(len(fields))]
	v := func() string { return f.values[rng.IntN(len(f.values))] }
	ops := []string{"=", "!=", "IN", "NOT IN", "IS EMPTY", "IS NOT EMPTY"}
	switch f.kind {
	case search.KindText:
		ops = append(ops, "<", "<=", ">", ">=", "BETWEEN", "CONTAINS", "STARTS WITH")
	case search.KindTime:
		ops = append(ops, "<", "<=", ">", ">=", "BETWEEN", "IN LAST")
	case search.KindInteger, search.KindFloat, search.KindDecimal:
		ops = append(ops, "<", "<=", ">", ">=", "BETWEEN")
	}
	op := ops[rng.IntN(len(ops))]
	switch op {
	case "IS EMPTY", "IS NOT EMPTY":
		return f.name + " " + op
	case "BETWEEN":
		return f.name + " BETWEEN " + v() + " AND " + v()
	case "IN", "NOT IN":
		list := []string{v()}
		for rng.IntN(2) == 0 {
			list = append(list, v())
		}
		return f.name + " " + op + " (" + strings.Join(list, ", ") + ")"
	case "IN LAST":
		return f.name + " IN LAST " + []string{"30m", "2h", "90m", "1d", "3600s", "1w"}[rng.IntN(6)]
	}
	return f.name + " " + op + " " + v()
}

// propFilter writes a random filter of conditions, AND, OR, NOT and
// parentheses.
func propFilter(rng *rand.Rand, fields []propField, depth int) string {
	if depth == 0 || rng.IntN(3) == 0 {
		return propCondition(rng, fields)
	}
	switch rng.IntN(4) {
	case 0:
		return "NOT (" + propFilter(rng, fields, depth-1) + ")"
	case 1:
		return propFilter(rng, fields, depth-1) + " OR " + propFilter(rng, fields, depth-1)
	case 2:
		return "(" + propFilter(rng, fields, depth-1) + " OR " + propFilter(rng, fields, depth-1) + ") AND " + propFilter(rng, fields, depth-1)
	}
	return propFilter(rng, fields, depth-1) + " AND " + propFilter(rng, fields, depth-1)
}

func propOrder(rng *rand.Rand, fields []propField) string {
	var keys []string
	for _, i := range rng.Perm(len(fields))[:rng.IntN(4)] {
		k := fields[i].name
		if rng.IntN(2) == 0 {
			k += " DESC"
		}
		keys = append(keys, k)
	}
	return strings.Join(keys, ", ")
}

func testSeed(t *testing.T) uint64 {
	seed := uint64(time.Now().UnixNano())
	if env := os.Getenv("BAM_TEST_SEED"); env != "" {
		var err error
		if seed, err = strconv.ParseUint(env, 10, 64); err != nil {
			t.Fatalf("BAM_TEST_SEED=%q: %v", env, err)
		}
	}
	t.Logf("seed %d (BAM_TEST_SEED=%d runs it again)", seed, seed)
	return seed
}

// TestSQLMatchesMatch: on both stores, random filters and orders over
// random instances give, paged through with the cursor a few rows at a
// time, exactly the instances Match selects, in the order Compare gives;
// and the bounded count agrees.
func TestSQLMatchesMatch(t *testing.T) {
	seed := testSeed(t)
	onEachStore(t, func(t *testing.T, ctx context.Context, s testStore) {
		rng := rand.New(rand.NewPCG(seed, seed>>7|1))
		a := deploy(t, ctx, s, propertyDefinition)
		propInstances(t, ctx, s, rng, 80)
		all, err := s.Instances(ctx, store.InstanceFilter{Activity: "Prop"})
		if err != nil || len(all) != 80 {
			t.Fatalf("Instances: %d, %v", len(all), err)
		}
		fields := propFields()
		now := propBase.Add(time.Duration(rng.IntN(7200)) * time.Second)
		for range 150 {
			spec := search.Spec{
				Scope: []search.Scope{search.ScopeAll, search.ScopeActive, search.ScopeCompleted, search.ScopePending}[rng.IntN(4)],
				Where: propFilter(rng, fields, 3),
				Order: propOrder(rng, fields),
			}
			q, err := search.Prepare(a, spec)
			if err != nil {
				if strings.Contains(err.Error(), "BETWEEN") {
					continue // the random bounds were the wrong way round
				}
				t.Fatalf("Prepare(%+v): %v", spec, err)
			}
			want := expected(q, all, now)
			got := ids(t, ctx, s, q, 1+rng.IntN(7), now)
			if !slices.Equal(got, want) {
				t.Fatalf("scope %s, filter %q, order %q:\nSQL  %q\nMatch %q", spec.Scope, q.Filter.String(), q.Order.String(), got, want)
			}
			limit := rng.IntN(len(want) + 2)
			n, more, err := search.Count(ctx, s, q, limit, now)
			if err != nil {
				t.Fatal(err)
			}
			if wantN := min(len(want), limit+1); n != int64(wantN) || more != (len(want) > limit) {
				t.Fatalf("Count(%q, %d) = %d, %v; want %d, %v", q.Filter.String(), limit, n, more, wantN, len(want) > limit)
			}
		}
	})
}

// expected is the reference answer: the instances of q's scope that Match,
// sorted by Compare.
func expected(q *search.Query, all []store.Instance, now time.Time) []string {
	var in []store.Instance
	for _, x := range all {
		switch {
		case q.Scope == search.ScopeActive && x.State != store.StateActive,
			q.Scope == search.ScopeCompleted && x.State != store.StateCompleted,
			q.Scope == search.ScopePending && x.State != store.StatePending:
			continue
		}
		if q.Match(x, now) {
			in = append(in, x)
		}
	}
	slices.SortFunc(in, q.Compare)
	out := []string{}
	for _, x := range in {
		out = append(out, x.ID)
	}
	return out
}
