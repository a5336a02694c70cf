package bench

import (
	"context"
	"fmt"
	"testing"

	"github.com/bam-dev/bam/internal/catalog"
	"github.com/bam-dev/bam/internal/definition"
	"github.com/bam-dev/bam/internal/store"
)

// typedDefinition declares the drain workload's items (purchaseOrders);
// with indexed, Customer and Status get an index (docs/DEFINITIONS.md).
func typedDefinition(indexed bool) string {
	idx := ""
	if indexed {
		idx = ", index: true"
	}
	return `activities:
  - name: PurchaseOrder
    items:
      - {name: Customer, type: text, max_length: 100` + idx + `}
      - {name: Amount,   type: decimal, precision: 12, scale: 2}
      - {name: Currency, type: text, max_length: 3}
      - {name: Status,   type: text, max_length: 20` + idx + `}
      - {name: Approver, type: text, max_length: 100}
      - {name: Step,     type: integer}
      - {name: Shipped,  type: milestone}
      - {name: Invoice,  type: text, max_length: 20}
`
}

// BenchmarkDrainTyped is BenchmarkDrain (batch 1000) three ways in each
// repetition, each on a fresh store beside its own COPY (PostgreSQL) or
// bare INSERT (SQLite) baseline: untyped (no definition deployed, the
// figures of BenchmarkDrain), typed (the workload's activity deployed:
// every event checked against it by the node, typed views), and indexed
// (the same with two items indexed). typed/untyped and indexed/untyped
// are the cost of definitions; issue 4 allows at most 20 % for typed.
func BenchmarkDrainTyped(b *testing.B) {
	evs := purchaseOrders(drainEvents, drainInstances, drainPartitions)
	for _, driver := range []string{"postgres", "sqlite"} {
		b.Run(driver, func(b *testing.B) { benchDrainTyped(b, driver, evs) })
	}
}

func benchDrainTyped(b *testing.B, driver string, evs []benchEvent) {
	b.StopTimer()
	n := float64(len(evs))
	var m spreads
	reps := 0
	for range b.N {
		for range repsOr(1) {
			reps++
			rates := map[string]float64{}
			// The order turns from one repetition to the next, so that none
			// of the three always runs first (on a cold cache) or last.
			variants := []string{"untyped", "typed", "indexed"}
			for range reps % 3 {
				variants = append(variants[1:], variants[0])
			}
			for _, variant := range variants {
				u := storeURL(b, driver)
				st := openStore(b, u)
				prefill(b, st, evs)
				sc := sessionConfig(1000)
				if variant != "untyped" {
					deployTyped(b, st, variant == "indexed")
					sc.Validator = catalog.New(st, catalog.Options{})
				}
				base := openBaseline(b, driver, u)
				raw := m.add(variant+"_baseline_rows/s", n/base.bulk(b, evs).Seconds())
				rate := m.add(variant+"_events/s", n/drain(b, st, u, sc, len(evs)).Seconds())
				verifyDrained(b, st, evs)
				base.close()
				m.add(variant+"/baseline", rate/raw)
				rates[variant] = rate
			}
			m.add("typed/untyped", rates["typed"]/rates["untyped"])
			m.add("indexed/untyped", rates["indexed"]/rates["untyped"])
			b.Logf("%s: untyped %.0f, typed %.0f (%.2f), indexed %.0f (%.2f) events/s", driver,
				rates["untyped"], rates["typed"], rates["typed"]/rates["untyped"], rates["indexed"], rates["indexed"]/rates["untyped"])
		}
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(reps), "reps")
	m.report(b)
}

func deployTyped(b *testing.B, st store.Store, indexed bool) {
	b.Helper()
	deployText(b, st, typedDefinition(indexed))
}

// deployText deploys a definition file's text.
func deployText(b *testing.B, st store.Store, text string) {
	b.Helper()
	file, err := definition.Parse([]byte(text))
	if err != nil {
		b.Fatal(err)
	}
	if _, err := st.Deploy(context.Background(), store.DeployRequest{File: file, Text: text, By: "bench"}); err != nil {
		b.Fatal(fmt.Errorf("deploy: %w", err))
	}
}
