package definition

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Format writes a file that Parse reads back as f: one line per item, in
// the style of the package comment, with every option written out (the
// defaults Parse filled in included), so that an exported definition says
// exactly what is deployed.
func Format(f File) []byte {
	var b strings.Builder
	b.WriteString("activities:\n")
	for _, a := range f.Activities {
		fmt.Fprintf(&b, "  - name: %s\n    items:\n", yamlName(a.Name))
		for _, it := range a.Items {
			fmt.Fprintf(&b, "      - {name: %s, type: %s", yamlName(it.Name), it.Type)
			switch it.Type {
			case Text:
				fmt.Fprintf(&b, ", max_length: %d", it.MaxLength)
			case Decimal:
				scale := 0
				if it.Scale != nil {
					scale = *it.Scale
				}
				fmt.Fprintf(&b, ", precision: %d, scale: %d", it.Precision, scale)
			}
			if it.Index {
				b.WriteString(", index: true")
			}
			b.WriteString("}\n")
		}
		formatAggregations(&b, a.Aggregations)
		formatAlerts(&b, a.Alerts)
	}
	return []byte(b.String())
}

// formatAlerts writes an activity's alerts, a line per field and per
// subscriber; their texts (filters, messages, URLs) quoted as JSON, which
// YAML reads as it is.
func formatAlerts(b *strings.Builder, alerts []Alert) {
	if len(alerts) == 0 {
		return
	}
	b.WriteString("    alerts:\n")
	for _, al := range alerts {
		fmt.Fprintf(b, "      - name: %s\n", yamlName(al.Name))
		field := func(name, value string) {
			if value != "" {
				fmt.Fprintf(b, "        %s: %s\n", name, yamlText(value))
			}
		}
		field("where", al.Where)
		field("aggregation", al.Aggregation)
		field("state", al.State)
		field("measure", al.Measure)
		if al.Above != nil {
			fmt.Fprintf(b, "        above: %s\n", strconv.FormatFloat(*al.Above, 'g', -1, 64))
		}
		if al.Below != nil {
			fmt.Fprintf(b, "        below: %s\n", strconv.FormatFloat(*al.Below, 'g', -1, 64))
		}
		field("message", al.Message)
		field("severity", string(al.Severity))
		if len(al.Subscribers) > 0 {
			b.WriteString("        subscribers:\n")
		}
		for _, s := range al.Subscribers {
			var fields []string
			if s.Webhook != "" {
				fields = append(fields, "webhook: "+yamlText(s.Webhook))
			}
			if s.SecretEnv != "" {
				fields = append(fields, "secret_env: "+yamlText(s.SecretEnv))
			}
			if s.Email != "" {
				fields = append(fields, "email: "+yamlText(s.Email))
			}
			fmt.Fprintf(b, "          - {%s}\n", strings.Join(fields, ", "))
		}
	}
}

// yamlText quotes any text for YAML: a JSON string is a YAML one.
func yamlText(s string) string {
	out, _ := json.Marshal(s)
	return string(out)
}

// formatAggregations writes an activity's aggregations, one line per
// dimension and measure.
func formatAggregations(b *strings.Builder, aggs []Aggregation) {
	if len(aggs) == 0 {
		return
	}
	b.WriteString("    aggregations:\n")
	for _, g := range aggs {
		fmt.Fprintf(b, "      - name: %s\n", yamlName(g.Name))
		if len(g.Dimensions) > 0 {
			b.WriteString("        dimensions:\n")
		}
		for _, d := range g.Dimensions {
			var fields []string
			if d.Name != "" {
				fields = append(fields, "name: "+yamlName(d.Name))
			}
			if d.Item != "" {
				fields = append(fields, "item: "+yamlName(d.Item))
			}
			if d.Bucket != "" {
				fields = append(fields, "bucket: "+string(d.Bucket))
			}
			if len(d.Ranges) > 0 {
				bounds := make([]string, len(d.Ranges))
				for i, r := range d.Ranges {
					bounds[i] = strconv.FormatFloat(r, 'g', -1, 64)
				}
				fields = append(fields, "ranges: ["+strings.Join(bounds, ", ")+"]")
			}
			if len(d.Progress) > 0 {
				names := make([]string, len(d.Progress))
				for i, n := range d.Progress {
					names[i] = yamlName(n)
				}
				fields = append(fields, "progress: ["+strings.Join(names, ", ")+"]")
			}
			fmt.Fprintf(b, "          - {%s}\n", strings.Join(fields, ", "))
		}
		if len(g.Measures) > 0 {
			b.WriteString("        measures:\n")
		}
		for _, m := range g.Measures {
			fields := []string{"name: " + yamlName(m.Name), "function: " + string(m.Function)}
			if m.Item != "" {
				fields = append(fields, "item: "+yamlName(m.Item))
			}
			if m.From != "" {
				fields = append(fields, "from: "+yamlName(m.From))
			}
			if m.To != "" {
				fields = append(fields, "to: "+yamlName(m.To))
			}
			fmt.Fprintf(b, "          - {%s}\n", strings.Join(fields, ", "))
		}
		if g.Window != "" {
			fmt.Fprintf(b, "        window: %s\n", g.Window)
		}
	}
}

// yamlWords are the plain scalars YAML reads as something other than a
// string (null, booleans in YAML 1.1 and 1.2). Names are otherwise letters,
// digits and underscores, which YAML reads as strings.
var yamlWords = []string{"null", "true", "false", "yes", "no", "on", "off", "y", "n"}

// yamlName quotes a name that YAML would not read as a string.
func yamlName(name string) string {
	if slices.Contains(yamlWords, strings.ToLower(name)) {
		return `"` + name + `"`
	}
	return name
}
