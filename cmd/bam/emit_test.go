package main

import (
	"context"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/store"
)

// TestEmitFilesAgainAfterARepartition: a source repartitioned while bam
// emit writes to it refuses the batch filed under the old partitions; emit
// files it under the new ones and writes it, each event once, where the
// nodes will read it. (It stopped with "event 0: partition 3 is outside
// 0..1".)
func TestEmitFilesAgainAfterARepartition(t *testing.T) {
	for _, idempotent := range []bool{false, true} {
		b := migrated(t)
		ctx := context.Background()
		b.ok("source", "add", "orders", "--kind", "buffer", "--partitions", "4")
		st := b.store()
		stale, err := st.Source(ctx, "orders")
		if err != nil {
			t.Fatal(err)
		}
		b.ok("source", "repartition", "orders", "2")
		e := &emitter{st: st, src: stale, idempotent: idempotent}
		const n = 40
		for i := range n {
			ev := event.Event{Activity: "PurchaseOrder", Instance: "PO-" + string(rune('A'+i)), Kind: event.Begin, Time: time.Now().UTC()}
			e.read(i+1, []byte(ev.Instance))
			if err := e.add(ctx, ev, event.Encode(ev), i+1); err != nil {
				t.Fatal(err)
			}
		}
		if err := e.flush(ctx); err != nil {
			t.Fatalf("idempotent %v: flush after a repartition: %v", idempotent, err)
		}
		if e.written != n || e.src.Partitions != 2 {
			t.Errorf("idempotent %v: written %d, partitions %d; want %d and 2", idempotent, e.written, e.src.Partitions, n)
		}
		got := 0
		for p := range 2 {
			recs, _, err := st.ReadBuffer(ctx, store.SessionID{Source: "orders", Partition: p}, store.Position{}, 100)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range recs {
				ev, err := event.Decode(r.Payload, r.WrittenAt, 0)
				if err != nil || event.Partition(ev.Segment(), 2) != p {
					t.Errorf("partition %d holds %s (%v)", p, r.Payload, err)
				}
			}
			got += len(recs)
		}
		if got != n {
			t.Errorf("idempotent %v: %d events in the buffer, want %d", idempotent, got, n)
		}
	}
}
