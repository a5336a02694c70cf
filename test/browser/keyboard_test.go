package browser

import (
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// TestSearchByKeyboard builds and runs a search with the keyboard alone:
// Tab to the builder's "+ condition", Enter, the field, the operator and
// the value by keys, Enter to search.
func TestSearchByKeyboard(t *testing.T) {
	ctx := browser(t)
	p := startPool(t, purchaseOrderDefinitions(t))
	p.waitApplied(t, orders(t, p))

	focused := func() string {
		return get(t, ctx, chromedp.Evaluate[string](`(() => { const e = document.activeElement; return e.tagName + '.' + e.className; })()`))
	}
	do(t, ctx, chromedp.Navigate(p.http+"/activities/PurchaseOrder/search"), searched(), chromedp.Focus(css(`#builder select.group-op`)))
	// From the group's operator: Tab to "+ condition", Enter.
	for range 5 {
		if focused() == "BUTTON.add-condition" {
			break
		}
		do(t, ctx, chromedp.KeyEvent(kb.Tab))
	}
	if f := focused(); f != "BUTTON.add-condition" {
		t.Fatalf("Tab from the group's operator reached %s, not + condition", f)
	}
	do(t, ctx, chromedp.KeyEvent(kb.Enter), chromedp.WaitVisible(css(`#builder .cond select.field`)))
	// The new condition's field has the focus: type to choose Customer.
	if f := focused(); f != "SELECT.field" {
		t.Fatalf("after + condition the focus is on %s, not the new condition's field", f)
	}
	do(t, ctx, chromedp.KeyEvent("Customer"))
	do(t, ctx, chromedp.KeyEvent(kb.Tab), chromedp.KeyEvent(kb.Tab), chromedp.KeyEvent("Northwind"), chromedp.KeyEvent(kb.Enter),
		until(`location.search.includes('Northwind')`), searched())
	if text := get(t, ctx, chromedp.Value(css(`#filter-text`))); text != "Customer = 'Northwind'" {
		t.Errorf("the keyboard built %q", text)
	}
	if n := get(t, ctx, chromedp.Evaluate[int](`document.querySelectorAll('#result-table tbody tr').length`)); n != 10 {
		t.Errorf("%d rows, want Northwind's 10", n)
	}
}
