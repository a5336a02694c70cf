package definition

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/event"
)

// BenchmarkValidate checks a typical update: one item of each type. It is
// the cost the bus adds per event for a deployed definition.
func BenchmarkValidate(b *testing.B) {
	f, err := Parse([]byte(`
activities:
  - name: PurchaseOrder
    items:
      - {name: Approved, type: milestone}
      - {name: Customer, type: text, max_length: 100}
      - {name: Amount,   type: decimal, precision: 12, scale: 2}
      - {name: Quantity, type: integer}
      - {name: Weight,   type: float}
      - {name: Rush,     type: boolean}
`))
	if err != nil {
		b.Fatal(err)
	}
	a := f.Activities[0]
	ev := event.Event{Activity: "PurchaseOrder", Instance: "PO-1", Kind: event.Update, Time: time.Now(),
		Data: map[string]json.RawMessage{
			"Approved": json.RawMessage(`"2026-11-25T10:02:00Z"`),
			"Customer": json.RawMessage(`"Contoso Ltd"`),
			"Amount":   json.RawMessage(`1200.50`),
			"Quantity": json.RawMessage(`12`),
			"Weight":   json.RawMessage(`3.25`),
			"Rush":     json.RawMessage(`true`),
		}}
	b.ReportAllocs()
	for b.Loop() {
		if err := a.Validate(ev); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzFitsAgreesWithCheck: the quick look (fits) never accepts a value
// that check refuses, for an item of every type.
func FuzzFitsAgreesWithCheck(f *testing.F) {
	for _, s := range []string{`12`, `-0`, `0123`, `+5`, `1.50`, `"12.5"`, `"2026-11-25T10:02:00Z"`, `true`, `"a\"b"`,
		`1e400`, `0.000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000001`,
		`9223372036854775808`, `"` + "\x01" + `"`, `"héllo"`, `1234567890.12`, `-0.001`} {
		f.Add([]byte(s))
	}
	two := 2
	items := []Item{
		{Name: "m", Type: Milestone}, {Name: "t", Type: Text, MaxLength: 5}, {Name: "b", Type: Boolean},
		{Name: "i", Type: Integer}, {Name: "f", Type: Float}, {Name: "d", Type: Decimal, Precision: 6, Scale: &two},
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		for _, it := range items {
			if it.fits(v) {
				if reason := it.check(v); reason != "" {
					t.Fatalf("%s: fits(%q) but check says %s", it.Describe(), v, reason)
				}
			}
		}
	})
}
