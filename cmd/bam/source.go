package main

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"

	"github.com/bam-dev/bam/internal/source/pgoutbox"
	"github.com/bam-dev/bam/internal/store"
)

// Limits on a source's configuration.
const (
	maxSourceName = 64
	maxPartitions = 1024
)

var sourceName = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

func (a *app) sourceCommand() *cobra.Command {
	return group("source", "Configure the sources events are read from",
		a.sourceAddCommand(),
		a.sourceListCommand(),
		a.sourceEnableCommand(true),
		a.sourceEnableCommand(false),
		a.sourceRemoveCommand(),
		a.sourceInstallOutboxCommand(),
		a.sourceOutboxSQLCommand(),
	)
}

func checkSourceName(name string) error {
	if len(name) > maxSourceName || !sourceName.MatchString(name) {
		return usageErrorf("source name %q: use 1 to %d letters, digits, _ or -", name, maxSourceName)
	}
	return nil
}

func (a *app) sourceAddCommand() *cobra.Command {
	var (
		kind       string
		partitions int
		dsn, table string
		disabled   bool
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
              bam source install-outbox NAME (or bam source outbox-sql)`,
		Example: `  bam source add orders --kind buffer --partitions 4
  bam source add shop --kind pg-outbox --partitions 2 --dsn postgres://bam@db:5432/shop`,
		Args: exactArgs("NAME"),
		RunE: a.body(func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if err := checkSourceName(name); err != nil {
				return err
			}
			if partitions < 1 || partitions > maxPartitions {
				return usageErrorf("--partitions %d: use 1 to %d", partitions, maxPartitions)
			}
			src := store.Source{Name: name, Kind: store.SourceKind(kind), Partitions: partitions, Enabled: !disabled}
			switch src.Kind {
			case store.KindBuffer:
				if dsn != "" {
					return usageErrorf("--dsn is for pg-outbox sources; a buffer source lives in the store")
				}
				if cmd.Flags().Changed("table") {
					return usageErrorf("--table is for pg-outbox sources; a buffer source lives in the store")
				}
			case store.KindPgOutbox:
				if dsn == "" {
					return usageErrorf("a pg-outbox source needs --dsn, the application's database (postgres://USER@HOST:PORT/DB)")
				}
				if _, err := pgx.ParseConfig(dsn); err != nil {
					// pgx's message may quote the DSN: say nothing of its content.
					return usageErrorf("--dsn is not a valid PostgreSQL URL or key=value string (not shown: it may hold a password)")
				}
				if _, err := pgoutbox.ParseTable(table); err != nil {
					return &usageError{err}
				}
				src.DSN, src.Table = dsn, table
			default:
				return usageErrorf("--kind %q: use buffer or pg-outbox", kind)
			}
			ctx := cmd.Context()
			st, err := a.openStore(ctx)
			if err != nil {
				return err
			}
			defer st.Close()
			if err := st.AddSource(ctx, src); err != nil {
				if errors.Is(err, store.ErrExists) {
					return fmt.Errorf("source %q already exists (see bam source list)", name)
				}
				return fmt.Errorf("add source %q: %w", name, err)
			}
			state := "enabled"
			if disabled {
				state = "disabled"
			}
			fmt.Fprintf(a.stdout, "added source %s: %s, %d partition%s, %s\n", name, kind, partitions, plural(partitions), state)
			switch {
			case src.Kind == store.KindBuffer:
				fmt.Fprintf(a.stdout, "write events with: bam emit --source %s --file events.ndjson\n", name)
			case src.Kind == store.KindPgOutbox:
				fmt.Fprintf(a.stdout, "create its outbox table with: bam source install-outbox %s\n", name)
			}
			return nil
		}),
	}
	f := cmd.Flags()
	f.StringVar(&kind, "kind", "", "buffer or pg-outbox")
	f.IntVar(&partitions, "partitions", 0, fmt.Sprintf("number of partitions (sessions), 1 to %d", maxPartitions))
	f.StringVar(&dsn, "dsn", "", "pg-outbox: the application's database, postgres://USER@HOST:PORT/DB")
	f.StringVar(&table, "table", pgoutbox.DefaultTable, "pg-outbox: the outbox table, name or schema.name")
	f.BoolVar(&disabled, "disabled", false, "add it disabled: no node reads it until bam source enable")
	_ = cmd.MarkFlagRequired("kind")
	_ = cmd.MarkFlagRequired("partitions")
	return cmd
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// sourceJSON is a source in --json output.
type sourceJSON struct {
	Name       string `json:"name"`
	Kind       string `json:"kind"`
	Partitions int    `json:"partitions"`
	Enabled    bool   `json:"enabled"`
	DSN        string `json:"dsn,omitempty"`   // password masked
	Table      string `json:"table,omitempty"` // pg-outbox only
	CreatedAt  string `json:"created_at,omitempty"`
}

