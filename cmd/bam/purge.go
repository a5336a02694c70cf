package main

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/bam-dev/bam/internal/store"
)

// windowPurgeInterval is how often bam serve purges the completed
// instances past their activity's window.
const windowPurgeInterval = time.Minute

// startWindowPurge runs store.PurgeWindows every interval, the first time
// after a random part of it (so that nodes started together spread out),
// until the returned stop is called. Several nodes purging at once is
// harmless: each instance is purged once. A failure is logged and retried
// at the next tick; it never stops the node.
func startWindowPurge(ctx context.Context, st store.Store, interval time.Duration, log *slog.Logger) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		timer := time.NewTimer(rand.N(interval) + time.Millisecond)
		defer timer.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
			start := time.Now()
			n, err := store.PurgeWindows(ctx, st)
			switch {
			case err != nil && ctx.Err() == nil:
				log.Warn("purge of completed instances past their window failed; retrying at the next interval", "purged", n, "err", err)
			case n > 0:
				log.Info("purged completed instances past their window", "purged", n, "took", time.Since(start).Round(time.Millisecond))
			}
			timer.Reset(interval)
		}
	}()
	return func() {
		cancel()
		wg.Wait()
	}
}
