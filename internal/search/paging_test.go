package search_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/search"
)

// TestPagingWhileInstancesChange: between the pages of a query, other
// instances move in the order, arrive and stop matching; every instance
// whose sort values stay put is still shown exactly once, in order.
func TestPagingWhileInstancesChange(t *testing.T) {
	seed := testSeed(t)
	onEachStore(t, func(t *testing.T, ctx context.Context, s testStore) {
		rng := rand.New(rand.NewPCG(seed, seed>>7|1))
		a := deploy(t, ctx, s, injectionDefinition)
		at := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
		amount := func() any { return fmt.Sprintf("%d.%02d", rng.IntN(50), rng.IntN(4)*25) }
		var stable []string
		for i := range 30 {
			stable = append(stable, fmt.Sprintf("s-%02d", i))
			write(t, ctx, s, ev("Inj", stable[i], event.Begin, at, map[string]any{"Amount": amount(), "Customer": "stable"}))
			write(t, ctx, s, ev("Inj", fmt.Sprintf("m-%02d", i), event.Begin, at, map[string]any{"Amount": amount(), "Customer": "moving"}))
		}
		q, err := search.Prepare(a, search.Spec{Where: "Customer IN ('stable', 'moving')", Order: "Amount DESC"})
		if err != nil {
			t.Fatal(err)
		}
		want := stableOrder(t, ctx, s, q, at)
		var seen []string
		req := search.PageRequest{Limit: 3, Now: at}
		for pages := 0; ; pages++ {
			page, err := search.Run(ctx, s, q, req)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range page.Rows {
				if strings.HasPrefix(r.ID, "s-") {
					seen = append(seen, r.ID)
				}
			}
			if page.Next == "" {
				break
			}
			req.Cursor = page.Next
			// Meanwhile: moving instances get new amounts or stop
			// matching, new ones arrive anywhere in the order.
			for range 3 {
				id := fmt.Sprintf("m-%02d", rng.IntN(30))
				data := map[string]any{"Amount": amount()}
				if rng.IntN(4) == 0 {
					data["Customer"] = "gone"
				}
				write(t, ctx, s, ev("Inj", id, event.Update, at.Add(time.Minute), data))
			}
			write(t, ctx, s, ev("Inj", fmt.Sprintf("n-%03d", pages), event.Begin, at, map[string]any{"Amount": amount(), "Customer": "moving"}))
		}
		if !slices.Equal(seen, want) {
			t.Fatalf("the unchanged instances were paged as\n%v\nwant\n%v", seen, want)
		}
	})
}

// stableOrder is the order of the s- instances before anything moves.
func stableOrder(t *testing.T, ctx context.Context, s testStore, q *search.Query, now time.Time) []string {
	var out []string
	for _, id := range ids(t, ctx, s, q, 0, now) {
		if strings.HasPrefix(id, "s-") {
			out = append(out, id)
		}
	}
	return out
}
