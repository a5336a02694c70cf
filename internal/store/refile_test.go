package store

import (
	"fmt"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/event"
)

// TestAppendRefiled: an append refused because the source was
// repartitioned between a writer's read of it and its write is made again
// with each event under its new partition (HTTP ingest answered 503).
func TestAppendRefiled(t *testing.T) {
	var events []BufferEvent
	for i := range 20 {
		ev := event.Event{Activity: "PO", Instance: fmt.Sprint("PO-", i), Kind: event.Begin, Time: time.Now().UTC()}
		events = append(events, BufferEvent{Partition: event.Partition(ev.Segment(), 8), Payload: event.Encode(ev)})
	}
	calls := 0
	partitions, err := AppendRefiled(events, func() error {
		calls++
		for _, e := range events {
			if e.Partition >= 3 {
				return &PartitionsChangedError{Source: "orders", Partitions: 3, Partition: e.Partition}
			}
		}
		return nil
	})
	if err != nil || calls != 2 || partitions != 3 {
		t.Fatalf("AppendRefiled = %d, %v after %d appends, want 3, nil after 2", partitions, err, calls)
	}
	for _, e := range events {
		ev, _ := event.Decode(e.Payload, time.Time{}, 0)
		if e.Partition != event.Partition(ev.Segment(), 3) {
			t.Errorf("%s filed under %d", ev.Instance, e.Partition)
		}
	}
}
