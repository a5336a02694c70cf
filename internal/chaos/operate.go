package chaos

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"time"

	"github.com/bam-dev/bam/internal/store"
)

// Operator faults: what an operator does to a running pool, through the
// bam commands a person would type, while the writers write and other
// faults strike. Each is a planned handoff, and the checker holds it to
// the same promises as a crash: nothing lost, nothing doubled.
//
//	drain       bam node drain a healthy node; bam node undrain it 1-4 s later
//	move        bam session move a random session to a random healthy node
//	pool-pause  bam pause; bam resume 1-3 s later (never during a store
//	            restart or an outbox cut)

// operatorPlan is an operator fault's random choices, drawn by strike (the
// random source is the injector loop's alone).
type operatorPlan struct {
	hold    time.Duration
	session store.SessionID // move only
}

func (in *injector) planOperator(kind string) operatorPlan {
	p := operatorPlan{hold: in.between(time.Second, 4*time.Second)}
	switch kind {
	case faultMove:
		src := in.h.sources[in.rng.IntN(len(in.h.sources))]
		p.session = store.SessionID{Source: src.Name, Partition: in.rng.IntN(src.Partitions)}
		p.hold = 2 * time.Second
	case faultPoolPause:
		p.hold = in.between(time.Second, 3*time.Second)
	}
	return p
}

// strikeOperator starts an operator fault in the background: its command
// runs there, so that a command waiting for its change to land does not
// hold up the injector.
func (in *injector) strikeOperator(ctx context.Context, kind string) {
	h := in.h
	p := in.planOperator(kind)
	var n *nodeProc
	if kind == faultPoolPause {
		in.mu.Lock()
		if in.global {
			in.mu.Unlock()
			return
		}
		in.global = true
		in.mu.Unlock()
	} else if n = in.target(); n == nil {
		return
	}
	in.wg.Add(1)
	go func() {
		defer in.wg.Done()
		switch kind {
		case faultPoolPause:
			defer func() {
				in.mu.Lock()
				in.global = false
				in.mu.Unlock()
			}()
			in.operate(ctx, kind, "", p.hold, []string{"pause", "--wait", "20s"}, []string{"resume"})
		case faultDrain:
			defer in.release(n)
			id := h.claims.idOf(n.name)
			if id == "" {
				return
			}
			in.operate(ctx, kind, n.name, p.hold,
				[]string{"node", "drain", id, "--wait", "20s", "--lease-ttl", h.cfg.LeaseTTL.String()},
				[]string{"node", "undrain", id})
		case faultMove:
			defer in.release(n)
			id := h.claims.idOf(n.name)
			if id == "" || h.owns(ctx, id, p.session) {
				return // no move to make: none struck
			}
			in.operate(ctx, kind, n.name, p.hold,
				[]string{"session", "move", fmt.Sprintf("%s/%d", p.session.Source, p.session.Partition), "--to", id,
					"--wait", "10s", "--lease-ttl", h.cfg.LeaseTTL.String()}, nil)
		}
	}()
}

// operate runs do, records the fault (on node, "" for the pool) for hold
// or until ctx ends, then runs undo until it succeeds: an undo left
// undone (a pool left paused, a node left draining) would stop the run's
// drain. A do the pool refuses (no other node works, the session is not
// applied now) is logged and is no fault.
func (in *injector) operate(ctx context.Context, kind, node string, hold time.Duration, do, undo []string) {
	h := in.h
	start := time.Now()
	out, err := h.runBam(ctx, do...)
	if err != nil {
		if undo != nil {
			in.undo(kind, undo)
		}
		if ctx.Err() == nil {
			h.logf("fault %s: bam %s refused or failed after %v: %v: %s", kind, strings.Join(do, " "), time.Since(start).Round(time.Millisecond), err, out)
		}
		return
	}
	in.count(kind)
	h.logf("fault %s: bam %s: %s (took %v; for %v)", kind, strings.Join(do, " "), out, time.Since(start).Round(time.Millisecond), hold.Round(time.Millisecond))
	undone := in.strikeAt(kind, node)
	defer undone()
	sleepCtx(ctx, hold)
	if undo != nil {
		in.undo(kind, undo)
	}
}

// undo runs an operator fault's undo until it succeeds, for up to a
// minute (a store restart may be under way).
func (in *injector) undo(kind string, args []string) {
	h := in.h
	deadline := time.Now().Add(time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		out, err := h.runBam(ctx, args...)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			h.logf("fault %s: UNDO FAILED: bam %s: %v: %s", kind, strings.Join(args, " "), err, out)
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// runBam runs a bam command against the store, directly (no proxy), and
// returns its output on one line.
func (h *harness) runBam(ctx context.Context, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, h.bam, append(args, "--store", h.storeURL)...).CombinedOutput()
	return strings.Join(strings.Fields(string(out)), " "), err
}

// owns reports whether node id owns session now, by the store.
func (h *harness) owns(ctx context.Context, id string, session store.SessionID) bool {
	sessions, err := h.st.Sessions(ctx)
	if err != nil {
		return false
	}
	for _, s := range sessions {
		if s.SessionID == session {
			return s.Owner == id
		}
	}
	return false
}
