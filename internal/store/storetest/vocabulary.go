package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/store"
)

// applier applies batches to one session it owns, each after the last.
type applier struct {
	t     *testing.T
	ctx   context.Context
	s     store.Store
	lease store.Lease
	pos   int64
}

func newApplier(t *testing.T, ctx context.Context, s store.Store) *applier {
	t.Helper()
	mustAddBuffer(t, ctx, s, "src", 1)
	joinNodes(t, ctx, s, "a")
	l, err := s.Claim(ctx, store.SessionID{Source: "src"}, "a", "", time.Minute)
	if err != nil {
		t.Fatalf("Claim: %v", err)
	}
	return &applier{t: t, ctx: ctx, s: s, lease: l}
}

// next is the batch of events after the last one applied.
func (a *applier) next(events ...event.Event) store.Batch {
	b := batch(a.lease, "a", store.Position{Minor: a.pos + int64(len(events)) + 1}, events...)
	b.From = store.Position{Minor: a.pos}
	return b
}

// apply commits events as one batch.
func (a *applier) apply(events ...event.Event) {
	a.t.Helper()
	b := a.next(events...)
	if err := a.s.Apply(a.ctx, b); err != nil {
		a.t.Fatalf("Apply: %v", err)
	}
	a.pos = b.Checkpoint.Minor
}

func (a *applier) instance(activity, id string) store.Instance {
	a.t.Helper()
	return instance(a.t, a.ctx, a.s, event.Key{Activity: activity, Instance: id})
}

func (a *applier) continuation(activity, token string) store.Continuation {
	a.t.Helper()
	c, err := a.s.Continuation(a.ctx, activity, token)
	if err != nil {
		a.t.Fatalf("Continuation(%s, %s): %v", activity, token, err)
	}
	return c
}

// cev is an event of the continuation token.
func cev(activity, token string, kind event.Kind, sec int, data map[string]string) event.Event {
	e := ev(activity, "", kind, sec, data)
	e.Continuation = token
	return e
}

// enable is an enable-continuation of token by instance.
func enable(activity, instance, token string, sec int) event.Event {
	e := ev(activity, instance, event.EnableContinuation, sec, nil)
	e.Token = token
	return e
}

// enableFrom is an enable-continuation of token by the continuation parent.
func enableFrom(activity, parent, token string, sec int) event.Event {
	e := cev(activity, parent, event.EnableContinuation, sec, nil)
	e.Token = token
	return e
}

func relate(activity, instance, relActivity, relInstance string, sec int) event.Event {
	e := ev(activity, instance, event.Relate, sec, nil)
	e.Related = &event.Related{Activity: relActivity, Instance: relInstance}
	return e
}

func reference(activity, instance, value, data string, sec int) event.Event {
	e := ev(activity, instance, event.AddReference, sec, nil)
	e.Reference = &event.Reference{Type: "message", Name: "order", Value: value, Data: data}
	return e
}

