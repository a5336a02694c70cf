package pool

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"github.com/bam-dev/bam/internal/bus"
	"github.com/bam-dev/bam/internal/store"
)

// Health is what a node knows of its own health, without asking the
// store: the facts its readiness (package health) is judged on.
type Health struct {
	// Joined: the node has joined the pool and not begun to stop.
	Joined bool
	// Stopping: the node is leaving the pool (SIGTERM).
	Stopping bool
	// Liveness is whether the node holds its liveness lock.
	Liveness LivenessState
	// LastHeartbeat is when the last heartbeat that succeeded began (the
	// join, or a renewal of the node's leases with its membership row), on
	// this process's clock; zero before the join.
	LastHeartbeat time.Time
	// Sessions are the sessions the node runs, by source and partition.
	Sessions []SessionHealth
}

// LivenessState is whether a node holds its liveness lock.
type LivenessState string

const (
	LivenessHeld LivenessState = "held"
	// LivenessLost: the lock is not held (not taken yet, or its connection
	// broke and the node is taking it again).
	LivenessLost LivenessState = "lost"
	// LivenessNone: the store has no liveness lock (store.Liveness).
	LivenessNone LivenessState = "none"
)

// SessionHealth is a session the node runs.
type SessionHealth struct {
	store.SessionID
	Epoch int64
	Kind  store.SourceKind
	// Progress is how its batches go; HasProgress is false for a worker
	// that does not say (the alerts evaluator).
	Progress    bus.Progress
	HasProgress bool
}

// progressor is a worker that says how its batches go (bus.Session).
type progressor interface{ Progress() bus.Progress }

// Health returns the node's health as of now. Safe to call at any time,
// from any goroutine, before and after Run.
func (n *Node) Health() Health {
	n.mu.Lock()
	defer n.mu.Unlock()
	h := Health{
		Joined:        n.joined && n.self.State == store.NodeRunning,
		Stopping:      n.self.State == store.NodeStopping,
		Liveness:      n.liveness,
		LastHeartbeat: n.lastHeartbeat,
	}
	if h.Liveness == "" {
		h.Liveness = LivenessLost
	}
	for id, r := range n.sessions {
		s := SessionHealth{SessionID: id, Epoch: r.lease.Row().Epoch, Kind: r.kind}
		if p, ok := r.s.(progressor); ok {
			s.Progress, s.HasProgress = p.Progress(), true
		}
		h.Sessions = append(h.Sessions, s)
	}
	slices.SortFunc(h.Sessions, func(a, b SessionHealth) int {
		return cmp.Or(strings.Compare(a.Source, b.Source), cmp.Compare(a.Partition, b.Partition))
	})
	return h
}

// heartbeat records a heartbeat that succeeded, begun at start.
func (n *Node) heartbeat(start time.Time) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if start.After(n.lastHeartbeat) {
		n.lastHeartbeat = start
	}
}

// setLiveness records whether the node holds its liveness lock.
func (n *Node) setLiveness(s LivenessState) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.liveness = s
}
