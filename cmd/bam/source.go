package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"

	"github.com/bam-dev/bam/internal/ops"
	"github.com/bam-dev/bam/internal/source/pgoutbox"
	"github.com/bam-dev/bam/internal/store"
)

func (a *app) sourceCommand() *cobra.Command {
	return group("source", "Configure the sources events are read from",
		a.sourceAddCommand(),
		a.sourceListCommand(),
		a.sourceSwitchCommand("enable"),
		a.sourceSwitchCommand("disable"),
		a.sourceSwitchCommand("pause"),
		a.sourceSwitchCommand("resume"),
		a.sourceRemoveCommand(),
		a.sourceRepartitionCommand(),
		a.sourceResetCheckpointCommand(),
		a.sourceInstallOutboxCommand(),
		a.sourceOutboxSQLCommand(),
	)
}

func (a *app) sourceAddCommand() *cobra.Command {
	var (
		kind       string
		partitions int
		dsn, table string
		disabled   bool
		paused     bool
		timeout    time.Duration
	)
	cmd := &cobra.Command{
		Use:   "add NAME --kind buffer|pg-outbox --partitions N",
		Short: "Add a source",
		Long: `add configures a source and creates its sessions, one per partition. Events
are spread over the partitions by a hash of their instance id, so the events
of one instance stay in order; the partitions are what the nodes share.

Kinds:
  buffer      the store's own ingest buffer; write to it with bam emit
  pg-outbox   an outbox table in an application's PostgreSQL database (--dsn),
              written in the application's own transactions; create it with
              bam source install-outbox NAME (or bam source outbox-sql)

A pg-outbox source records which outbox it reads (the server's system
identifier, the database, the table): a second source on the same table is
refused, and a source added on a table a removed source read resumes from
that source's checkpoints instead of applying its rows again.`,
		Example: `  bam source add orders --kind buffer --partitions 4
  bam source add shop --kind pg-outbox --partitions 2 --dsn postgres://bam@db:5432/shop`,
		Args: exactArgs("NAME"),
		RunE: a.body(func(cmd *cobra.Command, args []string) error {
			name := args[0]
			src, err := ops.NewSource{Name: name, Kind: store.SourceKind(kind), Partitions: partitions, DSN: dsn, Table: table,
				TableSet: cmd.Flags().Changed("table"), Disabled: disabled, Paused: paused, FieldPrefix: "--"}.Source()
			if err != nil {
				return &usageError{err}
			}
			if err := ops.Identify(cmd.Context(), &src, timeout); err != nil {
				fmt.Fprintf(a.stderr, "warning: %v\n  (bam records which outbox the source reads when a node first reaches it)\n", err)
			}
			ctx := cmd.Context()
			return a.withStore(ctx, func(st store.Store) error {
				if err := ops.AddSource(ctx, st, src); err != nil {
					if errors.Is(err, store.ErrExists) {
						return fmt.Errorf("source %q already exists (see bam source list)", name)
					}
					return err
				}
				a.audit(ctx, st, ops.Who(), "source add", name, fmt.Sprintf("%s, %d partition%s, %s", kind, partitions, plural(partitions), ops.SourceState(src)))
				fmt.Fprintf(a.stdout, "added source %s: %s, %d partition%s, %s\n", name, kind, partitions, plural(partitions), ops.SourceState(src))
				switch {
				case src.Kind == store.KindBuffer:
					fmt.Fprintf(a.stdout, "write events with: bam emit --source %s --file events.ndjson\n", name)
				case src.Kind == store.KindPgOutbox:
					fmt.Fprintf(a.stdout, "create its outbox table with: bam source install-outbox %s\n", name)
				}
				return nil
			})
		}),
	}
	f := cmd.Flags()
	f.StringVar(&kind, "kind", "", "buffer or pg-outbox")
	f.IntVar(&partitions, "partitions", 0, fmt.Sprintf("number of partitions (sessions), 1 to %d", ops.MaxPartitions))
	f.StringVar(&dsn, "dsn", "", "pg-outbox: the application's database, postgres://USER@HOST:PORT/DB")
	f.StringVar(&table, "table", pgoutbox.DefaultTable, "pg-outbox: the outbox table, name or schema.name")
	f.BoolVar(&disabled, "disabled", false, "add it disabled: writes to it are refused and no node reads it until bam source enable")
	f.BoolVar(&paused, "paused", false, "add it paused: writes to it are accepted, and no node applies them until bam source resume")
	f.DurationVar(&timeout, "timeout", 10*time.Second, "pg-outbox: how long to try to reach the database to record which outbox it is")
	_ = cmd.MarkFlagRequired("kind")
	_ = cmd.MarkFlagRequired("partitions")
	return cmd
}