// RunVocabulary holds the rules of the whole event vocabulary as Apply
// applies it: continuations, relations and references, in any order of
// arrival, and conflicts quarantined as failed events. open returns a
// fresh store with no schema; the suite migrates it.
func RunVocabulary(t *testing.T, open func(t *testing.T) store.Store) {
	setup := func(t *testing.T) (store.Store, context.Context) { return prepared(t, open) }

	t.Run("EndBeforeBegin", func(t *testing.T) {
		t.Parallel()
		s, ctx := setup(t)
		a := newApplier(t, ctx, s)
		a.apply(ev("PO", "1", event.End, 10, map[string]string{"Closed": "true"}))
		if in := a.instance("PO", "1"); in.State != store.StatePending || in.End == nil || in.Begin != nil {
			t.Fatalf("end alone: %+v; want pending with its end", in)
		}
		a.apply(ev("PO", "1", event.Begin, 0, nil))
		in := a.instance("PO", "1")
		if in.State != store.StateCompleted || !in.Begin.Equal(at(0)) || !in.End.Equal(at(10)) || in.Events != 2 {
			t.Fatalf("after the begin: %+v; want completed, begin 0, end 10, 2 events", in)
		}
	})

	t.Run("ContinuationBeforeEnable", func(t *testing.T) {
		t.Parallel()
		s, ctx := setup(t)
		a := newApplier(t, ctx, s)
		a.apply(ev("PO", "1", event.Begin, 0, map[string]string{"Amount": "10"}))
		a.apply(cev("PO", "ship-1", event.Update, 5, map[string]string{"Carrier": `"UPS"`, "Amount": "12"}),
			cev("PO", "ship-1", event.End, 6, nil))
		if in := a.instance("PO", "1"); in.Events != 1 || string(in.Data["Amount"]) != "10" || len(in.Continuations) != 0 {
			t.Fatalf("instance before the link: %+v; want its own event only", in)
		}
		orphan := a.continuation("PO", "ship-1")
		if orphan.Instance != "" || orphan.Pending != 2 || orphan.Events != 2 || orphan.EnabledAt != nil || orphan.EndedAt == nil || orphan.Open() {
			t.Fatalf("orphan continuation: %+v; want unlinked, 2 events kept aside, ended, not open", orphan)
		}
		if _, err := s.Instance(ctx, event.Key{Activity: "PO", Instance: "ship-1"}); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("a continuation's events made an instance of the token: %v", err)
		}
		a.apply(enable("PO", "1", "ship-1", 1), ev("PO", "1", event.End, 7, nil))
		in := a.instance("PO", "1")
		want := map[string]string{"Amount": "12", "Carrier": `"UPS"`}
		if got := dataStrings(in.Data); !equalMaps(got, want) || in.Events != 5 || in.State != store.StateCompleted || !in.LastModified.Equal(at(7)) {
			t.Fatalf("after the link: %+v; want data %v, 5 events, completed", in, want)
		}
		if len(in.Continuations) != 1 || in.Continuations[0].Token != "ship-1" || in.Continuations[0].Pending != 0 ||
			!in.Continuations[0].EnabledAt.Equal(at(1)) || in.Continuations[0].ParentInstance != "1" {
			t.Fatalf("continuations = %+v", in.Continuations)
		}
		if _, err := s.Continuation(ctx, "PO", "nope"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Continuation of an unknown token = %v, want ErrNotFound", err)
		}
	})

	t.Run("ContinuationAfterEnable", func(t *testing.T) {
		t.Parallel()
		s, ctx := setup(t)
		a := newApplier(t, ctx, s)
		a.apply(ev("PO", "1", event.Begin, 0, nil), enable("PO", "1", "ship-1", 1), ev("PO", "1", event.End, 2, nil))
		if in := a.instance("PO", "1"); in.State != store.StateActive || len(in.Continuations) != 1 || !in.Continuations[0].Open() {
			t.Fatalf("ended with an open continuation: %+v; want active", in)
		}
		a.apply(cev("PO", "ship-1", event.Update, 3, map[string]string{"Carrier": `"DHL"`}))
		in := a.instance("PO", "1")
		if string(in.Data["Carrier"]) != `"DHL"` || in.Events != 4 || in.State != store.StateActive {
			t.Fatalf("continuation update after the link: %+v; want Carrier DHL, 4 events, active", in)
		}
		a.apply(cev("PO", "ship-1", event.End, 4, nil))
		in = a.instance("PO", "1")
		if in.State != store.StateCompleted || in.Events != 5 || !in.LastModified.Equal(at(4)) || in.Continuations[0].Open() {
			t.Fatalf("after the continuation's end: %+v; want completed, 5 events", in)
		}
		// The instance's own end is its own: a continuation's end does not move it.
		if !in.End.Equal(at(2)) {
			t.Fatalf("end = %v, want the instance's own end %v", in.End, at(2))
		}
	})

	t.Run("NestedContinuationInEveryOrder", func(t *testing.T) {
		t.Parallel()
		s, ctx := setup(t)
		a := newApplier(t, ctx, s)
		groups := func(id string) [][]event.Event {
			t1, t2 := id+"-t1", id+"-t2"
			return [][]event.Event{
				{ev("PO", id, event.Begin, 0, nil), enable("PO", id, t1, 1)},
				{cev("PO", t1, event.Update, 2, map[string]string{"A": "1"}), enableFrom("PO", t1, t2, 3), cev("PO", t1, event.End, 4, nil)},
				{cev("PO", t2, event.Update, 5, map[string]string{"B": "2"}), cev("PO", t2, event.End, 6, nil)},
				{ev("PO", id, event.End, 7, nil)},
			}
		}
		for n, order := range permutations(4) {
			id := fmt.Sprintf("P%02d", n)
			g := groups(id)
			for i, gi := range order {
				a.apply(g[gi]...)
				in, err := s.Instance(ctx, event.Key{Activity: "PO", Instance: id})
				if err != nil && !errors.Is(err, store.ErrNotFound) {
					t.Fatal(err)
				}
				if done := i == len(order)-1; (in.State == store.StateCompleted) != done {
					t.Fatalf("order %v, after %d groups: state %s, want completed only at the end (%+v)", order, i+1, in.State, in)
				}
			}
			in := a.instance("PO", id)
			if got := dataStrings(in.Data); in.Events != 8 || !equalMaps(got, map[string]string{"A": "1", "B": "2"}) || !in.LastModified.Equal(at(7)) {
				t.Fatalf("order %v: %+v; want 8 events, A and B", order, in)
			}
			if len(in.Continuations) != 2 || in.Continuations[1].ParentToken != id+"-t1" || in.Continuations[1].Instance != id {
				t.Fatalf("order %v: continuations %+v; want t1 and t2, t2 enabled by t1, both of %s", order, in.Continuations, id)
			}
		}
	})

	t.Run("CompletedOnlyWhenEveryContinuationEnded", func(t *testing.T) {
		t.Parallel()
		s, ctx := setup(t)
		a := newApplier(t, ctx, s)
		a.apply(ev("PO", "1", event.Begin, 0, nil), enable("PO", "1", "t1", 1), enable("PO", "1", "t2", 1))
		a.apply(ev("PO", "1", event.End, 2, nil))
		a.apply(cev("PO", "t1", event.End, 3, nil))
		if in := a.instance("PO", "1"); in.State != store.StateActive {
			t.Fatalf("t2 still open: state %s, want active", in.State)
		}
		a.apply(cev("PO", "t2", event.End, 4, nil))
		if in := a.instance("PO", "1"); in.State != store.StateCompleted {
			t.Fatalf("every continuation ended: state %s, want completed", in.State)
		}
		// A continuation that opens later (t2 continues in t3) makes the
		// instance active again until it ends.
		a.apply(enableFrom("PO", "t2", "t3", 5))
		if in := a.instance("PO", "1"); in.State != store.StateActive || len(in.Continuations) != 3 {
			t.Fatalf("t3 opened after completion: %+v; want active with 3 continuations", in)
		}
		a.apply(cev("PO", "t3", event.End, 6, nil))
		if in := a.instance("PO", "1"); in.State != store.StateCompleted || in.Events != 8 {
			t.Fatalf("t3 ended: %+v; want completed, 8 events", in)
		}
	})

	t.Run("ConflictingEnableIsQuarantined", func(t *testing.T) {
		t.Parallel()
		s, ctx := setup(t)
		a := newApplier(t, ctx, s)
		a.apply(ev("PO", "1", event.Begin, 0, nil), enable("PO", "1", "ship", 1))
		a.apply(ev("PO", "2", event.Begin, 0, nil), enable("PO", "2", "ship", 2), ev("PO", "2", event.Update, 3, map[string]string{"N": "1"}))
		if in := a.instance("PO", "2"); in.Events != 2 || len(in.Continuations) != 0 || string(in.Data["N"]) != "1" {
			t.Fatalf("instance 2: %+v; want its 2 other events, no continuation", in)
		}
		if c := a.continuation("PO", "ship"); c.Instance != "1" || c.ParentInstance != "1" || !c.EnabledAt.Equal(at(1)) {
			t.Fatalf("ship = %+v; want kept by instance 1", c)
		}
		failed, err := s.FailedEvents(ctx, "src", 0)
		if err != nil || len(failed) != 1 {
			t.Fatalf("FailedEvents = %+v, %v; want the refused enable", failed, err)
		}
		f := failed[0]
		for _, want := range []string{`"ship"`, `instance "1"`, `instance "2"`} {
			if !strings.Contains(f.Reason, want) {
				t.Errorf("reason %q does not name %s", f.Reason, want)
			}
		}
		got, err := event.Decode(f.Payload, time.Time{}, 0)
		if err != nil || got.Kind != event.EnableContinuation || got.Instance != "2" || got.Token != "ship" || !got.Time.Equal(at(2)) {
			t.Fatalf("failed payload %s = %+v, %v; want instance 2's enable of ship", f.Payload, got, err)
		}
		if f.Position != (store.Position{Minor: a.pos}) {
			t.Errorf("failed at %v, want the batch's checkpoint %v", f.Position, store.Position{Minor: a.pos})
		}
		se := session(t, ctx, s, store.SessionID{Source: "src"})
		if se.Applied != 4 || se.Failed != 1 {
			t.Errorf("session counts applied %d, failed %d; want 4 and 1", se.Applied, se.Failed)
		}
		// The events by activity agree: the refused enable is not
		// counted as applied (it was, once).
		if counter, ok := s.(store.ActivityEventCounter); ok {
			if got, err := counter.ActivityEvents(ctx); err != nil || got["PO"] != 4 {
				t.Errorf("ActivityEvents = %v, %v; want PO 4, as the session counts", got, err)
			}
		}
		// Retried, it is still refused, and kept.
		var evErr *event.Error
		if err := s.RetryFailed(ctx, f.ID, nil, 0); !errors.As(err, &evErr) || evErr.Field != "token" {
			t.Fatalf("RetryFailed of the refused enable = %v, want an *event.Error on token", err)
		}
		if _, err := s.FailedEvent(ctx, f.ID); err != nil {
			t.Fatalf("the refused enable is gone after a retry: %v", err)
		}
		// Two enables of one token in one batch: the first keeps it, and a
		// continuation enabling it counts as another segment.
		a.apply(ev("PO", "3", event.Begin, 0, nil), enable("PO", "3", "bill", 1), enableFrom("PO", "ship", "bill", 2))
		if c := a.continuation("PO", "bill"); c.Instance != "3" {
			t.Fatalf("bill = %+v; want kept by instance 3, the first enable in the batch", c)
		}
		failed, _ = s.FailedEvents(ctx, "src", 0)
		if len(failed) != 2 || !strings.Contains(failed[1].Reason, `continuation "ship"`) {
			t.Fatalf("failed events %+v; want the second enable of bill refused", failed)
		}
		if c := a.continuation("PO", "ship"); c.Events != 0 {
			t.Fatalf("ship counts %d events, want 0: its only event was refused", c.Events)
		}
		// A continuation never seen before whose only event is a refused
		// enable leaves nothing behind.
		a.apply(enableFrom("PO", "new", "bill", 3))
		if _, err := s.Continuation(ctx, "PO", "new"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Continuation(new) = %v, want ErrNotFound: its only event was refused", err)
		}
		if failed, _ = s.FailedEvents(ctx, "src", 0); len(failed) != 3 {
			t.Fatalf("%d failed events, want 3", len(failed))
		}
	})

	t.Run("RetryFailedContinuationEvent", func(t *testing.T) {
		t.Parallel()
		s, ctx := setup(t)
		a := newApplier(t, ctx, s)
		b := a.next(ev("PO", "1", event.Begin, 0, nil))
		b.Failures = []store.Failure{{SessionID: a.lease.SessionID, Position: b.Checkpoint, Reason: "malformed JSON", Payload: []byte(`{"activity":"PO",`)}}
		if err := s.Apply(ctx, b); err != nil {
			t.Fatal(err)
		}
		a.pos = b.Checkpoint.Minor
		failed, err := s.FailedEvents(ctx, "src", 0)
		if err != nil || len(failed) != 1 {
			t.Fatalf("FailedEvents = %+v, %v", failed, err)
		}
		fixed := []byte(`{"activity":"PO","continuation":"t","kind":"update","time":"2026-11-25T10:00:05Z","data":{"X":1}}`)
		if err := s.RetryFailed(ctx, failed[0].ID, fixed, 0); err != nil {
			t.Fatalf("RetryFailed: %v", err)
		}
		if _, err := s.Instance(ctx, event.Key{Activity: "PO", Instance: "t"}); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("a retried continuation event made an instance of its token: %v", err)
		}
		if c := a.continuation("PO", "t"); c.Pending != 1 || c.Instance != "" {
			t.Fatalf("continuation t = %+v; want its retried event kept aside", c)
		}
		fixed = []byte(`{"activity":"PO","instance":"1","kind":"enable-continuation","token":"t","time":"2026-11-25T10:00:01Z"}`)
		b = a.next()
		b.Failures = []store.Failure{{SessionID: a.lease.SessionID, Position: b.Checkpoint, Reason: "r", Payload: fixed}}
		if err := s.Apply(ctx, b); err != nil {
			t.Fatal(err)
		}
		failed, _ = s.FailedEvents(ctx, "src", 0)
		if err := s.RetryFailed(ctx, failed[0].ID, nil, 0); err != nil {
			t.Fatalf("RetryFailed of an enable: %v", err)
		}
		if in := a.instance("PO", "1"); in.Events != 3 || string(in.Data["X"]) != "1" {
			t.Fatalf("instance 1 = %+v; want the retried enable and the continuation's event folded in (3 events, X 1)", in)
		}
	})

	t.Run("RelationsBothWaysAndIdempotent", func(t *testing.T) {
		t.Parallel()
		s, ctx := setup(t)
		a := newApplier(t, ctx, s)
		a.apply(ev("PO", "1", event.Begin, 0, nil), relate("PO", "1", "Invoice", "7", 1), relate("PO", "1", "Invoice", "7", 2))
		a.apply(ev("Invoice", "7", event.Begin, 0, nil), relate("Invoice", "7", "PO", "1", 3))
		a.apply(relate("PO", "1", "Invoice", "7", 4), relate("PO", "1", "Shipment", "S-1", 5))
		po := a.instance("PO", "1")
		want := []event.Key{{Activity: "Invoice", Instance: "7"}, {Activity: "Shipment", Instance: "S-1"}}
		if !slices.Equal(po.Related, want) || po.Events != 5 {
			t.Fatalf("PO 1 related %+v (%d events); want %v, 5 events", po.Related, po.Events, want)
		}
		inv := a.instance("Invoice", "7")
		if !slices.Equal(inv.Related, []event.Key{{Activity: "PO", Instance: "1"}}) {
			t.Fatalf("Invoice 7 related %+v; want PO 1 once", inv.Related)
		}
		list, err := s.Instances(ctx, store.InstanceFilter{Activity: "PO"})
		if err != nil || len(list) != 1 {
			t.Fatalf("Instances = %+v, %v", list, err)
		}
	})

	t.Run("ReferencesLaterDataWins", func(t *testing.T) {
		t.Parallel()
		s, ctx := setup(t)
		a := newApplier(t, ctx, s)
		a.apply(ev("PO", "1", event.Begin, 0, nil), reference("PO", "1", "m1", "late", 7))
		a.apply(reference("PO", "1", "m1", "early", 6), reference("PO", "1", "m2", "", 6))
		in := a.instance("PO", "1")
		if len(in.References) != 2 || in.References[0].Data != "late" || !in.References[0].Time.Equal(at(7)) ||
			in.References[1].Value != "m2" || in.References[1].Type != "message" || in.References[1].Name != "order" {
			t.Fatalf("references %+v; want m1 with the later data, and m2", in.References)
		}
		// Same key, same time: the one applied last wins.
		a.apply(reference("PO", "1", "m1", "again", 7))
		if in := a.instance("PO", "1"); in.References[0].Data != "again" || in.Events != 5 {
			t.Fatalf("tie: %+v (%d events); want the last applied, 5 events", in.References, in.Events)
		}
	})

	t.Run("FencedRetryAppliesNothing", func(t *testing.T) {
		t.Parallel()
		s, ctx := setup(t)
		a := newApplier(t, ctx, s)
		events := []event.Event{
			ev("PO", "1", event.Begin, 0, nil), enable("PO", "1", "t", 1),
			cev("PO", "t", event.Update, 2, map[string]string{"X": "1"}), cev("PO", "orphan", event.Update, 2, nil),
			relate("PO", "1", "Invoice", "7", 3), reference("PO", "1", "m", "d", 4),
		}
		b := a.next(events...)
		if err := s.Apply(ctx, b); err != nil {
			t.Fatalf("Apply: %v", err)
		}
		a.pos = b.Checkpoint.Minor
		// The commit landed but its answer was lost: the retry is refused.
		if err := s.Apply(ctx, b); !errors.Is(err, store.ErrFenced) {
			t.Fatalf("retry of a committed batch = %v, want ErrFenced", err)
		}
		in := a.instance("PO", "1")
		if in.Events != 5 || len(in.Related) != 1 || len(in.References) != 1 || len(in.Continuations) != 1 || in.Continuations[0].Events != 1 {
			t.Fatalf("after a refused retry: %+v; want every event once (5 in the instance)", in)
		}
		if c := a.continuation("PO", "orphan"); c.Pending != 1 {
			t.Fatalf("orphan %+v; want 1 event kept aside", c)
		}
		// A batch under a lost epoch writes nothing of the vocabulary.
		stale := a.next(enable("PO", "2", "u", 1), cev("PO", "u", event.Update, 2, nil), relate("PO", "2", "Invoice", "8", 3),
			reference("PO", "2", "m", "d", 4), cev("PO", "orphan", event.Update, 5, nil))
		stale.Epoch++
		if err := s.Apply(ctx, stale); !errors.Is(err, store.ErrFenced) {
			t.Fatalf("Apply under another epoch = %v, want ErrFenced", err)
		}
		if _, err := s.Instance(ctx, event.Key{Activity: "PO", Instance: "2"}); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("a fenced batch wrote its instance: %v", err)
		}
		if _, err := s.Continuation(ctx, "PO", "u"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("a fenced batch wrote its continuation: %v", err)
		}
		if c := a.continuation("PO", "orphan"); c.Events != 1 {
			t.Fatalf("a fenced batch fed the orphan: %+v", c)
		}
	})

	t.Run("PropertyAnyOrderSameState", func(t *testing.T) {
		t.Parallel()
		s, ctx := setup(t)
		a := newApplier(t, ctx, s)
		seed := uint64(time.Now().UnixNano())
		if env := os.Getenv("BAM_TEST_SEED"); env != "" {
			var err error
			if seed, err = strconv.ParseUint(env, 10, 64); err != nil {
				t.Fatalf("BAM_TEST_SEED=%q: %v", env, err)
			}
		}
		t.Logf("seed %d (BAM_TEST_SEED=%d runs it again)", seed, seed)
		rng := rand.New(rand.NewPCG(seed, seed>>7|1))
		for scenario := range 5 {
			gen := scenarioEvents(rng)
			var want string
			for run := range 8 {
				prefix := fmt.Sprintf("s%dr%d", scenario, run)
				events := gen(prefix)
				if run > 0 {
					rng.Shuffle(len(events), func(i, j int) { events[i], events[j] = events[j], events[i] })
				}
				var cuts []int
				for len(events) > 0 {
					n := len(events) // the first run: every event in order, in one batch
					if run > 0 {
						n = 1 + rng.IntN(len(events))
					}
					cuts = append(cuts, n)
					a.apply(events[:n]...)
					events = events[n:]
				}
				got := canonical(t, a.instance("PO", prefix+"-P"), prefix)
				if run == 0 {
					want = got
					continue
				}
				if got != want {
					t.Fatalf("seed %d, scenario %d, run %d (batches of %v): state\n%s\nwant (all in order, one batch)\n%s", seed, scenario, run, cuts, got, want)
				}
			}
			if !strings.Contains(want, `"State":"completed"`) {
				t.Fatalf("scenario %d never completed: %s", scenario, want)
			}
		}
	})
}

