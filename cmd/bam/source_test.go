package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/source/pgoutbox"
	"github.com/bam-dev/bam/internal/store"
	"github.com/bam-dev/bam/internal/testpg"
)

// TestSourceRemoveRefusesUnappliedEvents is issue 9's report: four events
// emitted, no node running, `bam source remove` said "removed" and the
// events were gone.
func TestSourceRemoveRefusesUnappliedEvents(t *testing.T) {
	b := migrated(t)
	b.ok("source", "add", "tmp", "--kind", "buffer", "--partitions", "2")
	for i := range 4 {
		b.ok("emit", "--source", "tmp", "--activity", "PurchaseOrder", "--instance", fmt.Sprint("PO-", i), "--kind", "begin")
	}
	b.fails(exitError, "", []string{"source", "remove", "tmp"}, "4 events in its buffer not applied yet", "--drop-unapplied")
	if n := len(buffered(t, b.store(), "tmp", 2)[0]) + len(buffered(t, b.store(), "tmp", 2)[1]); n != 4 {
		t.Fatalf("%d events left after a refused remove, want 4", n)
	}
	r := b.ok("source", "remove", "tmp", "--drop-unapplied")
	if r.stdout != "removed source tmp\ndropped 4 unapplied events from its buffer\n" {
		t.Errorf("remove --drop-unapplied printed %q", r.stdout)
	}
}

