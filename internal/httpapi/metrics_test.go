package httpapi

import (
	"net/http"
	"strings"
	"testing"

	"github.com/bam-dev/bam/internal/metrics"
	"github.com/bam-dev/bam/internal/metrics/metricstest"
)

// TestMetricsCountRequestsByRoute checks that GET /metrics serves the
// node's metrics, and that requests are counted by the route pattern that
// matched them and their status, never by their raw path.
func TestMetricsCountRequestsByRoute(t *testing.T) {
	m := metrics.New()
	b := setup(t, func(c *Config) { c.Metrics = m })
	wantStatus(t, b.do(t, http.MethodGet, "/v1/sources/orders", nil), http.StatusOK)
	wantStatus(t, b.do(t, http.MethodGet, "/v1/sources/nosuch", nil), http.StatusNotFound)
	wantStatus(t, b.do(t, http.MethodGet, "/v1/sources/other", nil), http.StatusNotFound)
	wantStatus(t, b.do(t, http.MethodGet, "/v1/no/such/endpoint/42", nil), http.StatusNotFound)

	fams, err := metricstest.Get(b.srv.Client(), b.srv.URL+"/metrics")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		route, code string
		want        float64
	}{
		{"GET /v1/sources/{source}", "200", 1},
		{"GET /v1/sources/{source}", "404", 2},
		{"/", "404", 1},
	} {
		if got, _ := fams.Sum("bam_http_requests_total", "route", c.route, "code", c.code); got != c.want {
			t.Errorf("bam_http_requests_total{route=%q, code=%q} = %v, want %v", c.route, c.code, got, c.want)
		}
	}
	for _, m := range fams["bam_http_requests_total"].GetMetric() {
		for _, l := range m.GetLabel() {
			if strings.Contains(l.GetValue(), "nosuch") || strings.Contains(l.GetValue(), "42") {
				t.Errorf("a label holds a raw path: %s=%q", l.GetName(), l.GetValue())
			}
		}
	}

	// Without metrics, /metrics says so.
	off := setup(t)
	wantError(t, off.do(t, http.MethodGet, "/metrics", nil), http.StatusNotFound, "metrics are off")
}
