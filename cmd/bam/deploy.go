package main

// bam deploy: deploy activity definitions from a file, after checking them
// and planning the changes to the store (internal/store/definitions.go).

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"strings"

	"github.com/spf13/cobra"

	"github.com/bam-dev/bam/internal/alert"
	"github.com/bam-dev/bam/internal/definition"
	"github.com/bam-dev/bam/internal/store"
)

// defaultBy is who deploys when --by is not given: user@host.
func defaultBy() string {
	name := "unknown"
	if u, err := user.Current(); err == nil && u.Username != "" {
		name = u.Username
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown"
	}
	return name + "@" + host
}

func (a *app) deployCommand() *cobra.Command {
	var (
		force, dryRun bool
		by            string
	)
	cmd := &cobra.Command{
		Use:   "deploy FILE",
		Short: "Deploy activity definitions: create or change activities, their views and indexes",
		Long: `deploy reads a definition file (YAML; docs/DEFINITIONS.md), checks it, and
deploys it in one transaction: it prints the plan, then the version deployed.

Adding activities and items, widening an item and adding or dropping an index
are always made. Removing, retyping or renaming an item that instances hold
may lose data: the deployment is refused, naming those changes, unless
--force. Such a change to an item that no instance holds is made without
--force. An activity absent from the file is left alone (bam activity remove
removes one). Every deployment is recorded: bam definition history.

Each activity gets views named after it in lower case: <name>_active,
<name>_completed and <name>_all, one column per item.`,
		Example: `  bam deploy examples/purchase-order/definitions.yaml
  bam deploy definitions.yaml --dry-run
  bam deploy definitions.yaml --force --by "alice (ticket 42)"`,
		Args: exactArgs("FILE"),
		RunE: a.body(func(cmd *cobra.Command, args []string) error {
			text, err := a.readInput(args[0])
			if err != nil {
				return fmt.Errorf("read definition file: %w", err)
			}
			f, err := definition.Parse(text)
			var defErr *definition.Error
			if errors.As(err, &defErr) {
				return a.definitionProblems(args[0], defErr)
			}
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			if err := alert.Check(f); err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			ctx := cmd.Context()
			return a.withStore(ctx, func(st store.Store) error {
				dep, err := st.Deploy(ctx, store.DeployRequest{File: f, Text: string(text), By: cmpOr(by, defaultBy()), Force: force, DryRun: dryRun})
				var refused *store.DeployRefusedError
				switch {
				case errors.As(err, &refused):
					printPlan(a.stdout, refused.Plan)
					return fmt.Errorf("deployment refused, nothing changed: %d change(s) would lose data that instances hold: %s; "+
						"deploy again with --force to make them (--dry-run --force shows what would be done)",
						len(refused.Blocking), strings.Join(store.ChangeLines(refused.Blocking), ", "))
				case errors.As(err, &defErr):
					return a.definitionProblems(args[0], defErr)
				case err != nil:
					return fmt.Errorf("deploy %s: %w", args[0], err)
				}
				plan := dep.Plan
				if len(plan) == 0 {
					fmt.Fprintf(a.stdout, "nothing to change: the store is at version %d\n", dep.Version)
					return nil
				}
				printPlan(a.stdout, plan)
				if dep.DryRun {
					fmt.Fprintf(a.stdout, "dry run: this would deploy version %d; nothing was written\n", dep.Version)
					return nil
				}
				forced := ""
				if dep.Forced {
					forced = ", forced"
				}
				fmt.Fprintf(a.stdout, "deployed version %d by %s at %s%s\n", dep.Version, dep.By, formatTime(&dep.At), forced)
				for _, act := range store.Changed(f, plan) {
					views := store.ViewNames(act.Name, false)
					for _, g := range act.Aggregations {
						views = append(views, definition.ViewName(act.Name, g.Name))
					}
					fmt.Fprintf(a.stdout, "views of %s: %s\n", act.Name, strings.Join(views, ", "))
				}
				added, err := alert.EnsureSession(ctx, st)
				if err != nil {
					return fmt.Errorf("deployed, but the alerts will not be evaluated: %w", err)
				}
				if added {
					fmt.Fprintf(a.stdout, "alerts: evaluated by the session %s/0, which one node of the pool (bam serve) runs\n", store.AlertsSource)
				}
				return nil
			})
		}),
	}
	fl := cmd.Flags()
	fl.BoolVar(&force, "force", false, "make changes that lose data instances hold (removing, retyping, renaming items)")
	fl.BoolVar(&dryRun, "dry-run", false, "print the plan and check it, write nothing")
	fl.StringVar(&by, "by", "", "who deploys, recorded with the deployment (default: user@host)")
	return cmd
}

// definitionProblems prints every problem of a definition file on its own
// line on stderr, and returns the summary.
func (a *app) definitionProblems(path string, e *definition.Error) error {
	for _, p := range e.Problems {
		fmt.Fprintf(a.stderr, "%s: %s\n", path, p)
	}
	return fmt.Errorf("%s: %d problem(s) in the definition, nothing deployed", path, len(e.Problems))
}

// printPlan prints a plan, one change a line; "!" marks a change that may
// lose data.
func printPlan(w io.Writer, plan []definition.Change) {
	fmt.Fprintf(w, "plan (%d change%s):\n", len(plan), plural(len(plan)))
	indexes := false
	for _, c := range plan {
		mark := " "
		if c.Destructive() {
			mark = "!"
		}
		indexes = indexes || c.Kind == definition.AddIndex
		fmt.Fprintf(w, "  %s %s\n", mark, c)
	}
	if indexes {
		fmt.Fprintln(w, "note: each index slows the writes of its activity's instances (docs/DEFINITIONS.md)")
	}
}
