package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/store"
)

// RunBacklog holds the reads the operations API makes without loading the
// store however large what they count: a buffer session's backlog counted
// up to a bound, with the age of its oldest event, and the failed events
// selected by a FailedQuery, paged and counted up to a bound. open
// returns a fresh store with no schema; the suite migrates it.
func RunBacklog(t *testing.T, open func(t *testing.T) store.Store) {
	t.Run("BufferPendingIsBounded", func(t *testing.T) {
		t.Parallel()
		s, ctx := prepared(t, open)
		mustAddBuffer(t, ctx, s, "src", 2)
		p0 := store.SessionID{Source: "src", Partition: 0}
		if b, err := s.BufferPending(ctx, p0, store.Position{}, 10); err != nil || b != (store.Backlog{}) {
			t.Fatalf("BufferPending of an empty buffer = %+v, %v; want zero", b, err)
		}
		var evs []store.BufferEvent
		for i := range 8 {
			evs = append(evs, store.BufferEvent{Partition: i % 2, Payload: fmt.Appendf(nil, `{"n":%d}`, i)})
		}
		if err := s.AppendBuffer(ctx, "src", evs); err != nil {
			t.Fatal(err)
		}
		b, err := s.BufferPending(ctx, p0, store.Position{}, 10)
		if err != nil || b.Events != 4 || b.AtLeast {
			t.Fatalf("BufferPending bound 10 = %+v, %v; want 4 events, exact", b, err)
		}
		if b.OldestAge < 0 || b.OldestAge > time.Minute {
			t.Fatalf("OldestAge = %v, want the few moments since the append", b.OldestAge)
		}
		if b, err := s.BufferPending(ctx, p0, store.Position{}, 3); err != nil || b.Events != 3 || !b.AtLeast {
			t.Fatalf("BufferPending bound 3 = %+v, %v; want 3, at least", b, err)
		}
		if b, err := s.BufferPending(ctx, p0, store.Position{}, 4); err != nil || b.Events != 4 || b.AtLeast {
			t.Fatalf("BufferPending bound 4 = %+v, %v; want 4, exact", b, err)
		}
		recs, _, err := s.ReadBuffer(ctx, p0, store.Position{}, 100)
		if err != nil || len(recs) != 4 {
			t.Fatalf("ReadBuffer = %d, %v", len(recs), err)
		}
		if b, err := s.BufferPending(ctx, p0, recs[2].Position, 10); err != nil || b.Events != 1 || b.AtLeast {
			t.Fatalf("BufferPending after the third = %+v, %v; want 1", b, err)
		}
		if b, err := s.BufferPending(ctx, p0, recs[3].Position, 10); err != nil || b != (store.Backlog{}) {
			t.Fatalf("BufferPending after the last = %+v, %v; want zero (no age without an event)", b, err)
		}
	})

	t.Run("FailedQuery", func(t *testing.T) {
		t.Parallel()
		s, ctx := prepared(t, open)
		mustAddBuffer(t, ctx, s, "src", 2)
		mustAddBuffer(t, ctx, s, "other", 1)
		joinNodes(t, ctx, s, "a")
		fail := func(id store.SessionID, n int, reason func(i int) string) {
			t.Helper()
			l, err := s.Claim(ctx, id, "a", "", 30*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			b := batch(l, "a", store.Position{Minor: int64(n)})
			for i := range n {
				b.Failures = append(b.Failures, store.Failure{SessionID: id, Position: store.Position{Minor: int64(i + 1)},
					Reason: reason(i), Payload: fmt.Appendf(nil, `{"n":%d}`, i)})
			}
			if err := s.Apply(ctx, b); err != nil {
				t.Fatal(err)
			}
		}
		before := time.Now().Add(-time.Hour)
		fail(store.SessionID{Source: "src", Partition: 0}, 5, func(i int) string { return fmt.Sprintf("kind: unknown %d", i) })
		fail(store.SessionID{Source: "src", Partition: 1}, 3, func(int) string { return "data.Amount: Not A Number" })
		fail(store.SessionID{Source: "other"}, 2, func(int) string { return "malformed JSON" })

		one := 1
		for _, c := range []struct {
			name string
			q    store.FailedQuery
			want int
		}{
			{"all", store.FailedQuery{}, 10},
			{"source", store.FailedQuery{Source: "src"}, 8},
			{"partition", store.FailedQuery{Source: "src", Partition: &one}, 3},
			{"reason", store.FailedQuery{Reason: "unknown"}, 5},
			{"reason is case-sensitive", store.FailedQuery{Reason: "not a number"}, 0},
			{"reason and source", store.FailedQuery{Source: "other", Reason: "JSON"}, 2},
			{"since", store.FailedQuery{Since: before}, 10},
			{"until", store.FailedQuery{Until: before}, 0},
			{"range", store.FailedQuery{Since: before, Until: time.Now().Add(time.Hour)}, 10},
		} {
			list, err := s.FailedEventsWhere(ctx, c.q)
			if err != nil || len(list) != c.want {
				t.Errorf("%s: FailedEventsWhere = %d, %v; want %d", c.name, len(list), err, c.want)
			}
			for i := 1; i < len(list); i++ {
				if list[i-1].ID >= list[i].ID {
					t.Errorf("%s: not oldest first: %d then %d", c.name, list[i-1].ID, list[i].ID)
				}
			}
			if n, atLeast, err := s.CountFailed(ctx, c.q, 100); err != nil || n != int64(c.want) || atLeast {
				t.Errorf("%s: CountFailed = %d (at least %v), %v; want %d exactly", c.name, n, atLeast, err, c.want)
			}
		}
		if n, atLeast, err := s.CountFailed(ctx, store.FailedQuery{Source: "src"}, 4); err != nil || n != 4 || !atLeast {
			t.Errorf("CountFailed bound 4 of 8 = %d (at least %v), %v; want 4, at least", n, atLeast, err)
		}
		if n, atLeast, err := s.CountFailed(ctx, store.FailedQuery{Source: "src"}, 8); err != nil || n != 8 || atLeast {
			t.Errorf("CountFailed bound 8 of 8 = %d (at least %v), %v; want 8 exactly", n, atLeast, err)
		}

		// Pages of 3 walk every event once, in order.
		var seen []int64
		q := store.FailedQuery{Source: "src", Limit: 3}
		for {
			page, err := s.FailedEventsWhere(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range page {
				seen = append(seen, f.ID)
			}
			if len(page) < q.Limit {
				break
			}
			q.AfterID = page[len(page)-1].ID
		}
		all, _ := s.FailedEventsWhere(ctx, store.FailedQuery{Source: "src"})
		if len(seen) != len(all) {
			t.Fatalf("paging saw %v, want the %d events", seen, len(all))
		}
		for i := range all {
			if seen[i] != all[i].ID {
				t.Fatalf("paging saw %v, want %v", seen, all)
			}
		}
	})
}
