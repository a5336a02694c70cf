package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/ops"
	"github.com/bam-dev/bam/internal/search"
	"github.com/bam-dev/bam/internal/store"
)

func (a *app) failedCommand() *cobra.Command {
	return group("failed", "List, fix, resubmit or discard events that could not be applied",
		a.failedListCommand(),
		a.failedShowCommand(),
		a.failedRetryCommand(),
		a.failedDiscardCommand(),
	)
}

func formatPosition(p store.Position) string {
	return fmt.Sprintf("%d/%d", p.Major, p.Minor)
}

// cut shortens a text for a table cell.
func cut(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

func (a *app) failedListCommand() *cobra.Command {
	var (
		asJSON           bool
		source, reason   string
		since, until     string
		partition, limit int
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List failed events, oldest first",
		Args:  noArgs,
		RunE: a.body(func(cmd *cobra.Command, _ []string) error {
			if limit < 0 {
				return usageErrorf("--limit must be 0 (no limit) or more")
			}
			q := store.FailedQuery{Source: source, Reason: reason, Limit: limit}
			if cmd.Flags().Changed("partition") {
				if source == "" || partition < 0 {
					return usageErrorf("--partition needs --source and a partition from 0")
				}
				q.Partition = &partition
			}
			for _, tf := range []struct {
				flag, value string
				to          *time.Time
			}{{"--since", since, &q.Since}, {"--until", until, &q.Until}} {
				if tf.value == "" {
					continue
				}
				// The forms of the filter language (docs/QUERY.md).
				t, err := search.ParseTime(tf.value)
				if err != nil {
					return usageErrorf("%s %q: use an RFC 3339 time such as 2026-11-25T10:00:00Z, or a date such as 2026-11-25 (its midnight, UTC)", tf.flag, tf.value)
				}
				*tf.to = t
			}
			ctx := cmd.Context()
			return a.withStore(ctx, func(st store.Store) error {
				list, err := st.FailedEventsWhere(ctx, q)
				if err != nil {
					return fmt.Errorf("list failed events: %w", err)
				}
				if len(list) == 0 && source != "" && source != store.DirectSource {
					// Nothing: a misspelled source must not read as "no failed events".
					names := sourceNames(ctx, st)
					if !slices.Contains(names, source) {
						return noSource(source, append(names, store.DirectSource)...)
					}
				}
				if asJSON {
					out := make([]ops.FailedJSON, 0, len(list))
					for _, f := range list {
						out = append(out, ops.ToFailedJSON(f, false))
					}
					return printJSON(a.stdout, out)
				}
				if len(list) == 0 {
					fmt.Fprintln(a.stdout, "no failed events")
					return nil
				}
				t := newTable(a.stdout, "ID", "SOURCE", "PARTITION", "POSITION", "FAILED AT", "ACTIVITY", "INSTANCE", "REASON")
				for _, f := range list {
					k := ops.PayloadKey(f.Payload)
					t.row(strconv.FormatInt(f.ID, 10), f.Source, strconv.Itoa(f.Partition), formatPosition(f.Position),
						formatTime(&f.FailedAt), cmpOr(cut(k.Activity, 30), "-"), cmpOr(cut(k.Segment(), 30), "-"), cut(f.Reason, 100))
				}
				if err := t.flush(); err != nil {
					return err
				}
				if limit > 0 && len(list) == limit {
					fmt.Fprintf(a.stderr, "first %d shown; use --limit 0 for all\n", limit)
				}
				fmt.Fprintln(a.stdout, "\nsee one with: bam failed show ID")
				return nil
			})
		}),
	}
	f := cmd.Flags()
	f.BoolVar(&asJSON, "json", false, "print JSON")
	f.StringVar(&source, "source", "", "only the failed events of this source")
	f.IntVar(&partition, "partition", 0, "only those of this partition of --source")
	f.StringVar(&reason, "reason", "", "only those whose reason contains this text (case-sensitive)")
	f.StringVar(&since, "since", "", "only those that failed at or after this RFC 3339 time, or date (its midnight, UTC)")
	f.StringVar(&until, "until", "", "only those that failed before this RFC 3339 time, or date (its midnight, UTC)")
	f.IntVar(&limit, "limit", 100, "at most this many (0: no limit)")
	return cmd
}

func (a *app) failedShowCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show ID",
		Short: "Show a failed event: why it failed, where it came from, its original bytes",
		Args:  exactArgs("ID"),
		RunE: a.body(func(cmd *cobra.Command, args []string) error {
			id, err := parseID(args[0])
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			return a.withStore(ctx, func(st store.Store) error {
				f, err := st.FailedEvent(ctx, id)
				if errors.Is(err, store.ErrNotFound) {
					return noFailedEvent(id)
				}
				if err != nil {
					return fmt.Errorf("read failed event %d: %w", id, err)
				}
				if asJSON {
					return printJSON(a.stdout, ops.ToFailedJSON(f, true))
				}
				t := newTable(a.stdout, "failed event", strconv.FormatInt(f.ID, 10))
				t.row("reason", f.Reason)
				t.row("source", f.Source)
				t.row("partition", strconv.Itoa(f.Partition))
				t.row("position", formatPosition(f.Position))
				t.row("failed at", formatTime(&f.FailedAt))
				if err := t.flush(); err != nil {
					return err
				}
				text, quoted := showBytes(f.Payload)
				note := ""
				if quoted {
					note = ", not valid UTF-8: shown Go-quoted"
				}
				fmt.Fprintf(a.stdout, "\noriginal event (%d bytes%s):\n%s\n", len(f.Payload), note, strings.TrimRight(text, "\n"))
				fmt.Fprintf(a.stdout, "\nresubmit it fixed with: bam failed retry %d --payload fixed.json\n", f.ID)
				return nil
			})
		}),
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// failedFilter selects failed events for a retry or a discard in bulk.
type failedFilter struct {
	source, activity, reason string
	all, yes                 bool
}

func (f *failedFilter) flags(cmd *cobra.Command, verb string) {
	fl := cmd.Flags()
	fl.StringVar(&f.source, "source", "", verb+" the failed events of this source")
	fl.StringVar(&f.activity, "activity", "", verb+" the failed events of this activity (as their payload names it)")
	fl.StringVar(&f.reason, "reason", "", verb+" the failed events whose reason contains this text")
	fl.BoolVar(&f.all, "all", false, verb+" every failed event")
	fl.BoolVar(&f.yes, "yes", false, "do not ask for confirmation")
}

func (f failedFilter) given() bool {
	return f.source != "" || f.activity != "" || f.reason != "" || f.all
}

func (f failedFilter) String() string {
	return f.ops().Describe()
}

func (f failedFilter) ops() ops.FailedFilter {
	return ops.FailedFilter{FailedQuery: store.FailedQuery{Source: f.source, Reason: f.reason}, Activity: f.activity}
}

// idOrFilter takes the command's ID argument, or its filter flags: one or
// the other.
func idOrFilter(args []string, f failedFilter) (id int64, bulk bool, err error) {
	switch {
	case len(args) == 1 && f.given():
		return 0, false, usageErrorf("give a failed event's ID or filters (--source, --activity, --reason, --all), not both")
	case len(args) == 1:
		id, err := parseID(args[0])
		return id, false, err
	case len(args) > 1:
		return 0, false, usageErrorf("takes one ID, got %d arguments", len(args))
	case !f.given():
		return 0, false, usageErrorf("give a failed event's ID, or filters: --source, --activity, --reason, or --all")
	}
	return 0, true, nil
}

// selectFailed returns the failed events the filter matches, oldest first,
// and asks the user to confirm verb on them unless --yes.
func (a *app) selectFailed(ctx context.Context, st store.Store, f failedFilter, verb string) ([]store.FailedEvent, error) {
	if err := ops.CheckFailedSource(ctx, st, f.source, sourceListHint); err != nil {
		return nil, err
	}
	out, _, err := ops.SelectFailed(ctx, st, f.ops(), 0, 0)
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		fmt.Fprintf(a.stdout, "no failed events match %s\n", f)
		return nil, nil
	}
	if f.yes {
		return out, nil
	}
	matches := map[bool]string{true: "matches", false: "match"}[len(out) == 1]
	fmt.Fprintf(a.stdout, "%s %s %s: %s %s? [y/N] ", count(len(out), "failed event"), matches, f, verb, pronoun(len(out)))
	line, _ := bufio.NewReader(a.stdin).ReadString('\n')
	if answer := strings.ToLower(strings.TrimSpace(line)); answer != "y" && answer != "yes" {
		fmt.Fprintln(a.stdout)
		return nil, fmt.Errorf("not confirmed: nothing was done (answer y, or pass --yes)")
	}
	return out, nil
}

