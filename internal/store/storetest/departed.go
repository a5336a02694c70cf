package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/store"
)

// RunDepartedNodes holds the record of the nodes that left the pool: who
// went, when, found dead by whom and why, for a while; a record for
// people that changes nothing in the pool. open returns a fresh store;
// the suite migrates it if it has a schema.
func RunDepartedNodes(t *testing.T, open func(t *testing.T) PoolStore) {
	setup := func(t *testing.T) (PoolStore, context.Context) { return prepared(t, open) }
	departed := func(t *testing.T, ctx context.Context, s PoolStore) []store.DepartedNode {
		t.Helper()
		ds, err := s.DepartedNodes(ctx)
		if err != nil {
			t.Fatalf("DepartedNodes: %v", err)
		}
		return ds
	}
	ids := func(ds []store.DepartedNode) []string {
		var out []string
		for _, d := range ds {
			out = append(out, d.ID)
		}
		return out
	}

	t.Run("ForgetAndLeave", func(t *testing.T) {
		t.Parallel()
		s, ctx := setup(t)
		mustAddBuffer(t, ctx, s, "src", 1)
		started := time.Now().UTC().Truncate(time.Second)
		for _, n := range []store.NodeRow{
			{ID: "n1", Name: "alpha", Host: "h1", PID: 41, StartedAt: started, State: store.NodeRunning},
			{ID: "n2", Name: "beta", Host: "h2", PID: 42, StartedAt: started, State: store.NodeRunning},
			{ID: "n3", Name: "gamma", Host: "h3", PID: 43, StartedAt: started, State: store.NodeRunning},
		} {
			if err := s.Join(ctx, n); err != nil {
				t.Fatal(err)
			}
		}
		if ds := departed(t, ctx, s); len(ds) != 0 {
			t.Fatalf("DepartedNodes of a pool nobody left = %+v", ds)
		}
		id := store.SessionID{Source: "src"}
		if _, err := s.Claim(ctx, id, "n1", "", 30*time.Second); err != nil {
			t.Fatal(err)
		}
		var beat time.Time
		for _, n := range mustNodes(t, ctx, s) {
			if n.ID == "n1" {
				beat = n.HeartbeatAt
			}
		}

		why := store.Departure{FoundDeadBy: "n2", Why: "its liveness lock was released"}
		if err := s.ForgetNode(ctx, "n1", why); err != nil {
			t.Fatalf("ForgetNode: %v", err)
		}
		ds := departed(t, ctx, s)
		if len(ds) != 1 {
			t.Fatalf("DepartedNodes after ForgetNode = %+v, want n1", ds)
		}
		d := ds[0]
		if d.ID != "n1" || d.Name != "alpha" || d.Host != "h1" || d.PID != 41 || !d.StartedAt.Equal(started) ||
			!d.HeartbeatAt.Equal(beat) || d.Departure != why {
			t.Errorf("departed n1 = %+v; want alpha on h1, pid 41, started %v, last heartbeat %v, %+v", d, started, beat, why)
		}
		if d.DepartedAge < -time.Second || d.DepartedAge > 5*time.Second || d.HeartbeatAge < d.DepartedAge-time.Second {
			t.Errorf("departed n1: %v ago, last heartbeat %v ago", d.DepartedAge, d.HeartbeatAge)
		}
		if d.DepartedAt.IsZero() || d.DepartedAt.Location() != time.UTC {
			t.Errorf("departed n1 at %v, want a UTC time", d.DepartedAt)
		}

		// A record for people: the node's sessions are as they were.
		if se := session(t, ctx, s, id); se.Owner != "n1" || se.LeaseRemaining <= 0 {
			t.Errorf("ForgetNode changed n1's session: %+v", se)
		}

		// A second peer that found n1 dead too records nothing more.
		if err := s.ForgetNode(ctx, "n1", store.Departure{FoundDeadBy: "n3", Why: "late"}); err != nil {
			t.Fatalf("ForgetNode again: %v", err)
		}
		if ds := departed(t, ctx, s); len(ds) != 1 || ds[0].Departure != why {
			t.Errorf("DepartedNodes after a second ForgetNode = %+v; want n1 as the first said", ds)
		}

		time.Sleep(5 * time.Millisecond) // SQLite's clock counts milliseconds
		if err := s.Leave(ctx, "n3"); err != nil {
			t.Fatal(err)
		}
		ds = departed(t, ctx, s)
		if got := ids(ds); len(got) != 2 || got[0] != "n3" || got[1] != "n1" {
			t.Fatalf("DepartedNodes = %v, want n3 (latest) then n1", got)
		}
		if ds[0].Departure != (store.Departure{Why: store.DepartedCleanly}) || ds[0].Name != "gamma" {
			t.Errorf("n3 left cleanly; record = %+v", ds[0])
		}

		// A node forgotten that heartbeats again is a member, not gone;
		// when it goes again, its record says the latest.
		if _, err := s.Renew(ctx, node("n1"), 30*time.Second); err != nil {
			t.Fatal(err)
		}
		if got := ids(departed(t, ctx, s)); len(got) != 1 || got[0] != "n3" {
			t.Fatalf("DepartedNodes with n1 back = %v, want n3 only", got)
		}
		time.Sleep(5 * time.Millisecond) // the second departure must be later on the store's clock
		if err := s.Leave(ctx, "n1"); err != nil {
			t.Fatal(err)
		}
		ds = departed(t, ctx, s)
		if len(ds) != 2 || ds[0].ID != "n1" || ds[0].Why != store.DepartedCleanly || ds[0].FoundDeadBy != "" {
			t.Errorf("DepartedNodes after n1 left = %+v; want n1 first, left cleanly", ds)
		}
		if nodes := mustNodes(t, ctx, s); len(nodes) != 1 || nodes[0].ID != "n2" {
			t.Errorf("Nodes = %+v, want n2 alone", nodes)
		}
	})

	t.Run("KeptForAWhile", func(t *testing.T) {
		t.Parallel()
		s, ctx := setup(t)
		if _, ok := s.(SQL); !ok {
			t.Skip("the driver's test store does not implement storetest.SQL")
		}
		pg := s.Driver() == "postgres"
		joinNodes(t, ctx, s, "old", "new", "later")
		if err := s.ForgetNode(ctx, "old", store.Departure{FoundDeadBy: "new", Why: "silent"}); err != nil {
			t.Fatal(err)
		}
		// Age the record past DepartedMemory.
		age := `UPDATE bam_departed_nodes SET departed_at = departed_at - ? WHERE id = ?`
		var by any = (store.DepartedMemory + time.Minute).Microseconds()
		if pg {
			age = `UPDATE bam_departed_nodes SET departed_at = departed_at - ? * interval '1 microsecond' WHERE id = ?`
		}
		query(t, ctx, s, sqlArgs(pg, age), by, "old")
		if ds := departed(t, ctx, s); len(ds) != 0 {
			t.Fatalf("DepartedNodes lists a node gone longer than %v ago: %+v", store.DepartedMemory, ds)
		}
		// The next departure prunes it.
		if err := s.Leave(ctx, "later"); err != nil {
			t.Fatal(err)
		}
		rows := query(t, ctx, s, `SELECT id FROM bam_departed_nodes ORDER BY id`)
		if len(rows) != 1 || rows[0][0] != "later" {
			t.Errorf("departed records after a later Leave = %v, want later's only", rows)
		}
	})
}

func mustNodes(t *testing.T, ctx context.Context, s PoolStore) []store.NodeRow {
	t.Helper()
	nodes, err := s.Nodes(ctx)
	if err != nil {
		t.Fatalf("Nodes: %v", err)
	}
	return nodes
}
