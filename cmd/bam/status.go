package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/bam-dev/bam/internal/ops"
	"github.com/bam-dev/bam/internal/pool"
	"github.com/bam-dev/bam/internal/store"
)

func (a *app) statusCommand() *cobra.Command {
	var (
		asJSON   bool
		leaseTTL time.Duration
		check    bool
		bounds   checkBounds
	)
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the nodes of the pool and who owns which session",
		Long: `status shows the nodes that share the store (a node whose heartbeat is older
than --lease-ttl, by default the pool's lease-ttl, is shown silent: paused, hung,
cut off from the store, or dead with no live peer to notice), the nodes that left the pool or were found
dead in the last 10 minutes (gone: when, and why), and every session: its
owner, epoch, lease, checkpoint, backlog, counts and last error. A session
of a disabled or paused source says so after its source's name.

--check checks the pool instead, for cron and monitoring scripts: it prints
one line per problem, naming the session or alert and why, and exits 1 if
there is any, 0 (silently) if none:
  unowned        a session of an applied source (enabled, not paused) has
                 had no live owner for --lease-ttl: no claim between two
                 reads that far apart, or a lease expired that long ago;
                 it says whether no node runs, every running node is
                 draining (bam node undrain), or they have not claimed it
  error          a session's last error is younger than --error-within
                 (nothing was applied since it)
  backlog        a session's oldest unapplied event has waited longer than
                 --backlog-age, or its backlog cannot be read (its source
                 is unreachable)
  failed-events  a session has failed events kept (bam failed list)
  delivery       an alert delivery was given up less than
                 --delivery-within ago
  paused         the pool has been paused (bam pause) for longer than
                 --paused-for: nothing is applied until bam resume
  silent         a member node has not heartbeat for longer than
                 --silent-for (by default --lease-ttl) and no peer found it
                 dead: paused, hung, cut off from the store, or dead with
                 no live peer; its sessions move to a live peer, if any,
                 when their leases expire
It exits 1 too when the store cannot be read, and 2 on a wrong command
line. With --json it prints {"ok": ..., "problems": [...]} instead.`,
		Example: `  bam status
  bam status --check --backlog-age 2m || page-the-operator`,
		Args: noArgs,
		RunE: a.body(func(cmd *cobra.Command, _ []string) error {
			if leaseTTL <= 0 {
				return usageErrorf("--lease-ttl must be positive")
			}
			if !check {
				for _, name := range []string{"error-within", "backlog-age", "delivery-within", "paused-for", "silent-for"} {
					if cmd.Flags().Changed(name) {
						return usageErrorf("--%s needs --check", name)
					}
				}
			}
			for name, d := range map[string]time.Duration{"error-within": bounds.recentError, "backlog-age": bounds.backlogAge, "delivery-within": bounds.givenUp, "paused-for": bounds.paused} {
				if d <= 0 {
					return usageErrorf("--%s must be positive", name)
				}
			}
			if cmd.Flags().Changed("silent-for") && bounds.silent <= 0 {
				return usageErrorf("--silent-for must be positive")
			}
			ctx := cmd.Context()
			if check {
				return a.withStore(ctx, func(st store.Store) error {
					if err := a.poolDefaults(ctx, st, cmd.Flags()); err != nil {
						return err
					}
					bounds.unowned = leaseTTL
					if !cmd.Flags().Changed("silent-for") {
						bounds.silent = leaseTTL
					}
					problems, err := checkStatus(ctx, st, bounds, sleepFor)
					if err != nil {
						return err
					}
					if err := printProblems(a.stdout, problems, asJSON); err != nil {
						return err
					}
					if len(problems) > 0 {
						return fmt.Errorf("status --check: %s", count(len(problems), "problem"))
					}
					return nil
				})
			}
			return a.withStore(ctx, func(st store.Store) error {
				if err := a.poolDefaults(ctx, st, cmd.Flags()); err != nil {
					return err
				}
				s, err := readStatus(ctx, st, leaseTTL)
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(a.stdout, s)
				}
				return s.print(a.stdout)
			})
		}),
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().DurationVar(&leaseTTL, "lease-ttl", pool.DefaultConfig().LeaseTTL, "the nodes' lease TTL: a node silent longer is shown silent; with --check, a session without a live owner this long is a problem; the pool's lease-ttl (bam config) unless given")
	cmd.Flags().BoolVar(&check, "check", false, "print only the problems, one per line, and exit 1 if there is any (for cron and monitoring)")
	cmd.Flags().DurationVar(&bounds.recentError, "error-within", 10*time.Minute, "with --check: a session's last error younger than this is a problem")
	cmd.Flags().DurationVar(&bounds.backlogAge, "backlog-age", 5*time.Minute, "with --check: a backlog whose oldest event has waited longer is a problem")
	cmd.Flags().DurationVar(&bounds.givenUp, "delivery-within", time.Hour, "with --check: an alert delivery given up less than this ago is a problem")
	cmd.Flags().DurationVar(&bounds.paused, "paused-for", time.Hour, "with --check: a pool paused (bam pause) longer than this is a problem")
	cmd.Flags().DurationVar(&bounds.silent, "silent-for", 0, "with --check: a member node whose last heartbeat is older than this is a problem (default: --lease-ttl)")
	return cmd
}

