package browser

import (
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestInstancePage: from a search result to the instance's page, which
// draws its milestones on a time axis in time order, with the date at the
// first and where it changes (Delivered, the next morning, is not earlier
// than Shipped), lists its data in the definition's order, and links its
// related instance, whose page the link opens.
func TestInstancePage(t *testing.T) {
	ctx := browser(t)
	p := startPool(t, purchaseOrderDefinitions(t))
	events := []map[string]any{
		{"activity": "PurchaseOrder", "instance": "PO-1042", "kind": "begin", "time": "2026-11-25T10:00:00Z",
			"data": map[string]any{"Received": "2026-11-25T10:00:00Z", "Customer": "Contoso", "Amount": 1200}},
		{"activity": "PurchaseOrder", "instance": "PO-1042", "kind": "update", "time": "2026-11-25T10:05:00Z",
			"data": map[string]any{"Approved": "2026-11-25T10:05:00Z"}},
		{"activity": "PurchaseOrder", "instance": "PO-1042", "kind": "update", "time": "2026-11-25T14:30:00Z",
			"data": map[string]any{"Shipped": "2026-11-25T14:30:00Z"}},
		{"activity": "PurchaseOrder", "instance": "PO-1042", "kind": "update", "time": "2026-11-26T09:12:00Z",
			"data": map[string]any{"Delivered": "2026-11-26T09:12:00Z"}},
		{"activity": "PurchaseOrder", "instance": "PO-1042", "kind": "relate", "related": map[string]any{"activity": "Shipment", "instance": "SH-7"}},
		{"activity": "Shipment", "instance": "SH-7", "kind": "begin", "time": "2026-11-25T14:00:00Z",
			"data": map[string]any{"Carrier": "UPS"}},
	}
	p.post(t, events...)
	p.waitApplied(t, len(events))

	do(t, ctx,
		chromedp.Navigate(p.http+"/activities/PurchaseOrder/search?where="+strings.ReplaceAll("Customer = 'Contoso'", " ", "%20")),
		searched(),
		chromedp.Click(css(`#result-table tr[data-instance="PO-1042"] a`)),
		chromedp.WaitVisible(css(`#timeline`)),
	)
	marks := get(t, ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('#timeline .mark')].map(m => m.dataset.item)`))
	if want := []string{"begin", "Received", "Approved", "Shipped", "Delivered"}; !slices.Equal(marks, want) {
		t.Errorf("timeline marks %v, want %v", marks, want)
	}
	when := get(t, ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('#timeline .mark .when')].map(m => m.textContent)`))
	if want := []string{"2026-11-25 10:00:00Z", "10:00:00Z", "10:05:00Z", "14:30:00Z", "2026-11-26 09:12:00Z"}; !slices.Equal(when, want) {
		t.Errorf("timeline times %q, want %q", when, want)
	}
	steps := get(t, ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('.steps li')].map(g => g.textContent)`))
	if want := []string{"begin → Received: 0s", "Received → Approved: 5m", "Approved → Shipped: 4h 25m", "Shipped → Delivered: 18h 42m"}; !slices.Equal(steps, want) {
		t.Errorf("steps %q, want %q", steps, want)
	}
	data := get(t, ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('#data tbody th')].map(th => th.textContent)`))
	var defined []string
	for _, item := range []string{"Received", "Approved", "Shipped", "Delivered", "Customer", "Amount", "Quantity", "Rush"} {
		if slices.Contains(data, item) {
			defined = append(defined, item)
		}
	}
	if len(data) < 6 || !slices.Equal(data, defined) {
		t.Errorf("data listed as %q, want the definition's order %q", data, defined)
	}
	// Marks minutes apart on an axis of hours: no mark's label or time
	// overlaps another mark's.
	overlaps := get(t, ctx, chromedp.Evaluate[int](`(() => { const r = [...document.querySelectorAll('#timeline text')].map(e => ({b: e.getBoundingClientRect(), g: e.parentNode}));
		let n = 0; for (let i = 0; i < r.length; i++) for (let j = i + 1; j < r.length; j++) { const a = r[i].b, b = r[j].b;
			if (r[i].g !== r[j].g && a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom) n++; }
		return n; })()`))
	if overlaps != 0 {
		t.Errorf("%d pairs of the timeline's labels overlap", overlaps)
	}
	if state := get(t, ctx, chromedp.Text(css(`#instance-state`))); state != "active" {
		t.Errorf("state %q", state)
	}
	screenshot(t, ctx, "instance")

	do(t, ctx, chromedp.Click(css(`#related-instances a.related`)), chromedp.WaitVisible(css(`#data`)))
	if loc := get(t, ctx, chromedp.Location()); !strings.HasSuffix(loc, "/activities/Shipment/instances/SH-7") {
		t.Errorf("the related link went to %s", loc)
	}
	if h1 := get(t, ctx, chromedp.Text(css(`h1`))); !strings.HasPrefix(h1, "SH-7") {
		t.Errorf("the related instance's page is titled %q", h1)
	}
}
