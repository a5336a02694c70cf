package main

// bam activity: the deployed activities, their views and online windows
// (internal/store/definitions.go).

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/bam-dev/bam/internal/definition"
	"github.com/bam-dev/bam/internal/ops"
	"github.com/bam-dev/bam/internal/store"
)

func (a *app) activityCommand() *cobra.Command {
	return group("activity", "Show and manage deployed activities, their views and online windows",
		a.activityListCommand(),
		a.activityShowCommand(),
		a.activityRemoveCommand(),
		a.activityWindowCommand(),
		a.activityPurgeCommand(),
	)
}

func (a *app) activityListCommand() *cobra.Command {
	var asJSON, counts bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the deployed activities",
		Long: `list shows the deployed activities: their items, indexed items, the version
that last changed them, their online window and their views. --counts adds
their instances by state, which reads an index entry per instance (seconds at
tens of millions). Activities that have instances but no deployed definition
(their items kept untyped) are listed after them.`,
		Args: noArgs,
		RunE: a.body(func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			return a.withStore(ctx, func(st store.Store) error {
				acts, untyped, version, err := ops.Activities(ctx, st)
				if err != nil {
					return err
				}
				out := make([]ops.ActivityJSON, 0, len(acts))
				for _, d := range acts {
					j := ops.ToActivityJSON(d)
					if counts {
						if j.Instances, err = ops.CountInstances(ctx, st, d.Name); err != nil {
							return err
						}
					}
					out = append(out, j)
				}
				if asJSON {
					for _, name := range untyped {
						j := ops.UntypedActivityJSON(name)
						if counts {
							if j.Instances, err = ops.CountInstances(ctx, st, name); err != nil {
								return err
							}
						}
						out = append(out, j)
					}
					return printJSON(a.stdout, out)
				}
				printUntyped := func() {
					if len(untyped) > 0 {
						fmt.Fprintf(a.stdout, "\nwith instances but no deployed definition (items kept untyped; bam deploy adds one): %s\n", strings.Join(untyped, ", "))
					}
				}
				if len(acts) == 0 {
					fmt.Fprintln(a.stdout, "no activities deployed; deploy a definition file with bam deploy FILE")
					printUntyped()
					return nil
				}
				headers := []string{"NAME", "ITEMS", "INDEXED", "VERSION", "WINDOW", "VIEWS"}
				if counts {
					headers = append(headers, "ACTIVE", "COMPLETED", "PENDING")
				}
				t := newTable(a.stdout, headers...)
				for i, d := range acts {
					var indexed []string
					for _, it := range store.Indexed(d.Activity) {
						indexed = append(indexed, it.Name)
					}
					row := []string{d.Name, strconv.Itoa(len(d.Items)), cmpOr(strings.Join(indexed, ","), "-"),
						strconv.FormatInt(d.Version, 10), d.Window.String(), strings.ToLower(d.Name) + "_*"}
					if counts {
						n := out[i].Instances
						row = append(row, strconv.FormatInt(n["active"], 10), strconv.FormatInt(n["completed"], 10), strconv.FormatInt(n["pending"], 10))
					}
					t.row(row...)
				}
				if err := t.flush(); err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "definitions at version %d\n", version)
				printUntyped()
				return nil
			})
		}),
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().BoolVar(&counts, "counts", false, "count each activity's instances by state (reads every instance's index entry)")
	return cmd
}