// scenarioEvents draws one instance's events: begin, updates, end, a
// continuation with a nested one and their events, relations and
// references, every event at its own time. The result makes the events
// with ids under a prefix, so that each run has instances of its own.
func scenarioEvents(rng *rand.Rand) func(prefix string) []event.Event {
	secs := rng.Perm(1000)
	next := func() int { s := secs[0]; secs = secs[1:]; return s + 1 }
	type draft struct {
		kind           event.Kind
		seg, token     string // seg: "P", or a token name; token for enables
		cont           bool
		sec            int
		data           map[string]string
		relTo, refData string
		refValue       string
	}
	var ds []draft
	begin := next()
	ds = append(ds, draft{kind: event.Begin, seg: "P", sec: begin, data: map[string]string{"Amount": fmt.Sprint(rng.IntN(100))}})
	items := []string{"Amount", "Status", "Carrier"}
	for range 1 + rng.IntN(4) {
		ds = append(ds, draft{kind: event.Update, seg: "P", sec: next(), data: map[string]string{items[rng.IntN(3)]: fmt.Sprint(rng.IntN(100))}})
	}
	ds = append(ds, draft{kind: event.End, seg: "P", sec: next()})
	ds = append(ds, draft{kind: event.EnableContinuation, seg: "P", token: "t1", sec: next()})
	for range 1 + rng.IntN(3) {
		ds = append(ds, draft{kind: event.Update, seg: "t1", cont: true, sec: next(), data: map[string]string{items[rng.IntN(3)]: fmt.Sprint(rng.IntN(100))}})
	}
	ds = append(ds, draft{kind: event.EnableContinuation, seg: "t1", cont: true, token: "t2", sec: next()})
	ds = append(ds, draft{kind: event.End, seg: "t1", cont: true, sec: next()})
	ds = append(ds, draft{kind: event.Update, seg: "t2", cont: true, sec: next(), data: map[string]string{"Status": `"shipped"`}})
	ds = append(ds, draft{kind: event.End, seg: "t2", cont: true, sec: next()})
	for range rng.IntN(3) {
		ds = append(ds, draft{kind: event.Relate, seg: "P", sec: next(), relTo: fmt.Sprintf("R%d", rng.IntN(2))})
	}
	for range rng.IntN(4) {
		ds = append(ds, draft{kind: event.AddReference, seg: "P", sec: next(), refValue: fmt.Sprintf("m%d", rng.IntN(2)), refData: fmt.Sprintf("d%d", rng.IntN(1000))})
	}
	return func(prefix string) []event.Event {
		out := make([]event.Event, 0, len(ds))
		for _, d := range ds {
			var e event.Event
			if d.cont {
				e = cev("PO", prefix+"-"+d.seg, d.kind, d.sec, d.data)
			} else {
				e = ev("PO", prefix+"-"+d.seg, d.kind, d.sec, d.data)
			}
			switch d.kind {
			case event.EnableContinuation:
				e.Token = prefix + "-" + d.token
			case event.Relate:
				e.Related = &event.Related{Activity: "Invoice", Instance: prefix + "-" + d.relTo}
			case event.AddReference:
				e.Reference = &event.Reference{Type: "message", Name: "n", Value: d.refValue, Data: d.refData}
			}
			out = append(out, e)
		}
		return out
	}
}

// canonical is an instance as JSON, with the run's prefix taken out of
// every id.
func canonical(t *testing.T, in store.Instance, prefix string) string {
	t.Helper()
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	return string(bytes.ReplaceAll(b, []byte(prefix), []byte("X")))
}

// permutations returns every order of 0..n-1.
func permutations(n int) [][]int {
	if n == 0 {
		return [][]int{{}}
	}
	var out [][]int
	for _, p := range permutations(n - 1) {
		for i := 0; i <= len(p); i++ {
			q := slices.Insert(slices.Clone(p), i, n-1)
			out = append(out, q)
		}
	}
	return out
}