// status is what `bam status` shows; its JSON form is --json's.
type status struct {
	// Paused: the whole pool is paused (bam pause) since PausedAt, by PausedBy.
	Paused   bool         `json:"paused"`
	PausedAt *string      `json:"paused_at,omitempty"`
	PausedBy string       `json:"paused_by,omitempty"`
	Nodes    []nodeStatus `json:"nodes"`
	// Gone are the nodes that left the pool, or were found dead, less
	// than store.DepartedMemory ago, the latest first.
	Gone     []goneStatus    `json:"gone"`
	Sessions []sessionStatus `json:"sessions"`
	// FailedUnfiled are the failed events kept under no current session
	// (ops.Unfiled): a partition repartitioned away, a removed source,
	// direct writes.
	FailedUnfiled []unfiledStatus `json:"failed_unfiled"`
	// Operations are the latest entries of the audit log (bam audit), the
	// latest first.
	Operations []auditEntry `json:"operations"`

	pausedAt   *time.Time
	operations []store.AuditEntry
}

// unfiledStatus is a count of failed events kept under no current
// session.
type unfiledStatus struct {
	Source    string `json:"source"`
	Partition int    `json:"partition"`
	Failed    int64  `json:"failed"`
	Where     string `json:"where"`
}

// statusOperations is how many audit entries status shows.
const statusOperations = 5

// goneStatus is a node that left the pool: its last membership row, and
// when and how it went.
type goneStatus struct {
	ID          string  `json:"id"`
	Name        string  `json:"name"`
	Host        string  `json:"host"`
	PID         int     `json:"pid"`
	StartedAt   *string `json:"started_at"`
	HeartbeatAt *string `json:"heartbeat_at"` // its last heartbeat
	// HeartbeatAgeMS is how long ago that was, by the store's clock.
	HeartbeatAgeMS int64   `json:"heartbeat_age_ms"`
	GoneAt         *string `json:"gone_at"`
	GoneAgeMS      int64   `json:"gone_age_ms"`
	// FoundDeadBy is the node that found it dead (empty when it left by
	// itself), FoundDeadByName that node's name when known; Why says why.
	FoundDeadBy     string `json:"found_dead_by"`
	FoundDeadByName string `json:"found_dead_by_name"`
	Why             string `json:"why"`

	goneAge, heartbeatAge time.Duration
}

type nodeStatus struct {
	ID             string  `json:"id"`
	Name           string  `json:"name"`
	Host           string  `json:"host"`
	PID            int     `json:"pid"`
	StartedAt      *string `json:"started_at"`
	HeartbeatAt    *string `json:"heartbeat_at"`
	HeartbeatAgeMS int64   `json:"heartbeat_age_ms"`
	State          string  `json:"state"` // running, draining, stopping or silent

	heartbeatAge time.Duration
	startedAt    time.Time
}

