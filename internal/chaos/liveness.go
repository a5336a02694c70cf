package chaos

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// A node's liveness lock is a session-level advisory lock on the key of its
// row in bam_nodes (pool, "Death verdicts"). heldLocks joins the two, by
// node name: a restarted node reuses its name under a new id, and only the
// live process holds a lock.
const heldLocks = `
	FROM bam_nodes AS n
	JOIN pg_locks AS l ON l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
	  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
	  AND l.classid::bigint = (n.lock_key >> 32) & 4294967295
	  AND l.objid::bigint = n.lock_key & 4294967295`

// resetLiveness ends the store backend that holds node name's liveness lock,
// as a network blip or a proxy recycling the connection would: the node
// lives on, and must take its lock back before its peers find it dead. It
// returns how many backends it ended (1, or 0 if the node held no lock).
func (h *harness) resetLiveness(ctx context.Context, name string) (int, error) {
	conn, err := pgx.Connect(ctx, h.storeURL)
	if err != nil {
		return 0, fmt.Errorf("reset the liveness lock of %s: %w", name, err)
	}
	defer conn.Close(context.Background())
	var ended int
	if err := conn.QueryRow(ctx, `SELECT count(pg_terminate_backend(l.pid))`+heldLocks+` WHERE n.name = $1`, name).Scan(&ended); err != nil {
		return 0, fmt.Errorf("reset the liveness lock of %s: %w", name, err)
	}
	return ended, nil
}

// lockedNodes returns the names of the nodes whose liveness lock the store
// sees held.
func (h *harness) lockedNodes(ctx context.Context) (map[string]bool, error) {
	conn, err := pgx.Connect(ctx, h.storeURL)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, `SELECT DISTINCT n.name`+heldLocks)
	if err != nil {
		return nil, err
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	out := make(map[string]bool, len(names))
	for _, n := range names {
		out[n] = true
	}
	return out, nil
}

// waitRelocked waits, after the store came back from a restart, until every
// node that runs and is under no fault holds its liveness lock again, and
// logs how long that took, or which nodes had not within the lease TTL: a
// node that takes its lock back later than that lets its peers move its
// sessions.
func (in *injector) waitRelocked(ctx context.Context, back time.Time) {
	h := in.h
	limit := back.Add(h.cfg.LeaseTTL)
	var missing []string
	for {
		in.mu.Lock()
		var healthy []string
		for _, n := range h.nodes {
			if n.isRunning() && !in.busy[n] {
				healthy = append(healthy, n.name)
			}
		}
		in.mu.Unlock()
		locked, err := h.lockedNodes(ctx)
		missing = missing[:0]
		for _, name := range healthy {
			if err != nil || !locked[name] {
				missing = append(missing, name)
			}
		}
		if len(missing) == 0 {
			h.logf("every healthy node holds its liveness lock again %v after PostgreSQL was back", time.Since(back).Round(time.Millisecond))
			return
		}
		if time.Now().After(limit) || !sleepCtx(ctx, 50*time.Millisecond) {
			break
		}
	}
	slices.Sort(missing)
	h.logf("RELOCK SLOW: %s had not taken their liveness lock again %v after PostgreSQL was back (lease TTL %v)",
		strings.Join(missing, ", "), time.Since(back).Round(time.Millisecond), h.cfg.LeaseTTL)
}
