package main

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/store"
)

func (a *app) instanceCommand() *cobra.Command {
	return group("instance", "Show activity instances",
		a.instanceGetCommand(),
		a.instanceListCommand(),
	)
}

// instanceJSON is an instance in --json output. The field names are stable
// (the HTTP API answers the same shape).
type instanceJSON = store.InstanceJSON

func toInstanceJSON(in store.Instance) instanceJSON { return in.JSON() }

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
			st, err := a.openStore(ctx)
			if err != nil {
				return err
			}
			defer st.Close()
			in, err := st.Instance(ctx, event.Key{Activity: args[0], Instance: args[1]})
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("no instance %q of activity %s", args[1], args[0])
			}
			if err != nil {
				return fmt.Errorf("read instance %q of activity %s: %w", args[1], args[0], err)
			}
			if asJSON {
				return printJSON(a.stdout, toInstanceJSON(in))
			}
			return printInstances(a, []store.Instance{in})
		}),
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (a *app) instanceListCommand() *cobra.Command {
	var (
		asJSON bool
		state  string
		limit  int
		after  string
	)
	cmd := &cobra.Command{
		Use:   "list ACTIVITY",
		Short: "List the instances of an activity, by instance id",
		Example: `  bam instance list PurchaseOrder --state active
  bam instance list PurchaseOrder --after PO-0100 --limit 50`,
		Args: exactArgs("ACTIVITY"),
		RunE: a.body(func(cmd *cobra.Command, args []string) error {
			switch store.InstanceState(state) {
			case "", store.StatePending, store.StateActive, store.StateCompleted:
			default:
				return usageErrorf("--state %q: use pending, active or completed", state)
			}
			if limit < 0 {
				return usageErrorf("--limit must be 0 (no limit) or more")
			}
			ctx := cmd.Context()
			st, err := a.openStore(ctx)
			if err != nil {
				return err
			}
			defer st.Close()
			list, err := st.Instances(ctx, store.InstanceFilter{Activity: args[0], State: store.InstanceState(state), After: after, Limit: limit})
			if err != nil {
				return fmt.Errorf("list instances of activity %s: %w", args[0], err)
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
		}),
	}
	f := cmd.Flags()
	f.BoolVar(&asJSON, "json", false, "print JSON")
	f.StringVar(&state, "state", "", "only instances in this state: pending, active or completed")
	f.IntVar(&limit, "limit", 100, "at most this many (0: no limit)")
	f.StringVar(&after, "after", "", "only instance ids after this one (the next page)")
	return cmd
}