type sessionStatus struct {
	Source    string `json:"source"`
	Partition int    `json:"partition"`
	Kind      string `json:"kind"`
	Enabled   bool   `json:"enabled"`
	// Paused: no node applies the source's events, which its writers
	// still add to (bam source pause).
	Paused bool `json:"paused"`
	// Owner is the owning node's id, empty when free; OwnerName its name
	// when the node is known.
	Owner     string `json:"owner"`
	OwnerName string `json:"owner_name"`
	// MovingTo is the node an operator moved the session to (bam session
	// move), while that move holds.
	MovingTo string `json:"moving_to,omitempty"`
	// OwnerGone: the owner left the pool or was found dead (status.Gone);
	// its lease expires, or was expired, and a node takes the session over.
	OwnerGone        bool           `json:"owner_gone,omitempty"`
	Epoch            int64          `json:"epoch"`
	LeaseRemainingMS int64          `json:"lease_remaining_ms"`
	Checkpoint       store.Position `json:"checkpoint"`
	// Backlog is null when it could not be counted; BacklogError says why.
	Backlog      *int64 `json:"backlog"`
	BacklogError string `json:"backlog_error,omitempty"`
	Applied      int64  `json:"applied"`
	// Failed counts the session's failed events still kept (neither
	// retried nor discarded); FailedTotal every event it ever quarantined.
	Failed      int64   `json:"failed"`
	FailedTotal int64   `json:"failed_total"`
	LastError   string  `json:"last_error"`
	LastErrorAt *string `json:"last_error_at"`

	leaseRemaining time.Duration
	lastErrorAt    *time.Time
}

