// Package storetest is the conformance suite every store driver passes, so
// that PostgreSQL and SQLite behave the same to the rest of bam. A driver's
// test calls Run with a function that opens a fresh, empty store.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/store"
)

// Run runs the suite. open returns a fresh store with no schema; the suite
// migrates it. The store is closed by the suite.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	setup := func(t *testing.T) (store.Store, context.Context) { return migrated(t, open) }

	t.Run("Schema", func(t *testing.T) {
		s := open(t)
		defer s.Close()
		ctx := context.Background()
		if err := s.CheckSchema(ctx); !errors.Is(err, store.ErrSchemaMissing) {
			t.Fatalf("CheckSchema on an empty store = %v, want ErrSchemaMissing", err)
		}
		from, to, err := s.Migrate(ctx)
		if err != nil || from != 0 || to < 1 {
			t.Fatalf("first Migrate = %d, %d, %v; want 0, >=1, nil", from, to, err)
		}
		if err := s.CheckSchema(ctx); err != nil {
			t.Fatalf("CheckSchema after Migrate: %v", err)
		}
		from2, to2, err := s.Migrate(ctx)
		if err != nil || from2 != to || to2 != to {
			t.Fatalf("second Migrate = %d, %d, %v; want %d, %d, nil", from2, to2, err, to, to)
		}
	})

	t.Run("Sources", func(t *testing.T) {
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

	t.Run("Membership", func(t *testing.T) {
		s, ctx := setup(t)
		n := store.Node{ID: "n1", Name: "alpha", Host: "h1", PID: 42, StartedAt: time.Now().UTC().Truncate(time.Second), State: store.NodeRunning, LockKey: 7}
		if err := s.Join(ctx, n); err != nil {
			t.Fatalf("Join: %v", err)
		}
		nodes, err := s.Nodes(ctx)
		if err != nil || len(nodes) != 1 {
			t.Fatalf("Nodes = %+v, %v", nodes, err)
		}
		got := nodes[0]
		if got.ID != "n1" || got.Name != "alpha" || got.Host != "h1" || got.PID != 42 || got.LockKey != 7 || got.State != store.NodeRunning {
			t.Errorf("node row = %+v", got)
		}
		if got.HeartbeatAge < -time.Second || got.HeartbeatAge > 5*time.Second {
			t.Errorf("fresh node's HeartbeatAge = %v", got.HeartbeatAge)
		}
		if err := s.ForgetNode(ctx, "n1", store.Departure{FoundDeadBy: "n0", Why: "test"}); err != nil {
			t.Fatalf("ForgetNode: %v", err)
		}
		if nodes, _ := s.Nodes(ctx); len(nodes) != 0 {
			t.Fatalf("Nodes after ForgetNode = %+v", nodes)
		}
		n.State = store.NodeStopping
		if _, err := s.Renew(ctx, n, time.Second); err != nil {
			t.Fatalf("Renew of a forgotten node: %v", err)
		}
		nodes, _ = s.Nodes(ctx)
		if len(nodes) != 1 || nodes[0].State != store.NodeStopping {
			t.Fatalf("Renew must put a forgotten node back with its state; Nodes = %+v", nodes)
		}
		if err := s.Leave(ctx, "n1"); err != nil {
			t.Fatalf("Leave: %v", err)
		}
		if nodes, _ := s.Nodes(ctx); len(nodes) != 0 {
			t.Fatalf("Nodes after Leave = %+v", nodes)
		}
	})

	t.Run("ClaimBatch", func(t *testing.T) {
		s, ctx := setup(t)
		bc, ok := s.(store.BatchClaimer)
		if !ok {
			t.Skip("the driver has no ClaimBatch")
		}
		mustAddBuffer(t, ctx, s, "src", 3)
		joinNodes(t, ctx, s, "a", "b")
		id := func(p int) store.SessionID { return store.SessionID{Source: "src", Partition: p} }
		for _, p := range []int{1, 2} {
			if _, err := s.Claim(ctx, id(p), "b", "", 30*time.Second); err != nil {
				t.Fatalf("Claim: %v", err)
			}
		}
		// 0 is free; 1 and 2 are b's, under live leases.
		got, err := bc.ClaimBatch(ctx, []store.ClaimRequest{{ID: id(0)}, {ID: id(1)}, {ID: id(2), PrevOwner: "b"}}, "a", 30*time.Second)
		if err != nil || len(got) != 1 || got[0].SessionID != id(0) || got[0].Epoch != 1 {
			t.Fatalf("ClaimBatch = %+v, %v; want only partition 0, at epoch 1", got, err)
		}
		if se := session(t, ctx, s, id(0)); se.Owner != "a" || se.LeaseRemaining < 20*time.Second {
			t.Fatalf("partition 0 after ClaimBatch: %+v", se)
		}
		if _, err := s.ExpireLeases(ctx, "b"); err != nil {
			t.Fatalf("ExpireLeases: %v", err)
		}
		got, err = bc.ClaimBatch(ctx, []store.ClaimRequest{{ID: id(1), PrevOwner: "b"}, {ID: id(2), PrevOwner: "b"}}, "a", 30*time.Second)
		if err != nil || len(got) != 2 || got[0].Epoch != 2 || got[1].Epoch != 2 {
			t.Fatalf("ClaimBatch of expired leases = %+v, %v; want both, at epoch 2", got, err)
		}
		if got, err := bc.ClaimBatch(ctx, nil, "a", 30*time.Second); err != nil || len(got) != 0 {
			t.Fatalf("ClaimBatch of nothing = %+v, %v", got, err)
		}
	})

	t.Run("ReleaseBatch", func(t *testing.T) {
		s, ctx := setup(t)
		br, ok := s.(store.BatchReleaser)
		if !ok {
			t.Skip("the driver has no ReleaseBatch")
		}
		mustAddBuffer(t, ctx, s, "src", 4)
		joinNodes(t, ctx, s, "a", "b")
		var mine []store.Lease
		for p := range 3 {
			l, err := s.Claim(ctx, store.SessionID{Source: "src", Partition: p}, "a", "", 30*time.Second)
			if err != nil {
				t.Fatalf("Claim: %v", err)
			}
			mine = append(mine, l)
		}
		theirs, err := s.Claim(ctx, store.SessionID{Source: "src", Partition: 3}, "b", "", 30*time.Second)
		if err != nil {
			t.Fatalf("Claim: %v", err)
		}
		// Partition 2 under an older epoch: a's lease of it is stale.
		stale := mine[2]
		stale.Epoch--
		if err := br.ReleaseBatch(ctx, []store.Lease{mine[0], mine[1], stale, theirs}, "a"); err != nil {
			t.Fatalf("ReleaseBatch: %v", err)
		}
		for p, want := range []string{"", "", "a", "b"} {
			if se := session(t, ctx, s, store.SessionID{Source: "src", Partition: p}); se.Owner != want || se.Epoch != 1 {
				t.Errorf("partition %d after ReleaseBatch: owner %q, epoch %d; want %q, 1", p, se.Owner, se.Epoch, want)
			}
		}
		if err := br.ReleaseBatch(ctx, nil, "a"); err != nil {
			t.Fatalf("ReleaseBatch of nothing: %v", err)
		}
	})

	t.Run("Leases", func(t *testing.T) {
		s, ctx := setup(t)
		mustAddBuffer(t, ctx, s, "src", 2)
		id := store.SessionID{Source: "src", Partition: 1}
		joinNodes(t, ctx, s, "a", "b")

		la, err := s.Claim(ctx, id, "a", "", 30*time.Second)
		if err != nil || la.Epoch != 1 || la.SessionID != id {
			t.Fatalf("Claim free = %+v, %v; want epoch 1", la, err)
		}
		if _, err := s.Claim(ctx, id, "b", "", 30*time.Second); !errors.Is(err, store.ErrNotClaimable) {
			t.Fatalf("Claim of an owned session as free = %v, want ErrNotClaimable", err)
		}
		if _, err := s.Claim(ctx, id, "b", "a", 30*time.Second); !errors.Is(err, store.ErrNotClaimable) {
			t.Fatalf("Claim over a live lease = %v, want ErrNotClaimable", err)
		}
		se := session(t, ctx, s, id)
		if se.Owner != "a" || se.Epoch != 1 || se.LeaseRemaining < 20*time.Second || se.LeaseRemaining > 31*time.Second {
			t.Fatalf("session after claim = %+v", se)
		}

		leases, err := s.Renew(ctx, node("a"), 30*time.Second)
		if err != nil || len(leases) != 1 || leases[0].SessionID != id || leases[0].Epoch != 1 {
			t.Fatalf("Renew(a) = %+v, %v", leases, err)
		}
		if leases, _ := s.Renew(ctx, node("b"), 30*time.Second); len(leases) != 0 {
			t.Fatalf("Renew(b) = %+v, want none", leases)
		}

		if err := s.Release(ctx, la, "b"); err != nil {
			t.Fatalf("Release by a non-owner must be a no-op: %v", err)
		}
		if se := session(t, ctx, s, id); se.Owner != "a" {
			t.Fatalf("Release by b freed a's session")
		}
		if err := s.Release(ctx, la, "a"); err != nil {
			t.Fatalf("Release: %v", err)
		}
		if se := session(t, ctx, s, id); se.Owner != "" || se.Epoch != 1 {
			t.Fatalf("after Release: %+v; want free, epoch 1", se)
		}
		lb, err := s.Claim(ctx, id, "b", "", 200*time.Millisecond)
		if err != nil || lb.Epoch != 2 {
			t.Fatalf("Claim after release = %+v, %v; want epoch 2", lb, err)
		}
		// Wait out b's short lease by the store's clock.
		waitFor(t, 5*time.Second, func() bool { return session(t, ctx, s, id).LeaseRemaining <= 0 })
		if leases, _ := s.Renew(ctx, node("b"), 30*time.Second); len(leases) != 0 {
			t.Fatalf("Renew must not revive an expired lease; got %+v", leases)
		}
		la2, err := s.Claim(ctx, id, "a", "b", 30*time.Second)
		if err != nil || la2.Epoch != 3 {
			t.Fatalf("take over an expired lease = %+v, %v; want epoch 3", la2, err)
		}

		// ExpireLeases makes a live lease claimable at once.
		n, err := s.ExpireLeases(ctx, "a")
		if err != nil || n != 1 {
			t.Fatalf("ExpireLeases = %d, %v; want 1", n, err)
		}
		lb2, err := s.Claim(ctx, id, "b", "a", 30*time.Second)
		if err != nil || lb2.Epoch != 4 {
			t.Fatalf("Claim after ExpireLeases = %+v, %v; want epoch 4", lb2, err)
		}

		// Leave releases everything the node owns.
		other := store.SessionID{Source: "src", Partition: 0}
		if _, err := s.Claim(ctx, other, "b", "", 30*time.Second); err != nil {
			t.Fatalf("Claim partition 0: %v", err)
		}
		if err := s.Leave(ctx, "b"); err != nil {
			t.Fatalf("Leave: %v", err)
		}
		for _, se := range mustSessions(t, ctx, s) {
			if se.Owner != "" {
				t.Errorf("after Leave(b), %v still owned by %q", se.SessionID, se.Owner)
			}
		}

		// A disabled source's sessions cannot be claimed.
		if err := s.SetSourceEnabled(ctx, "src", false); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Claim(ctx, other, "a", "", 30*time.Second); !errors.Is(err, store.ErrNotClaimable) {
			t.Fatalf("Claim of a disabled source = %v, want ErrNotClaimable", err)
		}
	})

	t.Run("ApplyIsFenced", func(t *testing.T) {
		s, ctx := setup(t)
		mustAddBuffer(t, ctx, s, "src", 1)
		joinNodes(t, ctx, s, "a", "b")
		id := store.SessionID{Source: "src", Partition: 0}
		la, err := s.Claim(ctx, id, "a", "", 200*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, 5*time.Second, func() bool { return session(t, ctx, s, id).LeaseRemaining <= 0 })
		lb, err := s.Claim(ctx, id, "b", "a", 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		stale := batch(la, "a", store.Position{Minor: 5}, ev("PO", "1", event.Begin, 0, nil))
		if err := s.Apply(ctx, stale); !errors.Is(err, store.ErrFenced) {
			t.Fatalf("Apply under a lost epoch = %v, want ErrFenced", err)
		}
		if _, err := s.Instance(ctx, event.Key{Activity: "PO", Instance: "1"}); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("a fenced batch wrote its instance (Instance err = %v)", err)
		}
		se := session(t, ctx, s, id)
		if se.Checkpoint != (store.Position{}) || se.Applied != 0 {
			t.Fatalf("a fenced batch moved the checkpoint: %+v", se)
		}
		fresh := batch(lb, "b", store.Position{Major: 1, Minor: 5}, ev("PO", "1", event.Begin, 0, nil))
		fresh.From = store.Position{}
		fresh.Failures = []store.Failure{{SessionID: id, Position: store.Position{Major: 1, Minor: 4}, Reason: "kind: unknown kind \"x\"", Payload: []byte(`{"kind":"x"}`)}}
		if err := s.Apply(ctx, fresh); err != nil {
			t.Fatalf("Apply by the owner: %v", err)
		}
		se = session(t, ctx, s, id)
		if se.Checkpoint != (store.Position{Major: 1, Minor: 5}) || se.Applied != 1 || se.Failed != 1 {
			t.Fatalf("after Apply: %+v; want checkpoint {1 5}, applied 1, failed 1", se)
		}
		// The wrong node under the right epoch is fenced too.
		wrong := batch(lb, "a", store.Position{Major: 1, Minor: 9}, ev("PO", "2", event.Begin, 0, nil))
		wrong.From = se.Checkpoint
		if err := s.Apply(ctx, wrong); !errors.Is(err, store.ErrFenced) {
			t.Fatalf("Apply by a non-owner = %v, want ErrFenced", err)
		}
		// A retry of a batch that did commit (its answer lost) is refused:
		// the checkpoint is no longer where the batch starts.
		if err := s.Apply(ctx, fresh); !errors.Is(err, store.ErrFenced) {
			t.Fatalf("Apply of the same batch again = %v, want ErrFenced", err)
		}
		if in := instance(t, ctx, s, event.Key{Activity: "PO", Instance: "1"}); in.Events != 1 {
			t.Fatalf("instance counts %d events after a refused retry, want 1", in.Events)
		}
	})

	t.Run("MergeRules", func(t *testing.T) {
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

	runVocabulary(t, setup)

	t.Run("Instances", func(t *testing.T) {
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

	t.Run("Buffer", func(t *testing.T) {
		s, ctx := setup(t)
		mustAddBuffer(t, ctx, s, "src", 2)
		mustAddBuffer(t, ctx, s, "other", 1)
		var evs []store.BufferEvent
		for i := 0; i < 10; i++ {
			evs = append(evs, store.BufferEvent{Partition: i % 2, Payload: []byte(fmt.Sprintf(`{"n":%d}`, i))})
		}
		if err := s.AppendBuffer(ctx, "src", evs); err != nil {
			t.Fatalf("AppendBuffer: %v", err)
		}
		if err := s.AppendBuffer(ctx, "other", []store.BufferEvent{{Payload: []byte(`{"n":99}`)}}); err != nil {
			t.Fatal(err)
		}
		p1 := store.SessionID{Source: "src", Partition: 1}
		recs, held, err := s.ReadBuffer(ctx, p1, store.Position{}, 100)
		if err != nil || held || len(recs) != 5 {
			t.Fatalf("ReadBuffer = %d records, held %v, %v; want 5", len(recs), held, err)
		}
		for i, r := range recs {
			if want := fmt.Sprintf(`{"n":%d}`, 2*i+1); string(r.Payload) != want {
				t.Errorf("record %d = %s, want %s", i, r.Payload, want)
			}
			if i > 0 && !recs[i-1].Position.Less(r.Position) {
				t.Errorf("positions not increasing: %v then %v", recs[i-1].Position, r.Position)
			}
			if r.WrittenAt.IsZero() || time.Since(r.WrittenAt) > time.Minute {
				t.Errorf("record %d WrittenAt = %v", i, r.WrittenAt)
			}
		}
		two, _, _ := s.ReadBuffer(ctx, p1, recs[1].Position, 2)
		if len(two) != 2 || two[0].Position != recs[2].Position {
			t.Fatalf("ReadBuffer after the second record, limit 2 = %+v", two)
		}
		if n, err := s.BufferBacklog(ctx, p1, recs[1].Position); err != nil || n != 3 {
			t.Fatalf("BufferBacklog = %d, %v; want 3", n, err)
		}
		if err := s.TrimBuffer(ctx, p1, recs[2].Position); err != nil {
			t.Fatal(err)
		}
		if err := s.TrimBuffer(ctx, p1, recs[2].Position); err != nil {
			t.Fatalf("TrimBuffer must be idempotent: %v", err)
		}
		rest, _, _ := s.ReadBuffer(ctx, p1, store.Position{}, 100)
		if len(rest) != 2 || rest[0].Position != recs[3].Position {
			t.Fatalf("after trim: %d records", len(rest))
		}
		p0, _, _ := s.ReadBuffer(ctx, store.SessionID{Source: "src", Partition: 0}, store.Position{}, 100)
		if len(p0) != 5 {
			t.Fatalf("trim of partition 1 touched partition 0: %d left", len(p0))
		}
		// New appends come after the trimmed ones, never behind them.
		if err := s.AppendBuffer(ctx, "src", []store.BufferEvent{{Partition: 1, Payload: []byte(`{"n":10}`)}}); err != nil {
			t.Fatal(err)
		}
		after, _, _ := s.ReadBuffer(ctx, p1, recs[4].Position, 100)
		if len(after) != 1 || string(after[0].Payload) != `{"n":10}` {
			t.Fatalf("new append after trim: %+v", after)
		}
	})

	t.Run("AppendBufferIdempotent", func(t *testing.T) {
		s, ctx := setup(t)
		mustAddBuffer(t, ctx, s, "src", 2)
		mustAddBuffer(t, ctx, s, "other", 1)
		evs := []store.BufferEvent{{Partition: 0, Payload: []byte(`{"n":1}`)}, {Partition: 1, Payload: []byte(`{"n":2}`)}}
		key := store.IdempotencyKey{Key: "req-1", BodyHash: []byte("hash-1")}
		resp := store.StoredResponse{Status: 200, Body: []byte(`{"accepted":2,"rejected":[]}`)}
		replay, err := s.AppendBufferIdempotent(ctx, "src", key, evs, resp)
		if err != nil || replay != nil {
			t.Fatalf("first call = %+v, %v; want no replay", replay, err)
		}
		if n := buffered(t, ctx, s, "src", 2); n != 2 {
			t.Fatalf("%d events buffered after the first call, want 2", n)
		}
		replay, err = s.AppendBufferIdempotent(ctx, "src", key, evs, store.StoredResponse{Status: 500, Body: []byte("other")})
		if err != nil || replay == nil {
			t.Fatalf("retry = %+v, %v; want a replay", replay, err)
		}
		if replay.Status != 200 || string(replay.Body) != string(resp.Body) || replay.Source != "src" || string(replay.BodyHash) != "hash-1" {
			t.Errorf("replay = %+v; want the first response", replay)
		}
		if age := time.Since(replay.CreatedAt); age < -time.Minute || age > time.Minute {
			t.Errorf("replay.CreatedAt = %v, not the time of the first call", replay.CreatedAt)
		}
		if n := buffered(t, ctx, s, "src", 2); n != 2 {
			t.Fatalf("%d events buffered after a retry, want still 2", n)
		}
		other := key
		other.BodyHash = []byte("hash-2")
		if replay, err := s.AppendBufferIdempotent(ctx, "src", other, evs, resp); !errors.Is(err, store.ErrIdempotencyConflict) || replay == nil {
			t.Fatalf("same key, other body = %+v, %v; want ErrIdempotencyConflict with the first response", replay, err)
		}
		if _, err := s.AppendBufferIdempotent(ctx, "other", key, evs[:1], resp); !errors.Is(err, store.ErrIdempotencyConflict) {
			t.Fatalf("same key, other source = %v; want ErrIdempotencyConflict", err)
		}
		if n := buffered(t, ctx, s, "src", 2) + buffered(t, ctx, s, "other", 1); n != 2 {
			t.Fatalf("%d events buffered after refused calls, want still 2", n)
		}
		// Nothing to append: the key is recorded all the same.
		empty := store.IdempotencyKey{Key: "req-empty", BodyHash: []byte("h")}
		if replay, err := s.AppendBufferIdempotent(ctx, "src", empty, nil, store.StoredResponse{Status: 422, Body: []byte(`{}`)}); err != nil || replay != nil {
			t.Fatalf("call without events = %+v, %v", replay, err)
		}
		if replay, err := s.AppendBufferIdempotent(ctx, "src", empty, nil, resp); err != nil || replay == nil || replay.Status != 422 {
			t.Fatalf("retry of a call without events = %+v, %v; want the recorded 422", replay, err)
		}
		if _, err := s.AppendBufferIdempotent(ctx, "nope", store.IdempotencyKey{Key: "k", BodyHash: []byte("h")}, evs, resp); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown source = %v, want ErrNotFound", err)
		}
		if err := s.AddSource(ctx, store.Source{Name: "app", Kind: store.KindPgOutbox, Partitions: 1, Enabled: true, DSN: "postgres://u@h/db", Table: "bam_outbox"}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.AppendBufferIdempotent(ctx, "app", store.IdempotencyKey{Key: "k", BodyHash: []byte("h")}, evs[:1], resp); err == nil {
			t.Fatal("append to a pg-outbox source succeeded")
		}
		// A record past its retention frees the key, by the store's clock.
		short := store.IdempotencyKey{Key: "req-short", BodyHash: []byte("h1"), Retention: 300 * time.Millisecond}
		if _, err := s.AppendBufferIdempotent(ctx, "other", short, evs[:1], resp); err != nil {
			t.Fatal(err)
		}
		short.BodyHash = []byte("h2")
		waitFor(t, 10*time.Second, func() bool {
			replay, err := s.AppendBufferIdempotent(ctx, "other", short, evs[:1], resp)
			if err != nil && !errors.Is(err, store.ErrIdempotencyConflict) {
				t.Fatalf("call with an expiring key: %v", err)
			}
			return err == nil && replay == nil
		})
		if n := buffered(t, ctx, s, "other", 1); n != 2 {
			t.Fatalf("%d events in other after the key expired and was used again, want 2", n)
		}
	})

	t.Run("AppendBufferIdempotentPurge", func(t *testing.T) {
		s, ctx := setup(t)
		mustAddBuffer(t, ctx, s, "src", 1)
		resp := store.StoredResponse{Status: 200, Body: []byte(`{}`)}
		call := func(key, body string, retention time.Duration) error {
			t.Helper()
			k := store.IdempotencyKey{Key: key, BodyHash: []byte(body), Retention: retention}
			replay, err := s.AppendBufferIdempotent(ctx, "src", k, nil, resp)
			if err != nil && !errors.Is(err, store.ErrIdempotencyConflict) {
				t.Fatalf("AppendBufferIdempotent(%s): %v", key, err)
			}
			if err == nil && replay != nil {
				t.Fatalf("AppendBufferIdempotent(%s) replayed", key)
			}
			return err
		}
		old := store.IdempotencyPurgeBatch + 50
		for i := range old {
			call(fmt.Sprintf("old-%03d", i), "a", time.Hour)
		}
		time.Sleep(20 * time.Millisecond)
		// A call that deems records older than 1ms expired purges a batch
		// of them (the others' retention is the caller's to decide).
		call("new", "a", time.Millisecond)
		// Purged keys are free again; the others still answer (another
		// body: a conflict).
		free := 0
		for i := range old {
			if call(fmt.Sprintf("old-%03d", i), "b", time.Hour) == nil {
				free++
			}
		}
		if free != store.IdempotencyPurgeBatch {
			t.Fatalf("%d expired keys purged by one call, want %d", free, store.IdempotencyPurgeBatch)
		}
		// Removing a source removes its keys.
		if err := call("new", "b", time.Hour); !errors.Is(err, store.ErrIdempotencyConflict) {
			t.Fatalf("key new with another body = %v, want ErrIdempotencyConflict", err)
		}
		if _, err := s.RemoveSource(ctx, "src", store.RemoveOptions{}); err != nil {
			t.Fatal(err)
		}
		mustAddBuffer(t, ctx, s, "src", 1)
		if err := call("new", "b", time.Hour); err != nil {
			t.Fatalf("key of a removed source, used again = %v, want free", err)
		}
	})

	t.Run("AppendBufferIdempotentConcurrently", func(t *testing.T) {
		s, ctx := setup(t)
		mustAddBuffer(t, ctx, s, "src", 4)
		const callers = 8
		key := store.IdempotencyKey{Key: "same-key", BodyHash: []byte("same-body")}
		evs := []store.BufferEvent{{Partition: 0, Payload: []byte(`{}`)}, {Partition: 1, Payload: []byte(`{}`)}, {Partition: 3, Payload: []byte(`{}`)}}
		type answer struct {
			replay *store.StoredResponse
			err    error
		}
		answers := make(chan answer, callers)
		start := make(chan struct{})
		for i := 0; i < callers; i++ {
			go func() {
				<-start
				r, err := s.AppendBufferIdempotent(ctx, "src", key, evs, store.StoredResponse{Status: 200, Body: []byte(fmt.Sprint(i))})
				answers <- answer{r, err}
			}()
		}
		close(start)
		firsts, replays := 0, 0
		for i := 0; i < callers; i++ {
			a := <-answers
			switch {
			case a.err != nil:
				t.Errorf("concurrent call: %v", a.err)
			case a.replay == nil:
				firsts++
			default:
				replays++
			}
		}
		if firsts != 1 || replays != callers-1 {
			t.Fatalf("%d calls appended and %d replayed; want 1 and %d", firsts, replays, callers-1)
		}
		if n := buffered(t, ctx, s, "src", 4); n != len(evs) {
			t.Fatalf("%d events buffered by %d concurrent calls with one key, want %d", n, callers, len(evs))
		}
	})

	t.Run("FailedEvents", func(t *testing.T) {
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
		if _, err := s.FailedEvent(ctx, first.ID); err != nil {
			t.Fatalf("a failed retry lost the failed event: %v", err)
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

	t.Run("RecordError", func(t *testing.T) {
		s, ctx := setup(t)
		mustAddBuffer(t, ctx, s, "src", 1)
		joinNodes(t, ctx, s, "a")
		id := store.SessionID{Source: "src"}
		l, err := s.Claim(ctx, id, "a", "", 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.RecordError(ctx, l, "a", "read source: connection refused"); err != nil {
			t.Fatal(err)
		}
		se := session(t, ctx, s, id)
		if se.LastError != "read source: connection refused" || se.LastErrorAt == nil {
			t.Fatalf("after RecordError: %+v", se)
		}
		if err := s.RecordError(ctx, l, "a", ""); err != nil {
			t.Fatal(err)
		}
		if se := session(t, ctx, s, id); se.LastError != "" {
			t.Fatalf("RecordError(\"\") did not clear: %+v", se)
		}
	})

	// A node that lost its session (a newer epoch, another owner) cannot
	// write what the session shows: its error would hide the new owner's
	// state, or clear the new owner's error.
	t.Run("RecordErrorFenced", func(t *testing.T) {
		s, ctx := setup(t)
		mustAddBuffer(t, ctx, s, "src", 1)
		joinNodes(t, ctx, s, "a", "b")
		id := store.SessionID{Source: "src"}
		old, err := s.Claim(ctx, id, "a", "", time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		var current store.Lease
		waitFor(t, 5*time.Second, func() bool { // b claims the expired lease
			current, err = s.Claim(ctx, id, "b", "a", 30*time.Second)
			return err == nil
		})
		if err := s.RecordError(ctx, current, "b", "read source: timeout"); err != nil {
			t.Fatal(err)
		}
		for _, try := range []struct {
			node string
			l    store.Lease
			msg  string
		}{
			{"a", old, "stale owner's error"},
			{"a", old, ""},
			{"b", old, "b under the old epoch"},
			{"a", current, "a under b's epoch"},
		} {
			if err := s.RecordError(ctx, try.l, try.node, try.msg); !errors.Is(err, store.ErrFenced) {
				t.Errorf("RecordError by %s at epoch %d = %v, want ErrFenced", try.node, try.l.Epoch, err)
			}
		}
		if se := session(t, ctx, s, id); se.LastError != "read source: timeout" {
			t.Fatalf("last error = %q, want the owner's", se.LastError)
		}
	})

	// A node that cannot reach a source gives the session up: it is free,
	// names the node to deal it to last, and shows why; a node that does
	// not own it under that epoch changes nothing.
	t.Run("GiveUp", func(t *testing.T) {
		s, ctx := setup(t)
		mustAddBuffer(t, ctx, s, "src", 1)
		joinNodes(t, ctx, s, "a", "b")
		id := store.SessionID{Source: "src"}
		l, err := s.Claim(ctx, id, "a", "", 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.GiveUp(ctx, l, "b", "not b's"); err != nil {
			t.Fatal(err)
		}
		if se := session(t, ctx, s, id); se.Owner != "a" || se.GivenUpBy != "" || se.LastError != "" {
			t.Fatalf("after a GiveUp by a node that does not own it: %+v", se)
		}
		if err := s.GiveUp(ctx, l, "a", "read source: connection refused"); err != nil {
			t.Fatal(err)
		}
		se := session(t, ctx, s, id)
		if se.Owner != "" || se.GivenUpBy != "a" || se.LastError != "read source: connection refused" || se.LastErrorAt == nil {
			t.Fatalf("after GiveUp: %+v", se)
		}
		lb, err := s.Claim(ctx, id, "b", "", 30*time.Second)
		if err != nil || lb.Epoch != l.Epoch+1 {
			t.Fatalf("claim after GiveUp = %+v, %v", lb, err)
		}
		if se := session(t, ctx, s, id); se.GivenUpBy != "a" {
			t.Fatalf("GivenUpBy forgotten by a claim: %+v (it lasts store.GiveUpMemory)", se)
		}
	})

	// An event without a time of its own is given, when retried, the time
	// it was written to its source, as it would have been in its batch:
	// not the time it failed, nor the time of the retry.
	t.Run("RetryFailedKeepsWriteTime", func(t *testing.T) {
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
	t.Run("RetryFailedSizeLimit", func(t *testing.T) {
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

	t.Run("Watch", func(t *testing.T) {
		s, ctx := setup(t)
		w, ok := s.(store.Watcher)
		if !ok {
			t.Skip("driver has no Watcher")
		}
		mustAddBuffer(t, ctx, s, "src", 1)
		wctx, cancel := context.WithCancel(ctx)
		defer cancel()
		got := make(chan store.Notice, 100)
		done := make(chan error, 1)
		go func() { done <- w.Watch(wctx, func(n store.Notice) { got <- n }) }()
		deadline := time.After(10 * time.Second)
		// Keep appending until a buffer notice comes: the watch may need a
		// moment to start listening.
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case n := <-got:
				if n.Topic == "buffer" && (n.Source == "src" || n.Source == "") {
					cancel()
					<-done
					return
				}
			case <-tick.C:
				if err := s.AppendBuffer(ctx, "src", []store.BufferEvent{{Payload: []byte(`{}`)}}); err != nil {
					t.Fatal(err)
				}
			case err := <-done:
				t.Fatalf("Watch ended early: %v", err)
			case <-deadline:
				t.Fatal("no buffer notice within 10s of appending")
			}
		}
	})

	t.Run("Definitions", func(t *testing.T) { runDefinitions(t, setup) })
	t.Run("SourceLifeCycle", func(t *testing.T) { runSourceLifeCycle(t, setup) })
	t.Run("PausedSources", func(t *testing.T) { runPausedSources(t, setup) })
	t.Run("DepartedNodes", func(t *testing.T) { runDepartedNodes(t, setup) })

	t.Run("Liveness", func(t *testing.T) {
		s, ctx := setup(t)
		lv, ok := s.(store.Liveness)
		if !ok {
			t.Skip("driver has no Liveness")
		}
		hctx, cancel := context.WithCancel(ctx)
		if _, err := lv.HoldLiveness(hctx, 4242); err != nil {
			t.Fatalf("HoldLiveness: %v", err)
		}
		held, err := lv.LivenessHeld(ctx, []int64{4242, 4243})
		if err != nil || !held[4242] || held[4243] {
			t.Fatalf("LivenessHeld = %v, %v; want 4242 held, 4243 not", held, err)
		}
		cancel()
		waitFor(t, 10*time.Second, func() bool {
			held, err := lv.LivenessHeld(ctx, []int64{4242})
			return err == nil && !held[4242]
		})
	})
}

// migrated opens a fresh store, closed when the test ends, and migrates it.
func migrated(t *testing.T, open func(t *testing.T) store.Store) (store.Store, context.Context) {
	t.Helper()
	s := open(t)
	t.Cleanup(func() { _ = s.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	if _, _, err := s.Migrate(ctx); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return s, ctx
}

func at(sec int) time.Time {
	return time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC).Add(time.Duration(sec) * time.Second)
}

func ev(activity, instance string, kind event.Kind, sec int, data map[string]string) event.Event {
	e := event.Event{Activity: activity, Instance: instance, Kind: kind, Time: at(sec)}
	if data != nil {
		e.Data = map[string]json.RawMessage{}
		for k, v := range data {
			e.Data[k] = json.RawMessage(v)
		}
	}
	return e
}

func batch(l store.Lease, node string, cp store.Position, events ...event.Event) store.Batch {
	return store.Batch{Lease: l, Node: node, Checkpoint: cp, Deltas: event.Coalesce(events), Applied: len(events)}
}

func node(id string) store.Node {
	return store.Node{ID: id, Name: id, Host: "test", PID: 1, StartedAt: time.Now(), State: store.NodeRunning}
}

func joinNodes(t *testing.T, ctx context.Context, s store.Store, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if err := s.Join(ctx, node(id)); err != nil {
			t.Fatalf("Join(%s): %v", id, err)
		}
	}
}

func mustAddBuffer(t *testing.T, ctx context.Context, s store.Store, name string, partitions int) {
	t.Helper()
	if err := s.AddSource(ctx, store.Source{Name: name, Kind: store.KindBuffer, Partitions: partitions, Enabled: true}); err != nil {
		t.Fatalf("AddSource(%s): %v", name, err)
	}
}

// buffered counts the events in a buffer source's partitions.
func buffered(t *testing.T, ctx context.Context, s store.Store, source string, partitions int) int {
	t.Helper()
	total := 0
	for p := 0; p < partitions; p++ {
		n, err := s.BufferBacklog(ctx, store.SessionID{Source: source, Partition: p}, store.Position{})
		if err != nil {
			t.Fatalf("BufferBacklog(%s/%d): %v", source, p, err)
		}
		total += int(n)
	}
	return total
}

func mustSessions(t *testing.T, ctx context.Context, s store.Store) []store.Session {
	t.Helper()
	ss, err := s.Sessions(ctx)
	if err != nil {
		t.Fatalf("Sessions: %v", err)
	}
	return ss
}

func session(t *testing.T, ctx context.Context, s store.Store, id store.SessionID) store.Session {
	t.Helper()
	for _, se := range mustSessions(t, ctx, s) {
		if se.SessionID == id {
			return se
		}
	}
	t.Fatalf("no session %v", id)
	return store.Session{}
}

func instance(t *testing.T, ctx context.Context, s store.Store, k event.Key) store.Instance {
	t.Helper()
	in, err := s.Instance(ctx, k)
	if err != nil {
		t.Fatalf("Instance(%v): %v", k, err)
	}
	return in
}

func dataStrings(d map[string]json.RawMessage) map[string]string {
	out := map[string]string{}
	for k, v := range d {
		out[k] = string(v)
	}
	return out
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	keys := make([]string, 0, len(a))
	for k := range a {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if a[k] != b[k] {
			return false
		}
	}
	return true
}

func waitFor(t *testing.T, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
