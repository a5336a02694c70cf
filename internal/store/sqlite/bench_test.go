package sqlite

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/store"
	"github.com/bam-dev/bam/internal/store/storetest"
)

// BenchmarkAppendBuffer measures ingest: b.N events, 1,000 per transaction.
func BenchmarkAppendBuffer(b *testing.B) {
	s, ctx := benchStore(b)
	evs := make([]store.BufferEvent, 1000)
	for i := range evs {
		evs[i] = store.BufferEvent{Payload: []byte(`{"activity":"PurchaseOrder","instance":"PO-1042","kind":"update","data":{"Amount":1200}}`)}
	}
	b.ResetTimer()
	for done := 0; done < b.N; done += len(evs) {
		if err := s.AppendBuffer(ctx, "src", evs[:min(len(evs), b.N-done)]); err != nil {
			b.Fatal(err)
		}
	}
}

// Shape of BenchmarkApply's batches: like bench.BenchmarkDrain's, a batch
// holds one event of each of applyBatch instances, spread over
// applyInstances existing ones.
const (
	applyBatch     = 1000
	applyInstances = 10_000
)

// BenchmarkApply measures the fenced apply of one batch of 1,000 deltas
// (an op), each from one event with two data items:
//
//   - insert: every delta begins a new instance;
//   - update: 10,000 instances exist, each delta updates one of them with a
//     later event (the usual case: the upsert's fast path);
//   - update-late: the same with an event older than the instance's last
//     change, so that items merge one by one.
func BenchmarkApply(b *testing.B) {
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	for _, bc := range []struct {
		name     string
		existing bool
		// at is the event time of batch n (counted from 1 on the
		// benchmark's clock).
		at func(n int) time.Time
	}{
		{"insert", false, func(n int) time.Time { return t0.Add(time.Duration(n) * time.Second) }},
		{"update", true, func(n int) time.Time { return t0.Add(time.Duration(n) * time.Second) }},
		{"update-late", true, func(n int) time.Time { return t0.Add(-time.Duration(n) * time.Second) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s, ctx := benchStore(b)
			l, err := s.Claim(ctx, store.SessionID{Source: "src"}, "a", "", time.Hour)
			if err != nil {
				b.Fatal(err)
			}
			a := &applier{s: s, ctx: ctx, l: l}
			if bc.existing {
				for first := 0; first < applyInstances; first += applyBatch {
					a.apply(b, applyDeltas(first, 1, event.Begin, t0))
				}
			}
			b.ResetTimer()
			for n := range b.N {
				var d []event.Delta
				if bc.existing {
					// Stride through all instances, as hash partitioning does.
					d = applyDeltas(n%applyInstances, applyInstances/applyBatch, event.Update, bc.at(n+1))
				} else {
					d = applyDeltas(applyInstances+n*applyBatch, 1, event.Begin, bc.at(n+1))
				}
				a.apply(b, d)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N*applyBatch)/b.Elapsed().Seconds(), "deltas/s")
		})
	}
}

// applier applies batches of one session in order.
type applier struct {
	s    *Store
	ctx  context.Context
	l    store.Lease
	from store.Position
}

func (a *applier) apply(b *testing.B, deltas []event.Delta) {
	cp := store.Position{Minor: a.from.Minor + int64(len(deltas))}
	batch := store.Batch{Lease: a.l, Node: "a", From: a.from, Checkpoint: cp, Deltas: deltas, Applied: len(deltas)}
	if err := a.s.Apply(a.ctx, batch); err != nil {
		b.Fatal(err)
	}
	a.from = cp
}

// applyDeltas returns the deltas of applyBatch events of instances first,
// first+stride, ... (modulo applyInstances when stride > 1), all at time at.
func applyDeltas(first, stride int, kind event.Kind, at time.Time) []event.Delta {
	events := make([]event.Event, applyBatch)
	for i := range events {
		inst := first + i*stride
		if stride > 1 {
			inst %= applyInstances
		}
		events[i] = event.Event{
			Activity: "PurchaseOrder", Instance: fmt.Sprintf("PO-%06d", inst), Kind: kind, Time: at,
			Data: map[string]json.RawMessage{
				"Amount":   json.RawMessage(fmt.Sprint(1000 + inst)),
				"Customer": json.RawMessage(`"Contoso"`),
			},
		}
	}
	return event.Coalesce(events)
}

func benchStore(b *testing.B) (*Store, context.Context) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(b.TempDir(), "bam.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	if _, _, err := s.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	if err := s.AddSource(ctx, store.Source{Name: "src", Kind: store.KindBuffer, Partitions: 1, Enabled: true}); err != nil {
		b.Fatal(err)
	}
	return s, ctx
}

// BenchmarkApplyAggregated is storetest.BenchApplyAggregated, without
// the tests' check of every merge (verifyMerges), which reads every moving
// instance again.
func BenchmarkApplyAggregated(b *testing.B) {
	defer func(v bool) { verifyMerges = v }(verifyMerges)
	verifyMerges = false
	storetest.BenchApplyAggregated(b, func(b *testing.B) store.Store {
		s, err := Open(context.Background(), filepath.Join(b.TempDir(), "bam.db"))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		if _, _, err := s.Migrate(context.Background()); err != nil {
			b.Fatal(err)
		}
		return s
	})
}
