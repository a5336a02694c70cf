package eventstream_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/pool"
	"github.com/bam-dev/bam/internal/store"
)

// runNode runs a bam node on st in this process until the test ends: what
// turns the events of the store's sources into instances.
func runNode(t *testing.T, st store.Store) {
	t.Helper()
	cfg := pool.DefaultConfig()
	cfg.Name, cfg.LeaseTTL, cfg.RenewInterval = "eventstream-test", time.Second, 250*time.Millisecond
	cfg.SafetyMargin, cfg.BalanceInterval, cfg.StopTimeout = 200*time.Millisecond, 100*time.Millisecond, 5*time.Second
	cfg.Session.BatchSize, cfg.Session.PollInterval = 100, 200*time.Millisecond
	n, err := pool.NewNode(st, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("node: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Errorf("the node did not stop")
		}
	})
}
