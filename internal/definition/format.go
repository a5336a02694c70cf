package definition

import (
	"fmt"
	"slices"
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
	}
	return []byte(b.String())
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