// count is n and noun, in the plural unless n is 1: "1 cell", "2 cells".
func count(n int, noun string) string {
	return fmt.Sprintf("%d %s%s", n, noun, plural(n))
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func (a *app) sourceListCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the sources",
		Args:  noArgs,
		RunE: a.body(func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			return a.withStore(ctx, func(st store.Store) error {
				srcs, err := st.Sources(ctx)
				if err != nil {
					return fmt.Errorf("list sources: %w", err)
				}
				if asJSON {
					out := make([]ops.SourceJSON, 0, len(srcs))
					for _, s := range srcs {
						j := ops.ToSourceJSON(s)
						j.DSN = redactDSN(s.DSN)
						out = append(out, j)
					}
					return printJSON(a.stdout, out)
				}
				if len(srcs) == 0 {
					fmt.Fprintln(a.stdout, "no sources; add one with: bam source add NAME --kind buffer --partitions 1")
					return nil
				}
				t := newTable(a.stdout, "NAME", "KIND", "PARTITIONS", "STATE", "DSN", "TABLE")
				for _, s := range srcs {
					dsn, tbl := "-", "-"
					if s.Kind == store.KindPgOutbox {
						dsn, tbl = redactDSN(s.DSN), s.Table
					}
					t.row(s.Name, string(s.Kind), strconv.Itoa(s.Partitions), ops.SourceState(s), dsn, tbl)
				}
				return t.flush()
			})
		}),
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// sourceSwitchCommand is enable, disable, pause or resume: the commands
// that start and stop a source's applying. Disable stops its writes too;
// pause keeps them.
func (a *app) sourceSwitchCommand(verb string) *cobra.Command {
	var (
		short, long string
		set         func(ctx context.Context, st store.Store, name string) error
	)
	switch verb {
	case "enable", "disable":
		enable := verb == "enable"
		set = func(ctx context.Context, st store.Store, name string) error {
			return st.SetSourceEnabled(ctx, name, enable)
		}
		short = "Accept a source's writes and apply its events again"
		if !enable {
			short = "Refuse a source's writes and stop applying it (its sessions stop after their batch)"
		}
	case "pause", "resume":
		pause := verb == "pause"
		set = func(ctx context.Context, st store.Store, name string) error {
			return st.SetSourcePaused(ctx, name, pause)
		}
		short = "Apply a paused source's events again, from its checkpoints"
		if pause {
			short = "Stop applying a source's events, still accepting its writes"
		}
	}
	switch verb {
	case "disable":
		long = `disable stops a source: writes to it are refused (bam emit, the HTTP API,
the SDK's streams) and its sessions stop after the batch in hand. Events
written before stay in the source, and are applied once it is enabled
again. To stop applying a source but keep accepting its writes (for a
deployment or maintenance downstream), pause it instead.`
	case "pause":
		long = `pause stops applying a source's events while its writes are still accepted
(bam emit, the HTTP API, the SDK's streams, an application's outbox rows):
its sessions stop after the batch in hand and no node claims them. Events
written meanwhile wait in the source; bam status shows them as its
backlog. bam source resume NAME lets the nodes apply them, each once, from
where the sessions stopped.`
	}
	return &cobra.Command{
		Use:   verb + " NAME",
		Short: short,
		Long:  long,
		Args:  exactArgs("NAME"),
		RunE: a.body(func(cmd *cobra.Command, args []string) error {
			name := args[0]
			ctx := cmd.Context()
			return a.withSource(ctx, name, func(st store.Store, src store.Source) error {
				// Switched that way already: nothing to change or audit.
				if switchedAlready(verb, src) {
					fmt.Fprintf(a.stdout, "source %s is %s: nothing to do\n", name, switchedState[verb])
					return nil
				}
				if err := set(ctx, st, name); err != nil {
					if errors.Is(err, store.ErrNotFound) {
						return noSource(name, sourceNames(ctx, st)...)
					}
					return fmt.Errorf("%s source %q: %w", verb, name, err)
				}
				a.audit(ctx, st, ops.Who(), "source "+verb, name, "")
				src, err := st.Source(ctx, name)
				if err != nil {
					return fmt.Errorf("read source %q: %w", name, err)
				}
				fmt.Fprintf(a.stdout, "source %s %s\n", name, switchedSays(verb, src))
				return nil
			})
		}),
	}
}

