package browser

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestNoSuchPage: a path the portal has no page for, or whose activity is
// no UTF-8 once decoded (%E0), shows the portal's "No such page" in its
// frame (not the API's JSON, nor "Loading…" for good); the server answers
// a path that is no page 404.
func TestNoSuchPage(t *testing.T) {
	ctx := browser(t)
	p := startPool(t, purchaseOrderDefinitions(t))
	for _, path := range []string{"/activities/%E0/search", "/pool/", "/activities/PurchaseOrder", "/nope"} {
		do(t, ctx, chromedp.Navigate(p.http+path), until(`document.querySelector('main h1')?.textContent === 'No such page'`))
		if nav := get(t, ctx, chromedp.Evaluate[int](`document.querySelectorAll('.top nav a').length`)); nav != 4 {
			t.Errorf("%s: %d links in the portal's navigation, want 4", path, nav)
		}
		if path == "/activities/%E0/search" {
			continue // the server serves the search page; the router finds no activity in it
		}
		resp, err := http.Get(p.http + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", path, resp.StatusCode)
		}
	}
}

// TestPagePolish: a page asks for no /favicon.ico (its icon is inline, so
// no 404 is logged); unticking every column is refused in words, since
// no columns in the URL means every column; a session that has nothing
// to apply shows its oldest unapplied event as "-", not "0.0s".
func TestPagePolish(t *testing.T) {
	ctx := browser(t)
	p := startPool(t, purchaseOrderDefinitions(t))
	do(t, ctx, chromedp.Navigate(p.http+"/activities/PurchaseOrder/search?columns=Customer"), searched())
	if icon := get(t, ctx, chromedp.Evaluate[string](`document.querySelector('link[rel="icon"]')?.getAttribute('href') || ''`)); icon != "data:," {
		t.Errorf("the page's icon is %q, want the inline data:,", icon)
	}
	before := get(t, ctx, chromedp.Location())
	do(t, ctx,
		chromedp.Evaluate[chromedp.Void](`document.querySelector('#search-form details').open = true`),
		chromedp.Click(css(`input[name="column"][value="Customer"]`)),
		chromedp.Click(css(`#search`)),
		chromedp.WaitVisible(css(`#filter-problem .error`)),
	)
	if msg := get(t, ctx, chromedp.Text(css(`#filter-problem .error`))); !strings.Contains(msg, "at least one column") {
		t.Errorf("no column ticked: %q", msg)
	}
	if after := get(t, ctx, chromedp.Location()); after != before {
		t.Errorf("no column ticked moved the page from %s to %s", before, after)
	}

	do(t, ctx, chromedp.Navigate(p.http+"/pool"), until(`document.querySelectorAll('#session-table tbody tr[data-session^="orders/"]').length === 2`))
	oldest := get(t, ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('#session-table tbody tr[data-session^="orders/"] td.oldest')].map(td => td.textContent)`))
	if !slices.Equal(oldest, []string{"-", "-"}) {
		t.Errorf("the idle sessions' oldest unapplied: %q, want -", oldest)
	}
}
