package main

// The operator's commands on the pool as a whole: pause and resume,
// node drain and undrain, session move, and the audit log they write.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/bam-dev/bam/internal/ops"
	"github.com/bam-dev/bam/internal/pool"
	"github.com/bam-dev/bam/internal/store"
)

// waitPoll is how often the operator commands look whether their change
// has landed.
const waitPoll = 50 * time.Millisecond

func (a *app) pauseCommand() *cobra.Command {
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "pause",
		Short: "Stop applying events pool-wide, holding every checkpoint (for a consistent backup)",
		Long: `pause stops the whole pool: every session stops after the batch in hand and
releases its lease, no node claims one, and the window purge and the alert
evaluation wait. Writers keep writing: bam emit, the HTTP API, the SDK's
streams and the applications' outbox rows are accepted and wait in their
sources. No instance, aggregation, checkpoint or alert firing changes
until bam resume (the nodes only keep heartbeating), so a backup taken
meanwhile is consistent with the checkpoints.

pause waits (up to --wait) until no node holds a session, and says so; a
session whose owner is gone counts as stopped once its lease expires.
Nodes stay up and keep heartbeating. The pause is kept in the store: it
holds across node restarts, until bam resume.`,
		Example: `  bam pause && pg_dump ... && bam resume`,
		Args:    noArgs,
		RunE: a.body(func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			return a.withStore(ctx, func(st store.Store) error {
				p, err := st.PoolState(ctx)
				if err != nil {
					return err
				}
				// Paused already: nothing is changed or audited, but the
				// wait still runs, so that pause after one that gave up
				// waiting says when the sessions have stopped.
				said := "pool paused:"
				if p.Paused {
					said = fmt.Sprintf("the pool was paused already (since %s, by %s), nothing changed:", formatTime(p.PausedAt), p.PausedBy)
				} else {
					who := ops.Who()
					if err := st.SetPoolPaused(ctx, true, who); err != nil {
						return err
					}
					a.audit(ctx, st, who, "pause", "", "")
				}
				start := time.Now()
				sessions, done, err := ops.WaitSessions(ctx, st, wait, waitPoll, func(ss []store.SessionRow) bool {
					for _, s := range ss {
						if ops.Held(s) {
							return false
						}
					}
					return true
				})
				if err != nil {
					return err
				}
				if !done {
					var held []store.SessionRow
					for _, s := range sessions {
						if ops.Held(s) {
							held = append(held, s)
						}
					}
					return fmt.Errorf("the pool is paused, but after %v %d session%s still held: %s; their owners stop after the batch in hand, or their leases expire (bam status)",
						wait, len(held), plural(len(held)), strings.Join(ops.NamesOf(held), ", "))
				}
				fmt.Fprintf(a.stdout, "%s no session is applied (all %d stopped in %v); writers keep writing into the sources; bam resume to go on\n",
					said, len(sessions), time.Since(start).Round(time.Millisecond))
				return nil
			})
		}),
	}
	cmd.Flags().DurationVar(&wait, "wait", 30*time.Second, "how long to wait for every session to stop")
	return cmd
}

func (a *app) resumeCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "resume",
		Short: "Apply events again after bam pause, from the checkpoints",
		Long: `resume ends bam pause: the nodes claim the sessions again from their
checkpoints and apply what the writers wrote meanwhile, each event once.
A source paused on its own (bam source pause) stays paused.`,
		Args: noArgs,
		RunE: a.body(func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			return a.withStore(ctx, func(st store.Store) error {
				p, err := st.PoolState(ctx)
				if err != nil {
					return err
				}
				if !p.Paused {
					fmt.Fprintln(a.stdout, "the pool is not paused: nothing to resume")
					return nil
				}
				who := ops.Who()
				if err := st.SetPoolPaused(ctx, false, who); err != nil {
					return err
				}
				a.audit(ctx, st, who, "resume", "", "paused since "+formatTime(p.PausedAt)+" by "+p.PausedBy)
				fmt.Fprintf(a.stdout, "pool resumed (paused %s by %s): the nodes apply the sources again from their checkpoints\n",
					formatTime(p.PausedAt), p.PausedBy)
				return nil
			})
		}),
	}
}

func (a *app) nodeCommand() *cobra.Command {
	return group("node", "Drain a node of its sessions, for a rolling upgrade", a.nodeDrainCommand(true), a.nodeDrainCommand(false))
}

