package pooltest

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/source/pgoutbox"
	"github.com/bam-dev/bam/internal/store"
	"github.com/bam-dev/bam/internal/store/sqlite"
	"github.com/bam-dev/bam/internal/testpg"
	"github.com/bam-dev/bam/internal/testwait"
)

// outbox makes an application database with an outbox, and a pg-outbox
// source of partitions partitions reading it.
func outbox(t *testing.T, st store.Store, partitions int) *pgx.Conn {
	t.Helper()
	ctx := context.Background()
	if _, _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	appURL := testpg.NewDatabase(t)
	conn, err := pgx.Connect(ctx, appURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	if err := pgoutbox.Install(ctx, conn, ""); err != nil {
		t.Fatal(err)
	}
	if err := st.AddSource(ctx, store.Source{Name: "shop", Kind: store.KindPgOutbox, Partitions: partitions, Enabled: true, DSN: appURL, Table: pgoutbox.DefaultTable}); err != nil {
		t.Fatal(err)
	}
	return conn
}

func writeRow(t *testing.T, conn *pgx.Conn, instanceID, instance string) {
	t.Helper()
	ev := fmt.Sprintf(`{"activity":"PO","instance":%q,"kind":"begin"}`, instance)
	if _, err := conn.Exec(context.Background(), `INSERT INTO bam_outbox (instance_id, event) VALUES ($1, $2)`, instanceID, ev); err != nil {
		t.Fatal(err)
	}
}

// An outbox row filed under one instance but holding another's event
// landed in the other instance's partition by mistake: applying it would
// break that instance's order. It is quarantined, with the reason.
func TestOutboxRowOfAnotherInstanceIsQuarantined(t *testing.T) {
	eachStore(t, func(t *testing.T, open func() store.Store) {
		ctx := context.Background()
		st := open()
		conn := outbox(t, st, 2)
		runNode(t, open(), fastConfig("a"))
		writeRow(t, conn, "PO-1", "PO-2") // wrong
		writeRow(t, conn, "PO-1", "PO-1")
		var failed []store.FailedEvent
		testwait.Until(t, 20*time.Second, "the row of another instance to be quarantined", func() bool {
			var err error
			failed, err = st.FailedEvents(ctx, "shop", 10)
			return err == nil && len(failed) == 1
		})
		if !strings.Contains(failed[0].Reason, "instance_id") || !strings.Contains(failed[0].Reason, `"PO-2"`) {
			t.Errorf("reason %q does not say which instance ids differ", failed[0].Reason)
		}
		checkApplied(t, st, 1, 1)
		if _, err := st.Instance(ctx, event.Key{Activity: "PO", Instance: "PO-2"}); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("the row filed under PO-1 was applied to PO-2 (err %v)", err)
		}
	})
}

