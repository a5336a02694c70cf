package bench

import (
	"context"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/metrics"
	"github.com/bam-dev/bam/internal/metrics/metricstest"
	"github.com/bam-dev/bam/internal/pool"
	"github.com/bam-dev/bam/internal/store"
)

// BenchmarkDrainMetrics is BenchmarkDrain (batch 1000) with the node's
// metrics off and on, in turn on fresh stores in each repetition (the
// order turning from one repetition to the next). On: every recorder of
// package metrics (the sessions', the pool's), the store's gauges watched,
// and the node scraped every second during the drain, as a Prometheus
// with a short interval would; its metrics are checked afterwards to have
// counted every event. on/off is what the metrics cost the bus (issue 13
// asks ≥ 0.98).
func BenchmarkDrainMetrics(b *testing.B) {
	evs := purchaseOrders(drainEvents, drainInstances, drainPartitions)
	for _, driver := range []string{"postgres", "sqlite"} {
		b.Run(driver, func(b *testing.B) { benchDrainMetrics(b, driver, evs) })
	}
}

func benchDrainMetrics(b *testing.B, driver string, evs []benchEvent) {
	b.StopTimer()
	n := float64(len(evs))
	var m spreads
	reps := 0
	for range b.N {
		for range repsOr(1) {
			reps++
			rates := map[string]float64{}
			variants := []string{"off", "on"}
			if reps%2 == 0 {
				variants = []string{"on", "off"}
			}
			for _, variant := range variants {
				u := storeURL(b, driver)
				st := openStore(b, u)
				prefill(b, st, evs)
				cfg := pool.DefaultConfig()
				cfg.Session = sessionConfig(1000)
				var started func(*pool.Node)
				var scraped func() float64
				if variant == "on" {
					met := metrics.New()
					cfg.Metrics, cfg.Session.Metrics = met, met
					started, scraped = scrapeEverySecond(b, met, st)
				}
				rates[variant] = m.add(variant+"_events/s", n/drainNode(b, st, u, cfg, len(evs), started).Seconds())
				verifyDrained(b, st, evs)
				if scraped != nil {
					if got := scraped(); got != n {
						b.Fatalf("metrics on: bam_events_committed_total = %v after the drain, want %v", got, n)
					}
				}
				_ = st.Close()
			}
			ratio := m.add("on/off", rates["on"]/rates["off"])
			b.Logf("%s: off %.0f, on %.0f events/s (%.3f)", driver, rates["off"], rates["on"], ratio)
		}
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(reps), "reps")
	m.report(b)
}

// scrapeEverySecond returns what watches the node once it is built and
// scrapes it every second until the benchmark's repetition ends, and what
// scrapes it once more and returns the events it counted.
func scrapeEverySecond(b *testing.B, met *metrics.Node, st store.Store) (started func(*pool.Node), final func() float64) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	started = func(node *pool.Node) {
		met.WatchNode(st, node, metrics.StoreOptions{})
		go func() {
			defer close(done)
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					if _, err := metricstest.Serve(met.Handler()); err != nil {
						b.Error(err)
					}
				}
			}
		}()
	}
	final = func() float64 {
		cancel()
		<-done
		fams, err := metricstest.Serve(met.Handler())
		if err != nil {
			b.Fatal(err)
		}
		got, _ := fams.Sum("bam_events_committed_total")
		return got
	}
	return started, final
}
