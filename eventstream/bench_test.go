package eventstream

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/store"
)

// discard is a buffer that keeps nothing.
type discard struct{}

func (discard) AppendBuffer(context.Context, string, []store.BufferEvent) error { return nil }

// BenchmarkBufferedUpdate is the cost of one UpdateActivity on a buffered
// stream, store excluded: converting, checking and encoding the event, and
// holding it. BenchmarkEncodeOnly, beside it, is the floor: encoding the
// same event already built.
func BenchmarkBufferedUpdate(b *testing.B) {
	s, err := newBufferedTo(discard{}, "orders", 4, BufferedOptions{})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	at := time.Date(2026, 11, 25, 10, 2, 0, 0, time.UTC)
	data := Data{"Approved": at, "Amount": "1200.00", "Customer": "Contoso", "Quantity": 12, "Rush": true}
	b.ReportAllocs()
	for b.Loop() {
		if err := s.UpdateActivity(ctx, "PurchaseOrder", "PO-1042", data, At(at)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeOnly(b *testing.B) {
	at := time.Date(2026, 11, 25, 10, 2, 0, 0, time.UTC)
	ev := event.Event{Activity: "PurchaseOrder", Instance: "PO-1042", Kind: event.Update, Time: at,
		Data: map[string]json.RawMessage{
			"Approved": json.RawMessage(`"2026-11-25T10:02:00Z"`), "Amount": json.RawMessage(`"1200.00"`),
			"Customer": json.RawMessage(`"Contoso"`), "Quantity": json.RawMessage(`12`), "Rush": json.RawMessage(`true`),
		}}
	b.ReportAllocs()
	for b.Loop() {
		_ = event.Encode(ev)
	}
}
