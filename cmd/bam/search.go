package main

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/bam-dev/bam/internal/definition"
	"github.com/bam-dev/bam/internal/search"
	"github.com/bam-dev/bam/internal/store"
)

// searchFlags are the flags of `bam instance list` that read an activity's
// views through package search.
type searchFlags struct {
	where, order, columns, cursor, format string
}

func (q *searchFlags) register(f *pflag.FlagSet) {
	f.StringVar(&q.where, "where", "", "only the instances this filter matches, e.g. \"Customer = 'ACME' AND Amount > 1000\" (docs/QUERY.md)")
	f.StringVar(&q.order, "order", "", "order by these fields, e.g. 'Amount DESC, begin_time' (default: instance_id)")
	f.StringVar(&q.columns, "columns", "", "the items to show, comma-separated (default: every item)")
	f.StringVar(&q.cursor, "cursor", "", "the next page: the cursor the previous page ended with")
	f.StringVar(&q.format, "format", "", "table, json or csv (default table)")
}

// used reports whether a flag that needs the search was given.
func (q *searchFlags) used(cmd *cobra.Command) bool {
	for _, name := range []string{"where", "order", "columns", "cursor", "format"} {
		if cmd.Flags().Changed(name) {
			return true
		}
	}
	return false
}

// searchInstances lists an activity's instances through its views.
func (a *app) searchInstances(ctx context.Context, activity, state string, limit int, flags searchFlags) error {
	format := cmpOr(flags.format, "table")
	if format != "table" && format != "json" && format != "csv" {
		return usageErrorf("--format %q: use table, json or csv", flags.format)
	}
	spec := search.Spec{Scope: search.ScopeAll, Where: flags.where, Order: flags.order}
	switch state {
	case "", "all":
	case "active", "completed", "pending": // pending: no view of its own, a condition (search.ScopePending)
		spec.Scope = search.Scope(state)
	default:
		return usageErrorf("--state %q: use pending, active, completed or all", state)
	}
	if flags.columns != "" {
		spec.Columns = []string{}
		for _, c := range strings.Split(flags.columns, ",") {
			spec.Columns = append(spec.Columns, strings.TrimSpace(c))
		}
	}
	return a.withStore(ctx, func(st store.Store) error {
		searcher, ok := st.(store.Searcher)
		if !ok {
			return fmt.Errorf("the %s store cannot search", st.Driver())
		}
		def, err := searchedActivity(ctx, st, activity)
		if err != nil {
			return err
		}
		q, err := search.Prepare(def, spec)
		if err != nil {
			return usageErrorf("%v", err)
		}
		page, err := search.Run(ctx, searcher, q, search.PageRequest{Limit: limit, Cursor: flags.cursor, Now: time.Now()})
		if errors.Is(err, search.ErrCursor) {
			return usageErrorf("--cursor: %v", err)
		}
		if err != nil {
			return err
		}
		next := ""
		if page.Next != "" {
			next = nextPageCommand(activity, state, limit, flags, page.Next)
		}
		switch format {
		case "json":
			return printJSON(a.stdout, search.NewPageJSON(q, page))
		case "csv":
			if err := writeSearchCSV(a, q, page); err != nil {
				return err
			}
			if next != "" {
				fmt.Fprintf(a.stderr, "next page: %s\n", next)
			}
			return nil
		}
		if len(page.Rows) == 0 {
			fmt.Fprintf(a.stdout, "no matching instances of activity %s\n", def.Name)
			return nil
		}
		headers := []string{"ID", "STATE", "BEGIN", "END", "LAST MODIFIED", "EVENTS"}
		for _, f := range q.Columns {
			headers = append(headers, strings.ToUpper(f.Name))
		}
		t := newTable(a.stdout, headers...)
		for _, r := range page.Rows {
			cells := []string{r.ID, string(r.State), formatTime(r.Begin), formatTime(r.End), formatTime(&r.LastModified), strconv.FormatInt(r.Events, 10)}
			for _, v := range r.Values {
				cells = append(cells, cmpOr(cellText(v, formatTime), "-"))
			}
			t.row(cells...)
		}
		if err := t.flush(); err != nil {
			return err
		}
		if next != "" {
			fmt.Fprintf(a.stdout, "\n%d shown; next page: %s\n", len(page.Rows), next)
		}
		return nil
	})
}

// searchedActivity returns the deployed definition of an activity (named
// in any case), or an error that names the closest activity, or says that
// the views a search reads need a deployment.
func searchedActivity(ctx context.Context, st store.Store, name string) (definition.Activity, error) {
	d, err := deployedActivity(ctx, st, name)
	if err == nil {
		return d.Activity, nil
	}
	if err := store.CheckActivity(ctx, st, name); err != nil {
		return definition.Activity{}, err
	}
	return definition.Activity{}, fmt.Errorf("activity %s has instances but no deployed definition: --where, --order, --columns and --cursor read its views, which a deployment creates (bam deploy FILE)", name)
}

// cellText writes a row's value for a table or CSV: "" for an empty one.
func cellText(v any, timeText func(*time.Time) string) string {
	switch v := v.(type) {
	case nil:
		return ""
	case time.Time:
		return timeText(&v)
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64)
	}
	return fmt.Sprint(v)
}

// writeSearchCSV writes a page as CSV with a header; times in RFC 3339,
// an empty value as an empty cell.
func writeSearchCSV(a *app, q *search.Query, page search.Page) error {
	w := csv.NewWriter(a.stdout)
	header := []string{"instance_id", "state", "begin_time", "end_time", "last_modified", "events"}
	for _, f := range q.Columns {
		header = append(header, f.Name)
	}
	rfc3339 := func(t *time.Time) string {
		if t == nil {
			return ""
		}
		return t.UTC().Format(time.RFC3339Nano)
	}
	if err := w.Write(header); err != nil {
		return err
	}
	for _, r := range page.Rows {
		rec := []string{r.ID, string(r.State), rfc3339(r.Begin), rfc3339(r.End), rfc3339(&r.LastModified), strconv.FormatInt(r.Events, 10)}
		for _, v := range r.Values {
			rec = append(rec, cellText(v, rfc3339))
		}
		if err := w.Write(rec); err != nil {
			return err
		}
	}
	w.Flush()
	return w.Error()
}

// nextPageCommand is the command that shows the next page, quoted for a
// POSIX shell.
func nextPageCommand(activity, state string, limit int, f searchFlags, cursor string) string {
	args := []string{"bam", "instance", "list", shellQuote(activity)}
	add := func(flag, v string) {
		if v != "" {
			args = append(args, flag, shellQuote(v))
		}
	}
	add("--state", state)
	add("--where", f.where)
	add("--order", f.order)
	add("--columns", f.columns)
	add("--format", f.format)
	if limit != 100 {
		args = append(args, "--limit", strconv.Itoa(limit))
	}
	args = append(args, "--cursor", cursor)
	return strings.Join(args, " ")
}
