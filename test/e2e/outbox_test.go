package e2e

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/store"
	"github.com/bam-dev/bam/internal/testpg"
	"github.com/bam-dev/bam/internal/testwait"
)

// TestOutboxOutOfOrderCommits writes into an application's outbox from two
// transactions that commit out of order — the one with the later id first —
// and checks that a running node applies both, skips nothing, quarantines a
// poison event without stopping, and trims the outbox.
func TestOutboxOutOfOrderCommits(t *testing.T) {
	stores(t, func(t *testing.T, url string) {
		appURL := testpg.NewDatabase(t)
		ctx := context.Background()
		bam(t, url, "migrate")
		bam(t, url, "source", "add", "shop", "--kind", "pg-outbox", "--partitions", "2", "--dsn", appURL)
		bam(t, url, "source", "install-outbox", "shop")
		st := openStore(t, url)
		n := startNode(t, url, "node-1")
		id := n.id(t)
		testwait.Until(t, 10*time.Second, "the node to own both sessions", func() bool { return ownedBy(t, st, id) == 2 })

		connect := func() *pgx.Conn {
			c, err := pgx.Connect(ctx, appURL)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close(context.Background()) })
			return c
		}
		insert := func(tx pgx.Tx, instance, kind string) {
			t.Helper()
			ev := `{"activity":"PurchaseOrder","instance":"` + instance + `","kind":"` + kind + `"}`
			if _, err := tx.Exec(ctx, "INSERT INTO bam_outbox (instance_id, event) VALUES ($1, $2)", instance, ev); err != nil {
				t.Fatal(err)
			}
		}
		// A takes the earlier id and stays open; B takes the later id and
		// commits first. Both instances land in the same partition or not:
		// the horizon is the same for every partition.
		txA, err := connect().Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		insert(txA, "PO-A", "begin")
		txB, err := connect().Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		insert(txB, "PO-B", "begin")
		if err := txB.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		// The node is woken by B's commit but must not read past A: it has
		// a real process's time to do it wrong.
		time.Sleep(1500 * time.Millisecond)
		if err := txA.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		// A poison event in the same stream, then a good one after it.
		poison, err := connect().Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := poison.Exec(ctx, "INSERT INTO bam_outbox (instance_id, event) VALUES ('PO-A', '{\"activity\": \"PurchaseOrder\", \"instance\": \"PO-A\", \"kind\": \"shipped\"}')"); err != nil {
			t.Fatal(err)
		}
		insert(poison, "PO-A", "end")
		if err := poison.Commit(ctx); err != nil {
			t.Fatal(err)
		}

		testwait.Until(t, 15*time.Second, "both instances to be applied", func() bool {
			a, errA := st.Instance(ctx, event.Key{Activity: "PurchaseOrder", Instance: "PO-A"})
			_, errB := st.Instance(ctx, event.Key{Activity: "PurchaseOrder", Instance: "PO-B"})
			return errA == nil && errB == nil && a.State == store.StateCompleted
		})
		for _, inst := range []string{"PO-A", "PO-B"} {
			in, err := st.Instance(ctx, event.Key{Activity: "PurchaseOrder", Instance: inst})
			if err != nil {
				t.Fatal(err)
			}
			want := int64(1)
			if inst == "PO-A" {
				want = 2
			}
			if in.Events != want {
				t.Errorf("%s: %d events applied, want %d", inst, in.Events, want)
			}
		}
		failed, err := st.FailedEvents(ctx, "shop", 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(failed) != 1 || !strings.Contains(failed[0].Reason, `unknown kind "shipped"`) || !strings.Contains(string(failed[0].Payload), "shipped") {
			t.Fatalf("failed events = %+v, want the poison event with its reason and bytes", failed)
		}
		testwait.Until(t, 10*time.Second, "the outbox to be trimmed", func() bool {
			var left int
			if err := connect().QueryRow(ctx, "SELECT count(*) FROM bam_outbox").Scan(&left); err != nil && !errors.Is(err, pgx.ErrNoRows) {
				t.Fatal(err)
			}
			return left == 0
		})
	})
}
