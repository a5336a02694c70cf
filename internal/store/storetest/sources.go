package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/store"
	"github.com/bam-dev/bam/internal/testwait"
)

// RunSources holds the rules of adding, listing, switching, removing,
// resetting and repartitioning sources: no sequence of them applies an
// event twice or drops one without saying so. open returns a fresh store
// with no schema; the suite migrates it.
func RunSources(t *testing.T, open func(t *testing.T) store.Store) {
	setup := func(t *testing.T) (store.Store, context.Context) { return prepared(t, open) }
	outbox := func(table string) store.OutboxIdentity {
		return store.OutboxIdentity{SystemID: "7315", DatabaseOID: 16384, Database: "shop", Table: table}
	}
	addOutbox := func(t *testing.T, ctx context.Context, s store.Store, name string, partitions int, o store.OutboxIdentity) error {
		t.Helper()
		return s.AddSource(ctx, store.Source{Name: name, Kind: store.KindPgOutbox, Partitions: partitions, Enabled: true,
			DSN: "postgres://bam@db/shop", Table: "bam_outbox", Outbox: o})
	}
	// advance claims every session of a source for node n and applies an
	// empty batch that moves its checkpoint to cps[p].
	advance := func(t *testing.T, ctx context.Context, s store.Store, source string, cps ...store.Position) []store.Lease {
		t.Helper()
		joinNodes(t, ctx, s, "n")
		var leases []store.Lease
		for p, cp := range cps {
			id := store.SessionID{Source: source, Partition: p}
			l, err := s.Claim(ctx, id, "n", "", time.Minute)
			if err != nil {
				t.Fatalf("Claim(%v): %v", id, err)
			}
			b := store.Batch{Lease: l, Node: "n", From: l.Checkpoint, Checkpoint: cp}
			if err := s.Apply(ctx, b); err != nil {
				t.Fatalf("Apply(%v): %v", id, err)
			}
			leases = append(leases, l)
		}
		return leases
	}
	checkpoints := func(t *testing.T, ctx context.Context, s store.Store, source string) []store.Position {
		t.Helper()
		var out []store.Position
		for _, se := range mustSessions(t, ctx, s) {
			if se.Source == source {
				out = append(out, se.Checkpoint)
			}
		}
		return out
	}

	t.Run("AddListRemove", func(t *testing.T) {
		t.Parallel()
		s, ctx := setup(t)
		src := store.Source{Name: "orders", Kind: store.KindBuffer, Partitions: 3, Enabled: true}
		if err := s.AddSource(ctx, src); err != nil {
			t.Fatalf("AddSource: %v", err)
		}
		if err := s.AddSource(ctx, src); !errors.Is(err, store.ErrExists) {
			t.Fatalf("AddSource twice = %v, want ErrExists", err)
		}
		out := store.Source{Name: "app", Kind: store.KindPgOutbox, Partitions: 1, Enabled: true, DSN: "postgres://u:secret@h/db", Table: "bam_outbox"}
		if err := s.AddSource(ctx, out); err != nil {
			t.Fatalf("AddSource outbox: %v", err)
		}
		got, err := s.Source(ctx, "app")
		if err != nil || got.DSN != out.DSN || got.Table != out.Table || got.Kind != store.KindPgOutbox || got.Partitions != 1 || !got.Enabled {
			t.Fatalf("Source(app) = %+v, %v", got, err)
		}
		if got.CreatedAt.IsZero() {
			t.Errorf("Source(app).CreatedAt is zero")
		}
		if _, err := s.Source(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Source(nope) = %v, want ErrNotFound", err)
		}
		all, err := s.Sources(ctx)
		if err != nil || len(all) != 2 || all[0].Name != "app" || all[1].Name != "orders" {
			t.Fatalf("Sources = %+v, %v; want app, orders", all, err)
		}
		sessions := mustSessions(t, ctx, s)
		if len(sessions) != 4 {
			t.Fatalf("got %d sessions, want 4 (3 + 1)", len(sessions))
		}
		for _, se := range sessions {
			if se.Owner != "" || se.Epoch != 0 || se.Checkpoint != (store.Position{}) || !se.SourceEnabled {
				t.Errorf("new session %+v: want free, epoch 0, zero checkpoint, enabled", se)
			}
		}
		if err := s.SetSourceEnabled(ctx, "orders", false); err != nil {
			t.Fatalf("disable: %v", err)
		}
		if got, _ := s.Source(ctx, "orders"); got.Enabled {
			t.Errorf("orders still enabled after SetSourceEnabled(false)")
		}
		if err := s.SetSourceEnabled(ctx, "nope", false); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("SetSourceEnabled(nope) = %v, want ErrNotFound", err)
		}
		if _, err := s.RemoveSource(ctx, "orders", store.RemoveOptions{}); err != nil {
			t.Fatalf("RemoveSource: %v", err)
		}
		if _, err := s.RemoveSource(ctx, "orders", store.RemoveOptions{}); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("RemoveSource twice = %v, want ErrNotFound", err)
		}
		if n := len(mustSessions(t, ctx, s)); n != 1 {
			t.Errorf("%d sessions after removing orders, want 1", n)
		}
	})

	t.Run("StoreID", func(t *testing.T) {
		t.Parallel()
		s, ctx := setup(t)
		a, err := s.StoreID(ctx)
		if err != nil || len(a) < 16 {
			t.Fatalf("StoreID = %q, %v; want a random id", a, err)
		}
		if b, err := s.StoreID(ctx); err != nil || b != a {
			t.Fatalf("StoreID again = %q, %v; want %q", b, err, a)
		}
	})

	t.Run("RemoveRefusesUnappliedEvents", func(t *testing.T) {
		t.Parallel()
		s, ctx := setup(t)
		mustAddBuffer(t, ctx, s, "orders", 1)
		var evs []store.BufferEvent
		for i := range 4 {
			evs = append(evs, store.BufferEvent{Payload: event.Encode(ev("PO", fmt.Sprint(i), event.Begin, i, nil))})
		}
		if err := s.AppendBuffer(ctx, "orders", evs); err != nil {
			t.Fatal(err)
		}
		var recs []store.Record
		var err error
		testwait.Until(t, 10*time.Second, "no record held behind an open transaction", func() bool {
			var held bool
			recs, held, err = s.ReadBuffer(ctx, store.SessionID{Source: "orders"}, store.Position{}, 10)
			return err == nil && !held && len(recs) == 4
		})
		// One applied, three not.
		ls := advance(t, ctx, s, "orders", recs[0].Position)
		if err := s.Release(ctx, ls[0], "n"); err != nil {
			t.Fatal(err)
		}
		_, err = s.RemoveSource(ctx, "orders", store.RemoveOptions{})
		if !errors.Is(err, store.ErrUnapplied) || !strings.Contains(err.Error(), "3 events") {
			t.Fatalf("RemoveSource with 3 unapplied events = %v, want ErrUnapplied naming 3 events", err)
		}
		if n := buffered(t, ctx, s, "orders", 1); n < 3 {
			t.Fatalf("a refused RemoveSource left %d events in the buffer, want at least 3", n)
		}
		got, err := s.RemoveSource(ctx, "orders", store.RemoveOptions{DropUnapplied: true})
		if err != nil || got.Dropped != 3 {
			t.Fatalf("RemoveSource(DropUnapplied) = %+v, %v; want 3 dropped", got, err)
		}
		// A drained source goes without the flag.
		mustAddBuffer(t, ctx, s, "empty", 2)
		if got, err := s.RemoveSource(ctx, "empty", store.RemoveOptions{}); err != nil || got.Dropped != 0 {
			t.Fatalf("RemoveSource of an empty source = %+v, %v", got, err)
		}
	})

	t.Run("OneSourcePerOutboxTable", func(t *testing.T) {
		t.Parallel()
		s, ctx := setup(t)
		if err := addOutbox(t, ctx, s, "shop", 1, outbox("public.bam_outbox")); err != nil {
			t.Fatal(err)
		}
		err := addOutbox(t, ctx, s, "shop2", 2, outbox("public.bam_outbox"))
		if !errors.Is(err, store.ErrOutboxTaken) || !strings.Contains(err.Error(), `"shop"`) {
			t.Fatalf("a second source on the same outbox table = %v, want ErrOutboxTaken naming shop", err)
		}
		if _, err := s.Source(ctx, "shop2"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("the refused source was added (Source err = %v)", err)
		}
		// Another table of the same database is another outbox.
		if err := addOutbox(t, ctx, s, "shop2", 2, outbox("public.other")); err != nil {
			t.Fatalf("a source on another table: %v", err)
		}
		// A source added without an identity (its server was down) is
		// checked when a node records it.
		if err := addOutbox(t, ctx, s, "shop3", 1, store.OutboxIdentity{}); err != nil {
			t.Fatal(err)
		}
		if err := s.RecordOutbox(ctx, "shop3", outbox("public.bam_outbox")); !errors.Is(err, store.ErrOutboxTaken) {
			t.Fatalf("RecordOutbox of a table another source reads = %v, want ErrOutboxTaken", err)
		}
		if err := s.RecordOutbox(ctx, "shop3", outbox("public.third")); err != nil {
			t.Fatalf("RecordOutbox: %v", err)
		}
		if err := s.RecordOutbox(ctx, "shop3", outbox("public.third")); err != nil {
			t.Fatalf("RecordOutbox of the same identity again: %v", err)
		}
		restored := outbox("public.third")
		restored.SystemID = "9999"
		if err := s.RecordOutbox(ctx, "shop3", restored); !errors.Is(err, store.ErrOutboxChanged) || !strings.Contains(err.Error(), "9999") {
			t.Fatalf("RecordOutbox of another server = %v, want ErrOutboxChanged naming the new system identifier", err)
		}
		if got, _ := s.Source(ctx, "shop3"); got.Outbox != outbox("public.third") {
			t.Fatalf("Source(shop3).Outbox = %+v", got.Outbox)
		}
	})

	t.Run("ReAddedOutboxSourceResumes", func(t *testing.T) {
		t.Parallel()
		s, ctx := setup(t)
		o := outbox("public.bam_outbox")
		if err := addOutbox(t, ctx, s, "shop", 2, o); err != nil {
			t.Fatal(err)
		}
		cps := []store.Position{{Major: 900, Minor: 12}, {Major: 950, Minor: 3}}
		ls := advance(t, ctx, s, "shop", cps...)
		for _, l := range ls {
			if err := s.Release(ctx, l, "n"); err != nil {
				t.Fatal(err)
			}
		}
		removed, err := s.RemoveSource(ctx, "shop", store.RemoveOptions{})
		if err != nil {
			t.Fatalf("RemoveSource: %v", err)
		}
		if len(removed.Checkpoints) != 2 || removed.Checkpoints[1] != cps[1] {
			t.Fatalf("Removal.Checkpoints = %v, want %v", removed.Checkpoints, cps)
		}
		// Another count cannot take the checkpoints over: refused.
		if err := addOutbox(t, ctx, s, "shop", 3, o); !errors.Is(err, store.ErrTombstone) {
			t.Fatalf("re-adding with another partition count = %v, want ErrTombstone", err)
		}
		// Under another name, the same table, the same count: it resumes.
		if err := addOutbox(t, ctx, s, "shop-again", 2, o); err != nil {
			t.Fatal(err)
		}
		if got := checkpoints(t, ctx, s, "shop-again"); len(got) != 2 || got[0] != cps[0] || got[1] != cps[1] {
			t.Fatalf("re-added source starts at %v, want the removed one's %v (else every untrimmed row is applied again)", got, cps)
		}
		// The tombstone was taken: a third source would be refused anyway
		// (the table is read), and after this one is removed it resumes
		// again. A source added without identity takes it over when
		// recorded, while it has read nothing.
		if _, err := s.RemoveSource(ctx, "shop-again", store.RemoveOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := addOutbox(t, ctx, s, "late", 2, store.OutboxIdentity{}); err != nil {
			t.Fatal(err)
		}
		if err := s.RecordOutbox(ctx, "late", o); err != nil {
			t.Fatalf("RecordOutbox: %v", err)
		}
		if got := checkpoints(t, ctx, s, "late"); got[0] != cps[0] || got[1] != cps[1] {
			t.Fatalf("source recorded on a tombstone starts at %v, want %v", got, cps)
		}
	})

	t.Run("ResetCheckpointsFencesTheOwner", func(t *testing.T) {
		t.Parallel()
		s, ctx := setup(t)
		if err := addOutbox(t, ctx, s, "shop", 2, outbox("public.bam_outbox")); err != nil {
			t.Fatal(err)
		}
		ls := advance(t, ctx, s, "shop", store.Position{Major: 500, Minor: 1}, store.Position{Major: 510, Minor: 2})
		moved := outbox("public.bam_outbox")
		moved.SystemID = "8888"
		to := []store.Position{store.HorizonPosition(40), store.HorizonPosition(40)}
		old, err := s.ResetCheckpoints(ctx, "shop", store.CheckpointReset{To: to, Outbox: moved})
		if err != nil {
			t.Fatalf("ResetCheckpoints: %v", err)
		}
		if len(old) != 2 || old[1] != (store.Position{Major: 510, Minor: 2}) {
			t.Fatalf("ResetCheckpoints returned %v as the old checkpoints", old)
		}
		// The owner's next batch, read before the reset, is refused.
		b := store.Batch{Lease: ls[0], Node: "n", From: store.Position{Major: 500, Minor: 1}, Checkpoint: store.Position{Major: 600}}
		b.Deltas = event.Coalesce([]event.Event{ev("PO", "1", event.Begin, 0, nil)})
		b.Applied = 1
		if err := s.Apply(ctx, b); !errors.Is(err, store.ErrFenced) {
			t.Fatalf("Apply by the owner after a reset = %v, want ErrFenced", err)
		}
		for _, se := range mustSessions(t, ctx, s) {
			if se.Owner != "" || se.Epoch != ls[se.Partition].Epoch+1 || se.Checkpoint != to[se.Partition] {
				t.Errorf("session after reset = %+v; want free, epoch %d, checkpoint %v", se, ls[se.Partition].Epoch+1, to[se.Partition])
			}
		}
		if got, _ := s.Source(ctx, "shop"); got.Outbox != moved {
			t.Errorf("outbox after reset = %+v, want %+v", got.Outbox, moved)
		}
		// A stop seen at a checkpoint that a reset has moved since is
		// stale: nothing is recorded.
		at := store.SessionID{Source: "shop"}
		if err := s.StopOutbox(ctx, at, store.Position{Major: to[0].Major + 7}, "stale"); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.Source(ctx, "shop"); got.OutboxStopped != "" {
			t.Errorf("OutboxStopped = %q after a stale stop, want none", got.OutboxStopped)
		}
		// A stop recorded by a reader stays until a reset.
		if err := s.StopOutbox(ctx, at, to[0], "ids went back"); err != nil {
			t.Fatal(err)
		}
		if err := s.StopOutbox(ctx, at, to[0], "again"); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.Source(ctx, "shop"); got.OutboxStopped != "ids went back" {
			t.Errorf("OutboxStopped = %q, want the first reason", got.OutboxStopped)
		}
		if _, err := s.RemoveSource(ctx, "shop", store.RemoveOptions{DropUnapplied: true}); !errors.Is(err, store.ErrOutboxChanged) {
			t.Errorf("RemoveSource of a stopped source = %v, want ErrOutboxChanged (its checkpoints would be kept as they are)", err)
		}
		if _, err := s.ResetCheckpoints(ctx, "shop", store.CheckpointReset{To: to}); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.Source(ctx, "shop"); got.OutboxStopped != "" {
			t.Errorf("OutboxStopped = %q after a reset, want cleared", got.OutboxStopped)
		}
		if err := s.StopOutbox(ctx, store.SessionID{Source: "nope"}, store.Position{}, "x"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("StopOutbox(nope) = %v, want ErrNotFound", err)
		}
		// A reset decided from checkpoints that moved since is refused.
		stale := []store.Position{{Major: 1}, {Major: 1}}
		if _, err := s.ResetCheckpoints(ctx, "shop", store.CheckpointReset{To: stale, Expect: stale}); !errors.Is(err, store.ErrFenced) {
			t.Errorf("ResetCheckpoints expecting checkpoints that moved = %v, want ErrFenced", err)
		}
		if got := checkpoints(t, ctx, s, "shop"); got[0] != to[0] {
			t.Errorf("a refused reset moved the checkpoints to %v", got)
		}
		if _, err := s.ResetCheckpoints(ctx, "shop", store.CheckpointReset{To: stale, Expect: to}); err != nil {
			t.Errorf("ResetCheckpoints expecting the current checkpoints: %v", err)
		}
		if _, err := s.ResetCheckpoints(ctx, "shop", store.CheckpointReset{To: to[:1]}); err == nil {
			t.Errorf("ResetCheckpoints with one checkpoint for two partitions succeeded")
		}
	})

	t.Run("RepartitionBuffer", func(t *testing.T) {
		t.Parallel()
		s, ctx := setup(t)
		mustAddBuffer(t, ctx, s, "orders", 2)
		var err error
		var evs []store.BufferEvent
		segments := map[string]bool{}
		for i := range 20 {
			id := fmt.Sprintf("PO-%d", i)
			segments[id] = true
			e := ev("PO", id, event.Begin, i, nil)
			evs = append(evs, store.BufferEvent{Partition: event.Partition(id, 2), Payload: event.Encode(e)})
		}
		if err := s.AppendBuffer(ctx, "orders", evs); err != nil {
			t.Fatal(err)
		}
		// Partition 0 applies its first two events, partition 1 none.
		var recs []store.Record
		testwait.Until(t, 10*time.Second, "no record held behind an open transaction", func() bool {
			var held bool
			recs, held, err = s.ReadBuffer(ctx, store.SessionID{Source: "orders", Partition: 0}, store.Position{}, 100)
			return err == nil && !held && len(recs) >= 3
		})
		applied := map[string]bool{store.SegmentOf(recs[0].Payload): true, store.SegmentOf(recs[1].Payload): true}
		ls := advance(t, ctx, s, "orders", recs[1].Position)
		got, err := s.Repartition(ctx, "orders", 3)
		if err != nil {
			t.Fatalf("Repartition: %v", err)
		}
		if got.From != 2 || got.To != 3 || got.Moved != 18 {
			t.Fatalf("Repartition = %+v; want 2 → 3, 18 kept", got)
		}
		// The owner of the old partition 0 is fenced.
		b := store.Batch{Lease: ls[0], Node: "n", From: recs[1].Position, Checkpoint: recs[2].Position, Applied: 1,
			Deltas: event.Coalesce([]event.Event{ev("PO", "x", event.Begin, 0, nil)})}
		if err := s.Apply(ctx, b); !errors.Is(err, store.ErrFenced) {
			t.Fatalf("Apply under the old partitioning = %v, want ErrFenced", err)
		}
		// Every unapplied event, once, in its new partition; no applied one.
		seen := map[string]bool{}
		for p := range 3 {
			// A row may be held a moment behind a transaction of another
			// database on the same server (bufferHorizon): read until none is.
			var recs []store.Record
			testwait.Until(t, 10*time.Second, "no record held behind an open transaction", func() bool {
				var held bool
				recs, held, err = s.ReadBuffer(ctx, store.SessionID{Source: "orders", Partition: p}, store.Position{}, 100)
				if err != nil {
					t.Fatal(err)
				}
				return !held
			})
			for _, r := range recs {
				seg := store.SegmentOf(r.Payload)
				if applied[seg] || seen[seg] {
					t.Errorf("event of %s read again after the repartition (applied %v, seen %v)", seg, applied[seg], seen[seg])
				}
				if want := event.Partition(seg, 3); want != p {
					t.Errorf("event of %s in partition %d, writers put it in %d", seg, p, want)
				}
				seen[seg] = true
			}
		}
		if len(seen) != 18 {
			t.Errorf("%d events readable after the repartition, want 18", len(seen))
		}
		if n := len(checkpoints(t, ctx, s, "orders")); n != 3 {
			t.Errorf("%d sessions after repartition, want 3", n)
		}
		// Appends use the new count.
		if err := s.AppendBuffer(ctx, "orders", []store.BufferEvent{{Partition: 2, Payload: []byte("{}")}}); err != nil {
			t.Errorf("append to the new partition 2: %v", err)
		}
	})

	t.Run("RepartitionOutboxKeepsAFloor", func(t *testing.T) {
		t.Parallel()
		s, ctx := setup(t)
		if err := addOutbox(t, ctx, s, "shop", 2, outbox("public.bam_outbox")); err != nil {
			t.Fatal(err)
		}
		cps := []store.Position{{Major: 700, Minor: 5}, {Major: 650, Minor: 9}}
		advance(t, ctx, s, "shop", cps...)
		got, err := s.Repartition(ctx, "shop", 4)
		if err != nil {
			t.Fatalf("Repartition: %v", err)
		}
		src, err := s.Source(ctx, "shop")
		if err != nil || src.Partitions != 4 || src.Floor == nil || src.Floor.Partitions != 2 ||
			src.Floor.Checkpoints[0] != cps[0] || src.Floor.Checkpoints[1] != cps[1] {
			t.Fatalf("after Repartition: %+v (floor %+v), %v; result %+v", src, src.Floor, err, got)
		}
		for _, cp := range checkpoints(t, ctx, s, "shop") {
			if cp != cps[1] {
				t.Errorf("new session starts at %v, want the earliest old checkpoint %v", cp, cps[1])
			}
		}
		// A second repartition waits until every session is past the floor.
		if _, err := s.Repartition(ctx, "shop", 2); err == nil || !strings.Contains(err.Error(), "catching up") {
			t.Fatalf("repartition while the floor still skips rows = %v, want refused", err)
		}
		past := store.Position{Major: 800}
		ls, err := s.Sessions(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, se := range ls {
			if se.Source != "shop" {
				continue
			}
			l, err := s.Claim(ctx, se.SessionID, "n", "", time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Apply(ctx, store.Batch{Lease: l, Node: "n", From: l.Checkpoint, Checkpoint: past}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.Repartition(ctx, "shop", 2); err != nil {
			t.Fatalf("repartition once past the floor: %v", err)
		}
		if src, _ := s.Source(ctx, "shop"); src.Floor != nil {
			t.Errorf("floor %+v left after a repartition of sessions all at one checkpoint", src.Floor)
		}
	})
	// A source whose session a live lease owns is not removed while it is
	// enabled: its owner may be committing a batch. Disabled, it goes with
	// its buffered events.
	t.Run("RemoveRefusedWhileOwned", func(t *testing.T) {
		t.Parallel()
		s, ctx := setup(t)
		mustAddBuffer(t, ctx, s, "src", 1)
		if err := s.AppendBuffer(ctx, "src", []store.BufferEvent{{Payload: []byte(`{}`)}, {Payload: []byte(`{}`)}}); err != nil {
			t.Fatal(err)
		}
		joinNodes(t, ctx, s, "a")
		if _, err := s.Claim(ctx, store.SessionID{Source: "src"}, "a", "", time.Minute); err != nil {
			t.Fatal(err)
		}
		if _, err := s.RemoveSource(ctx, "src", store.RemoveOptions{DropUnapplied: true}); !errors.Is(err, store.ErrNotClaimable) {
			t.Fatalf("RemoveSource of an enabled source with a live lease = %v, want ErrNotClaimable", err)
		}
		if err := s.SetSourceEnabled(ctx, "src", false); err != nil {
			t.Fatal(err)
		}
		if got, err := s.RemoveSource(ctx, "src", store.RemoveOptions{DropUnapplied: true}); err != nil || got.Dropped != 2 {
			t.Fatalf("RemoveSource of a disabled source = %+v, %v; want 2 dropped", got, err)
		}
		mustAddBuffer(t, ctx, s, "src", 1)
		if n := buffered(t, ctx, s, "src", 1); n != 0 {
			t.Fatalf("%d events of the removed source in its namesake's buffer, want none", n)
		}
	})
}