// switchedState is the state each switch of a source leaves it in.
var switchedState = map[string]string{"enable": "enabled already", "disable": "disabled already", "pause": "paused already", "resume": "not paused"}

// switchedAlready reports whether src is in the state verb would switch
// it to.
func switchedAlready(verb string, src store.Source) bool {
	switch verb {
	case "enable", "disable":
		return src.Enabled == (verb == "enable")
	}
	return src.Paused == (verb == "pause")
}

// switchedSays says what a source does now that verb switched it.
func switchedSays(verb string, src store.Source) string {
	done := map[string]string{"enable": "enabled", "disable": "disabled", "pause": "paused", "resume": "resumed"}[verb]
	switch {
	case src.Enabled && !src.Paused:
		return done + ": it accepts writes and the nodes apply its events"
	case src.Enabled:
		return done + ": writes to it are accepted and wait in it; no node applies them until bam source resume " + src.Name
	case !src.Paused:
		return done + ": writes to it are refused and no node applies it, until bam source enable " + src.Name
	}
	return done + ": writes to it are refused until bam source enable " + src.Name +
		", and its events are not applied until bam source resume " + src.Name
}

func (a *app) sourceRemoveCommand() *cobra.Command {
	var (
		drop    bool
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "remove NAME",
		Short: "Remove a source and its sessions",
		Long: `remove deletes a source and its sessions (and, for a buffer source, its
buffer). While a node owns one of its sessions it is refused: disable the
source first (bam source disable NAME), so that the nodes stop reading it.

While the source still holds events that are not applied (after its
checkpoints) it is refused too, unless --drop-unapplied: a buffer source's
are then deleted; a pg-outbox source's stay in the application's table,
unread (a source added on that table again resumes where this one stopped).
Either way the count is printed.

A pg-outbox source's applied rows are trimmed from its table, and its
checkpoints are kept: a source added again on the same table (same
partition count) resumes from them instead of applying those rows twice.`,
		Args: exactArgs("NAME"),
		RunE: a.body(func(cmd *cobra.Command, args []string) error {
			name := args[0]
			ctx := cmd.Context()
			return a.withSource(ctx, name, func(st store.Store, src store.Source) error {
				var (
					outbox    *pgoutbox.Reader
					unapplied int64
					err       error
				)
				if src.Kind == store.KindAlerts {
					acts, _, err := st.Definitions(ctx)
					if err != nil {
						return err
					}
					for _, a := range acts {
						if len(a.Alerts) > 0 {
							return fmt.Errorf("remove source %s: its session evaluates the alerts, and activity %s has some; "+
								"to stop evaluating them for a while, bam source pause %s", name, a.Name, name)
						}
					}
				}
				if src.OutboxStopped != "" {
					return fmt.Errorf("remove source %s: its sessions stopped: %s\n"+
						"choose where it reads from first (bam source reset-checkpoint %s --to-horizon, --to-start or --keep), then remove it",
						name, src.OutboxStopped, name)
				}
				if src.Kind == store.KindPgOutbox {
					outbox, unapplied, err = outboxUnapplied(ctx, st, src, timeout)
					switch {
					case err != nil && !drop:
						return fmt.Errorf("remove source %s: cannot count the rows of its outbox not applied yet: %w\n"+
							"(pass --drop-unapplied to remove it anyway; its rows stay in the table)", name, err)
					case err != nil:
						fmt.Fprintf(a.stderr, "warning: cannot count the unapplied rows of its outbox: %v\n", err)
					case unapplied > 0 && !drop:
						return fmt.Errorf("remove source %s: %d events in its outbox table %s are not applied yet; "+
							"let the nodes apply them first (bam status), or pass --drop-unapplied to remove it anyway (they stay in the table, unread)",
							name, unapplied, src.Table)
					}
					if outbox != nil {
						defer outbox.Close()
					}
				}
				removed, err := st.RemoveSource(ctx, name, store.RemoveOptions{DropUnapplied: drop})
				switch {
				case errors.Is(err, store.ErrNotFound):
					return noSource(name)
				case errors.Is(err, store.ErrUnapplied):
					return fmt.Errorf("%w; let the nodes apply them first (bam status), or pass --drop-unapplied to delete them", err)
				case errors.Is(err, store.ErrNotClaimable):
					return fmt.Errorf("%w (disable it first: bam source disable %s)", err, name)
				case err != nil:
					return err
				}
				detail := ""
				if removed.Dropped > 0 {
					detail = fmt.Sprintf("dropped %d unapplied event%s", removed.Dropped, plural(int(removed.Dropped)))
				}
				a.audit(ctx, st, ops.Who(), "source remove", name, detail)
				fmt.Fprintf(a.stdout, "removed source %s\n", name)
				switch {
				case src.Kind == store.KindBuffer && removed.Dropped > 0:
					fmt.Fprintf(a.stdout, "dropped %d unapplied event%s from its buffer\n", removed.Dropped, plural(int(removed.Dropped)))
				case src.Kind == store.KindPgOutbox && unapplied > 0:
					fmt.Fprintf(a.stdout, "left %d unapplied event%s in outbox table %s, unread\n", unapplied, plural(int(unapplied)), src.Table)
				}
				if outbox != nil {
					if err := trimRemoved(ctx, outbox, removed, timeout); err != nil {
						fmt.Fprintf(a.stderr, "warning: the applied rows were not trimmed from the outbox: %v\n", err)
					}
					if err := releaseClaim(ctx, st, outbox, timeout); err != nil {
						fmt.Fprintf(a.stderr, "warning: this store's claim on the outbox table was not released: %v\n", err)
					}
				}
				if src.Kind == store.KindPgOutbox && !removed.Source.Outbox.IsZero() {
					fmt.Fprintf(a.stdout, "its checkpoints are kept: a source added on %s again with %d partition%s resumes from them\n",
						removed.Source.Outbox.Table, src.Partitions, plural(src.Partitions))
				}
				return nil
			})
		}),
	}
	cmd.Flags().BoolVar(&drop, "drop-unapplied", false, "remove it even though events are not applied yet (buffer: delete them)")
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Second, "pg-outbox: how long to try to reach its database")
	return cmd
}

