package main

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/bam-dev/bam/internal/catalog"
	"github.com/bam-dev/bam/internal/event"
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

// failedJSON is a failed event in --json output. Payload is the original
// bytes when they are UTF-8, else PayloadBase64 holds them.
type failedJSON struct {
	ID            int64          `json:"id"`
	Source        string         `json:"source"`
	Partition     int            `json:"partition"`
	Position      store.Position `json:"position"`
	Reason        string         `json:"reason"`
	FailedAt      *string        `json:"failed_at"`
	Size          int            `json:"size"`
	Payload       *string        `json:"payload,omitempty"`
	PayloadBase64 *string        `json:"payload_base64,omitempty"`
}

func toFailedJSON(f store.FailedEvent, withPayload bool) failedJSON {
	j := failedJSON{ID: f.ID, Source: f.Source, Partition: f.Partition, Position: f.Position,
		Reason: f.Reason, FailedAt: jsonTime(&f.FailedAt), Size: len(f.Payload)}
	if withPayload {
		if utf8.Valid(f.Payload) {
			s := string(f.Payload)
			j.Payload = &s
		} else {
			s := base64.StdEncoding.EncodeToString(f.Payload)
			j.PayloadBase64 = &s
		}
	}
	return j
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
		asJSON bool
		source string
		limit  int
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List failed events, oldest first",
		Args:  noArgs,
		RunE: a.body(func(cmd *cobra.Command, _ []string) error {
			if limit < 0 {
				return usageErrorf("--limit must be 0 (no limit) or more")
			}
			ctx := cmd.Context()
			st, err := a.openStore(ctx)
			if err != nil {
				return err
			}
			defer st.Close()
			list, err := st.FailedEvents(ctx, source, limit)
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
				out := make([]failedJSON, 0, len(list))
				for _, f := range list {
					out = append(out, toFailedJSON(f, false))
				}
				return printJSON(a.stdout, out)
			}
			if len(list) == 0 {
				fmt.Fprintln(a.stdout, "no failed events")
				return nil
			}
			t := newTable(a.stdout, "ID", "SOURCE", "PARTITION", "POSITION", "FAILED AT", "REASON")
			for _, f := range list {
				t.row(strconv.FormatInt(f.ID, 10), f.Source, strconv.Itoa(f.Partition), formatPosition(f.Position),
					formatTime(&f.FailedAt), cut(f.Reason, 100))
			}
			if err := t.flush(); err != nil {
				return err
			}
			if limit > 0 && len(list) == limit {
				fmt.Fprintf(a.stderr, "first %d shown; use --limit 0 for all\n", limit)
			}
			fmt.Fprintln(a.stdout, "\nsee one with: bam failed show ID")
			return nil
		}),
	}
	f := cmd.Flags()
	f.BoolVar(&asJSON, "json", false, "print JSON")
	f.StringVar(&source, "source", "", "only the failed events of this source")
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
			st, err := a.openStore(ctx)
			if err != nil {
				return err
			}
			defer st.Close()
			f, err := st.FailedEvent(ctx, id)
			if errors.Is(err, store.ErrNotFound) {
				return noFailedEvent(id)
			}
			if err != nil {
				return fmt.Errorf("read failed event %d: %w", id, err)
			}
			if asJSON {
				return printJSON(a.stdout, toFailedJSON(f, true))
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
		}),
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (a *app) failedRetryCommand() *cobra.Command {
	var (
		payloadFile        string
		maxSize            int
		requireDefinitions bool
	)
	cmd := &cobra.Command{
		Use:   "retry ID [--payload FILE]",
		Short: "Apply a failed event again, as it is or fixed",
		Long: `retry applies a failed event to its instance and removes it from the failed
events, in one transaction. With --payload it applies the event in FILE (- for
stdin) instead of the original bytes: fix what the reason says and resubmit.
If the event is still invalid it stays, with the new reason, and retry exits 1.
An event without a time of its own is given the time it was written to its
source, as in its batch. The event is checked as a node checks it: pass the
--max-event-size and --require-definitions your nodes run with.`,
		Args: exactArgs("ID"),
		RunE: a.body(func(cmd *cobra.Command, args []string) error {
			id, err := parseID(args[0])
			if err != nil {
				return err
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
			st, err := a.openStore(ctx)
			if err != nil {
				return err
			}
			defer st.Close()
			if err := checkRetry(ctx, st, id, payload, maxSize, requireDefinitions); err != nil {
				return err
			}
			err = st.RetryFailed(ctx, id, payload, maxSize)
			var evErr *event.Error
			switch {
			case errors.Is(err, store.ErrNotFound):
				return noFailedEvent(id)
			case errors.As(err, &evErr):
				return fmt.Errorf("failed event %d is still invalid, kept: %v", id, evErr)
			case err != nil:
				return fmt.Errorf("retry failed event %d: %w", id, err)
			}
			fmt.Fprintf(a.stdout, "failed event %d applied and removed from the failed events\n", id)
			return nil
		}),
	}
	cmd.Flags().StringVar(&payloadFile, "payload", "", "apply the event in this file (- for stdin) instead of the original")
	cmd.Flags().IntVar(&maxSize, "max-event-size", event.DefaultMaxSize, "bytes; a larger event stays failed (as bam serve --max-event-size)")
	cmd.Flags().BoolVar(&requireDefinitions, "require-definitions", false, "an event of an activity without a deployed definition stays failed (as bam serve --require-definitions)")
	return cmd
}

// checkRetry checks the event a retry would apply against its activity's
// deployed definition, as a node with these settings would, so that an
// event a definition still refuses stays among the failed events. (An
// event that is not valid JSON, or too large, is left to RetryFailed,
// which records the new reason.)
func checkRetry(ctx context.Context, st store.Store, id int64, payload []byte, maxSize int, requireDefinitions bool) error {
	f, err := st.FailedEvent(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return noFailedEvent(id)
	} else if err != nil {
		return fmt.Errorf("read failed event %d: %w", id, err)
	}
	if payload == nil {
		payload = f.Payload
	}
	ev, err := event.Decode(payload, f.EventTime(), maxSize)
	if err != nil {
		return nil
	}
	err = catalog.New(st, catalog.Options{Strict: requireDefinitions}).Validate(ctx, ev)
	var evErr *event.Error
	switch {
	case errors.As(err, &evErr):
		return fmt.Errorf("failed event %d is still refused by the deployed definition of %s, kept: %v (deploy a definition that accepts it, or retry with a fixed --payload)", id, ev.Activity, evErr)
	case err != nil:
		return fmt.Errorf("retry failed event %d: %w", id, err)
	}
	return nil
}

func (a *app) failedDiscardCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "discard ID",
		Short: "Delete a failed event for good",
		Args:  exactArgs("ID"),
		RunE: a.body(func(cmd *cobra.Command, args []string) error {
			id, err := parseID(args[0])
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			st, err := a.openStore(ctx)
			if err != nil {
				return err
			}
			defer st.Close()
			if err := st.DiscardFailed(ctx, id); err != nil {
				if errors.Is(err, store.ErrNotFound) {
					return noFailedEvent(id)
				}
				return fmt.Errorf("discard failed event %d: %w", id, err)
			}
			fmt.Fprintf(a.stdout, "failed event %d discarded\n", id)
			return nil
		}),
	}
}
