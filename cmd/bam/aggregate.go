package main

import (
	"context"
	"encoding/csv"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/bam-dev/bam/internal/search"
	"github.com/bam-dev/bam/internal/store"
)

func (a *app) aggregateCommand() *cobra.Command {
	var where, state, format string
	c := &cobra.Command{
		Use:   "aggregate ACTIVITY NAME",
		Short: "Show an aggregation's cells, or those of the instances a filter matches",
		Long: `Show the cells of an activity's aggregation (declared in its definition:
docs/QUERY.md), as its view <activity>_<aggregation> holds them: one row per
state of the instances and values of the dimensions, with the measures.

--state keeps the cells of one state (pending, active, completed); --state all
merges the states into one row per dimension values. Without --state every
cell is shown, with its state.

--where computes the cells at once from the instances the filter matches (the
filter language of 'bam instance list --where'), instead of reading the cells
the store keeps: it reads every matching instance.

JSON and CSV add each cell's drill-down: the filter of its instances, for
'bam instance list ACTIVITY --where'.`,
		Example: `  bam aggregate PurchaseOrder ByCustomer
  bam aggregate PurchaseOrder ByCustomer --state all --format csv
  bam aggregate PurchaseOrder ByCustomer --where "Amount > 1000" --format json`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			a.started = true
			switch format {
			case "table", "json", "csv":
			default:
				return usageErrorf("--format %q: use table, json or csv", format)
			}
			switch state {
			case "", "all", "pending", "active", "completed":
			default:
				return usageErrorf("--state %q: use pending, active, completed or all", state)
			}
			return a.aggregate(cmd.Context(), args[0], args[1], state, where, format)
		},
	}
	f := c.Flags()
	f.StringVar(&where, "where", "", "aggregate only the instances this filter matches (computed at once from them)")
	f.StringVar(&state, "state", "", "pending, active or completed: only that state's cells; all: every state merged")
	f.StringVar(&format, "format", "table", "table, json or csv")
	return c
}

func (a *app) aggregate(ctx context.Context, activity, name, state, where, format string) error {
	return a.withStore(ctx, func(st store.Store) error {
		q := store.AggregationQuery{State: state}
		if where != "" {
			def, err := searchedActivity(ctx, st, activity)
			if err != nil {
				return err
			}
			sq, err := search.Prepare(def, search.Spec{Where: where})
			if err != nil {
				return usageErrorf("--where: %v", err)
			}
			dialect, err := search.DialectOf(st.Driver())
			if err != nil {
				return err
			}
			q.Of = sq.Selection(dialect, time.Now())
			where = sq.Filter.String()
		}
		res, err := st.Aggregation(ctx, activity, name, q)
		if err != nil {
			return err
		}
		view := search.NewAggregationJSON(res, state, where)
		switch format {
		case "json":
			return printJSON(a.stdout, view)
		case "csv":
			w := csv.NewWriter(a.stdout)
			header := make([]string, 0, len(view.Columns)+1)
			for _, c := range view.Columns {
				header = append(header, c.Name)
			}
			if err := w.Write(append(header, "filter")); err != nil {
				return err
			}
			for i, row := range res.Rows {
				rec := make([]string, 0, len(row)+1)
				for _, v := range row {
					rec = append(rec, textOr(v, ""))
				}
				if err := w.Write(append(rec, view.Cells[i]["filter"].(string))); err != nil {
					return err
				}
			}
			w.Flush()
			return w.Error()
		}
		if len(res.Rows) == 0 {
			fmt.Fprintf(a.stdout, "no cells in aggregation %s of %s: no instance is in it yet\n", res.Aggregation.Name, res.Activity.Name)
			return nil
		}
		headers := make([]string, len(view.Columns))
		for i, c := range view.Columns {
			headers[i] = strings.ToUpper(c.Name)
		}
		t := newTable(a.stdout, headers...)
		for _, row := range res.Rows {
			cells := make([]string, len(row))
			for i, v := range row {
				cells[i] = textOr(v, "-")
				switch {
				case v == nil:
				case view.Columns[i].Kind == store.KindSeconds:
					if secs, err := strconv.ParseFloat(*v, 64); err == nil {
						cells[i] = formatDuration(time.Duration(secs * float64(time.Second)))
					}
				case view.Columns[i].Kind == store.KindTime:
					// A bucket, without the zero fraction the stores write.
					if t, err := time.Parse(time.RFC3339Nano, *v); err == nil {
						cells[i] = t.UTC().Format(time.RFC3339Nano)
					}
				}
			}
			t.row(cells...)
		}
		if err := t.flush(); err != nil {
			return err
		}
		fmt.Fprintf(a.stdout, "\n%s (durations in JSON and CSV are seconds); --format json gives each cell's filter, for 'bam instance list %s --where'\n", count(len(res.Rows), "cell"), res.Activity.Name)
		return nil
	})
}

// textOr is a value's text, or none for NULL.
func textOr(v *string, none string) string {
	if v == nil {
		return none
	}
	return *v
}