// withSource runs fn on the store and the source named name, read from it
// (withStore); a source the store does not know is said as noSource.
func (a *app) withSource(ctx context.Context, name string, fn func(store.Store, store.Source) error) error {
	return a.withStore(ctx, func(st store.Store) error {
		src, err := st.Source(ctx, name)
		if errors.Is(err, store.ErrNotFound) {
			return noSource(name, sourceNames(ctx, st)...)
		}
		if err != nil {
			return err
		}
		return fn(st, src)
	})
}

// outboxUnapplied opens a pg-outbox source's reader and counts the rows of
// its outbox after the sessions' checkpoints.
func outboxUnapplied(ctx context.Context, st store.Store, src store.Source, timeout time.Duration) (*pgoutbox.Reader, int64, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	r, err := pgoutbox.OpenSource(ctx, src)
	if err != nil {
		return nil, 0, err
	}
	sessions, err := st.Sessions(ctx)
	if err != nil {
		_ = r.Close()
		return nil, 0, err
	}
	var n int64
	for _, se := range sessions {
		if se.Source != src.Name {
			continue
		}
		b, err := r.Backlog(ctx, se.Partition, se.Checkpoint)
		if err != nil {
			_ = r.Close()
			return nil, 0, err
		}
		n += b
	}
	return r, n, nil
}