// auditBulk records a retry or discard of the failed events filter
// matched, with what it did, unless it touched none.
func (a *app) auditBulk(ctx context.Context, st store.Store, action string, filter failedFilter, did string, touched int) {
	if touched > 0 {
		a.audit(ctx, st, ops.Who(), action, filter.String(), did)
	}
}

func pronoun(n int) string {
	if n == 1 {
		return "it"
	}
	return "them"
}

func (a *app) failedRetryCommand() *cobra.Command {
	var (
		payloadFile        string
		maxSize            int
		requireDefinitions bool
		filter             failedFilter
	)
	cmd := &cobra.Command{
		Use:   "retry (ID [--payload FILE] | --source S | --activity A | --reason TEXT | --all)",
		Short: "Apply failed events again, as they are or fixed",
		Long: `retry applies a failed event to its instance and removes it from the failed
events, in one transaction. With --payload it applies the event in FILE (- for
stdin) instead of the original bytes: fix what the reason says and resubmit.
If the event is still invalid it stays, with the new reason, and retry exits 1;
a replacement that is invalid is not kept: the failed event keeps its original
bytes and reason.
An event without a time of its own is given the time it was written to its
source, as in its batch. The event is checked as a node checks it: with the
pool's max-event-size and require-definitions (bam config), unless
--max-event-size or --require-definitions say otherwise.

With filters instead of an ID (--source, --activity, --reason, or --all), it
retries every failed event they match, after saying how many and asking for
confirmation (--yes does not ask), and prints how many were applied and how
many stay failed.`,
		Example: `  bam failed retry 17
  bam failed retry 17 --payload fixed.json
  bam failed retry --activity PurchaseOrder --reason 'has no item' --yes   # after deploying the missing item`,
		RunE: a.body(func(cmd *cobra.Command, args []string) error {
			id, bulk, err := idOrFilter(args, filter)
			if err != nil {
				return err
			}
			if bulk && payloadFile != "" {
				return usageErrorf("--payload replaces one event: give its ID")
			}
			var payload []byte
			if payloadFile != "" {
				payload, err = a.readInput(payloadFile)
				if err != nil {
					return fmt.Errorf("read the fixed event: %w", err)
				}
				payload = []byte(strings.TrimSpace(string(payload)))
			}
			ctx := cmd.Context()
			return a.withStore(ctx, func(st store.Store) error {
				if err := a.poolDefaults(ctx, st, cmd.Flags()); err != nil {
					return err
				}
				opt := ops.RetryOptions{MaxEventSize: maxSize, RequireDefinitions: requireDefinitions}
				retry := func(id int64, payload []byte) error {
					err := ops.Retry(ctx, st, id, payload, opt)
					if errors.Is(err, store.ErrNotFound) {
						return noFailedEvent(id)
					}
					return err
				}
				if !bulk {
					if err := retry(id, payload); err != nil {
						return err
					}
					a.audit(ctx, st, ops.Who(), "failed retry", strconv.FormatInt(id, 10), map[bool]string{true: "applied, with a replacement payload", false: "applied"}[payload != nil])
					fmt.Fprintf(a.stdout, "failed event %d applied and removed from the failed events\n", id)
					return nil
				}
				list, err := a.selectFailed(ctx, st, filter, "retry")
				if err != nil || len(list) == 0 {
					return err
				}
				applied, kept := 0, 0
				for _, fe := range list {
					err := retry(fe.ID, nil)
					switch {
					case err == nil:
						applied++
					case errors.As(err, new(*ops.StillFailedError)):
						kept++
						if kept <= maxShownErrors {
							fmt.Fprintf(a.stderr, "%v\n", err)
						}
					case errors.Is(err, store.ErrNotFound):
						// retried or discarded meanwhile by someone else
					default:
						a.auditBulk(ctx, st, "failed retry", filter, fmt.Sprintf("%d applied, %d still failed, before an error", applied, kept), applied+kept)
						fmt.Fprintf(a.stdout, "applied %d, still failed %d, before the error\n", applied, kept)
						return err
					}
				}
				a.auditBulk(ctx, st, "failed retry", filter, fmt.Sprintf("%d applied, %d still failed", applied, kept), applied+kept)
				fmt.Fprintf(a.stdout, "applied %d failed event%s; %d still failed, kept with their reason\n", applied, plural(applied), kept)
				if kept > 0 {
					return fmt.Errorf("%d failed event%s still failed (see above)", kept, plural(kept))
				}
				return nil
			})
		}),
	}
	cmd.Flags().StringVar(&payloadFile, "payload", "", "apply the event in this file (- for stdin) instead of the original")
	cmd.Flags().IntVar(&maxSize, "max-event-size", event.DefaultMaxSize, "bytes; a larger event stays failed; the pool's max-event-size (bam config), as the nodes check, unless given")
	cmd.Flags().BoolVar(&requireDefinitions, "require-definitions", false, "an event of an activity without a deployed definition stays failed; the pool's require-definitions (bam config), as the nodes check, unless given")
	filter.flags(cmd, "retry")
	return cmd
}

