package sqlite

import (
	"context"
	"slices"
	"sync"
)

// writeGate queues this process's write transactions. SQLite lets one
// writer in at a time; without the gate, writers of one process would all
// poll the busy handler, which sleeps up to 100 ms between tries, and a
// lease renewal could lose that lottery to a stream of batches until its
// lease expired. The gate hands the write lock over in FIFO order, lease
// writers (urgent) ahead of batch work, but never twice in a row while batch
// work waits: a renewal waits for at most the transaction in progress and
// one more, and a stream of lease statements cannot starve batches either.
// Writers of other processes still meet ours through SQLite's busy timeout.
type writeGate struct {
	mu         sync.Mutex
	held       bool
	lastUrgent bool // the gate was last handed to an urgent waiter
	urgent     []chan struct{}
	normal     []chan struct{}
}

// acquire waits for the gate or for ctx to end.
func (g *writeGate) acquire(ctx context.Context, urgent bool) error {
	g.mu.Lock()
	if !g.held {
		g.held = true
		g.lastUrgent = urgent
		g.mu.Unlock()
		return nil
	}
	ch := make(chan struct{})
	if urgent {
		g.urgent = append(g.urgent, ch)
	} else {
		g.normal = append(g.normal, ch)
	}
	g.mu.Unlock()

	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		g.mu.Lock()
		queued := g.remove(ch)
		g.mu.Unlock()
		if !queued {
			// release handed the gate to us as ctx ended: pass it on.
			g.release()
		}
		return ctx.Err()
	}
}

// remove takes ch out of its queue, reporting whether it was still queued.
func (g *writeGate) remove(ch chan struct{}) bool {
	for _, q := range []*[]chan struct{}{&g.urgent, &g.normal} {
		if i := slices.Index(*q, ch); i >= 0 {
			*q = slices.Delete(*q, i, i+1)
			return true
		}
	}
	return false
}

// release hands the gate to the next waiter: urgent ones first, unless the
// last handoff went to one and batch work is waiting.
func (g *writeGate) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	q := &g.normal
	if len(g.urgent) > 0 && (len(g.normal) == 0 || !g.lastUrgent) {
		q = &g.urgent
	}
	if len(*q) == 0 {
		g.held = false
		g.lastUrgent = false
		return
	}
	next := (*q)[0]
	*q = slices.Delete(*q, 0, 1)
	g.lastUrgent = q == &g.urgent
	close(next) // held stays true: ownership moves to next
}
