package bench

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/definition"
	"github.com/bam-dev/bam/internal/httpapi"
	"github.com/bam-dev/bam/internal/store"
)

// portalPages are the requests each page of the portal (internal/portal)
// makes to load, in order, as its JavaScript makes them: the time of a
// page is their sum. "baseline" is the cheapest request the same server
// answers (the health check, one store round trip), in the same run.
func portalPages() []struct {
	name string
	reqs []string
} {
	const a = "/v1/activities/PurchaseOrder"
	cols := "&limit=50&columns=Received,Approved,Shipped,Delivered,Customer,Amount,Quantity,Rush"
	// A search page: the filter checked, then a page of rows; then, once
	// the rows are shown, the bounded count in its own request (timed
	// apart, as <name>_count).
	page := func(where, order, state string) []string {
		q := url.Values{"where": {where}, "order": {order}}.Encode()
		return []string{a + "/filter?" + q, a + "/search?" + q + "&state=" + state + cols}
	}
	count := func(where, state string) []string {
		q := url.Values{"where": {where}}.Encode()
		return []string{a + "/search?" + q + "&state=" + state + "&limit=1&count=true&columns=Received"}
	}
	return []struct {
		name string
		reqs []string
	}{
		{"baseline", []string{"/healthz"}},
		{"activities", []string{"/v1/activities?counts=true"}},
		// Filters that use an index (QUERY.md, "Which filters are fast")...
		{"search_all", page("", "", "all")},
		{"search_all_count", count("", "all")},
		{"search_customer", page("Customer = 'C0042'", "", "all")},
		{"search_customer_count", count("Customer = 'C0042'", "all")},
		{"search_end_range", page("end_time BETWEEN '2026-06-01' AND '2026-06-02'", "end_time", "completed")},
		{"search_end_range_count", count("end_time BETWEEN '2026-06-01' AND '2026-06-02'", "completed")},
		// ... and two that cannot: a range of a time without an index
		// reads the instances until a page matches (the count, all of
		// them); an order by an item without one sorts every match.
		{"search_begin_range", page("begin_time BETWEEN '2026-06-01' AND '2026-06-02'", "begin_time", "all")},
		{"search_begin_range_count", count("begin_time BETWEEN '2026-06-01' AND '2026-06-02'", "all")},
		{"search_by_amount", page("Rush = true", "Amount DESC", "all")},
		{"search_by_amount_count", count("Rush = true", "all")},
		{"instance", []string{a + "/instances/PO-0500000"}},
		{"failed", []string{"/v1/failed?limit=50"}},
		{"pool", []string{"/v1/nodes", "/v1/sessions"}},
	}
}

// BenchmarkPortalPages times the API requests of each portal page at a
// million instances (the search workload, BenchmarkSearch's), through the
// HTTP API served in process over a real store: issue 12 asks that the
// portal's pages load in under a second at that size. The browser's own
// work is left out: a page renders at most 50 rows, whatever the store
// holds. BAM_BENCH_REPS sets the timed loads of each page (default 7).
func BenchmarkPortalPages(b *testing.B) {
	for _, driver := range []string{"postgres", "sqlite"} {
		b.Run(driver, func(b *testing.B) { benchPortalPages(b, driver) })
	}
}

func benchPortalPages(b *testing.B, driver string) {
	ctx := context.Background()
	u := storeURL(b, driver)
	st := openStore(b, u)
	prepareSearchStore(b, driver, u, st)
	if err := st.AddSource(ctx, store.Source{Name: "orders", Kind: store.KindBuffer, Partitions: 4, Enabled: true}); err != nil {
		b.Fatal(err)
	}
	api := httpapi.New(st, httpapi.Config{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	srv := httptest.NewServer(api.Handler())
	defer srv.Close()
	get := func(path string) {
		resp, err := srv.Client().Get(srv.URL + path)
		if err != nil {
			b.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
		}
	}
	reps := repsOr(7)
	b.ResetTimer()
	for range b.N {
		timePages(b, get, reps, portalPages())
		// Then the aggregation pages, once the example's two aggregations
		// are deployed over the million instances (the deployment fills
		// their cells: timed too).
		text := searchDefinition + portalAggregations
		file, err := definition.Parse([]byte(text))
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if _, err := st.Deploy(ctx, store.DeployRequest{File: file, Text: text, By: "bench"}); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(time.Since(start).Seconds(), "deploy_aggregations_s")
		const a = "/v1/activities/PurchaseOrder/aggregations/"
		timePages(b, get, reps, []struct {
			name string
			reqs []string
		}{
			// As the portal asks: at most 1,000 cells. ByCustomer holds
			// tens of thousands; all of them, for comparison.
			{"aggregation_progress", []string{a + "Progress?limit=1000"}},
			{"aggregation_bycustomer", []string{a + "ByCustomer?limit=1000"}},
			{"aggregation_bycustomer_active", []string{a + "ByCustomer?state=active&limit=1000"}},
			{"aggregation_bycustomer_every_cell", []string{a + "ByCustomer"}},
		})
	}
	b.ReportMetric(0, "ns/op")
}

// portalAggregations are the purchase-order example's two aggregations
// (examples/purchase-order/definitions.yaml), for the search workload's
// activity: by customer and month (5,000 customers over twelve months,
// two states: tens of thousands of cells), and by progress (four).
const portalAggregations = `    aggregations:
      - name: ByCustomer
        dimensions:
          - {item: Customer}
          - {item: Received, bucket: month}
        measures:
          - {name: orders,  function: count}
          - {name: total,   function: sum, item: Amount}
          - {name: average, function: avg, item: Amount}
          - {name: largest, function: max, item: Amount}
      - name: Progress
        dimensions:
          - {name: stage, progress: [Received, Approved, Shipped, Delivered]}
        measures:
          - {name: to_ship, function: avg, from: Received, to: Shipped}
          - {name: slowest, function: max, from: Received, to: Shipped}
`

// timePages loads each page reps times after one untimed load, and
// reports the median and the slowest, in milliseconds.
func timePages(b *testing.B, get func(string), reps int, pages []struct {
	name string
	reqs []string
}) {
	for _, p := range pages {
		for _, r := range p.reqs { // warm: the first load of each page is not timed
			get(r)
		}
		ms := make([]float64, reps)
		for i := range ms {
			start := time.Now()
			for _, r := range p.reqs {
				get(r)
			}
			ms[i] = float64(time.Since(start).Microseconds()) / 1000
		}
		sort.Float64s(ms)
		b.ReportMetric(ms[len(ms)/2], p.name+"_ms")
		b.ReportMetric(ms[len(ms)-1], p.name+"_ms_max")
	}
}
