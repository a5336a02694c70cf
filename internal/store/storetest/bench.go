package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/definition"
	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/store"
)

// BenchApplyAggregated measures Apply alone, one session, batches of 1000
// updates of 20,000 instances (each sets a new Status; Customer and
// Amount stay), on an activity without aggregations ("none"), with two
// whose cells the updates leave alone ("stable"), and with one whose cell
// every update moves ("moving"): what keeping aggregations costs a batch.
// open returns a fresh, migrated store.
func BenchApplyAggregated(b *testing.B, open func(b *testing.B) store.Store) {
	items := `activities:
  - name: PO
    items:
      - {name: Customer, type: text, max_length: 100}
      - {name: Amount,   type: decimal, precision: 12, scale: 2}
      - {name: Status,   type: text, max_length: 20}
      - {name: Step,     type: integer}
`
	for _, v := range []struct{ name, aggs string }{
		{"none", ""},
		{"stable", `    aggregations:
      - name: ByCustomer
        dimensions: [{item: Customer}]
        measures: [{name: total, function: sum, item: Amount}, {name: largest, function: max, item: Amount}]
      - name: ByDay
        dimensions: [{item: begin_time, bucket: day}]
        measures: [{name: total, function: sum, item: Amount}]
`},
		{"moving", `    aggregations:
      - name: ByStatus
        dimensions: [{item: Status}]
        measures: [{name: total, function: sum, item: Amount}]
`},
	} {
		b.Run(v.name, func(b *testing.B) {
			s, ctx := open(b), context.Background()
			f, err := definition.Parse([]byte(items + v.aggs))
			if err != nil {
				b.Fatal(err)
			}
			if _, err := s.Deploy(ctx, store.DeployRequest{File: f, Text: items + v.aggs, By: "bench"}); err != nil {
				b.Fatal(err)
			}
			if err := s.AddSource(ctx, store.Source{Name: "src", Kind: store.KindBuffer, Partitions: 1, Enabled: true}); err != nil {
				b.Fatal(err)
			}
			if err := s.Join(ctx, node("a")); err != nil {
				b.Fatal(err)
			}
			l, err := s.Claim(ctx, store.SessionID{Source: "src"}, "a", "", time.Hour)
			if err != nil {
				b.Fatal(err)
			}
			const size, instances = 1000, 20000
			base := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
			var pos store.Position
			batch := func(i int) []event.Delta {
				evs := make([]event.Event, size)
				for j := range evs {
					n := (i*size + j) % instances
					kind := event.Update
					if i*size+j < instances {
						kind = event.Begin
					}
					evs[j] = event.Event{Activity: "PO", Instance: fmt.Sprintf("PO-%d", n), Kind: kind,
						Time: base.Add(time.Duration(i) * time.Millisecond),
						Data: map[string]json.RawMessage{"Amount": json.RawMessage(fmt.Sprint(n % 977)), "Customer": json.RawMessage(fmt.Sprintf(`"C%d"`, n%50)),
							"Status": json.RawMessage(fmt.Sprintf(`"S%d"`, i%7)), "Step": json.RawMessage(fmt.Sprint(i))}}
				}
				return event.Coalesce(evs)
			}
			apply := func(i int) {
				b.StopTimer()
				deltas := batch(i)
				b.StartTimer()
				next := store.Position{Minor: pos.Minor + size}
				if err := s.Apply(ctx, store.Batch{Lease: l, Node: "a", From: pos, Checkpoint: next, Deltas: deltas, Applied: size}); err != nil {
					b.Fatal(err)
				}
				pos = next
			}
			for i := range instances / size { // every instance begun, before the clock
				apply(i)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				apply(instances/size + i)
			}
			b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "events/s")
			if err := s.VerifyAggregations(ctx); err != nil {
				b.Fatal(err)
			}
		})
	}
}
