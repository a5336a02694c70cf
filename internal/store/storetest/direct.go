package storetest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/store"
)

// DirectWriter writes events with a driver's WriteEvents in a transaction
// of its own on s's database, and commits it (rolls it back when commit is
// false, or when WriteEvents fails).
type DirectWriter func(ctx context.Context, s store.Store, events []event.Event, commit bool) error

// RunDirect runs the suite of direct writes: events applied inside a
// caller's transaction, without fence or checkpoint, with Apply's rules.
// open returns a fresh store with no schema; the suite migrates it.
func RunDirect(t *testing.T, open func(t *testing.T) store.Store, write DirectWriter) {
	setup := func(t *testing.T) (store.Store, context.Context) { return prepared(t, open) }
	key := event.Key{Activity: "PO", Instance: "1"}

	t.Run("AppliesWithApplysRules", func(t *testing.T) {
		t.Parallel()
		s, ctx := setup(t)
		must := func(events ...event.Event) {
			t.Helper()
			if err := write(ctx, s, events, true); err != nil {
				t.Fatalf("write: %v", err)
			}
		}
		must(cev("PO", "ship", event.Update, 5, map[string]string{"Carrier": `"UPS"`}), cev("PO", "ship", event.End, 6, nil))
		must(ev("PO", "1", event.Update, 1, map[string]string{"Amount": "5"}))
		must(ev("PO", "1", event.Begin, 0, nil), enable("PO", "1", "ship", 2), relate("PO", "1", "Invoice", "7", 3),
			reference("PO", "1", "m", "d", 4), ev("PO", "1", event.End, 7, nil))
		in := instance(t, ctx, s, key)
		want := map[string]string{"Amount": "5", "Carrier": `"UPS"`}
		if got := dataStrings(in.Data); in.State != store.StateCompleted || in.Events != 8 || !equalMaps(got, want) ||
			len(in.Continuations) != 1 || len(in.Related) != 1 || len(in.References) != 1 {
			t.Fatalf("instance %+v; want completed, 8 events, data %v, one continuation, relation and reference", in, want)
		}
	})

	t.Run("InvalidEventRefusesTheCall", func(t *testing.T) {
		t.Parallel()
		s, ctx := setup(t)
		bad := ev("PO", "1", "shipped", 1, nil)
		err := write(ctx, s, []event.Event{ev("PO", "1", event.Begin, 0, nil), bad}, true)
		var evErr *event.Error
		if !errors.As(err, &evErr) || evErr.Field != "events[1].kind" || !strings.Contains(evErr.Reason, "unknown kind") {
			t.Fatalf("write with an unknown kind = %v, want an *event.Error on events[1].kind", err)
		}
		noTime := ev("PO", "1", event.Begin, 0, nil)
		noTime.Time = time.Time{}
		if err := write(ctx, s, []event.Event{noTime}, true); !errors.As(err, &evErr) || evErr.Field != "events[0].time" {
			t.Fatalf("write without a time = %v, want an *event.Error on events[0].time", err)
		}
		if _, err := s.Instance(ctx, key); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("a refused call wrote its valid events: %v", err)
		}
	})

	t.Run("RolledBackWritesNothing", func(t *testing.T) {
		t.Parallel()
		s, ctx := setup(t)
		if err := write(ctx, s, []event.Event{ev("PO", "1", event.Begin, 0, nil), enable("PO", "1", "t", 1)}, false); err != nil {
			t.Fatalf("write: %v", err)
		}
		if _, err := s.Instance(ctx, key); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("a rolled back write left its instance: %v", err)
		}
		if _, err := s.Continuation(ctx, "PO", "t"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("a rolled back write left its continuation: %v", err)
		}
	})

	t.Run("ConflictingEnableIsQuarantined", func(t *testing.T) {
		t.Parallel()
		s, ctx := setup(t)
		if err := write(ctx, s, []event.Event{enable("PO", "1", "t", 1)}, true); err != nil {
			t.Fatal(err)
		}
		if err := write(ctx, s, []event.Event{ev("PO", "2", event.Begin, 0, nil), enable("PO", "2", "t", 2)}, true); err != nil {
			t.Fatalf("a conflicting enable must not fail the call: %v", err)
		}
		failed, err := s.FailedEvents(ctx, store.DirectSource, 0)
		if err != nil || len(failed) != 1 || !strings.Contains(failed[0].Reason, `instance "2"`) {
			t.Fatalf("FailedEvents(%s) = %+v, %v; want instance 2's enable", store.DirectSource, failed, err)
		}
		if in := instance(t, ctx, s, event.Key{Activity: "PO", Instance: "2"}); in.Events != 1 {
			t.Fatalf("instance 2 counts %d events, want 1 (its begin)", in.Events)
		}
	})
}

// RunDirectOwnTransaction runs the suite of a driver's WriteEvents in a
// transaction of its own (the Store method): the events are applied and
// readable once the call returns, and an invalid event writes nothing.
// open returns a fresh store with no schema; the suite migrates it.
func RunDirectOwnTransaction(t *testing.T, open func(t *testing.T) store.Store, write func(ctx context.Context, s store.Store, events []event.Event) error) {
	t.Run("CommittedOnReturn", func(t *testing.T) {
		t.Parallel()
		s, ctx := prepared(t, open)
		if err := write(ctx, s, []event.Event{ev("PO", "1", event.Begin, 0, nil), ev("PO", "1", event.Update, 1, map[string]string{"Amount": "5"})}); err != nil {
			t.Fatalf("write: %v", err)
		}
		in := instance(t, ctx, s, event.Key{Activity: "PO", Instance: "1"})
		if got := dataStrings(in.Data); in.Events != 2 || got["Amount"] != "5" {
			t.Fatalf("instance %+v once the write returned; want 2 events, Amount 5", in)
		}
	})
	t.Run("InvalidEventWritesNothing", func(t *testing.T) {
		t.Parallel()
		s, ctx := prepared(t, open)
		err := write(ctx, s, []event.Event{ev("PO", "1", event.Begin, 0, nil), ev("PO", "1", "shipped", 1, nil)})
		var evErr *event.Error
		if !errors.As(err, &evErr) || evErr.Field != "events[1].kind" {
			t.Fatalf("write with an unknown kind = %v, want an *event.Error on events[1].kind", err)
		}
		if _, err := s.Instance(ctx, event.Key{Activity: "PO", Instance: "1"}); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("a refused call wrote its valid events: %v", err)
		}
	})
}