func (a *app) sourceListCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the sources",
		Args:  noArgs,
		RunE: a.body(func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			st, err := a.openStore(ctx)
			if err != nil {
				return err
			}
			defer st.Close()
			srcs, err := st.Sources(ctx)
			if err != nil {
				return fmt.Errorf("list sources: %w", err)
			}
			if asJSON {
				out := make([]sourceJSON, 0, len(srcs))
				for _, s := range srcs {
					j := sourceJSON{Name: s.Name, Kind: string(s.Kind), Partitions: s.Partitions, Enabled: s.Enabled,
						DSN: redactDSN(s.DSN), CreatedAt: deref(jsonTime(&s.CreatedAt))}
					if s.Kind == store.KindPgOutbox {
						j.Table = s.Table
					}
					out = append(out, j)
				}
				return printJSON(a.stdout, out)
			}
			if len(srcs) == 0 {
				fmt.Fprintln(a.stdout, "no sources; add one with: bam source add NAME --kind buffer --partitions 1")
				return nil
			}
			t := newTable(a.stdout, "NAME", "KIND", "PARTITIONS", "ENABLED", "DSN", "TABLE")
			for _, s := range srcs {
				dsn, tbl := "-", "-"
				if s.Kind == store.KindPgOutbox {
					dsn, tbl = redactDSN(s.DSN), s.Table
				}
				t.row(s.Name, string(s.Kind), strconv.Itoa(s.Partitions), yesNo(s.Enabled), dsn, tbl)
			}
			return t.flush()
		}),
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func (a *app) sourceEnableCommand(enable bool) *cobra.Command {
	use, short, done := "enable NAME", "Let nodes read a source again", "enabled"
	if !enable {
		use, short, done = "disable NAME", "Stop reading a source (its sessions stop after their batch)", "disabled"
	}
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  exactArgs("NAME"),
		RunE: a.body(func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			st, err := a.openStore(ctx)
			if err != nil {
				return err
			}
			defer st.Close()
			if err := st.SetSourceEnabled(ctx, args[0], enable); err != nil {
				if errors.Is(err, store.ErrNotFound) {
					return noSource(args[0])
				}
				return fmt.Errorf("%s source %q: %w", done, args[0], err)
			}
			fmt.Fprintf(a.stdout, "source %s %s\n", args[0], done)
			return nil
		}),
	}
}

func (a *app) sourceRemoveCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "remove NAME",
		Short: "Remove a source, its sessions and its buffered events",
		Long: `remove deletes a source, its sessions and the events still in its buffer.
While a node owns one of its sessions it is refused: disable the source first
(bam source disable NAME), so that the nodes stop reading it.`,
		Args: exactArgs("NAME"),
		RunE: a.body(func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			st, err := a.openStore(ctx)
			if err != nil {
				return err
			}
			defer st.Close()
			if err := st.RemoveSource(ctx, args[0]); err != nil {
				if errors.Is(err, store.ErrNotFound) {
					return noSource(args[0])
				}
				return fmt.Errorf("remove source %q: %w (disable it first: bam source disable %s)", args[0], err, args[0])
			}
			fmt.Fprintf(a.stdout, "removed source %s\n", args[0])
			return nil
		}),
	}
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
			st, err := a.openStore(ctx)
			if err != nil {
				return err
			}
			defer st.Close()
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
