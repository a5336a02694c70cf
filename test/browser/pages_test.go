package browser

import (
	"net/http"
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
