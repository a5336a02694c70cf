package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/store"
	"github.com/bam-dev/bam/internal/store/storetest"
	"github.com/bam-dev/bam/internal/testpg"
)

func TestWriteEvents(t *testing.T) {
	t.Parallel()
	var urls sync.Map // *Store → its database URL
	storetest.RunDirect(t, func(t *testing.T) store.Store {
		url := testpg.NewDatabase(t)
		s := open(t, url)
		urls.Store(s, url)
		return s
	}, func(ctx context.Context, st store.Store, events []event.Event, commit bool) error {
		url, _ := urls.Load(st)
		// The application's own connection and transaction.
		conn, err := pgx.Connect(ctx, url.(string))
		if err != nil {
			return err
		}
		defer conn.Close(context.Background())
		tx, err := conn.Begin(ctx)
		if err != nil {
			return err
		}
		if err := WriteEvents(ctx, tx, events); err != nil || !commit {
			return errors.Join(err, tx.Rollback(ctx))
		}
		return tx.Commit(ctx)
	})
}

func TestStoreWriteEvents(t *testing.T) {
	t.Parallel()
	storetest.RunDirectOwnTransaction(t, func(t *testing.T) store.Store { return open(t, testpg.NewDatabase(t)) },
		func(ctx context.Context, st store.Store, events []event.Event) error {
			return st.(*Store).WriteEvents(ctx, events)
		})
}

// TestIdentity tells the store's database from another and from itself
// through another connection.
func TestIdentity(t *testing.T) {
	t.Parallel()
	b := setup(t)
	own, err := b.s.Identity(b.ctx)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := connect(t, b.url).Begin(b.ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(b.ctx)
	if got, err := Identity(b.ctx, tx); err != nil || got != own {
		t.Fatalf("Identity of a transaction on the store = %q, %v; want %q", got, err, own)
	}
	other := setup(t)
	if got, err := other.s.Identity(b.ctx); err != nil || got == own {
		t.Fatalf("Identity of another store = %q, %v; want one that differs from %q", got, err, own)
	}
	if _, err := Identity(b.ctx, connect(t, testpg.NewDatabase(t))); err == nil {
		t.Fatal("Identity of a database without a store schema succeeded")
	}
}

// TestCrossingContinuationsDoNotDeadlock applies, at once on two sessions,
// batches that each enable a token whose events the other batch carries:
// without one lock order for continuation rows they deadlock, and the
// server aborts one of them.
func TestCrossingContinuationsDoNotDeadlock(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := b.ctx
	if err := b.s.AddSource(ctx, store.Source{Name: "src", Kind: store.KindBuffer, Partitions: 2, Enabled: true}); err != nil {
		t.Fatal(err)
	}
	node := store.NodeRow{ID: "a", Name: "a", Host: "test", PID: 1, StartedAt: time.Now(), State: store.NodeRunning}
	if err := b.s.Join(ctx, node); err != nil {
		t.Fatal(err)
	}
	var leases [2]store.Lease
	for p := range leases {
		l, err := b.s.Claim(ctx, store.SessionID{Source: "src", Partition: p}, "a", "", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		leases[p] = l
	}
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	side := func(own, other string, i int) []event.Event {
		tok := func(s string) string { return fmt.Sprintf("%s-%d", s, i) }
		return []event.Event{
			{Activity: "PO", Instance: tok(own), Kind: event.Begin, Time: t0},
			{Activity: "PO", Instance: tok(own), Kind: event.EnableContinuation, Token: tok("ship-" + own), Time: t0.Add(time.Second)},
			{Activity: "PO", Continuation: tok("ship-" + other), Kind: event.End, Time: t0.Add(2 * time.Second)},
		}
	}
	const rounds = 40
	for i := range rounds {
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for p, pair := range [2][2]string{{"a", "b"}, {"b", "a"}} {
			events := side(pair[0], pair[1], i)
			batch := store.Batch{Lease: leases[p], Node: "a",
				From: store.Position{Minor: int64(i)}, Checkpoint: store.Position{Minor: int64(i + 1)},
				Deltas: event.Coalesce(events), Applied: len(events)}
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[p] = b.s.Apply(ctx, batch)
			}()
		}
		wg.Wait()
		if err := errors.Join(errs[:]...); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
	}
	for i := range rounds {
		for _, id := range []string{"a", "b"} {
			in, err := b.s.Instance(ctx, event.Key{Activity: "PO", Instance: fmt.Sprintf("%s-%d", id, i)})
			if err != nil || in.State != store.StateActive || in.Events != 3 || len(in.Continuations) != 1 || in.Continuations[0].Open() {
				t.Fatalf("instance %s-%d = %+v, %v; want active (no end), 3 events, its continuation ended", id, i, in, err)
			}
		}
	}
}
