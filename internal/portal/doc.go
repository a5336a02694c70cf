// Package portal is bam's web portal: pages over the HTTP API (package
// httpapi) that `bam serve --http` serves at /, beside the API.
//
// # How it is built
//
// Plain HTML, CSS and JavaScript modules in assets/, embedded in the
// binary: no build step, no package manager, nothing fetched from another
// host (the Content-Security-Policy allows this origin only), so a fresh
// clone serves it with `go run ./cmd/bam serve --http …` and it works
// without a network. The pages read and change the store through /v1 only,
// as any client of the API would: the portal has no endpoint of its own and
// no state on the server.
//
// # Pages and URLs
//
// Every page's state is in its URL, so that a page can be shared and the
// browser's back button works: the server answers index.html for each
// page path (Pages) and the page's module renders it from the path and its
// query (app.js routes):
//
//	/                                    activities: counts, aggregations, links
//	/pool                                nodes, sessions and owners, live (polled each second)
//	/failed                              failed events: filter, show, fix, retry, discard
//	/activities/{activity}/search        search: query builder ⇄ filter string ⇄ URL
//	                                     (?where=&order=&columns=&state=&cursor=)
//	/activities/{activity}/instances/{id} one instance: timeline, data, links
//	/activities/{activity}/aggregations/{aggregation}
//	                                     pivot table, chart, drill-down (?state=&where=&measure=)
//
// A filter is bam's filter language (package search), one string: the
// query builder writes it from its groups and conditions, and reads a
// string back into them through GET /v1/activities/{activity}/filter, so
// the grammar and the operators of each type have one definition, in Go.
//
// # Tests
//
// The pages are tested in a real headless Chromium driving real `bam
// serve` processes (test/browser), which also takes docs/PORTAL.md's
// screenshots.
package portal