// outboxNode applies a pg-outbox source's rows as a node would: each
// session claimed, read to the end, applied under the fence, released.
// It does not trim.
func outboxNode(t *testing.T, st store.Store, name string) {
	t.Helper()
	ctx := context.Background()
	src, err := st.Source(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	r, err := pgoutbox.OpenSource(ctx, src)
	if err != nil {
		t.Fatalf("open the outbox: %v", err)
	}
	defer r.Close()
	if src.Outbox.IsZero() {
		if err := st.RecordOutbox(ctx, name, r.Identity()); err != nil {
			t.Fatal(err)
		}
	}
	n := store.NodeRow{ID: "outbox-node", State: store.NodeRunning, StartedAt: time.Now()}
	if err := st.Join(ctx, n); err != nil {
		t.Fatal(err)
	}
	for p := range src.Partitions {
		l, err := st.Claim(ctx, store.SessionID{Source: name, Partition: p}, n.ID, "", time.Minute)
		if err != nil {
			t.Fatalf("claim %s/%d: %v", name, p, err)
		}
		var recs []store.Record
		deadline := time.Now().Add(15 * time.Second)
		for {
			var held bool
			recs, held, err = r.Read(ctx, p, l.Checkpoint, 1000)
			if err != nil {
				t.Fatal(err)
			}
			if !held {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("partition %d stays held", p)
			}
			time.Sleep(10 * time.Millisecond) // until no transaction of another test holds the horizon
		}
		if len(recs) > 0 {
			var evs []event.Event
			for _, rec := range recs {
				evs = append(evs, mustDecode(t, string(rec.Payload)))
			}
			err := st.Apply(ctx, store.Batch{Lease: l, Node: n.ID, From: l.Checkpoint, Checkpoint: recs[len(recs)-1].Position,
				Deltas: event.Coalesce(evs), Applied: len(evs)})
			if err != nil {
				t.Fatal(err)
			}
			l.Checkpoint = recs[len(recs)-1].Position
		}
		if err := st.Release(ctx, l, n.ID); err != nil {
			t.Fatal(err)
		}
	}
}

// TestOutboxSourceLifeCycle runs the `bam source` commands over a real
// outbox: no sequence of them applies a row twice.
func TestOutboxSourceLifeCycle(t *testing.T) {
	b := migrated(t)
	app := testpg.NewDatabase(t)
	ctx := context.Background()
	b.ok("source", "add", "shop", "--kind", "pg-outbox", "--partitions", "2", "--dsn", app)
	b.ok("source", "install-outbox", "shop")
	if r := b.ok("source", "list", "--json"); !strings.Contains(r.stdout, `"outbox": "table public.bam_outbox in database bam_test_`) {
		t.Errorf("source list --json does not show the recorded outbox:\n%s", r.stdout)
	}

	// A second source on the same table, through another spelling of it.
	b.fails(exitError, "", []string{"source", "add", "shop2", "--kind", "pg-outbox", "--partitions", "1", "--dsn", app, "--table", "public.bam_outbox"},
		`source "shop" reads table public.bam_outbox`)

	conn, err := pgx.Connect(ctx, app)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	write := func(ids ...string) {
		t.Helper()
		for _, id := range ids {
			ev := fmt.Sprintf(`{"activity":"PurchaseOrder","instance":%q,"kind":"begin"}`, id)
			if _, err := conn.Exec(ctx, `INSERT INTO bam_outbox (instance_id, event) VALUES ($1, $2)`, id, ev); err != nil {
				t.Fatal(err)
			}
		}
	}
	rows := func() int {
		t.Helper()
		var n int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM bam_outbox`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	st := b.store()
	write("PO-1", "PO-2", "PO-3", "PO-4")
	outboxNode(t, st, "shop")

	// Removed with its rows applied but not trimmed, then added again: no
	// row may be applied a second time.
	r := b.ok("source", "remove", "shop")
	if !strings.Contains(r.stdout, "its checkpoints are kept") {
		t.Errorf("remove printed %q", r.stdout)
	}
	if n := rows(); n != 0 {
		t.Errorf("%d applied rows left in the outbox after remove, want them trimmed", n)
	}
	write("PO-5")
	b.fails(exitError, "", []string{"source", "add", "shop", "--kind", "pg-outbox", "--partitions", "3", "--dsn", app},
		"add the source with --partitions 2")
	b.ok("source", "add", "shop", "--kind", "pg-outbox", "--partitions", "2", "--dsn", app)
	outboxNode(t, st, "shop")
	for i := 1; i <= 5; i++ {
		in, err := st.Instance(ctx, event.Key{Activity: "PurchaseOrder", Instance: fmt.Sprint("PO-", i)})
		if err != nil || in.Events != 1 {
			t.Errorf("PO-%d: %d events applied, %v; want 1", i, in.Events, err)
		}
	}

	// Rows not applied yet stop a remove.
	write("PO-6", "PO-7", "PO-8")
	b.fails(exitError, "", []string{"source", "remove", "shop"}, "3 events in its outbox table bam_outbox are not applied yet", "--drop-unapplied")

	// Repartitioned with rows waiting: each applied once.
	r = b.ok("source", "repartition", "shop", "3")
	if !strings.Contains(r.stdout, "source shop: 2 → 3 partitions") {
		t.Errorf("repartition printed %q", r.stdout)
	}
	write("PO-9")
	outboxNode(t, st, "shop")
	for i := 1; i <= 9; i++ {
		in, err := st.Instance(ctx, event.Key{Activity: "PurchaseOrder", Instance: fmt.Sprint("PO-", i)})
		if err != nil || in.Events != 1 {
			t.Errorf("after repartition, PO-%d: %d events applied, %v; want 1", i, in.Events, err)
		}
	}

	// The server's ids went back (as after a restore): the checkpoints are
	// ahead of its horizon.
	var horizon int64
	if err := conn.QueryRow(ctx, `SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint`).Scan(&horizon); err != nil {
		t.Fatal(err)
	}
	ahead := store.Position{Major: horizon + 1_000_000}
	if _, err := st.ResetCheckpoints(ctx, "shop", store.CheckpointReset{To: []store.Position{ahead, ahead, ahead}}); err != nil {
		t.Fatal(err)
	}
	write("PO-10")
	b.fails(exitUsage, "", []string{"source", "reset-checkpoint", "shop"}, "choose one of --to-horizon, --to-start and --keep")
	b.fails(exitError, "", []string{"source", "reset-checkpoint", "shop", "--keep"}, "its transaction ids went back")
	r = b.ok("source", "reset-checkpoint", "shop", "--to-start")
	for _, want := range []string{"source shop now reads table public.bam_outbox", "partition 0:", "will be read"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("reset-checkpoint printed %q, lacks %q", r.stdout, want)
		}
	}
	outboxNode(t, st, "shop")
	if in, err := st.Instance(ctx, event.Key{Activity: "PurchaseOrder", Instance: "PO-10"}); err != nil || in.Events != 1 {
		t.Errorf("PO-10, written after the rewind: %d events, %v; want 1", in.Events, err)
	}
	r = b.ok("source", "reset-checkpoint", "shop", "--to-horizon")
	if !strings.Contains(r.stdout, "0 rows now in the outbox will be read") {
		t.Errorf("reset-checkpoint --to-horizon printed %q", r.stdout)
	}
}