func (a *app) nodeDrainCommand(drain bool) *cobra.Command {
	var (
		wait     time.Duration
		force    bool
		leaseTTL time.Duration
	)
	verb := "drain"
	if !drain {
		verb = "undrain"
	}
	cmd := &cobra.Command{
		Use:  verb + " NODE",
		Args: exactArgs("NODE"),
		RunE: a.body(func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			return a.withStore(ctx, func(st store.Store) error {
				nodes, n, err := a.findNode(ctx, st, cmd.Flags(), args[0])
				if err != nil {
					return err
				}
				if !drain {
					return a.undrain(ctx, st, n)
				}
				others := 0
				for _, o := range nodes {
					if o.ID != n.ID && ops.Working(o, leaseTTL) {
						others++
					}
				}
				if others == 0 && !force {
					return fmt.Errorf("drain node %s: %w: its sessions would wait, unapplied, until one starts; start another bam serve first, or pass --force", n.ID, ops.ErrNoOtherNode)
				}
				who := ops.Who()
				if err := st.SetNodeDraining(ctx, n.ID, true); err != nil {
					return err
				}
				start := time.Now()
				var handed []store.SessionID
				if sessions, err := st.Sessions(ctx); err == nil {
					for _, s := range ops.Owned(sessions, n.ID) {
						handed = append(handed, s.SessionID)
					}
				}
				held := len(handed)
				a.audit(ctx, st, who, "node drain", n.ID, fmt.Sprintf("name %s, host %s, %d session%s", n.Name, n.Host, held, plural(held)))
				// Drained: the node holds nothing, and (when another node
				// works) what it held is held elsewhere, so that the drain
				// ends when the work goes on, not when it stops.
				sessions, done, err := ops.WaitSessions(ctx, st, wait, waitPoll, func(ss []store.SessionRow) bool {
					if len(ops.Owned(ss, n.ID)) > 0 {
						return false
					}
					return others == 0 || len(ops.Unowned(ss, handed)) == 0
				})
				if err != nil {
					return err
				}
				if left := ops.Owned(sessions, n.ID); !done && len(left) > 0 {
					return fmt.Errorf("node %s is draining, but after %v it still holds %d session%s: %s (is it running? bam status)",
						n.ID, wait, len(left), plural(len(left)), strings.Join(ops.NamesOf(left), ", "))
				}
				if waiting := ops.Unowned(sessions, handed); !done {
					return fmt.Errorf("node %s is drained, but after %v no other node has claimed %s yet (bam status)",
						n.ID, wait, strings.Join(ops.NamesOf(waiting), ", "))
				}
				fmt.Fprintf(a.stdout, "node %s (%s) drained: it handed %d session%s over in %v and stays up; stop it now, or bam node undrain %s\n",
					n.ID, n.Name, held, plural(held), time.Since(start).Round(time.Millisecond), n.ID)
				return nil
			})
		}),
	}
	if drain {
		cmd.Short = "Hand every session of a node over to the others; the node stays up"
		cmd.Long = `drain marks a node as draining: it hands every session it holds over to the
other nodes (each after its batch in hand, as at a clean stop), claims
none, and stays up. It waits (up to --wait) until the node holds no
session. NODE is a node's id or, when only one node has it, its name (bam
status shows both).

A rolling upgrade drains each node in turn, stops it (SIGTERM), upgrades
and starts it: the new process joins undrained and takes its share back.
bam node undrain NODE ends a drain without a restart.`
		cmd.Example = `  bam node drain bam-1 && systemctl restart bam`
		cmd.Flags().DurationVar(&wait, "wait", 60*time.Second, "how long to wait for the node to hand every session over")
		cmd.Flags().BoolVar(&force, "force", false, "drain even when no other node works (the sessions wait until one does)")
		cmd.Flags().DurationVar(&leaseTTL, "lease-ttl", pool.DefaultConfig().LeaseTTL, "the nodes' lease TTL: a node silent longer does not count as working; the pool's lease-ttl (bam config) unless given")
	} else {
		cmd.Short = "End a node's drain: it takes its share of sessions again"
	}
	return cmd
}

