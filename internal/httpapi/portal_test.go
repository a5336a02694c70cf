package httpapi

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestPortalRoutes: the portal's pages and files are served beside the
// API, with a policy that allows this origin only; the API's paths keep
// the API's JSON answers, and a GET of any other path that is no page is
// the portal's page with a 404 (its router says there is no such page).
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
	// No page, no endpoint: the portal's page, 404, outside /v1/.
	for _, path := range []string{"/activities", "/activities/PurchaseOrder", "/activities/PurchaseOrder/other", "/pool/", "/nope"} {
		res, body := get(path)
		if res.StatusCode != http.StatusNotFound || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") ||
			!strings.Contains(body, `<script type="module" src="/assets/app.js">`) || !strings.Contains(res.Header.Get("Content-Security-Policy"), "default-src 'self'") {
			t.Errorf("GET %s: %d %s\n%.200s", path, res.StatusCode, res.Header.Get("Content-Type"), body)
		}
	}
	// The API's paths: its JSON 404.
	for _, path := range []string{"/v1/nothing", "/v1/activities/PurchaseOrder/other"} {
		res, body := get(path)
		if res.StatusCode != http.StatusNotFound || res.Header.Get("Content-Type") != "application/json" || !strings.Contains(body, "no such endpoint") {
			t.Errorf("GET %s: %d %s %s", path, res.StatusCode, res.Header.Get("Content-Type"), body)
		}
	}
}

// TestBrowserAttacksRefused: a page of another site that the operator's
// browser opens cannot change the store through the loopback API
// (cross-site requests that are not safe are refused), nor read it by
// resolving its own name to 127.0.0.1 (a Host that is no loopback name is
// refused); clients that are no browser, and the portal itself, are
// served as before.
func TestBrowserAttacksRefused(t *testing.T) {
	b := setup(t)
	send := func(method, path, body string, header ...string) int {
		t.Helper()
		req, err := http.NewRequestWithContext(b.ctx, method, b.srv.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		for i := 0; i+1 < len(header); i += 2 {
			if header[i] == "Host" {
				req.Host = header[i+1]
				continue
			}
			req.Header.Set(header[i], header[i+1])
		}
		res, err := b.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	events := `[{"activity":"PurchaseOrder","instance":"PO-1","kind":"begin"}]`
	for _, c := range []struct {
		name   string
		header []string
		want   int
	}{
		{"a page of another site", []string{"Origin", "http://evil.example", "Sec-Fetch-Site", "cross-site"}, http.StatusForbidden},
		{"an old browser's page of another site", []string{"Origin", "http://evil.example"}, http.StatusForbidden},
		{"the portal", []string{"Origin", b.srv.URL, "Sec-Fetch-Site", "same-origin"}, http.StatusOK},
		{"a client that is no browser", nil, http.StatusOK},
		{"another site's name resolved to 127.0.0.1", []string{"Host", "evil.example:8480", "Sec-Fetch-Site", "same-origin"}, http.StatusMisdirectedRequest},
	} {
		if got := send(http.MethodPost, "/v1/sources/orders/events", events, c.header...); got != c.want {
			t.Errorf("%s: POST answered %d, want %d", c.name, got, c.want)
		}
	}
	if got := send(http.MethodGet, "/v1/activities", "", "Origin", "http://evil.example", "Sec-Fetch-Site", "cross-site"); got != http.StatusOK {
		t.Errorf("a cross-site GET (which changes nothing, and whose answer the browser keeps from the page): %d", got)
	}
	if got := send(http.MethodGet, "/v1/activities", "", "Host", "evil.example"); got != http.StatusMisdirectedRequest {
		t.Errorf("a GET for another host: %d, want 421", got)
	}
	for _, host := range []string{"localhost:8480", "LOCALHOST", "127.0.0.2:1", "[::1]:8480"} {
		if got := send(http.MethodGet, "/v1/activities", "", "Host", host); got != http.StatusOK {
			t.Errorf("Host %s: %d, want 200", host, got)
		}
	}
}

// TestAllowRemoteServesAnyHost: with AllowRemote the operator serves the
// API under names of their own (behind their proxy): any Host is served.
func TestAllowRemoteServesAnyHost(t *testing.T) {
	b := setup(t, func(c *Config) { c.AllowRemote = true })
	req, err := http.NewRequestWithContext(b.ctx, http.MethodGet, b.srv.URL+"/v1/activities", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "bam.example.com"
	res, err := b.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Errorf("Host bam.example.com with AllowRemote: %d, want 200", res.StatusCode)
	}
}