func (a *app) failedDiscardCommand() *cobra.Command {
	var filter failedFilter
	cmd := &cobra.Command{
		Use:   "discard (ID | --source S | --activity A | --reason TEXT | --all)",
		Short: "Delete failed events for good",
		Long: `discard deletes a failed event for good. With filters instead of an ID
(--source, --activity, --reason, or --all), it deletes every failed event they
match, after saying how many and asking for confirmation (--yes does not ask).`,
		RunE: a.body(func(cmd *cobra.Command, args []string) error {
			id, bulk, err := idOrFilter(args, filter)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			return a.withStore(ctx, func(st store.Store) error {
				if !bulk {
					if err := st.DiscardFailed(ctx, id); err != nil {
						if errors.Is(err, store.ErrNotFound) {
							return noFailedEvent(id)
						}
						return fmt.Errorf("discard failed event %d: %w", id, err)
					}
					a.audit(ctx, st, ops.Who(), "failed discard", strconv.FormatInt(id, 10), "")
					fmt.Fprintf(a.stdout, "failed event %d discarded\n", id)
					return nil
				}
				list, err := a.selectFailed(ctx, st, filter, "discard")
				if err != nil || len(list) == 0 {
					return err
				}
				discarded := 0
				for _, fe := range list {
					err := st.DiscardFailed(ctx, fe.ID)
					if errors.Is(err, store.ErrNotFound) {
						continue // retried or discarded meanwhile
					}
					if err != nil {
						a.auditBulk(ctx, st, "failed discard", filter, fmt.Sprintf("%d discarded, before an error", discarded), discarded)
						fmt.Fprintf(a.stdout, "discarded %d before the error\n", discarded)
						return fmt.Errorf("discard failed event %d: %w", fe.ID, err)
					}
					discarded++
				}
				a.auditBulk(ctx, st, "failed discard", filter, fmt.Sprintf("%d discarded", discarded), discarded)
				fmt.Fprintf(a.stdout, "discarded %d failed event%s\n", discarded, plural(discarded))
				return nil
			})
		}),
	}
	filter.flags(cmd, "discard")
	return cmd
}