// trimRemoved deletes the rows a removed pg-outbox source applied. Its
// checkpoints were read in the transaction that removed it, after which
// nothing more could be applied: every row at or before them was.
func trimRemoved(ctx context.Context, r *pgoutbox.Reader, removed store.Removal, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for p, cp := range removed.Checkpoints {
		if cp == (store.Position{}) {
			continue
		}
		if err := r.Trim(ctx, p, cp); err != nil {
			return err
		}
	}
	return nil
}

// releaseClaim lets another store read a removed source's outbox table.
func releaseClaim(ctx context.Context, st store.Store, r *pgoutbox.Reader, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	id, err := st.StoreID(ctx)
	if err != nil {
		return err
	}
	return r.Release(ctx, id)
}

func (a *app) sourceRepartitionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "repartition NAME N",
		Short: "Change a source's number of partitions, keeping every event applied once",
		Long: `repartition changes how many partitions (sessions) a source has, in one store
transaction that also fences every session of the source: a batch read under
the old partitioning cannot commit. The nodes pick the new sessions up at once.

buffer     the applied events are deleted and the others filed under their new
           partition; the new sessions start at the beginning.
pg-outbox  the rows stay where the application wrote them: the new sessions
           start at the earliest old checkpoint, and rows at or before their old
           partition's checkpoint (applied already) are skipped. Another
           repartition is refused until every session is past the latest old
           checkpoint.

Writers pick the partition by the count they read: restart the ones that keep
it (applications using eventstream.Buffered) so that one instance's events
are not split between two partitions.`,
		Args: exactArgs("NAME", "N"),
		RunE: a.body(func(cmd *cobra.Command, args []string) error {
			name := args[0]
			n, err := strconv.Atoi(args[1])
			if err != nil || n < 1 || n > ops.MaxPartitions {
				return usageErrorf("N %q: use 1 to %d", args[1], ops.MaxPartitions)
			}
			ctx := cmd.Context()
			return a.withStore(ctx, func(st store.Store) error {
				got, err := st.Repartition(ctx, name, n)
				if errors.Is(err, store.ErrNotFound) {
					return noSource(name)
				}
				if err != nil {
					return err
				}
				a.audit(ctx, st, ops.Who(), "source repartition", name, fmt.Sprintf("%d → %d partitions", got.From, got.To))
				fmt.Fprintf(a.stdout, "source %s: %d → %d partition%s\n", name, got.From, got.To, plural(got.To))
				if got.Deleted > 0 || got.Moved > 0 {
					fmt.Fprintf(a.stdout, "buffer: %d applied event%s deleted, %d waiting event%s filed under their new partition\n",
						got.Deleted, plural(int(got.Deleted)), got.Moved, plural(int(got.Moved)))
				}
				if f := got.Floor; f != nil {
					m := f.Max()
					fmt.Fprintf(a.stdout, "outbox rows at or before the checkpoint of their old partition (up to %d/%d) are skipped: they were applied\n", m.Major, m.Minor)
				}
				return nil
			})
		}),
	}
}

