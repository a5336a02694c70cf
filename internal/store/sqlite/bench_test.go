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

// BenchmarkApply measures draining: b.N events, one per instance, 1,000 per
// fenced batch, half of them updating instances that exist.
func BenchmarkApply(b *testing.B) {
	s, ctx := benchStore(b)
	l, err := s.Claim(ctx, store.SessionID{Source: "src"}, "a", "", time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	var from store.Position
	b.ResetTimer()
	for done := 0; done < b.N; done += 1000 {
		n := min(1000, b.N-done)
		events := make([]event.Event, n)
		for i := range events {
			events[i] = event.Event{
				Activity: "PurchaseOrder", Instance: fmt.Sprintf("PO-%d", (done+i)/2), Kind: event.Update,
				Time: t0.Add(time.Duration(done+i) * time.Millisecond),
				Data: map[string]json.RawMessage{"Amount": json.RawMessage("1200"), "Customer": json.RawMessage(`"Contoso"`)},
			}
		}
		cp := store.Position{Minor: from.Minor + int64(n)}
		batch := store.Batch{Lease: l, Node: "a", From: from, Checkpoint: cp, Deltas: event.Coalesce(events), Applied: n}
		if err := s.Apply(ctx, batch); err != nil {
			b.Fatal(err)
		}
		from = cp
	}
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
