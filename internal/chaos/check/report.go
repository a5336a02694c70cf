package check

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// maxListed is how many violations String lists before it summarizes.
const maxListed = 50

// String renders the report for a person: the faults injected, the counts
// of events and poison events, the longest time a session went unowned (in
// all and per kind of fault), the longest takeover per kind of fault, and
// the violations (the first maxListed of them).
func (r Report) String() string {
	var b strings.Builder
	b.WriteString("faults: ")
	if len(r.Faults) == 0 {
		b.WriteString("none")
	}
	kinds := make([]string, 0, len(r.Faults))
	for k := range r.Faults {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	for i, k := range kinds {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %d", k, r.Faults[k])
	}
	fmt.Fprintf(&b, "\nevents: %d written (%d acked, %d unknown), %d applied, %d lost, %d doubled\n",
		r.Written, r.Acked, r.Unknown, r.Applied, r.Lost, r.Doubled)
	fmt.Fprintf(&b, "vocabulary: %d continuations enabled, %d events under their tokens, %d relations\n",
		r.Continuations, r.ContinuationEvents, r.Relations)
	fmt.Fprintf(&b, "alert: %d firings, %d deliveries (%d repeated to the receiver, %d attempts refused on purpose)\n",
		r.AlertFirings, r.AlertDeliveries, r.AlertRepeats, r.AlertRefused)
	fmt.Fprintf(&b, "poison: %d written (%d acked, %d unknown), %d quarantined\n",
		r.Poison, r.PoisonAcked, r.Poison-r.PoisonAcked, r.Quarantined)
	if len(r.PoisonByKind) > 0 {
		b.WriteString("poison by kind (quarantined/acked/written):")
		for i, k := range slices.Sorted(maps.Keys(r.PoisonByKind)) {
			if i > 0 {
				b.WriteString(",")
			}
			n := r.PoisonByKind[k]
			fmt.Fprintf(&b, " %s %d/%d/%d", cmp.Or(k, "(unnamed)"), n.Quarantined, n.Acked, n.Written)
		}
		b.WriteString("\n")
	}
	if r.LongestUnownedSession == "" {
		b.WriteString("longest unowned: none\n")
	} else {
		fmt.Fprintf(&b, "longest unowned: %v (session %s)\n", r.LongestUnowned.Round(time.Millisecond), r.LongestUnownedSession)
	}
	writeSpans(&b, "longest unowned by fault", r.UnownedByFault)
	writeSpans(&b, "longest takeover from a node fault's start", r.TakeoverByFault)
	if r.OK() {
		b.WriteString("violations: none\n")
		return b.String()
	}
	fmt.Fprintf(&b, "violations: %d (", len(r.Violations))
	first := true
	for _, k := range kindOrder {
		n := 0
		for _, v := range r.Violations {
			if v.Kind == k {
				n++
			}
		}
		if n > 0 {
			if !first {
				b.WriteString(", ")
			}
			first = false
			fmt.Fprintf(&b, "%s %d", k, n)
		}
	}
	b.WriteString(")\n")
	for i, v := range r.Violations {
		if i == maxListed {
			fmt.Fprintf(&b, "  … and %d more\n", len(r.Violations)-maxListed)
			break
		}
		fmt.Fprintf(&b, "  %s: %s\n", v.Kind, v.Detail)
	}
	return b.String()
}

// writeSpans writes one line of spans by kind of fault, kinds sorted; none
// when spans is empty.
func writeSpans(b *strings.Builder, title string, spans map[string]Span) {
	if len(spans) == 0 {
		return
	}
	kinds := make([]string, 0, len(spans))
	for k := range spans {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	fmt.Fprintf(b, "%s: ", title)
	for i, k := range kinds {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(b, "%s %v (%s)", k, spans[k].Longest.Round(time.Millisecond), spans[k].Session)
	}
	b.WriteString("\n")
}