func (a *app) sourceResetCheckpointCommand() *cobra.Command {
	var (
		toHorizon, toStart, keep bool
		timeout                  time.Duration
	)
	cmd := &cobra.Command{
		Use:   "reset-checkpoint NAME (--to-horizon | --to-start | --keep)",
		Short: "Choose where a pg-outbox source reads from after its server changed",
		Long: `A pg-outbox source's checkpoints are transaction ids of the application's
server. When that server is restored from a backup, a replica is promoted, or
the database is dumped and restored elsewhere, they no longer say what was
applied, and the source's sessions stop reading and trimming (bam status
shows why). After looking at the outbox, choose:

  --to-horizon  skip every row committed now: they are taken as applied (the
                rows a restore brought back were; rows written since the
                restore are not applied, and are counted here)
  --to-start    read every row now in the table: those applied before the
                restore are applied again (they are counted here)
  --keep        keep the checkpoints, and record the server as the source's:
                only when the server is the same history (a planned
                switchover to a synchronous replica); refused when its
                transaction ids are behind a checkpoint

It records the server it reaches as the source's, and sets every session's
checkpoint in one store transaction that also raises their epochs: a batch
read before it cannot commit after it.`,
		Args: exactArgs("NAME"),
		RunE: a.body(func(cmd *cobra.Command, args []string) error {
			name := args[0]
			chosen := 0
			for _, b := range []bool{toHorizon, toStart, keep} {
				if b {
					chosen++
				}
			}
			if chosen != 1 {
				return usageErrorf("choose one of --to-horizon, --to-start and --keep (see --help)")
			}
			ctx := cmd.Context()
			return a.withSource(ctx, name, func(st store.Store, src store.Source) error {
				if src.Kind != store.KindPgOutbox {
					return fmt.Errorf("source %s is a %s source: its positions are the store's own; reset-checkpoint is for pg-outbox sources", name, src.Kind)
				}
				octx, cancel := context.WithTimeout(ctx, timeout)
				defer cancel()
				// Opened as if nothing were recorded and without the floor:
				// the point is to look at the server as it is.
				look := src
				look.Outbox, look.Floor, look.OutboxStopped = store.OutboxIdentity{}, nil, ""
				r, err := pgoutbox.OpenSource(octx, look)
				if err != nil {
					return err
				}
				defer r.Close()
				horizon, err := r.Horizon(octx)
				if err != nil {
					return err
				}
				sessions, err := st.Sessions(ctx)
				if err != nil {
					return err
				}
				var old []store.Position
				for _, se := range sessions {
					if se.Source == name {
						old = append(old, se.Checkpoint)
					}
				}
				to := make([]store.Position, len(old))
				for p, cp := range old {
					switch {
					case toHorizon:
						to[p] = store.HorizonPosition(horizon)
					case toStart:
						to[p] = store.Position{}
					case keep:
						if cp.Major >= horizon {
							return fmt.Errorf("source %s: partition %d's checkpoint %d/%d is not below the server's horizon %d: "+
								"its transaction ids went back, and keeping the checkpoint would skip and trim new rows; choose --to-horizon or --to-start",
								name, p, cp.Major, cp.Minor, horizon)
						}
						to[p] = cp
					}
				}
				// Count what the choice skips or reads, per partition.
				var skipped, read int64
				for p := range to {
					all, err := r.Backlog(octx, p, store.Position{})
					if err != nil {
						return err
					}
					after, err := r.Backlog(octx, p, to[p])
					if err != nil {
						return err
					}
					skipped += all - after
					read += after
				}
				found := r.Identity()
				if _, err := st.ResetCheckpoints(ctx, name, store.CheckpointReset{To: to, Expect: old, Outbox: found}); err != nil {
					return err
				}
				a.audit(ctx, st, ops.Who(), "source reset-checkpoint", name, fmt.Sprintf("now reads %s; %d row%s to read, %d skipped", found, read, plural(int(read)), skipped))
				if d := src.Outbox.Diff(found); d != "" && !src.Outbox.IsZero() {
					fmt.Fprintf(a.stdout, "source %s: %s\n", name, d)
				}
				fmt.Fprintf(a.stdout, "source %s now reads %s\n", name, found)
				for p := range to {
					fmt.Fprintf(a.stdout, "  partition %d: %d/%d → %d/%d\n", p, old[p].Major, old[p].Minor, to[p].Major, to[p].Minor)
				}
				fmt.Fprintf(a.stdout, "%d row%s now in the outbox will be read; %d at or before the new checkpoints will not (they are trimmed with the next batch)\n",
					read, plural(int(read)), skipped)
				return nil
			})
		}),
	}
	f := cmd.Flags()
	f.BoolVar(&toHorizon, "to-horizon", false, "skip every row committed now")
	f.BoolVar(&toStart, "to-start", false, "read every row now in the table")
	f.BoolVar(&keep, "keep", false, "keep the checkpoints; record the server as the source's")
	f.DurationVar(&timeout, "timeout", 30*time.Second, "give up after this long")
	return cmd
}