func (a *app) activityShowCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:     "show NAME",
		Short:   "Show a deployed activity: its items and their columns, views, window and instances",
		Example: "  bam activity show PurchaseOrder",
		Args:    exactArgs("NAME"),
		RunE: a.body(func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			return a.withStore(ctx, func(st store.Store) error {
				d, err := deployedActivity(ctx, st, args[0])
				if err != nil {
					return err
				}
				out := ops.ToActivityJSON(d)
				if out.Instances, err = ops.CountInstances(ctx, st, d.Name); err != nil {
					return err
				}
				if asJSON {
					return printJSON(a.stdout, out)
				}
				fmt.Fprintf(a.stdout, "activity %s (changed by version %d)\n", d.Name, d.Version)
				t := newTable(a.stdout, "  ITEM", "TYPE", "INDEX", "COLUMN")
				for _, it := range out.Items {
					index := "-"
					if it.Index {
						index = "yes"
					}
					t.row("  "+it.Name, it.Describe, index, it.Column)
				}
				if err := t.flush(); err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "views: %s\n", strings.Join(out.Views, ", "))
				for _, g := range d.Aggregations {
					fmt.Fprintf(a.stdout, "aggregation %s: %s (bam aggregate %s %s)\n", g.Name, describeAggregation(g), d.Name, g.Name)
				}
				fmt.Fprintf(a.stdout, "window: %s\n", d.Window)
				fmt.Fprintf(a.stdout, "instances: %d active, %d completed, %d pending (online)\n",
					out.Instances["active"], out.Instances["completed"], out.Instances["pending"])
				return nil
			})
		}),
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// deployedActivity reads one deployed activity, named in any case.
func deployedActivity(ctx context.Context, st store.Store, name string) (store.DeployedActivity, error) {
	d, err := ops.DeployedActivity(ctx, st, name)
	if errors.Is(err, ops.ErrNotDeployed) {
		return store.DeployedActivity{}, noActivity(name)
	}
	return d, err
}

// noActivity is the error for an activity that is not deployed.
func noActivity(name string) error {
	return fmt.Errorf("no activity %q is deployed (see bam activity list)", name)
}

func (a *app) activityRemoveCommand() *cobra.Command {
	var (
		dropData bool
		by       string
	)
	cmd := &cobra.Command{
		Use:   "remove NAME [--drop-data]",
		Short: "Remove a deployed activity, its views and indexes",
		Long: `remove removes an activity's definition, its views and its indexes, recorded as
a deployment. It is refused while instances of the activity remain (archived
ones too), unless --drop-data, which deletes them in the same transaction.`,
		Example: "  bam activity remove Shipment\n  bam activity remove Shipment --drop-data",
		Args:    exactArgs("NAME"),
		RunE: a.body(func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			return a.withStore(ctx, func(st store.Store) error {
				dep, err := st.RemoveActivity(ctx, args[0], cmpOr(by, defaultBy()), dropData)
				switch {
				case errors.Is(err, store.ErrNotFound):
					return noActivity(args[0])
				case errors.Is(err, store.ErrInstancesExist):
					return fmt.Errorf("%w; to delete them with it: bam activity remove %s --drop-data", err, args[0])
				case err != nil:
					return fmt.Errorf("remove activity %s: %w", args[0], err)
				}
				for _, c := range dep.Changes {
					fmt.Fprintln(a.stdout, c)
				}
				fmt.Fprintf(a.stdout, "deployed version %d by %s\n", dep.Version, dep.By)
				return nil
			})
		}),
	}
	cmd.Flags().BoolVar(&dropData, "drop-data", false, "delete the activity's instances too, online and archived")
	cmd.Flags().StringVar(&by, "by", "", "who removes it, recorded with the deployment (default: user@host)")
	return cmd
}