// readStatus reads the nodes and sessions and counts each session's backlog.
func readStatus(ctx context.Context, st store.Store, leaseTTL time.Duration) (status, error) {
	nodes, err := st.Nodes(ctx)
	if err != nil {
		return status{}, fmt.Errorf("read nodes: %w", err)
	}
	sessions, err := st.Sessions(ctx)
	if err != nil {
		return status{}, fmt.Errorf("read sessions: %w", err)
	}
	outstanding, err := st.FailedOutstanding(ctx)
	if err != nil {
		return status{}, fmt.Errorf("count failed events: %w", err)
	}
	departed, err := st.DepartedNodes(ctx)
	if err != nil {
		return status{}, fmt.Errorf("read the nodes gone: %w", err)
	}
	pool, err := st.PoolState(ctx)
	if err != nil {
		return status{}, err
	}
	audit, err := st.AuditLog(ctx, statusOperations)
	if err != nil {
		return status{}, err
	}
	s := status{Paused: pool.Paused, PausedAt: jsonTime(pool.PausedAt), PausedBy: pool.PausedBy,
		Nodes: []nodeStatus{}, Gone: []goneStatus{}, Sessions: []sessionStatus{}, Operations: auditJSON(audit)}
	s.pausedAt, s.operations = pool.PausedAt, audit
	names := map[string]string{}
	for _, n := range nodes {
		state := string(n.State)
		switch {
		case n.HeartbeatAge > leaseTTL:
			// Silent, not dead: a node found dead leaves the member
			// list (gone). One still listed with a stale heartbeat
			// holds its liveness lock (paused, hung, cut off) or has no
			// live peer to find it dead.
			state = "silent"
		case n.Draining && n.State == store.NodeRunning:
			state = "draining"
		}
		names[n.ID] = n.Name
		s.Nodes = append(s.Nodes, nodeStatus{
			ID: n.ID, Name: n.Name, Host: n.Host, PID: n.PID,
			StartedAt: jsonTime(&n.StartedAt), HeartbeatAt: jsonTime(&n.HeartbeatAt),
			HeartbeatAgeMS: n.HeartbeatAge.Milliseconds(), State: state,
			heartbeatAge: n.HeartbeatAge, startedAt: n.StartedAt,
		})
	}
	gone := map[string]bool{}
	for _, d := range departed {
		names[d.ID], gone[d.ID] = d.Name, true
	}
	for _, d := range departed {
		s.Gone = append(s.Gone, goneStatus{
			ID: d.ID, Name: d.Name, Host: d.Host, PID: d.PID,
			StartedAt: jsonTime(&d.StartedAt), HeartbeatAt: jsonTime(&d.HeartbeatAt), HeartbeatAgeMS: d.HeartbeatAge.Milliseconds(),
			GoneAt: jsonTime(&d.DepartedAt), GoneAgeMS: d.DepartedAge.Milliseconds(),
			FoundDeadBy: d.FoundDeadBy, FoundDeadByName: names[d.FoundDeadBy], Why: d.Why,
			goneAge: d.DepartedAge, heartbeatAge: d.HeartbeatAge,
		})
	}
	sort.Slice(s.Nodes, func(i, j int) bool {
		a, b := s.Nodes[i], s.Nodes[j]
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		return a.ID < b.ID
	})

	sortSessions(sessions)
	backlogs := ops.NewBacklogs(st)
	defer backlogs.Close()
	for _, se := range sessions {
		ss := sessionStatus{
			Source: se.Source, Partition: se.Partition, Kind: string(se.Kind), Enabled: se.SourceEnabled, Paused: se.SourcePaused,
			Owner: se.Owner, OwnerName: names[se.Owner], OwnerGone: gone[se.Owner], MovingTo: se.MoveTo, Epoch: se.Epoch,
			Checkpoint: se.Checkpoint, Applied: se.Applied, Failed: outstanding[se.SessionID], FailedTotal: se.Failed,
			LastError: se.LastError, LastErrorAt: jsonTime(se.LastErrorAt),
			lastErrorAt: se.LastErrorAt,
		}
		if se.Owner != "" {
			ss.leaseRemaining = max(se.LeaseRemaining, 0)
			ss.LeaseRemainingMS = ss.leaseRemaining.Milliseconds()
		}
		n, err := backlogs.Exact(ctx, se)
		if err != nil {
			ss.BacklogError = err.Error()
		} else {
			ss.Backlog = &n
		}
		s.Sessions = append(s.Sessions, ss)
	}
	s.FailedUnfiled = []unfiledStatus{}
	for _, u := range ops.UnfiledFailed(sessions, outstanding) {
		s.FailedUnfiled = append(s.FailedUnfiled, unfiledStatus{Source: u.Source, Partition: u.Partition, Failed: u.Count, Where: u.Where})
	}
	return s, nil
}

// sortSessions sorts sessions by source, then partition.
func sortSessions(sessions []store.SessionRow) {
	sort.Slice(sessions, func(i, j int) bool {
		a, b := sessions[i], sessions[j]
		if a.Source != b.Source {
			return a.Source < b.Source
		}
		return a.Partition < b.Partition
	})
}

