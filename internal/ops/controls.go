package ops

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"strings"
	"time"

	"github.com/bam-dev/bam/internal/store"
	"github.com/bam-dev/bam/internal/suggest"
)

// Operator controls: the pool-wide pause, draining a node and moving a
// session (store.OperatorControls), each recorded in the audit log, and
// the waits that tell the operator when the change has landed. The nodes
// do the work at their next balance round, which the change starts at
// once; the operator's command only records it and watches.

// Who names the operator of a command run on this machine, as the audit
// log records it: the OS user and the host (user@host).
func Who() string {
	name := os.Getenv("USER")
	if u, err := user.Current(); err == nil && u.Username != "" {
		name = u.Username
	}
	if name == "" {
		name = "uid" + strconv.Itoa(os.Getuid())
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown-host"
	}
	return name + "@" + host
}

// Audit records what an operator did. The change it records is made
// already: a failure to record it is returned for the caller to warn
// about, never to undo the change.
func Audit(ctx context.Context, st store.OperatorControls, who, action, target, detail string) error {
	return st.RecordAudit(ctx, store.AuditEntry{Who: who, Action: action, Target: target, Detail: detail})
}

// FindNode finds a member by id, or by name when exactly one member has
// it. The error names the members when there is no match (with a
// suggestion), and the ids when the name is ambiguous.
func FindNode(nodes []store.NodeRow, nameOrID string) (store.NodeRow, error) {
	var byName []store.NodeRow
	var known []string
	for _, n := range nodes {
		if n.ID == nameOrID {
			return n, nil
		}
		if n.Name == nameOrID {
			byName = append(byName, n)
		}
		known = append(known, n.ID, n.Name)
	}
	switch len(byName) {
	case 1:
		return byName[0], nil
	case 0:
		msg := fmt.Sprintf("no node %q in the pool", nameOrID)
		if len(nodes) == 0 {
			msg += " (it has no members: no bam serve is running)"
		} else if hint := suggest.DidYouMean(nameOrID, known); hint != "" {
			msg += hint
		}
		return store.NodeRow{}, fmt.Errorf("%s; see bam status: %w", msg, store.ErrNotFound)
	}
	ids := make([]string, len(byName))
	for i, n := range byName {
		ids[i] = n.ID
	}
	return store.NodeRow{}, Invalidf("%d nodes are named %q: name one by its id (%s)", len(byName), nameOrID, strings.Join(ids, ", "))
}

// Working reports whether a member takes sessions: its heartbeat is
// younger than leaseTTL, and it is neither stopping nor draining.
func Working(n store.NodeRow, leaseTTL time.Duration) bool {
	return n.HeartbeatAge <= leaseTTL && n.State != store.NodeStopping && !n.Draining
}

// ParseSession reads a session's name as SOURCE/PARTITION.
func ParseSession(s string) (store.SessionID, error) {
	src, part, ok := strings.Cut(s, "/")
	p, err := strconv.Atoi(part)
	if !ok || src == "" || err != nil || p < 0 {
		return store.SessionID{}, Invalidf("session %q: write it SOURCE/PARTITION, as bam status shows it (e.g. orders/0)", s)
	}
	return store.SessionID{Source: src, Partition: p}, nil
}

// Held reports whether a session's owner still holds a live lease on it:
// such an owner may still commit.
func Held(s store.SessionRow) bool { return s.Owner != "" && s.LeaseRemaining > 0 }

// WaitSessions reads the sessions every poll until done says so of them,
// and returns the last read and whether done said so before timeout.
func WaitSessions(ctx context.Context, st store.Store, timeout, poll time.Duration, done func([]store.SessionRow) bool) ([]store.SessionRow, bool, error) {
	deadline := time.Now().Add(timeout)
	for {
		sessions, err := st.Sessions(ctx)
		if err != nil {
			return nil, false, fmt.Errorf("read sessions: %w", err)
		}
		if done(sessions) {
			return sessions, true, nil
		}
		if !time.Now().Before(deadline) {
			return sessions, false, nil
		}
		t := time.NewTimer(min(poll, time.Until(deadline)))
		select {
		case <-ctx.Done():
			t.Stop()
			return sessions, false, ctx.Err()
		case <-t.C:
		}
	}
}

// Owned returns the sessions a node holds under a live lease.
func Owned(sessions []store.SessionRow, node string) []store.SessionRow {
	var out []store.SessionRow
	for _, s := range sessions {
		if s.Owner == node && Held(s) {
			out = append(out, s)
		}
	}
	return out
}

// Unowned returns those of ids whose session no node holds under a live
// lease.
func Unowned(sessions []store.SessionRow, ids []store.SessionID) []store.SessionRow {
	want := make(map[store.SessionID]bool, len(ids))
	for _, id := range ids {
		want[id] = true
	}
	var out []store.SessionRow
	for _, s := range sessions {
		if want[s.SessionID] && !Held(s) {
			out = append(out, s)
		}
	}
	return out
}

// NamesOf returns the sessions' names, SOURCE/PARTITION.
func NamesOf(sessions []store.SessionRow) []string {
	out := make([]string, len(sessions))
	for i, s := range sessions {
		out[i] = fmt.Sprintf("%s/%d", s.Source, s.Partition)
	}
	return out
}

// MoveSession records a session's move to node, trying again every poll
// while a batch in progress holds the session's row (store.ErrLocked), for
// up to timeout: a busy session's batches hold it most of the time, but
// each one only for a while.
func MoveSession(ctx context.Context, st store.OperatorControls, id store.SessionID, node string, timeout, poll time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := st.MoveSession(ctx, id, node)
		if !errors.Is(err, store.ErrLocked) || !time.Now().Before(deadline) {
			if errors.Is(err, store.ErrLocked) {
				return fmt.Errorf("%w; for %v: a batch of the session is slow or stalled (bam status shows its last error); try again", err, timeout)
			}
			return err
		}
		t := time.NewTimer(poll)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// ErrNoOtherNode is a drain refused because no other node works: the
// drained node's sessions would wait, unapplied, until one does.
var ErrNoOtherNode = errors.New("no other node of the pool is working")
