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

// RunFailedEvents holds the rules of the events a batch could not apply:
// kept with their reason and bytes, counted per session, retried (as they
// are or fixed, held to a size limit, at the time they were written) or
// discarded. open returns a fresh store with no schema; the suite migrates
// it.
func RunFailedEvents(t *testing.T, open func(t *testing.T) store.Store) {
	setup := func(t *testing.T) (store.Store, context.Context) { return prepared(t, open) }

	t.Run("ListRetryDiscard", func(t *testing.T) {
		t.Parallel()
		s, ctx := setup(t)
		mustAddBuffer(t, ctx, s, "src", 1)
		joinNodes(t, ctx, s, "a")
		id := store.SessionID{Source: "src"}
		l, _ := s.Claim(ctx, id, "a", "", 30*time.Second)
		b := batch(l, "a", store.Position{Minor: 3})
		b.Failures = []store.Failure{
			{SessionID: id, Position: store.Position{Minor: 1}, Reason: "malformed JSON", Payload: []byte(`{"activity":`)},
			{SessionID: id, Position: store.Position{Minor: 2}, Reason: "kind: unknown", Payload: []byte(`{"activity":"A","instance":"X","kind":"bogus"}`)},
		}
		if err := s.Apply(ctx, b); err != nil {
			t.Fatal(err)
		}
		list, err := s.FailedEvents(ctx, "src", 0)
		if err != nil || len(list) != 2 {
			t.Fatalf("FailedEvents = %+v, %v", list, err)
		}
		if got, err := s.FailedOutstanding(ctx); err != nil || len(got) != 1 || got[id] != 2 {
			t.Fatalf("FailedOutstanding = %v, %v; want 2 for %v", got, err, id)
		}
		first := list[0]
		if first.Reason != "malformed JSON" || string(first.Payload) != `{"activity":` || first.Position != (store.Position{Minor: 1}) || first.Source != "src" || first.FailedAt.IsZero() {
			t.Fatalf("failed event = %+v", first)
		}
		got, err := s.FailedEvent(ctx, first.ID)
		if err != nil || string(got.Payload) != `{"activity":` {
			t.Fatalf("FailedEvent = %+v, %v", got, err)
		}
		// Retry as is: still invalid, kept with its reason.
		var evErr *event.Error
		if err := s.RetryFailed(ctx, first.ID, nil, 0); !errors.As(err, &evErr) {
			t.Fatalf("RetryFailed of a malformed event = %v, want *event.Error", err)
		}
		kept, err := s.FailedEvent(ctx, first.ID)
		if err != nil {
			t.Fatalf("a failed retry lost the failed event: %v", err)
		}
		// A replacement that is invalid too is not stored: the original
		// bytes and their reason stay (a wrong file once replaced them
		// for good).
		if err := s.RetryFailed(ctx, first.ID, []byte(`{"activity":"A","instance":"X","kind":"begin"}{}`), 0); !errors.As(err, &evErr) {
			t.Fatalf("RetryFailed with an invalid replacement = %v, want *event.Error", err)
		}
		if got, err := s.FailedEvent(ctx, first.ID); err != nil || string(got.Payload) != `{"activity":` || got.Reason != kept.Reason {
			t.Fatalf("after an invalid replacement, the failed event = %+v, %v; want its original bytes and reason", got, err)
		}
		// Retry with a fixed payload: applied and gone.
		fixed := []byte(`{"activity":"A","instance":"X","kind":"begin","time":"2026-11-25T10:00:00Z","data":{"N":1}}`)
		if err := s.RetryFailed(ctx, first.ID, fixed, 0); err != nil {
			t.Fatalf("RetryFailed with a fixed payload: %v", err)
		}
		if _, err := s.FailedEvent(ctx, first.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("retried event still listed: %v", err)
		}
		in := instance(t, ctx, s, event.Key{Activity: "A", Instance: "X"})
		if in.State != store.StateActive || string(in.Data["N"]) != "1" {
			t.Fatalf("retried event's instance = %+v", in)
		}
		if err := s.DiscardFailed(ctx, list[1].ID); err != nil {
			t.Fatal(err)
		}
		if err := s.DiscardFailed(ctx, list[1].ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("DiscardFailed twice = %v, want ErrNotFound", err)
		}
		if list, _ := s.FailedEvents(ctx, "", 0); len(list) != 0 {
			t.Fatalf("failed events left: %+v", list)
		}
		if got, err := s.FailedOutstanding(ctx); err != nil || len(got) != 0 {
			t.Fatalf("FailedOutstanding after all were retried or discarded = %v, %v; want none", got, err)
		}
	})

	// An event without a time of its own is given, when retried, the time
	// it was written to its source, as it would have been in its batch:
	// not the time it failed, nor the time of the retry.
	t.Run("RetryKeepsWriteTime", func(t *testing.T) {
		t.Parallel()
		s, ctx := setup(t)
		mustAddBuffer(t, ctx, s, "src", 1)
		joinNodes(t, ctx, s, "a")
		id := store.SessionID{Source: "src"}
		l, _ := s.Claim(ctx, id, "a", "", 30*time.Second)
		written := time.Date(2026, 3, 1, 9, 30, 0, 123000, time.UTC)
		b := batch(l, "a", store.Position{Minor: 1})
		b.Failures = []store.Failure{{SessionID: id, Position: store.Position{Minor: 1}, Reason: "refused by its definition",
			Payload: []byte(`{"activity":"A","instance":"T","kind":"begin"}`), WrittenAt: written}}
		if err := s.Apply(ctx, b); err != nil {
			t.Fatal(err)
		}
		list, err := s.FailedEvents(ctx, "src", 0)
		if err != nil || len(list) != 1 {
			t.Fatalf("FailedEvents = %+v, %v", list, err)
		}
		if !list[0].WrittenAt.Equal(written) || !list[0].EventTime().Equal(written) {
			t.Fatalf("failed event written at %v (event time %v), want %v", list[0].WrittenAt, list[0].EventTime(), written)
		}
		if err := s.RetryFailed(ctx, list[0].ID, nil, 0); err != nil {
			t.Fatal(err)
		}
		in := instance(t, ctx, s, event.Key{Activity: "A", Instance: "T"})
		if in.Begin == nil || !in.Begin.Equal(written) {
			t.Fatalf("retried begin at %v, want the write time %v", in.Begin, written)
		}
	})

	// A retry is held to the size limit it is given, as the pool's nodes
	// hold events to theirs.
	t.Run("RetrySizeLimit", func(t *testing.T) {
		t.Parallel()
		s, ctx := setup(t)
		mustAddBuffer(t, ctx, s, "src", 1)
		joinNodes(t, ctx, s, "a")
		id := store.SessionID{Source: "src"}
		l, _ := s.Claim(ctx, id, "a", "", 30*time.Second)
		payload := []byte(`{"activity":"A","instance":"S","kind":"begin","data":{"Note":"` + strings.Repeat("x", 200) + `"}}`)
		b := batch(l, "a", store.Position{Minor: 1})
		b.Failures = []store.Failure{{SessionID: id, Position: store.Position{Minor: 1}, Reason: "r", Payload: payload}}
		if err := s.Apply(ctx, b); err != nil {
			t.Fatal(err)
		}
		list, _ := s.FailedEvents(ctx, "src", 0)
		var evErr *event.Error
		if err := s.RetryFailed(ctx, list[0].ID, nil, 100); !errors.As(err, &evErr) || !strings.Contains(evErr.Error(), "over the limit of 100") {
			t.Fatalf("RetryFailed over the size limit = %v, want an *event.Error naming the limit", err)
		}
		if err := s.RetryFailed(ctx, list[0].ID, nil, 1000); err != nil {
			t.Fatalf("RetryFailed under the limit: %v", err)
		}
	})
}
