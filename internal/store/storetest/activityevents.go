package storetest

import (
	"maps"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/store"
)

// RunActivityEvents holds Apply's counts of the events each session
// applied, by activity: summed over the sessions, each batch once, a
// fenced batch not at all. open returns a fresh store; the suite migrates
// it.
func RunActivityEvents(t *testing.T, open func(t *testing.T) store.Store) {
	t.Run("CountedByActivity", func(t *testing.T) {
		t.Parallel()
		s, ctx := prepared(t, open)
		counter, ok := s.(store.ActivityEventCounter)
		if !ok {
			t.Skipf("%s store counts no events by activity", s.Driver())
		}
		mustAddBuffer(t, ctx, s, "src", 2)
		joinNodes(t, ctx, s, "a")
		if got, err := counter.ActivityEvents(ctx); err != nil || len(got) != 0 {
			t.Fatalf("ActivityEvents of a new store = %v, %v", got, err)
		}
		l0, err := s.Claim(ctx, store.SessionID{Source: "src", Partition: 0}, "a", "", 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		l1, err := s.Claim(ctx, store.SessionID{Source: "src", Partition: 1}, "a", "", 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Apply(ctx, batch(l0, "a", store.Position{Minor: 3},
			ev("Order", "o1", event.Begin, 1, nil), ev("Order", "o1", event.Update, 2, map[string]string{"x": "1"}),
			ev("Shipment", "s1", event.Begin, 3, nil))); err != nil {
			t.Fatal(err)
		}
		if err := s.Apply(ctx, batch(l1, "a", store.Position{Minor: 4}, ev("Order", "o2", event.Begin, 4, nil))); err != nil {
			t.Fatal(err)
		}
		// A batch refused by the fence counts nothing.
		stale := l1
		stale.Epoch--
		if err := s.Apply(ctx, batch(stale, "a", store.Position{Minor: 9}, ev("Order", "o3", event.Begin, 5, nil))); err == nil {
			t.Fatal("a batch under a stale epoch was applied")
		}
		want := map[string]int64{"Order": 3, "Shipment": 1}
		if got, err := counter.ActivityEvents(ctx); err != nil || !maps.Equal(got, want) {
			t.Fatalf("ActivityEvents = %v, %v; want %v", got, err, want)
		}
	})
}
