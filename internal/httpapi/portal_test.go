package httpapi

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestPortalRoutes: the portal's pages and files are served beside the
// API, with a policy that allows this origin only; the API's paths, and
// any path that is no page, keep the API's JSON answers.
func TestPortalRoutes(t *testing.T) {
	b := setup(t)
	get := func(path string, header ...string) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(b.ctx, http.MethodGet, b.srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		res, err := b.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatal(err)
		}
		return res, string(body)
	}
	for _, page := range []string{"/", "/activities/PurchaseOrder/search", "/activities/Purchase%20Order/search?where=x"} {
		res, body := get(page)
		if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") ||
			!strings.Contains(body, `<script type="module" src="/assets/app.js">`) {
			t.Errorf("GET %s: %d %s\n%.200s", page, res.StatusCode, res.Header.Get("Content-Type"), body)
		}
		if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("GET %s: Content-Security-Policy %q", page, csp)
		}
		// The policy forbids inline scripts: the page must have none.
		if strings.Contains(strings.ReplaceAll(body, `<script type="module" src=`, ""), "<script") {
			t.Errorf("GET %s: an inline script, which the policy blocks", page)
		}
	}
	res, body := get("/assets/app.js")
	etag := res.Header.Get("ETag")
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/javascript") || etag == "" || !strings.Contains(body, "route()") {
		t.Errorf("GET /assets/app.js: %d %s etag %q", res.StatusCode, res.Header.Get("Content-Type"), etag)
	}
	if res, _ := get("/assets/app.js", "If-None-Match", etag); res.StatusCode != http.StatusNotModified {
		t.Errorf("GET /assets/app.js again with its ETag: %d, want 304", res.StatusCode)
	}
	for _, path := range []string{"/assets/nothing.js", "/assets/index.html"} {
		if res, _ := get(path); res.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", path, res.StatusCode)
		}
	}
	// Not pages: the API's JSON 404.
	for _, path := range []string{"/v1/nothing", "/activities", "/activities/PurchaseOrder/other"} {
		res, body := get(path)
		if res.StatusCode != http.StatusNotFound || res.Header.Get("Content-Type") != "application/json" || !strings.Contains(body, "no such endpoint") {
			t.Errorf("GET %s: %d %s %s", path, res.StatusCode, res.Header.Get("Content-Type"), body)
		}
	}
}
