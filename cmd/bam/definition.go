package main

// bam definition: export the deployed definitions and show their history
// (internal/store/definitions.go).

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/bam-dev/bam/internal/definition"
	"github.com/bam-dev/bam/internal/ops"
	"github.com/bam-dev/bam/internal/store"
)

func (a *app) definitionCommand() *cobra.Command {
	return group("definition", "Export the deployed definitions and show their history",
		a.definitionExportCommand(),
		a.definitionHistoryCommand(),
	)
}

func (a *app) definitionExportCommand() *cobra.Command {
	var activity string
	cmd := &cobra.Command{
		Use:   "export [--activity NAME]",
		Short: "Print the deployed definitions as a file bam deploy accepts",
		Long: `Print the deployed definitions as a file bam deploy accepts, headed by the
version it was exported from.

A webhook's query, which may hold a token, is shown as ?… (as bam alert list
shows it); bam deploy refuses a webhook so hidden until its whole URL is put
back.`,
		Example: `  bam definition export > definitions.yaml
  bam definition export --activity PurchaseOrder`,
		Args: noArgs,
		RunE: a.body(func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			return a.withStore(ctx, func(st store.Store) error {
				file, err := ops.Export(ctx, st, activity)
				if errors.Is(err, ops.ErrNotDeployed) {
					return noActivity(activity)
				}
				if err != nil {
					return err
				}
				_, err = a.stdout.Write(file)
				return err
			})
		}),
	}
	cmd.Flags().StringVar(&activity, "activity", "", "export this activity only")
	return cmd
}

func (a *app) definitionHistoryCommand() *cobra.Command {
	var (
		asJSON, files bool
		limit         int
	)
	cmd := &cobra.Command{
		Use:     "history",
		Short:   "List the deployments, newest first: version, when, who, what changed",
		Example: "  bam definition history --limit 5",
		Args:    noArgs,
		RunE: a.body(func(cmd *cobra.Command, _ []string) error {
			if limit < 0 {
				return usageErrorf("--limit must be 0 (no limit) or more")
			}
			ctx := cmd.Context()
			return a.withStore(ctx, func(st store.Store) error {
				deps, err := st.Deployments(ctx, limit)
				if err != nil {
					return fmt.Errorf("list deployments: %w", err)
				}
				if asJSON {
					out := make([]ops.DeploymentJSON, 0, len(deps))
					for _, d := range deps {
						out = append(out, ops.ToDeploymentJSON(d, files))
					}
					return printJSON(a.stdout, out)
				}
				if len(deps) == 0 {
					fmt.Fprintln(a.stdout, "no deployments yet")
					return nil
				}
				for _, d := range deps {
					forced := ""
					if d.Forced {
						forced = "  forced"
					}
					fmt.Fprintf(a.stdout, "version %d  %s  %s%s\n", d.Version, formatTime(&d.At), d.By, forced)
					for _, c := range d.Changes {
						fmt.Fprintf(a.stdout, "    %s\n", c)
					}
					if files && d.Text != "" {
						fmt.Fprintf(a.stdout, "    file:\n%s\n", indent(definition.RedactedText(d.Text), "      "))
					}
				}
				return nil
			})
		}),
	}
	f := cmd.Flags()
	f.BoolVar(&asJSON, "json", false, "print JSON")
	f.BoolVar(&files, "files", false, "print the file each deployment deployed, too")
	f.IntVar(&limit, "limit", 20, "at most this many deployments (0: all)")
	return cmd
}

// indent prefixes every line of text.
func indent(text, prefix string) string {
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	for i, l := range lines {
		lines[i] = prefix + l
	}
	return strings.Join(lines, "\n")
}