func (a *app) activityWindowCommand() *cobra.Command {
	var (
		keep    time.Duration
		archive bool
		by      string
	)
	cmd := &cobra.Command{
		Use:   "window NAME --keep DURATION [--archive]",
		Short: "Set how long completed instances stay online",
		Long: `window sets the online window of an activity's completed instances: once their
end time is older than --keep by the store's clock, bam serve (every minute)
or bam activity purge deletes them, or with --archive moves them to
bam_instances_archive, read through the <name>_archive view. --keep 0 keeps
them for ever.`,
		Example: "  bam activity window PurchaseOrder --keep 720h --archive\n  bam activity window PurchaseOrder --keep 0",
		Args:    exactArgs("NAME"),
		RunE: a.body(func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed("keep") {
				return usageErrorf("%s needs --keep (for example --keep 720h; 0 keeps completed instances for ever)", cmd.CommandPath())
			}
			if keep < 0 {
				return usageErrorf("--keep %s: use 0 (for ever) or a positive duration", keep)
			}
			if keep > 0 && keep < time.Minute {
				return usageErrorf("--keep %s: use at least 1m", keep)
			}
			if keep == 0 && archive {
				return usageErrorf("--archive needs a --keep window: nothing is archived while instances are kept for ever")
			}
			ctx := cmd.Context()
			return a.withStore(ctx, func(st store.Store) error {
				dep, err := st.SetWindow(ctx, args[0], store.Window{Keep: keep, Archive: archive}, cmpOr(by, defaultBy()))
				if errors.Is(err, store.ErrNotFound) {
					return noActivity(args[0])
				}
				if err != nil {
					return fmt.Errorf("set the window of %s: %w", args[0], err)
				}
				fmt.Fprintf(a.stdout, "%s (version %d)\n", dep.Changes[0], dep.Version)
				if archive {
					fmt.Fprintf(a.stdout, "archived instances: view %s%s\n", strings.ToLower(args[0]), store.ArchiveSuffix)
				}
				return nil
			})
		}),
	}
	cmd.Flags().DurationVar(&keep, "keep", 0, "how long completed instances stay online after their end (0: for ever)")
	cmd.Flags().BoolVar(&archive, "archive", false, "move them to the archive instead of deleting them")
	cmd.Flags().StringVar(&by, "by", "", "who sets it, recorded with the deployment (default: user@host)")
	return cmd
}

func (a *app) activityPurgeCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "purge NAME",
		Short:   "Purge the completed instances past the activity's window now",
		Example: "  bam activity purge PurchaseOrder",
		Args:    exactArgs("NAME"),
		RunE: a.body(func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			return a.withStore(ctx, func(st store.Store) error {
				d, err := deployedActivity(ctx, st, args[0])
				if err != nil {
					return err
				}
				if d.Window.Keep <= 0 {
					fmt.Fprintf(a.stdout, "%s keeps its completed instances for ever: nothing to purge (set a window with bam activity window)\n", d.Name)
					return nil
				}
				n, err := st.PurgeCompleted(ctx, d.Name)
				if err != nil {
					return fmt.Errorf("purge %s (%d purged before the error): %w", d.Name, n, err)
				}
				how := "deleted"
				if d.Window.Archive {
					how = "moved to " + strings.ToLower(d.Name) + store.ArchiveSuffix
				}
				fmt.Fprintf(a.stdout, "purged %d completed instance%s of %s ended more than %s ago: %s\n", n, plural(int(n)), d.Name, d.Window.Keep, how)
				return nil
			})
		}),
	}
}

// describeAggregation says in one line what an aggregation counts: "by
// Customer, Received (month); orders = count, total = sum(Amount)".
func describeAggregation(g definition.Aggregation) string {
	var dims, measures []string
	for _, d := range g.Dimensions {
		switch {
		case len(d.Progress) > 0:
			dims = append(dims, d.Column()+" (progress: "+strings.Join(d.Progress, ", ")+")")
		case d.Bucket != "":
			dims = append(dims, d.Item+" ("+string(d.Bucket)+")")
		case len(d.Ranges) > 0:
			dims = append(dims, d.Item+" (ranges)")
		default:
			dims = append(dims, d.Item)
		}
	}
	for _, m := range g.Measures {
		of := m.Item
		if m.Duration() {
			of = m.From + " → " + m.To
		}
		measures = append(measures, fmt.Sprintf("%s = %s(%s)", m.Name, m.Function, of))
	}
	out := "every instance"
	if len(dims) > 0 {
		out = "by " + strings.Join(dims, ", ")
	}
	if len(measures) > 0 {
		out += "; " + strings.Join(measures, ", ")
	}
	if g.Window != "" {
		out += "; completed within " + g.Window
	}
	return out
}
