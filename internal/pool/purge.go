package pool

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/bam-dev/bam/internal/store"
)

// WindowStore is what the window purge needs of the store: the deployed
// definitions (each with its window) and the purge of one activity's
// completed instances past it. A node whose store has it purges every
// Config.PurgeInterval.
type WindowStore interface {
	Definitions(ctx context.Context) ([]store.DeployedActivity, int64, error)
	PurgeCompleted(ctx context.Context, activity string) (int64, error)
}

// windowPurge is the service that purges the completed instances past
// their activity's window (store.PurgeWindows) every interval, the first
// time after a random part of it, so that nodes started together spread
// out. Every node runs it: several nodes purging at once is harmless, as
// each instance is purged once. A failure is logged and retried at the
// next interval; it never stops the node.
type windowPurge struct {
	st       WindowStore
	interval time.Duration
	log      *slog.Logger
}

func newWindowPurge(st WindowStore, interval time.Duration, log *slog.Logger) *windowPurge {
	return &windowPurge{st: st, interval: interval, log: log}
}

func (p *windowPurge) Name() string { return "window purge" }

func (p *windowPurge) Run(ctx context.Context) error {
	timer := time.NewTimer(rand.N(p.interval) + time.Millisecond)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
		if paused(ctx, p.st) {
			// bam pause stops every write of the pool to the store
			// (writers' appends aside), for a consistent backup.
			timer.Reset(p.interval)
			continue
		}
		start := time.Now()
		n, err := store.PurgeWindows(ctx, p.st)
		switch {
		case err != nil && ctx.Err() == nil:
			p.log.Warn("purge of completed instances past their window failed; retrying at the next interval", "purged", n, "err", err)
		case n > 0:
			p.log.Info("purged completed instances past their window", "purged", n, "took", time.Since(start).Round(time.Millisecond))
		}
		timer.Reset(p.interval)
	}
}

// paused reports whether st says the pool is paused (bam pause). A store
// that cannot say, or fails to, is taken as not paused: the purge is
// harmless to run, and its own failure is what gets logged.
func paused(ctx context.Context, st any) bool {
	ps, ok := st.(interface {
		PoolState(ctx context.Context) (store.PoolState, error)
	})
	if !ok {
		return false
	}
	p, err := ps.PoolState(ctx)
	return err == nil && p.Paused
}
