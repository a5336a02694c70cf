package main

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/ops"
	"github.com/bam-dev/bam/internal/settings"
	"github.com/bam-dev/bam/internal/store"
)

func (a *app) instanceCommand() *cobra.Command {
	return group("instance", "Show activity instances",
		a.instanceGetCommand(),
		a.instanceListCommand(),
		a.instanceContinuationCommand(),
	)
}

// instanceJSON is an instance in --json output. The field names are stable
// (the HTTP API answers the same shape).
type instanceJSON = store.InstanceJSON

func toInstanceJSON(in store.Instance) instanceJSON { return in.JSON() }

// enabledBy says which segment enabled a continuation; "-" while its
// enable has not arrived.
func enabledBy(c store.Continuation) string {
	switch {
	case c.ParentToken != "":
		return "continuation " + c.ParentToken
	case c.ParentInstance != "":
		return "instance " + c.ParentInstance
	}
	return "-"
}

// printVocabulary prints an instance's continuations, related instances and
// references, each as a table under a title; nothing for what it has none of.
func printVocabulary(a *app, in store.Instance) error {
	if len(in.Continuations) > 0 {
		fmt.Fprintln(a.stdout, "\nContinuations:")
		t := newTable(a.stdout, "TOKEN", "ENABLED BY", "ENABLED AT", "ENDED AT", "EVENTS", "OPEN")
		for _, c := range in.Continuations {
			t.row(c.Token, enabledBy(c), formatTime(c.EnabledAt), formatTime(c.EndedAt),
				strconv.FormatInt(c.Events, 10), strconv.FormatBool(c.Open()))
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	if len(in.Related) > 0 {
		fmt.Fprintln(a.stdout, "\nRelated:")
		t := newTable(a.stdout, "ACTIVITY", "INSTANCE")
		for _, k := range in.Related {
			t.row(k.Activity, k.Instance)
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	if len(in.References) > 0 {
		fmt.Fprintln(a.stdout, "\nReferences:")
		t := newTable(a.stdout, "TYPE", "NAME", "VALUE", "TIME", "DATA")
		for _, r := range in.References {
			data := "-"
			if r.Data != "" {
				data = fmt.Sprintf("%d bytes (--json shows it)", len(r.Data))
			}
			t.row(r.Type, r.Name, r.Value, formatTime(&r.Time), data)
		}
		return t.flush()
	}
	return nil
}

// printInstances prints instances as an aligned table.
func printInstances(a *app, list []store.Instance) error {
	t := newTable(a.stdout, "ID", "STATE", "BEGIN", "END", "LAST MODIFIED", "EVENTS", "DATA")
	for _, in := range list {
		t.row(in.ID, string(in.State), formatTime(in.Begin), formatTime(in.End), formatTime(&in.LastModified),
			strconv.FormatInt(in.Events, 10), cmpOr(formatData(in.Data), "-"))
	}
	return t.flush()
}

func (a *app) instanceGetCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:     "get ACTIVITY ID",
		Short:   "Show one activity instance",
		Example: "  bam instance get PurchaseOrder PO-1042",
		Args:    exactArgs("ACTIVITY", "ID"),
		RunE: a.body(func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			return a.withStore(ctx, func(st store.Store) error {
				in, err := st.Instance(ctx, event.Key{Activity: args[0], Instance: args[1]})
				if errors.Is(err, store.ErrNotFound) {
					if err := store.CheckActivity(ctx, st, args[0]); err != nil {
						return err
					}
					return fmt.Errorf("no instance %q of activity %s", args[1], args[0])
				}
				if err != nil {
					return fmt.Errorf("read instance %q of activity %s: %w", args[1], args[0], err)
				}
				if asJSON {
					out, err := ops.InstanceDetail(ctx, st, in)
					if err != nil {
						return fmt.Errorf("read the definition of %s: %w", in.Activity, err)
					}
					return printJSON(a.stdout, out)
				}
				if err := printInstances(a, []store.Instance{in}); err != nil {
					return err
				}
				if in.ArchivedAt != nil {
					fmt.Fprintf(a.stdout, "\narchived at %s: out of its activity's online window, read from the archive\n", formatTime(in.ArchivedAt))
				}
				return printVocabulary(a, in)
			})
		}),
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (a *app) instanceContinuationCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "continuation ACTIVITY TOKEN",
		Short: "Show a continuation token: its instance, or that its events wait for their enable-continuation",
		Long: `Show a continuation token as the store keeps it. A token whose
enable-continuation has not been applied yet is not linked to an instance: its
events are kept aside (PENDING) and count in no instance until the enable
arrives. Such an orphan usually means the enabling application has not sent
its enable-continuation, or sent it under another activity or token.`,
		Example: "  bam instance continuation PurchaseOrder ship-PO-1042",
		Args:    exactArgs("ACTIVITY", "TOKEN"),
		RunE: a.body(func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			return a.withStore(ctx, func(st store.Store) error {
				c, err := st.Continuation(ctx, args[0], args[1])
				if errors.Is(err, store.ErrNotFound) {
					return fmt.Errorf("no continuation %q of activity %s: no event of the token or enabling it was applied", args[1], args[0])
				}
				if err != nil {
					return fmt.Errorf("read continuation %q of activity %s: %w", args[1], args[0], err)
				}
				if asJSON {
					return printJSON(a.stdout, c.JSON())
				}
				t := newTable(a.stdout, "TOKEN", "INSTANCE", "ENABLED BY", "ENABLED AT", "ENDED AT", "EVENTS", "PENDING")
				t.row(c.Token, cmpOr(c.Instance, "- (not linked)"), enabledBy(c), formatTime(c.EnabledAt), formatTime(c.EndedAt),
					strconv.FormatInt(c.Events, 10), strconv.FormatInt(c.Pending, 10))
				return t.flush()
			})
		}),
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// jsonOrFormat settles --json against --format: both typed (or both from
// the environment, or the file) ask for two output formats, a usage error
// naming both; otherwise the one given the stronger way wins (flag >
// BAM_ variable > config file), and the format to print is returned.
func (a *app) jsonOrFormat(format string) (string, error) {
	if format == "" || format == "json" {
		return "json", nil
	}
	rank := map[settings.Origin]int{settings.FromFlag: 0, settings.FromEnv: 1, settings.FromFile: 2}
	switch j, f := rank[a.origin("json")], rank[a.origin("format")]; {
	case j == f:
		return "", usageErrorf("--json and --format %s ask for two output formats: give one (--format json is --json)", format)
	case f < j:
		return format, nil
	}
	return "json", nil
}

func (a *app) instanceListCommand() *cobra.Command {
	var (
		asJSON bool
		state  string
		limit  int
		after  string
		query  searchFlags
	)
	cmd := &cobra.Command{
		Use:   "list ACTIVITY",
		Short: "List the instances of an activity: by instance id, or filtered and ordered (--where, --order)",
		Long: `List the instances of an activity, by instance id.

With --where, --order, --columns, --cursor, --format or --state all, the
list reads the activity's deployed views: --where filters in bam's filter
language, --order sorts, --columns picks the items shown, and each page
ends with the cursor of the next (docs/QUERY.md).`,
		Example: `  bam instance list PurchaseOrder --state active
  bam instance list PurchaseOrder --after PO-0100 --limit 50
  bam instance list PurchaseOrder --where "Customer = 'ACME' AND Amount > 1000" --order 'Amount DESC'
  bam instance list PurchaseOrder --where 'Received IN LAST 2h' --columns Customer,Amount --format csv`,
		Args: exactArgs("ACTIVITY"),
		RunE: a.body(func(cmd *cobra.Command, args []string) error {
			if limit < 0 {
				return usageErrorf("--limit must be 0 (no limit) or more")
			}
			if query.used(cmd) || state == "all" {
				if after != "" {
					return usageErrorf("--after pages the plain list; with --where, --order, --columns or --format, page with --cursor")
				}
				if asJSON {
					format, err := a.jsonOrFormat(query.format)
					if err != nil {
						return err
					}
					query.format = format
				}
				return a.searchInstances(cmd.Context(), args[0], state, limit, query)
			}
			switch store.InstanceState(state) {
			case "", store.StatePending, store.StateActive, store.StateCompleted:
			default:
				return usageErrorf("--state %q: use pending, active, completed or all", state)
			}
			ctx := cmd.Context()
			return a.withStore(ctx, func(st store.Store) error {
				list, err := st.Instances(ctx, store.InstanceFilter{Activity: args[0], State: store.InstanceState(state), After: after, Limit: limit})
				if err != nil {
					return fmt.Errorf("list instances of activity %s: %w", args[0], err)
				}
				if len(list) == 0 && after == "" {
					// Nothing: a misspelled name must not read as "no instances".
					if err := store.CheckActivity(ctx, st, args[0]); err != nil {
						return err
					}
				}
				if limit > 0 && len(list) == limit {
					fmt.Fprintf(a.stderr, "first %d shown; next page: --after %s\n", limit, list[len(list)-1].ID)
				}
				if asJSON {
					out := make([]instanceJSON, 0, len(list))
					for _, in := range list {
						out = append(out, toInstanceJSON(in))
					}
					return printJSON(a.stdout, out)
				}
				if len(list) == 0 {
					what := "instances"
					if state != "" {
						what = state + " instances"
					}
					fmt.Fprintf(a.stdout, "no %s of activity %s\n", what, args[0])
					return nil
				}
				return printInstances(a, list)
			})
		}),
	}
	f := cmd.Flags()
	f.BoolVar(&asJSON, "json", false, "print JSON")
	f.StringVar(&state, "state", "", "only instances in this state: pending, active, completed or all")
	f.IntVar(&limit, "limit", 100, "at most this many (0: no limit)")
	f.StringVar(&after, "after", "", "only instance ids after this one (the next page of the plain list)")
	query.register(f)
	return cmd
}