// print writes the status as two tables.
func (s status) print(w io.Writer) error {
	if s.Paused {
		fmt.Fprintf(w, "POOL PAUSED since %s by %s: no session is applied; writers keep writing; bam resume to go on\n\n",
			formatTime(s.pausedAt), s.PausedBy)
	}
	fmt.Fprintln(w, "NODES")
	if len(s.Nodes) == 0 {
		fmt.Fprintln(w, "  none: start one with bam serve")
	} else {
		t := newTable(w, "  ID", "NAME", "HOST", "PID", "STARTED", "HEARTBEAT", "STATE")
		for _, n := range s.Nodes {
			t.row("  "+n.ID, n.Name, n.Host, strconv.Itoa(n.PID), formatTime(&n.startedAt),
				formatDuration(n.heartbeatAge)+" ago", n.State)
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	if err := s.printGone(w); err != nil {
		return err
	}
	fmt.Fprintln(w, "\nSESSIONS")
	if len(s.Sessions) == 0 {
		fmt.Fprintln(w, "  none: add a source with bam source add")
		s.printUnfiled(w)
		return s.printOperations(w)
	}
	t := newTable(w, "  SOURCE", "PARTITION", "OWNER", "EPOCH", "LEASE", "CHECKPOINT", "BACKLOG", "APPLIED", "FAILED", "LAST ERROR")
	for _, se := range s.Sessions {
		src := se.Source
		if state := ops.SourceState(store.Source{Enabled: se.Enabled, Paused: se.Paused}); state != "enabled" {
			src += " (" + state + ")"
		}
		owner, lease := "-", "-"
		if se.Owner != "" {
			owner = se.Owner
			switch {
			case se.OwnerGone:
				owner += " (" + se.OwnerName + ", gone)"
			case se.OwnerName != "":
				owner += " (" + se.OwnerName + ")"
			default:
				owner += " (gone)"
			}
			lease = formatDuration(se.leaseRemaining)
			if se.leaseRemaining <= 0 {
				lease = "expired"
			}
		}
		backlog := "?"
		if se.Backlog != nil {
			backlog = strconv.FormatInt(*se.Backlog, 10)
		}
		lastErr := "-"
		if se.LastError != "" {
			lastErr = cut(se.LastError, 80)
			if se.lastErrorAt != nil {
				lastErr += " (since " + formatTime(se.lastErrorAt) + ")"
			}
		}
		if se.MovingTo != "" && se.MovingTo != se.Owner {
			owner += " → " + se.MovingTo
		}
		t.row("  "+src, strconv.Itoa(se.Partition), owner, strconv.FormatInt(se.Epoch, 10), lease,
			formatPosition(se.Checkpoint), backlog, strconv.FormatInt(se.Applied, 10), strconv.FormatInt(se.Failed, 10), lastErr)
	}
	if err := t.flush(); err != nil {
		return err
	}
	s.printUnfiled(w)
	return s.printOperations(w)
}

// printUnfiled writes the failed events kept under no current session,
// when there are any: a view by session would miss them.
func (s status) printUnfiled(w io.Writer) {
	if len(s.FailedUnfiled) == 0 {
		return
	}
	fmt.Fprintln(w, "\nFAILED EVENTS OF NO SESSION (bam failed list --source S --partition P)")
	for _, u := range s.FailedUnfiled {
		fmt.Fprintf(w, "  %s/%d: %s, %s\n", u.Source, u.Partition, store.CountEvents(u.Failed), u.Where)
	}
}

// printOperations writes the latest operator commands, when there are any.
func (s status) printOperations(w io.Writer) error {
	if len(s.operations) == 0 {
		return nil
	}
	fmt.Fprintln(w, "\nOPERATIONS (the latest; bam audit lists them all)")
	return printAudit(w, s.operations)
}

// printGone writes the nodes gone lately, when there are any: each with
// when it went and why, on a line of its own (a reason is a sentence).
func (s status) printGone(w io.Writer) error {
	if len(s.Gone) == 0 {
		return nil
	}
	fmt.Fprintf(w, "\nGONE (nodes that left the pool or were found dead in the last %s)\n", formatDuration(store.DepartedMemory))
	t := newTable(w, "  ID", "NAME", "HOST", "PID", "LAST HEARTBEAT", "GONE", "HOW")
	for _, g := range s.Gone {
		how := "left"
		if g.FoundDeadBy != "" {
			how = "found dead by " + g.FoundDeadBy
			if g.FoundDeadByName != "" {
				how += " (" + g.FoundDeadByName + ")"
			}
		}
		t.row("  "+g.ID, g.Name, g.Host, strconv.Itoa(g.PID), formatDuration(g.heartbeatAge)+" ago", formatDuration(g.goneAge)+" ago", how)
	}
	if err := t.flush(); err != nil {
		return err
	}
	for _, g := range s.Gone {
		fmt.Fprintf(w, "  %s: %s\n", g.ID, g.Why)
	}
	return nil
}
