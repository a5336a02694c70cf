package browser

import (
	"strconv"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestAggregationDrillsDown: from the activities page to an
// aggregation's cells, drawn and tabled; a cell's instance count opens the
// search of its filter, which finds exactly that many instances, all of
// them of the cell.
func TestAggregationDrillsDown(t *testing.T) {
	ctx := browser(t)
	p := startPool(t, purchaseOrderDefinitions(t))
	p.waitApplied(t, orders(t, p))

	do(t, ctx,
		chromedp.Navigate(p.http+"/"),
		chromedp.Click(css(`tr[data-activity="PurchaseOrder"] a.aggregation`)), // ByCustomer, the first
		chromedp.WaitVisible(css(`#cells`)),
		chromedp.WaitVisible(css(`#chart`)),
	)
	rows := get(t, ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('#cells tbody tr')].map(r => r.dataset.filter)`))
	// Four customers, each with active and completed orders, in one month.
	if len(rows) != 8 {
		t.Fatalf("%d cells, want 8: %q", len(rows), rows)
	}
	screenshot(t, ctx, "aggregation")

	// The cell of O'Brien & Sons' active orders.
	const cell = `#cells tbody tr[data-filter*="Brien"][data-filter*="'active'"]`
	filter := get(t, ctx, chromedp.AttributeValue(css(cell), "data-filter")).Value
	n, err := strconv.Atoi(get(t, ctx, chromedp.Text(css(cell+` a.drill`))))
	if err != nil || n == 0 {
		t.Fatalf("the cell's instances: %d, %v", n, err)
	}
	do(t, ctx, chromedp.Click(css(cell+` a.drill`)), until(`location.pathname.endsWith('/search')`), searched())
	if where := get(t, ctx, chromedp.Value(css(`#filter-text`))); where != filter {
		t.Errorf("the drill-down searched %q, the cell's filter is %q", where, filter)
	}
	states := get(t, ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('#result-table tbody tr td:nth-child(2)')].map(c => c.textContent)`))
	customers := get(t, ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('#result-table tbody tr')].map(r => r.children[4 + [...document.querySelectorAll('#result-table thead th')].slice(4).findIndex(h => h.textContent.startsWith('Customer'))].textContent)`))
	if len(states) != n {
		t.Errorf("the drill-down found %d instances, the cell counts %d", len(states), n)
	}
	for i := range states {
		if states[i] != "active" || customers[i] != "O'Brien & Sons" {
			t.Errorf("the drill-down found a %s instance of %q", states[i], customers[i])
		}
	}
	if !strings.Contains(filter, "O''Brien & Sons") {
		t.Errorf("filter %q", filter)
	}
}