// A checkpoint ahead of the outbox server's transaction ids is what a
// restored server looks like: the session stops reading and trimming and
// says why, until the operator resets the checkpoints; the row written
// meanwhile is then applied, not lost.
func TestRewoundOutboxStopsTheSessionUntilReset(t *testing.T) {
	eachStore(t, func(t *testing.T, open func() store.Store) {
		ctx := context.Background()
		st := open()
		conn := outbox(t, st, 1)
		a := runNode(t, open(), fastConfig("a"))
		writeRow(t, conn, "PO-1", "PO-1")
		checkApplied(t, st, 1, 1)

		var horizon int64
		if err := conn.QueryRow(ctx, `SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint`).Scan(&horizon); err != nil {
			t.Fatal(err)
		}
		ahead := store.Position{Major: horizon + 1_000_000}
		if _, err := st.ResetCheckpoints(ctx, "shop", store.CheckpointReset{To: []store.Position{ahead}}); err != nil {
			t.Fatal(err)
		}
		writeRow(t, conn, "PO-2", "PO-2")
		var shown store.SessionRow
		testwait.Until(t, 20*time.Second, "the session to stop and say why", func() bool {
			ss, err := st.Sessions(ctx)
			if err != nil || len(ss) != 1 {
				return false
			}
			shown = ss[0]
			return shown.Owner == a.ID() && strings.Contains(shown.LastError, "reset-checkpoint shop")
		})
		if !strings.Contains(shown.LastError, "behind the checkpoint") {
			t.Errorf("last error %q does not say the ids went back", shown.LastError)
		}
		// Recorded in the store: every node stays stopped, even once the
		// server's ids pass the checkpoint again.
		testwait.Until(t, 10*time.Second, "the stop to be recorded with the source", func() bool {
			src, err := st.Source(ctx, "shop")
			return err == nil && strings.Contains(src.OutboxStopped, "behind the checkpoint")
		})
		var rows int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM bam_outbox WHERE instance_id = 'PO-2'`).Scan(&rows); err != nil || rows != 1 {
			t.Fatalf("the row written after the rewind: %d left, %v; want 1 (not trimmed)", rows, err)
		}
		// The operator chooses: read from the start of what is there.
		if _, err := st.ResetCheckpoints(ctx, "shop", store.CheckpointReset{To: []store.Position{{}}}); err != nil {
			t.Fatal(err)
		}
		checkApplied(t, st, 2, 1)
		if in, err := st.Instance(ctx, event.Key{Activity: "PO", Instance: "PO-2"}); err != nil || in.Events != 1 {
			t.Errorf("PO-2: %d events, %v; want 1", in.Events, err)
		}
	})
}

// Two pools, each with its own store, pointed at one outbox table would
// both apply every event and trim rows the other has not read. The second
// is refused, and says why.
func TestSecondStoreOnOneOutboxIsRefused(t *testing.T) {
	ctx := context.Background()
	openSQLite := func(path string) store.Store {
		st, err := sqlite.Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	dir := t.TempDir()
	first := openSQLite(filepath.Join(dir, "first.db"))
	conn := outbox(t, first, 1)
	runNode(t, openSQLite(filepath.Join(dir, "first.db")), fastConfig("a"))
	writeRow(t, conn, "PO-1", "PO-1")
	checkApplied(t, first, 1, 1)

	second := openSQLite(filepath.Join(dir, "second.db"))
	if _, _, err := second.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	src, err := first.Source(ctx, "shop")
	if err != nil {
		t.Fatal(err)
	}
	if err := second.AddSource(ctx, store.Source{Name: "shop", Kind: store.KindPgOutbox, Partitions: 1, Enabled: true, DSN: src.DSN, Table: src.Table}); err != nil {
		t.Fatal(err)
	}
	runNode(t, openSQLite(filepath.Join(dir, "second.db")), fastConfig("b"))
	testwait.Until(t, 20*time.Second, "the second store's session to say another store reads the table", func() bool {
		ss, err := second.Sessions(ctx)
		return err == nil && len(ss) == 1 && strings.Contains(ss[0].LastError, "another bam store reads this outbox table")
	})
	writeRow(t, conn, "PO-2", "PO-2")
	checkApplied(t, first, 2, 1)
	if all, err := second.Instances(ctx, store.InstanceFilter{Activity: "PO"}); err != nil || len(all) != 0 {
		t.Errorf("the second store applied %d instances (%v), want none", len(all), err)
	}
}

// An outbox whose database does not exist yet: the session retries with
// backoff, shows the error in the store (bam status), and recovers by
// itself once the table is there; the node never exits.
func TestUnreachableSourceIsRetriedAndShown(t *testing.T) {
	eachStore(t, func(t *testing.T, open func() store.Store) {
		ctx := context.Background()
		st := open()
		if _, _, err := st.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		appURL := testpg.NewDatabase(t)
		if err := st.AddSource(ctx, store.Source{Name: "shop", Kind: store.KindPgOutbox, Partitions: 1, Enabled: true, DSN: appURL, Table: "bam_outbox"}); err != nil {
			t.Fatal(err)
		}
		a := runNode(t, open(), fastConfig("a"))
		var shown store.SessionRow
		testwait.Until(t, 10*time.Second, "the session to show its error", func() bool {
			ss, err := st.Sessions(ctx)
			if err != nil || len(ss) != 1 {
				return false
			}
			shown = ss[0]
			return shown.LastError != "" && shown.LastErrorAt != nil && shown.Owner == a.ID()
		})
		if !strings.Contains(shown.LastError, "bam_outbox") {
			t.Errorf("last error %q does not name the missing table", shown.LastError)
		}
		if strings.Contains(shown.LastError, "postgres://") {
			t.Errorf("last error %q shows the DSN", shown.LastError)
		}
		// The operator installs the outbox; an event written there arrives.
		conn, err := pgx.Connect(ctx, appURL)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		if err := pgoutbox.Install(ctx, conn, "bam_outbox"); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(ctx, `INSERT INTO bam_outbox (instance_id, event) VALUES ('PO-1', '{"activity":"PO","instance":"PO-1","kind":"begin"}')`); err != nil {
			t.Fatal(err)
		}
		checkApplied(t, st, 1, 1)
		testwait.Until(t, 10*time.Second, "the error to clear", func() bool {
			ss, err := st.Sessions(ctx)
			return err == nil && ss[0].LastError == ""
		})
	})
}
