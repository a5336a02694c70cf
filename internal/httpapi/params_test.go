package httpapi

import (
	"log/slog"
	"net/http"
	"strings"
	"testing"
)

// probes answer as Kubernetes' and Prometheus' own endpoints do, to
// clients that may add parameters of their own: they are not held to the
// API's rule on query parameters.
var probes = map[string]bool{"/healthz": true, "/metrics": true, "/livez": true, "/readyz": true}

// TestEveryEndpointRefusesUnknownQueryParameters: every endpoint of the API
// answers 400 to a parameter it does not know, before doing anything.
// (Before: ingest and one instance took any, and ingest wrote the events of
// POST .../events?dry_run=true.)
func TestEveryEndpointRefusesUnknownQueryParameters(t *testing.T) {
	b := setup(t)
	pathValues := strings.NewReplacer("{source}", "orders", "{activity}", "PurchaseOrder", "{id}", "1",
		"{alert}", "BigOrder", "{aggregation}", "Progress")
	for _, rt := range b.server().routes() {
		if probes[rt.path] {
			continue
		}
		path := pathValues.Replace(rt.path) + "?dry_run=true"
		r := b.do(t, rt.method, path, strings.NewReader(okEvent), "Content-Type", "application/json")
		wantError(t, r, http.StatusBadRequest, `unknown query parameter "dry_run"`)
	}
	if evs := b.buffered(t, "orders", 2); len(evs) != 0 {
		t.Errorf("a refused request wrote %d events", len(evs))
	}
}

// TestRepeatedQueryParametersAreRefused: a parameter given twice is a 400,
// not the first of its values. (Before: listing instances took limit=1&limit=2.)
func TestRepeatedQueryParametersAreRefused(t *testing.T) {
	b := setup(t)
	for _, path := range []string{
		"/v1/activities/PurchaseOrder/instances?limit=1&limit=2",
		"/v1/activities/PurchaseOrder/instances?state=active&state=completed",
		"/v1/failed?limit=1&limit=1",
	} {
		wantError(t, b.do(t, http.MethodGet, path, nil), http.StatusBadRequest, "given 2 times")
	}
}

// server is an API over the bundle's store, for what a test reads of it
// rather than sends to it (its routes).
func (b *bundle) server() *Server {
	return New(b.st, Config{}, slog.New(slog.DiscardHandler))
}
