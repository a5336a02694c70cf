package httpapi

import (
	"fmt"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/store"
)

// TestIngestRefilesOnARepartition: an append refused because the source
// was repartitioned between the request's read of it and its write is
// made again with each event under its new partition (it answered 503).
func TestIngestRefilesOnARepartition(t *testing.T) {
	var events []store.BufferEvent
	for i := range 20 {
		ev := event.Event{Activity: "PO", Instance: fmt.Sprint("PO-", i), Kind: event.Begin, Time: time.Now().UTC()}
		events = append(events, store.BufferEvent{Partition: event.Partition(ev.Segment(), 8), Payload: event.Encode(ev)})
	}
	calls := 0
	err := refiledOnRepartition(events, func() error {
		calls++
		for _, e := range events {
			if e.Partition >= 3 {
				return &store.PartitionsChangedError{Source: "orders", Partitions: 3, Partition: e.Partition}
			}
		}
		return nil
	})
	if err != nil || calls != 2 {
		t.Fatalf("refiledOnRepartition = %v after %d appends, want nil after 2", err, calls)
	}
	for _, e := range events {
		ev, _ := event.Decode(e.Payload, time.Time{}, 0)
		if e.Partition != event.Partition(ev.Segment(), 3) {
			t.Errorf("%s filed under %d", ev.Instance, e.Partition)
		}
	}
}
