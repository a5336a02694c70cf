package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/bam-dev/bam/internal/definition"
	"github.com/bam-dev/bam/internal/ops"
	"github.com/bam-dev/bam/internal/store"
)

// checkBounds are `bam status --check`'s thresholds.
type checkBounds struct {
	// unowned: a session of an applied source without a live owner this
	// long is a problem (--lease-ttl: a free session is claimed within a
	// balance round, an expired lease taken over at once).
	unowned time.Duration
	// recentError: a session's last error younger than this (--error-within).
	recentError time.Duration
	// backlogAge: the oldest unapplied event older than this (--backlog-age).
	backlogAge time.Duration
	// givenUp: an alert delivery given up less than this ago (--delivery-within).
	givenUp time.Duration
	// paused: the pool paused (bam pause) longer than this (--paused-for):
	// a pause for a backup that nobody ended.
	paused time.Duration
	// silent: a member node whose last heartbeat is older than this
	// (--silent-for, by default the lease TTL): its sessions are taken
	// over, or wait if no peer works, and the node itself is stuck.
	silent time.Duration
}

// problem is a check of `bam status --check` that failed.
type problem struct {
	// Check is which: unowned, error, backlog, failed-events, delivery,
	// paused or silent.
	Check string `json:"check"`
	// Source and Partition name the session (empty for a delivery, a
	// pause or a node).
	Source    string `json:"source,omitempty"`
	Partition *int   `json:"partition,omitempty"`
	// Node is the id of the node a silent check names.
	Node string `json:"node,omitempty"`
	Why  string `json:"why"`
}

func (p problem) String() string {
	if p.Partition != nil {
		return fmt.Sprintf("%s %s/%d: %s", p.Check, p.Source, *p.Partition, p.Why)
	}
	return p.Check + ": " + p.Why
}

// checkReport is `bam status --check --json`'s answer.
type checkReport struct {
	OK       bool      `json:"ok"`
	Problems []problem `json:"problems"`
}

// maxGivenUp bounds the deliveries given up that a check lists.
const maxGivenUp = 20

// checkStatus reads the pool's sessions, their failed events, their
// backlogs and the alert deliveries given up, and returns what is wrong.
// A session seen without a live owner at the first read is read again
// once bounds.unowned has passed, so that a session between two owners (a
// handoff, a takeover) is no problem: only one with no claim (the same
// epoch) and no owner at both reads is. wait sleeps that long.
func checkStatus(ctx context.Context, st store.Store, b checkBounds, wait func(context.Context, time.Duration) error) ([]problem, error) {
	sessions, err := st.Sessions(ctx)
	if err != nil {
		return nil, fmt.Errorf("read sessions: %w", err)
	}
	outstanding, err := st.FailedOutstanding(ctx)
	if err != nil {
		return nil, fmt.Errorf("count failed events: %w", err)
	}
	now, err := storeNow(ctx, st)
	if err != nil {
		return nil, err
	}
	sortSessions(sessions)
	var problems []problem
	pool, err := st.PoolState(ctx)
	if err != nil {
		return nil, err
	}
	if pool.Paused && pool.PausedAt != nil && now.Sub(*pool.PausedAt) > b.paused {
		problems = append(problems, problem{Check: "paused", Why: fmt.Sprintf(
			"the pool has been paused for %s (since %s, by %s; bound %s): no event is applied until bam resume",
			formatDuration(now.Sub(*pool.PausedAt)), formatTime(pool.PausedAt), pool.PausedBy, formatDuration(b.paused))})
	}
	nodes, err := st.Nodes(ctx)
	if err != nil {
		return nil, fmt.Errorf("read nodes: %w", err)
	}
	problems = append(problems, silentNodes(nodes, b.silent)...)
	noOwner := whyNoOwner(nodes, b.silent)
	add := func(check string, se store.SessionRow, format string, args ...any) {
		partition := se.Partition
		problems = append(problems, problem{Check: check, Source: se.Source, Partition: &partition, Why: fmt.Sprintf(format, args...)})
	}
	unowned := map[store.SessionID]store.SessionRow{}
	backlogs := ops.NewBacklogs(st)
	defer backlogs.Close()
	for _, se := range sessions {
		if se.Applies() {
			switch expired := -se.LeaseRemaining; {
			case se.Owner != "" && se.LeaseRemaining <= 0 && expired >= b.unowned:
				add("unowned", se, "the lease of node %s expired %s ago (bound %s) and no node took the session over: its events wait; %s", se.Owner, formatDuration(expired), formatDuration(b.unowned), noOwner)
			case se.Owner == "" || se.LeaseRemaining <= 0:
				unowned[se.SessionID] = se
			}
		}
		if se.LastError != "" && se.LastErrorAt != nil {
			if age := now.Sub(*se.LastErrorAt); age < b.recentError {
				add("error", se, "last error %s ago (bound %s), nothing applied since: %s", formatDuration(max(age, 0)), formatDuration(b.recentError), se.LastError)
			}
		}
		if se.Applies() {
			problems = append(problems, checkBacklog(ctx, backlogs, se, b.backlogAge)...)
		}
		if n := outstanding[se.SessionID]; n > 0 {
			add("failed-events", se, "%s failed and kept (bam failed list --source %s --partition %d)", store.CountEvents(n), se.Source, se.Partition)
		}
	}
	for _, u := range ops.UnfiledFailed(sessions, outstanding) {
		add("failed-events", store.SessionRow{SessionID: u.SessionID}, "%s failed and kept, %s (bam failed list --source %s --partition %d)",
			store.CountEvents(u.Count), u.Where, shellQuote(u.Source), u.Partition)
	}
	if as, ok := st.(store.AlertStore); ok {
		given, err := as.GivenUpDeliveries(ctx, b.givenUp, maxGivenUp)
		if err != nil {
			return nil, err
		}
		for _, d := range given {
			problems = append(problems, problem{Check: "delivery", Why: fmt.Sprintf(
				"alert %s/%s (key %s): delivery %s by %s to %s given up after %d attempts, %s ago (bound %s): %s",
				d.Firing.Activity, d.Firing.Alert, d.Firing.Key, d.ID, d.Channel, definition.Redacted(d.Target),
				d.Attempts, formatDuration(max(now.Sub(d.NextAt), 0)), formatDuration(b.givenUp), d.LastError)})
		}
	}
	if len(unowned) == 0 {
		return problems, nil
	}
	if err := wait(ctx, b.unowned); err != nil {
		return nil, err
	}
	again, err := st.Sessions(ctx)
	if err != nil {
		return nil, fmt.Errorf("read sessions again: %w", err)
	}
	sortSessions(again)
	for _, se := range again {
		first, ok := unowned[se.SessionID]
		if ok && se.Applies() && se.Epoch == first.Epoch && (se.Owner == "" || se.LeaseRemaining <= 0) {
			add("unowned", se, "no live owner at two reads %s apart, and no claim between (epoch %d): no node applies its events; %s", formatDuration(b.unowned), se.Epoch, noOwner)
		}
	}
	return problems, nil
}

