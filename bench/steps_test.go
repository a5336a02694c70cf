package bench

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/bus"
	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/store"
)

// BenchmarkDrainSteps drains the same pre-filled source as BenchmarkDrain,
// one session after the other and with no pool around it, doing what a
// session's batch does (internal/bus: read, decode and coalesce, fenced
// apply, trim) and timing each step, so that a drain that misses its
// target shows where the time goes. Like the bus, it trims after every
// TrimEvery-th full batch (default 10) and after a short one; the SQLite
// store also deletes a batch's records inside Apply. batch=1000 reads
// 1,000 records every time; grow sizes batches as the bus does
// (MaxBatchSize first, then bus.Config.NextBatch: MaxBatchSize after a full
// batch, BatchSize after a short one). It reports
// milliseconds of each step per 1,000 events (trim averaged over all
// batches) and the events/s of the steps together.
func BenchmarkDrainSteps(b *testing.B) {
	evs := purchaseOrders(drainEvents, drainInstances, drainPartitions)
	cfg := bus.DefaultConfig()
	for _, driver := range []string{"postgres", "sqlite"} {
		for _, grow := range []bool{false, true} {
			name := fmt.Sprintf("%s/batch=%d", driver, cfg.BatchSize)
			if grow {
				name = fmt.Sprintf("%s/grow=%d-%d", driver, cfg.BatchSize, cfg.MaxBatchSize)
			}
			b.Run(name, func(b *testing.B) { drainSteps(b, driver, evs, cfg, grow) })
		}
	}
}

func drainSteps(b *testing.B, driver string, evs []benchEvent, cfg bus.Config, grow bool) {
	b.StopTimer()
	var read, decode, apply, trim time.Duration
	batches, trims := 0, 0
	trimEvery := cfg.TrimEvery
	for range b.N {
		st := openStore(b, storeURL(b, driver))
		prefill(b, st, evs)
		ctx := context.Background()
		for p := range drainPartitions {
			id := store.SessionID{Source: drainSource, Partition: p}
			l, err := st.Claim(ctx, id, "steps", "", time.Hour)
			if err != nil {
				b.Fatal(err)
			}
			from := l.Checkpoint
			untrimmed := 0
			size := cfg.BatchSize
			if grow {
				size = cfg.MaxBatchSize // as a session starts
			}
			for {
				t0 := time.Now()
				recs, _, err := st.ReadBuffer(ctx, id, from, size)
				if err != nil {
					b.Fatal(err)
				}
				if len(recs) == 0 {
					break
				}
				t1 := time.Now()
				events := make([]event.Event, 0, len(recs))
				for _, r := range recs {
					ev, err := event.Decode(r.Payload, r.WrittenAt, 0)
					if err != nil {
						b.Fatal(err)
					}
					events = append(events, ev)
				}
				cp := recs[len(recs)-1].Position
				batch := store.Batch{Lease: l, Node: "steps", From: from, Checkpoint: cp,
					Deltas: event.Coalesce(events), Applied: len(events)}
				t2 := time.Now()
				if err := st.Apply(ctx, batch); err != nil {
					b.Fatal(err)
				}
				t3 := time.Now()
				untrimmed++
				if len(recs) < size || untrimmed >= trimEvery {
					if err := st.TrimBuffer(ctx, id, cp); err != nil {
						b.Fatal(err)
					}
					untrimmed = 0
					trims++
				}
				t4 := time.Now()
				read += t1.Sub(t0)
				decode += t2.Sub(t1)
				apply += t3.Sub(t2)
				trim += t4.Sub(t3)
				batches++
				from = cp
				if grow {
					size = cfg.NextBatch(len(recs), size)
				}
			}
		}
	}
	thousands := float64(b.N*len(evs)) / 1000
	per := func(d time.Duration) float64 { return ms(d) / thousands }
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(per(read), "read_ms/1000ev")
	b.ReportMetric(per(decode), "decode_ms/1000ev")
	b.ReportMetric(per(apply), "apply_ms/1000ev")
	b.ReportMetric(per(trim), "trim_ms/1000ev")
	b.ReportMetric(float64(b.N*len(evs))/float64(batches), "events/batch")
	b.ReportMetric(float64(batches)/float64(max(trims, 1)), "batches/trim")
	b.ReportMetric(float64(b.N*len(evs))/(read+decode+apply+trim).Seconds(), "serial_events/s")
}