func (a *app) undrain(ctx context.Context, st store.Store, n store.NodeRow) error {
	if !n.Draining {
		fmt.Fprintf(a.stdout, "node %s is not draining: nothing to do\n", n.ID)
		return nil
	}
	if err := st.SetNodeDraining(ctx, n.ID, false); err != nil {
		return err
	}
	a.audit(ctx, st, ops.Who(), "node undrain", n.ID, "name "+n.Name)
	fmt.Fprintf(a.stdout, "node %s (%s) undrained: it takes its share of sessions at the next balance round\n", n.ID, n.Name)
	return nil
}

func (a *app) sessionCommand() *cobra.Command {
	return group("session", "Move a session to another node", a.sessionMoveCommand())
}

func (a *app) sessionMoveCommand() *cobra.Command {
	var (
		to       string
		wait     time.Duration
		leaseTTL time.Duration
	)
	cmd := &cobra.Command{
		Use:   "move SOURCE/PARTITION --to NODE",
		Short: "Hand one session over to a chosen node",
		Long: `move hands a session over to NODE: its owner stops it after the batch in
hand and releases it, and NODE alone claims it, from its checkpoint — one
planned handoff, no pause beyond it. The session then stays on NODE while
NODE works (the pool evens out with its other sessions); when NODE stops
or is drained, the session is dealt as any other again. It waits (up to
--wait) until NODE holds the session.`,
		Example: `  bam session move orders/3 --to bam-2`,
		Args:    exactArgs("SOURCE/PARTITION"),
		RunE: a.body(func(cmd *cobra.Command, args []string) error {
			id, err := ops.ParseSession(args[0])
			if err != nil {
				return &usageError{err}
			}
			if to == "" {
				return usageErrorf("--to NODE is required: the node to move the session to (bam status lists them)")
			}
			ctx := cmd.Context()
			return a.withStore(ctx, func(st store.Store) error {
				_, target, err := a.findNode(ctx, st, cmd.Flags(), to)
				if err != nil {
					return err
				}
				if !ops.Working(target, leaseTTL) {
					return fmt.Errorf("node %s does not take sessions now (%s); move the session to a running node", target.ID, nodeCondition(target, leaseTTL))
				}
				sessions, err := st.Sessions(ctx)
				if err != nil {
					return fmt.Errorf("read sessions: %w", err)
				}
				var se *store.SessionRow
				for i := range sessions {
					if sessions[i].SessionID == id {
						se = &sessions[i]
					}
				}
				switch {
				case se == nil:
					return fmt.Errorf("no session %s/%d: %w", id.Source, id.Partition, noSessionHint(ctx, st, id))
				case !se.Applies():
					return fmt.Errorf("session %s/%d is not applied now (its source is disabled or paused, or the pool is paused): there is nothing to move", id.Source, id.Partition)
				case se.Owner == target.ID && ops.Held(*se):
					fmt.Fprintf(a.stdout, "session %s/%d is on node %s already\n", id.Source, id.Partition, target.ID)
					return nil
				}
				from := se.Owner
				who := ops.Who()
				if err := ops.MoveSession(ctx, st, id, target.ID, wait, waitPoll); err != nil {
					return err
				}
				a.audit(ctx, st, who, "session move", fmt.Sprintf("%s/%d", id.Source, id.Partition), "from "+orNone(from)+" to "+target.ID)
				start := time.Now()
				_, done, err := ops.WaitSessions(ctx, st, wait, waitPoll, func(ss []store.SessionRow) bool {
					for _, s := range ss {
						if s.SessionID == id {
							return s.Owner == target.ID && ops.Held(s)
						}
					}
					return false
				})
				if err != nil {
					return err
				}
				if !done {
					return fmt.Errorf("session %s/%d is moving to node %s, but after %v it is not there yet (bam status shows where it is)", id.Source, id.Partition, target.ID, wait)
				}
				fmt.Fprintf(a.stdout, "session %s/%d moved from %s to %s (%s) in %v\n", id.Source, id.Partition, orNone(from), target.ID, target.Name,
					time.Since(start).Round(time.Millisecond))
				return nil
			})
		}),
	}
	cmd.Flags().StringVar(&to, "to", "", "the node to move the session to: its id, or its name when only one node has it")
	cmd.Flags().DurationVar(&wait, "wait", 30*time.Second, "how long to wait for the node to hold the session")
	cmd.Flags().DurationVar(&leaseTTL, "lease-ttl", pool.DefaultConfig().LeaseTTL, "the nodes' lease TTL: a node silent longer does not count as working; the pool's lease-ttl (bam config) unless given")
	return cmd
}