// checkBacklog says whether se's oldest unapplied event is older than
// bound, or its backlog cannot be read (its source unreachable).
func checkBacklog(ctx context.Context, backlogs *ops.Backlogs, se store.SessionRow, bound time.Duration) []problem {
	partition := se.Partition
	p := problem{Check: "backlog", Source: se.Source, Partition: &partition}
	bl, err := backlogs.Bounded(ctx, se, store.DefaultBacklogBound)
	switch {
	case err != nil:
		p.Why = "its backlog cannot be read: " + err.Error()
	case bl.Events > 0 && bl.OldestAge > bound:
		count := store.CountEvents(bl.Events)
		if bl.AtLeast {
			count = "at least " + count
		}
		p.Why = fmt.Sprintf("the oldest of %s waiting has waited %s (bound %s)", count, formatDuration(bl.OldestAge), formatDuration(bound))
		if bl.Held {
			p.Why += ", held behind a transaction of the outbox's server that is still open"
		}
	default:
		return nil
	}
	return []problem{p}
}

// storeNow is the store's clock, read from a membership row (heartbeat_at
// plus its age, both by the store's clock); the local clock when no node
// is a member. Times the store keeps are compared with it, not with this
// machine's clock, which may be skewed.
func storeNow(ctx context.Context, st store.Store) (time.Time, error) {
	nodes, err := st.Nodes(ctx)
	if err != nil {
		return time.Time{}, fmt.Errorf("read nodes: %w", err)
	}
	for _, n := range nodes {
		return n.HeartbeatAt.Add(n.HeartbeatAge), nil
	}
	return time.Now(), nil
}

// printProblems writes one line per problem, or the report as JSON.
func printProblems(w io.Writer, problems []problem, asJSON bool) error {
	if asJSON {
		return printJSON(w, checkReport{OK: len(problems) == 0, Problems: append([]problem{}, problems...)})
	}
	for _, p := range problems {
		if _, err := fmt.Fprintln(w, p); err != nil {
			return err
		}
	}
	return nil
}

// sleepFor waits d, or until ctx ends.
func sleepFor(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// silentNodes are the member nodes whose last heartbeat is older than
// bound. A node found dead has left the member list (bam status shows it
// gone), so one still there is paused, hung or cut off from the store, or
// died with no live peer to find it dead.
func silentNodes(nodes []store.NodeRow, bound time.Duration) []problem {
	var out []problem
	for _, n := range nodes {
		if n.HeartbeatAge > bound {
			out = append(out, problem{Check: "silent", Node: n.ID, Why: fmt.Sprintf(
				"node %s (%s) on %s, pid %d, has not heartbeat for %s (bound %s) and no peer found it dead: paused, hung, cut off from the store, or dead with no live peer; its sessions move to a live peer, if any, when their leases expire",
				n.Name, n.ID, n.Host, n.PID, formatDuration(n.HeartbeatAge), formatDuration(bound))})
		}
	}
	return out
}

// whyNoOwner says what the nodes tell of a session no node applies: none
// runs (none heartbeat within bound), or every one that runs is draining
// (bam node drain, --force), or some run and have not claimed it.
func whyNoOwner(nodes []store.NodeRow, bound time.Duration) string {
	var running, draining []string
	for _, n := range nodes {
		if n.HeartbeatAge <= bound {
			running = append(running, n.Name)
			if n.Draining {
				draining = append(draining, n.Name)
			}
		}
	}
	switch {
	case len(running) == 0:
		return "no node runs (is any node running?)"
	case len(draining) == len(running):
		return fmt.Sprintf("every running node is draining (%s): bam node undrain NODE, or start a node", strings.Join(draining, ", "))
	case len(running) == 1:
		return fmt.Sprintf("the running node %s has not claimed it: see its last error in bam status, and the node's log", running[0])
	default:
		return fmt.Sprintf("none of the %d running nodes (%s) has claimed it: see its last error in bam status, and the nodes' logs",
			len(running), strings.Join(running, ", "))
	}
}
