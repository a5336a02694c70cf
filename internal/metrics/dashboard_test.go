package metrics

import (
	"encoding/json"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
)

// metricName finds the metric names in a PromQL expression (or any text
// of the dashboard): bam's own, and the Go runtime's and the process's.
var metricName = regexp.MustCompile(`\b(?:bam|go|process)_[a-zA-Z0-9_]+`)

// TestDashboardUsesOnlyMetricsThatExist reads the Grafana dashboard of
// docs/grafana and fails for any metric name in it (in a query, a
// variable or a description) that a node's registry does not expose. A
// histogram's series are its name with _bucket, _sum or _count.
func TestDashboardUsesOnlyMetricsThatExist(t *testing.T) {
	raw, err := os.ReadFile("../../docs/grafana/bam.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash any
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("docs/grafana/bam.json does not parse: %v", err)
	}
	exposed := map[string]bool{}
	for name, fam := range scrape(t, everythingOnce(t)) {
		exposed[name] = true
		if fam.GetType() == dto.MetricType_HISTOGRAM {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				exposed[name+suffix] = true
			}
		}
	}
	used := map[string]bool{}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case string:
			for _, name := range metricName.FindAllString(v, -1) {
				used[name] = true
			}
		case map[string]any:
			for _, x := range v {
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(dash)
	var unknown []string
	bam := 0
	for name := range used {
		if strings.HasPrefix(name, "bam_") {
			bam++
		}
		if !exposed[name] {
			unknown = append(unknown, name)
		}
	}
	sort.Strings(unknown)
	if len(unknown) > 0 {
		t.Errorf("docs/grafana/bam.json uses metrics that bam does not expose: %v", unknown)
	}
	if bam < 10 {
		t.Errorf("docs/grafana/bam.json uses %d bam_ metrics: the scan of its queries is broken", bam)
	}
}