// findNode reads the pool's members and finds one by id or name
// (ops.FindNode), after giving the command's flags the pool's settings
// that no flag, variable or file set (its --lease-ttl).
func (a *app) findNode(ctx context.Context, st store.Store, flags *pflag.FlagSet, nameOrID string) ([]store.NodeRow, store.NodeRow, error) {
	if err := a.poolDefaults(ctx, st, flags); err != nil {
		return nil, store.NodeRow{}, err
	}
	nodes, err := st.Nodes(ctx)
	if err != nil {
		return nil, store.NodeRow{}, fmt.Errorf("read nodes: %w", err)
	}
	n, err := ops.FindNode(nodes, nameOrID)
	return nodes, n, err
}

// nodeCondition says why a member does not take sessions.
func nodeCondition(n store.NodeRow, leaseTTL time.Duration) string {
	switch {
	case n.HeartbeatAge > leaseTTL:
		return "no heartbeat for " + formatDuration(n.HeartbeatAge)
	case n.Draining:
		return "it is draining: bam node undrain " + n.ID
	case n.State == store.NodeStopping:
		return "it is stopping"
	}
	return "it works"
}

// noSessionHint says which sessions exist when one named does not.
func noSessionHint(ctx context.Context, st store.Store, id store.SessionID) error {
	src, err := st.Source(ctx, id.Source)
	if errors.Is(err, store.ErrNotFound) {
		return noSource(id.Source, sourceNames(ctx, st)...)
	}
	if err != nil {
		return err
	}
	return fmt.Errorf("source %s has partitions 0 to %d: %w", src.Name, src.Partitions-1, store.ErrNotFound)
}

func orNone(node string) string {
	if node == "" {
		return "(no owner)"
	}
	return node
}

// audit records an operator's action, warning on stderr when it cannot:
// the action itself is done.
func (a *app) audit(ctx context.Context, st store.OperatorControls, who, action, target, detail string) {
	if err := ops.Audit(ctx, st, who, action, target, detail); err != nil {
		fmt.Fprintf(a.stderr, "warning: done, but not recorded in the audit log: %v\n", err)
	}
}

func (a *app) auditCommand() *cobra.Command {
	var (
		limit  int
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Show what operators did to the pool, the latest first",
		Long: `audit lists the operator commands that changed the pool (pause, resume,
node drain and undrain, session move, source add, remove, repartition,
reset-checkpoint, enable, disable, pause and resume, config set and unset,
failed retry and discard, with counts for a filter's),
each with who ran it (user@host; "http" and the client's address for what
the HTTP API changed), when, and on what.`,
		Args: noArgs,
		RunE: a.body(func(cmd *cobra.Command, _ []string) error {
			if limit < 1 {
				return usageErrorf("--limit must be at least 1")
			}
			ctx := cmd.Context()
			return a.withStore(ctx, func(st store.Store) error {
				entries, err := st.AuditLog(ctx, limit)
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(a.stdout, auditJSON(entries))
				}
				if len(entries) == 0 {
					fmt.Fprintln(a.stdout, "no operator command has changed the pool yet")
					return nil
				}
				return printAudit(a.stdout, entries)
			})
		}),
	}
	cmd.Flags().IntVar(&limit, "limit", 50, "entries to show")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// auditEntry is an audit entry as --json prints it.
type auditEntry struct {
	ID     int64   `json:"id"`
	At     *string `json:"at"`
	Who    string  `json:"who"`
	Action string  `json:"action"`
	Target string  `json:"target"`
	Detail string  `json:"detail"`
}

func auditJSON(entries []store.AuditEntry) []auditEntry {
	out := make([]auditEntry, len(entries))
	for i, e := range entries {
		out[i] = auditEntry{ID: e.ID, At: jsonTime(&e.At), Who: e.Who, Action: e.Action, Target: e.Target, Detail: e.Detail}
	}
	return out
}

func printAudit(w io.Writer, entries []store.AuditEntry) error {
	t := newTable(w, "  WHEN", "WHO", "ACTION", "TARGET", "DETAIL")
	for _, e := range entries {
		t.row("  "+formatTime(&e.At), e.Who, e.Action, dash(e.Target), dash(e.Detail))
	}
	return t.flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
