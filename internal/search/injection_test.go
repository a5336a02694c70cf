package search_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/search"
)

const injectionDefinition = `
activities:
  - name: Inj
    items:
      - {name: Customer, type: text, max_length: 100, index: true}
      - {name: Amount,   type: decimal, precision: 12, scale: 2}
`

// TestInjection sends hostile values, names and orders to real stores:
// each is refused, or matches literally, and the tables are still there.
func TestInjection(t *testing.T) {
	onEachStore(t, func(t *testing.T, ctx context.Context, s testStore) {
		a := deploy(t, ctx, s, injectionDefinition)
		at := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
		hostile := []string{
			"x'; DROP TABLE bam_instances; --",
			`x"; DROP TABLE bam_instances; --`,
			"100%", "1000", "a_c", "abc", `back\slash`, "$1", "?",
		}
		for i, c := range hostile {
			write(t, ctx, s, ev("Inj", "i"+string(rune('a'+i)), event.Begin, at, map[string]any{"Customer": c}))
		}
		customer := func(id string) string { return hostile[id[1]-'a'] }
		for _, tc := range []struct {
			where string
			want  []string // customers
		}{
			{"Customer = 'x''; DROP TABLE bam_instances; --'", []string{"x'; DROP TABLE bam_instances; --"}},
			{`Customer = 'x"; DROP TABLE bam_instances; --'`, []string{`x"; DROP TABLE bam_instances; --`}},
			{"Customer CONTAINS '; DROP'", []string{"x'; DROP TABLE bam_instances; --", `x"; DROP TABLE bam_instances; --`}},
			{"Customer CONTAINS '0%'", []string{"100%"}},
			{"Customer CONTAINS '%'", []string{"100%"}},
			{"Customer STARTS WITH 'a_'", []string{"a_c"}},
			{"Customer CONTAINS '\\'", []string{`back\slash`}},
			{"Customer IN ('$1', '?')", []string{"$1", "?"}},
			{"Customer STARTS WITH '$'", []string{"$1"}},
		} {
			q, err := search.Prepare(a, search.Spec{Where: tc.where})
			if err != nil {
				t.Fatalf("Prepare(%q): %v", tc.where, err)
			}
			var got []string
			for _, id := range ids(t, ctx, s, q, 3, at) {
				got = append(got, customer(id))
			}
			slices.Sort(got)
			slices.Sort(tc.want)
			if !slices.Equal(got, tc.want) {
				t.Errorf("%s: customers %q, want %q", tc.where, got, tc.want)
			}
		}
		for _, spec := range []search.Spec{
			{Where: `"Customer; DROP TABLE bam_instances" = 'x'`},
			{Where: `Customer"; DROP TABLE bam_instances; -- = 'x'`},
			{Where: "Customer = 'x'; DROP TABLE bam_instances; --"},
			{Where: "Customer = x; DROP TABLE bam_instances"},
			{Where: "Amount = 1 OR 1=1"},
			{Order: "Customer; DROP TABLE bam_instances"},
			{Order: "Customer DESC, (SELECT 1)"},
			{Order: `"Customer""; DROP TABLE bam_instances; --"`},
			{Columns: []string{`Customer"; DROP TABLE bam_instances; --`}},
			{Columns: []string{"(SELECT 1)"}},
		} {
			if q, err := search.Prepare(a, spec); err == nil {
				t.Errorf("Prepare(%+v) = %q, want an error", spec, q.Filter.String())
			}
		}
		for _, table := range []string{"bam_instances", "inj_all"} {
			rows, err := s.SearchRows(ctx, "SELECT count(*) FROM "+table, nil)
			if err != nil || len(rows) != 1 || strings.TrimSpace(toString(rows[0][0])) != "9" {
				t.Errorf("count of %s = %v, %v; want 9", table, rows, err)
			}
		}
	})
}

func toString(v any) string {
	switch v := v.(type) {
	case int64:
		return strconv.FormatInt(v, 10)
	case []byte:
		return string(v)
	}
	return fmt.Sprint(v)
}