// outboxInsert is the statement an application runs in its own
// transactions to write an event to an outbox table.
func outboxInsert(table string) string {
	id, err := pgoutbox.ParseTable(table)
	if err != nil {
		return ""
	}
	return "INSERT INTO " + id.Sanitize() + " (instance_id, event) VALUES ($1, $2);"
}

func (a *app) printOutboxUsage(table string) {
	fmt.Fprintf(a.stdout, `Applications write one event per row, in their own business transaction:

  %s

  $1  the event's instance id (it picks the partition)
  $2  the event as JSON: {"activity": "PurchaseOrder", "instance": "PO-1042", "kind": "begin", "data": {"Amount": 1200}}
`, outboxInsert(table))
}

func (a *app) sourceInstallOutboxCommand() *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "install-outbox NAME",
		Short: "Create a pg-outbox source's table in the application's database",
		Long: `install-outbox connects to a pg-outbox source's database (its --dsn) and
creates the outbox table, its index and its notify trigger, in one
transaction. It is idempotent. To let a DBA apply it instead, print the SQL
with bam source outbox-sql.`,
		Args: exactArgs("NAME"),
		RunE: a.body(func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			return a.withStore(ctx, func(st store.Store) error {
				src, err := st.Source(ctx, args[0])
				if errors.Is(err, store.ErrNotFound) {
					return noSource(args[0])
				}
				if err != nil {
					return fmt.Errorf("read source %q: %w", args[0], err)
				}
				if src.Kind != store.KindPgOutbox {
					return fmt.Errorf("source %s is a %s source; install-outbox is for pg-outbox sources", src.Name, src.Kind)
				}
				if err := installOutbox(ctx, src, timeout); err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "installed outbox table %s in %s\n\n", src.Table, redactDSN(src.DSN))
				a.printOutboxUsage(src.Table)
				return nil
			})
		}),
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "give up after this long")
	return cmd
}

func installOutbox(ctx context.Context, src store.Source, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cfg, err := pgx.ParseConfig(src.DSN)
	if err != nil {
		return fmt.Errorf("source %s: its DSN is not a valid PostgreSQL URL or key=value string (not shown: it may hold a password)", src.Name)
	}
	where := fmt.Sprintf("%s:%d/%s", cfg.Host, cfg.Port, cfg.Database)
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("connect to source %s's database %s: %s", src.Name, where, maskPassword(err.Error(), cfg.Password))
	}
	defer conn.Close(context.Background())
	if err := pgoutbox.Install(ctx, conn, src.Table); err != nil {
		return fmt.Errorf("source %s, database %s: %s", src.Name, where, maskPassword(err.Error(), cfg.Password))
	}
	return nil
}

// maskPassword hides a password a driver's message might quote.
func maskPassword(msg, password string) string {
	if password == "" {
		return msg
	}
	return strings.ReplaceAll(msg, password, "xxxxx")
}

func (a *app) sourceOutboxSQLCommand() *cobra.Command {
	var table string
	cmd := &cobra.Command{
		Use:   "outbox-sql",
		Short: "Print the SQL that creates a pg-outbox table, for a DBA to apply",
		Long: `outbox-sql prints the DDL that bam source install-outbox runs: the outbox
table, its (xid, id) index and its notify trigger, in one transaction. It is
idempotent and needs PostgreSQL 14 or newer. Apply it with psql, e.g.
  bam source outbox-sql --table app.bam_outbox | psql "$APP_DATABASE_URL"`,
		Args: noArgs,
		RunE: a.body(func(cmd *cobra.Command, _ []string) error {
			if _, err := pgoutbox.ParseTable(table); err != nil {
				return &usageError{err}
			}
			fmt.Fprint(a.stdout, pgoutbox.InstallSQL(table))
			fmt.Fprintf(a.stdout, "-- Applications then write events with:\n--   %s\n", outboxInsert(table))
			return nil
		}),
	}
	cmd.Flags().StringVar(&table, "table", pgoutbox.DefaultTable, "the outbox table, name or schema.name")
	return cmd
}
