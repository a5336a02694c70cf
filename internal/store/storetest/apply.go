package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/store"
)

// RunApply holds the rules by which Apply merges a batch's events into
// instances (event.Merge's, whatever order the events come in) and by
// which instances are listed. open returns a fresh store with no schema;
// the suite migrates it.
func RunApply(t *testing.T, open func(t *testing.T) store.Store) {
	setup := func(t *testing.T) (store.Store, context.Context) { return prepared(t, open) }

	t.Run("MergeRules", func(t *testing.T) {
		t.Parallel()
		s, ctx := setup(t)
		mustAddBuffer(t, ctx, s, "src", 1)
		joinNodes(t, ctx, s, "a")
		l, err := s.Claim(ctx, store.SessionID{Source: "src"}, "a", "", 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		pos := int64(0)
		apply := func(events ...event.Event) {
			t.Helper()
			b := batch(l, "a", store.Position{Minor: pos + 1}, events...)
			b.From = store.Position{Minor: pos}
			pos++
			if err := s.Apply(ctx, b); err != nil {
				t.Fatalf("Apply: %v", err)
			}
		}
		key := event.Key{Activity: "PurchaseOrder", Instance: "PO-1"}

		// An update and an end before the begin: kept, pending.
		apply(ev("PurchaseOrder", "PO-1", event.Update, 20, map[string]string{"Amount": "1200", "Customer": `"Contoso"`}))
		in := instance(t, ctx, s, key)
		if in.State != store.StatePending || in.Begin != nil || string(in.Data["Amount"]) != "1200" {
			t.Fatalf("update before begin: %+v; want pending with Amount 1200", in)
		}
		apply(ev("PurchaseOrder", "PO-1", event.End, 40, nil))
		if in := instance(t, ctx, s, key); in.State != store.StatePending || in.End == nil {
			t.Fatalf("end before begin: %+v; want pending with its end kept", in)
		}
		// An older value arriving later does not replace a newer one; null never erases.
		apply(ev("PurchaseOrder", "PO-1", event.Update, 10, map[string]string{"Amount": "999", "Customer": "null", "Region": `"EU"`}))
		apply(ev("PurchaseOrder", "PO-1", event.Begin, 0, nil))
		in = instance(t, ctx, s, key)
		if in.State != store.StateCompleted {
			t.Fatalf("state = %s, want completed once begin and end are both in", in.State)
		}
		if !in.Begin.Equal(at(0)) || !in.End.Equal(at(40)) || !in.LastModified.Equal(at(40)) {
			t.Fatalf("times begin=%v end=%v last=%v; want %v %v %v", in.Begin, in.End, in.LastModified, at(0), at(40), at(40))
		}
		wantData := map[string]string{"Amount": "1200", "Customer": `"Contoso"`, "Region": `"EU"`}
		if got := dataStrings(in.Data); !equalMaps(got, wantData) {
			t.Fatalf("data = %v, want %v", got, wantData)
		}
		// An earlier begin wins; a later end wins.
		apply(ev("PurchaseOrder", "PO-1", event.Begin, -5, nil), ev("PurchaseOrder", "PO-1", event.End, 50, map[string]string{"Amount": "1300"}))
		in = instance(t, ctx, s, key)
		if !in.Begin.Equal(at(-5)) || !in.End.Equal(at(50)) || string(in.Data["Amount"]) != "1300" {
			t.Fatalf("after more events: begin=%v end=%v amount=%s", in.Begin, in.End, in.Data["Amount"])
		}
		// Same item, same time: the one applied last wins.
		apply(ev("PurchaseOrder", "PO-1", event.Update, 50, map[string]string{"Amount": "1400"}))
		in = instance(t, ctx, s, key)
		if string(in.Data["Amount"]) != "1400" {
			t.Fatalf("tie on time: Amount = %s, want 1400 (last applied)", in.Data["Amount"])
		}
		if in.Events != 7 {
			t.Fatalf("PO-1 counts %d events, want 7", in.Events)
		}
		// Types survive: text, numbers, booleans, decimals.
		apply(ev("PurchaseOrder", "PO-2", event.Begin, 0, map[string]string{"Big": "12345678901234567890", "Ok": "true", "Ratio": "0.125", "Name": `"Zoë \"Z\""`}))
		in = instance(t, ctx, s, event.Key{Activity: "PurchaseOrder", Instance: "PO-2"})
		for k, want := range map[string]string{"Big": "12345678901234567890", "Ok": "true", "Ratio": "0.125", "Name": `"Zoë \"Z\""`} {
			if got := string(in.Data[k]); got != want {
				t.Errorf("data %s = %s, want %s", k, got, want)
			}
		}
		if in.State != store.StateActive {
			t.Errorf("PO-2 state = %s, want active", in.State)
		}
	})

	t.Run("Instances", func(t *testing.T) {
		t.Parallel()
		s, ctx := setup(t)
		mustAddBuffer(t, ctx, s, "src", 1)
		joinNodes(t, ctx, s, "a")
		l, _ := s.Claim(ctx, store.SessionID{Source: "src"}, "a", "", 30*time.Second)
		var events []event.Event
		for i := 0; i < 10; i++ {
			id := fmt.Sprintf("I-%02d", i)
			events = append(events, ev("A", id, event.Begin, 0, nil))
			if i%2 == 0 {
				events = append(events, ev("A", id, event.End, 1, nil))
			}
		}
		events = append(events, ev("B", "other", event.Begin, 0, nil))
		if err := s.Apply(ctx, batch(l, "a", store.Position{Minor: 1}, events...)); err != nil {
			t.Fatal(err)
		}
		all, err := s.Instances(ctx, store.InstanceFilter{Activity: "A"})
		if err != nil || len(all) != 10 || all[0].ID != "I-00" || all[9].ID != "I-09" {
			t.Fatalf("Instances(A) = %d, %v", len(all), err)
		}
		done, _ := s.Instances(ctx, store.InstanceFilter{Activity: "A", State: store.StateCompleted})
		active, _ := s.Instances(ctx, store.InstanceFilter{Activity: "A", State: store.StateActive})
		if len(done) != 5 || len(active) != 5 {
			t.Fatalf("completed %d, active %d; want 5 and 5", len(done), len(active))
		}
		page, _ := s.Instances(ctx, store.InstanceFilter{Activity: "A", After: "I-03", Limit: 2})
		if len(page) != 2 || page[0].ID != "I-04" || page[1].ID != "I-05" {
			t.Fatalf("page after I-03 = %+v", page)
		}
	})

	// Random events of a few instances, in random batches, end in what
	// the same events folded in Go with event.Coalesce and event.Merge, in
	// the same order, give.
	t.Run("MatchesModel", func(t *testing.T) {
		t.Parallel()
		s, ctx := setup(t)
		mustAddBuffer(t, ctx, s, "src", 1)
		joinNodes(t, ctx, s, "a")
		l, err := s.Claim(ctx, store.SessionID{Source: "src"}, "a", "", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(3, 4))
		base := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
		model := map[event.Key]*event.Delta{}
		var pos store.Position
		for range 40 {
			var evs []event.Event
			for range 1 + rng.IntN(20) {
				ev := event.Event{
					Activity: "PO",
					Instance: fmt.Sprintf("PO-%d", rng.IntN(5)),
					Kind:     []event.Kind{event.Begin, event.Update, event.Update, event.End}[rng.IntN(4)],
					Time:     base.Add(time.Duration(rng.IntN(10)) * time.Second),
					Data:     map[string]json.RawMessage{},
				}
				for _, k := range []string{"Amount", "Customer", "Approved"} {
					switch rng.IntN(4) {
					case 0:
						ev.Data[k] = json.RawMessage(fmt.Sprint(rng.IntN(100)))
					case 1:
						ev.Data[k] = json.RawMessage("null")
					}
				}
				evs = append(evs, ev)
			}
			deltas := event.Coalesce(evs)
			for _, d := range deltas {
				m, ok := model[d.Key]
				if !ok {
					d := d
					model[d.Key] = &d
					continue
				}
				if d.Begin != nil && (m.Begin == nil || d.Begin.Before(*m.Begin)) {
					m.Begin = d.Begin
				}
				if d.End != nil && (m.End == nil || d.End.After(*m.End)) {
					m.End = d.End
				}
				if d.LastModified.After(m.LastModified) {
					m.LastModified = d.LastModified
				}
				m.Events += d.Events
				m.Items = event.Merge(m.Items, d.Items)
			}
			next := store.Position{Minor: pos.Minor + int64(len(evs))}
			err := s.Apply(ctx, store.Batch{Lease: l, Node: "a", From: pos, Checkpoint: next, Deltas: deltas, Applied: len(evs)})
			if err != nil {
				t.Fatal(err)
			}
			pos = next
		}
		for k, m := range model {
			in, err := s.Instance(ctx, k)
			if err != nil {
				t.Fatal(err)
			}
			wantState := store.StatePending
			if m.Begin != nil {
				wantState = store.StateActive
				if m.End != nil {
					wantState = store.StateCompleted
				}
			}
			if in.State != wantState || !sameTime(in.Begin, m.Begin) || !sameTime(in.End, m.End) ||
				!in.LastModified.Equal(m.LastModified) || in.Events != int64(m.Events) {
				t.Errorf("%v: got %s begin=%v end=%v last=%v events=%d; want %s %v %v %v %d", k,
					in.State, in.Begin, in.End, in.LastModified, in.Events, wantState, m.Begin, m.End, m.LastModified, m.Events)
			}
			want := m.Items.Values()
			if len(in.Data) != len(want) {
				t.Errorf("%v: data %v, want %v", k, in.Data, want)
			}
			for name, v := range want {
				if !sameJSON(in.Data[name], v) {
					t.Errorf("%v: %s = %s, want %s", k, name, in.Data[name], v)
				}
			}
		}
	})
}

func sameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Equal(*b)
}

// sameJSON compares JSON values by meaning: PostgreSQL's jsonb may respell
// a value.
func sameJSON(a, b json.RawMessage) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}
