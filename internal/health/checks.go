package health

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/bam-dev/bam/internal/pool"
	"github.com/bam-dev/bam/internal/store"
)

// Node is what readiness reads of the node: pool.Node.
type Node interface {
	ID() string
	Health() pool.Health
}

// Bounds are how old things may be before the node is not ready.
type Bounds struct {
	// Heartbeat: the last heartbeat that succeeded must have begun less
	// than this long ago. The node's LeaseTTL − SafetyMargin: past it, its
	// sessions commit nothing.
	Heartbeat time.Duration
	// Stuck: a session whose batches have all failed for this long is
	// stuck. Default DefaultStuck.
	Stuck time.Duration
}

// DefaultStuck is Bounds.Stuck's default: long enough that a store
// restart or a failover of the store's server passes without a verdict,
// as long as a node's source give-up (pool.Config.SourceGiveUp).
const DefaultStuck = 30 * time.Second

// Check names.
const (
	StoreWrite   = "store-write"
	LivenessLock = "liveness-lock"
	Heartbeat    = "heartbeat"
	Sessions     = "sessions"
)

// NodeChecks returns the readiness checks of a node of the pool over st
// (doc.go, "Readiness").
func NodeChecks(st store.Store, node Node, b Bounds) []Check {
	if b.Stuck <= 0 {
		b.Stuck = DefaultStuck
	}
	return []Check{
		StoreWriteCheck(st, node.ID()),
		{Name: LivenessLock, Run: func(context.Context) error { return livenessLock(node.Health()) }},
		{Name: Heartbeat, Run: func(context.Context) error { return heartbeat(node.Health(), b.Heartbeat, time.Now()) }},
		{Name: Sessions, Run: func(context.Context) error { return stuckSessions(node.Health(), b.Stuck, time.Now()) }},
	}
}

// StoreWriteCheck probes a write to st as node (empty when no node runs:
// the probe then writes no row, but still takes what a write takes).
func StoreWriteCheck(st store.Store, node string) Check {
	return Check{Name: StoreWrite, Run: func(ctx context.Context) error {
		p, ok := st.(store.WriteProber)
		if !ok {
			return fmt.Errorf("this store (%T) cannot be probed for writes", st)
		}
		start := time.Now()
		err := p.ProbeWrite(ctx, node)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, context.DeadlineExceeded):
			return fmt.Errorf("the store took no write within %s (its write lock or a row lock is held, or it does not answer): %w",
				time.Since(start).Round(10*time.Millisecond), err)
		default:
			return fmt.Errorf("the store refused a write: %w", err)
		}
	}}
}

func livenessLock(h pool.Health) error {
	if h.Liveness == pool.LivenessLost {
		return errors.New("this node does not hold its liveness lock (not taken yet, or its store connection broke): peers may find it dead and move its sessions")
	}
	return nil
}

func heartbeat(h pool.Health, bound time.Duration, now time.Time) error {
	switch {
	case h.Stopping:
		return errors.New("the node is stopping: it hands its sessions over and leaves the pool")
	case !h.Joined:
		return errors.New("the node has not joined the pool yet (it waits for the store)")
	}
	if age := now.Sub(h.LastHeartbeat); age >= bound {
		return fmt.Errorf("the last heartbeat that succeeded was %s ago (bound %s): lease renewals fail, so this node's sessions commit nothing",
			age.Round(time.Millisecond), bound)
	}
	return nil
}

func stuckSessions(h pool.Health, bound time.Duration, now time.Time) error {
	var stuck []string
	for _, s := range h.Sessions {
		p := s.Progress
		if !s.HasProgress || p.Failures == 0 {
			continue
		}
		if age := now.Sub(p.FailingSince); age >= bound {
			stuck = append(stuck, fmt.Sprintf("%s/%d: every batch failed for %s (%d failures; bound %s), last: %s",
				s.Source, s.Partition, age.Round(time.Second), p.Failures, bound, p.LastError))
		}
	}
	if len(stuck) > 0 {
		return fmt.Errorf("%d stuck: %s", len(stuck), strings.Join(stuck, "; "))
	}
	return nil
}
