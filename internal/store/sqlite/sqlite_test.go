package sqlite

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/store"
)

// setup opens a migrated store on a fresh file, with one buffer source.
func setup(t *testing.T, partitions int) (*Store, context.Context) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	s := openAt(t, ctx, filepath.Join(t.TempDir(), "sub", "bam.db"))
	if _, _, err := s.Migrate(ctx); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	if partitions > 0 {
		if err := s.AddSource(ctx, store.Source{Name: "src", Kind: store.KindBuffer, Partitions: partitions, Enabled: true}); err != nil {
			t.Fatalf("add source: %v", err)
		}
	}
	return s, ctx
}

// openAt opens another Store on path, closed when the test ends.
func openAt(t *testing.T, ctx context.Context, path string) *Store {
	t.Helper()
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestConnectionSettings(t *testing.T) {
	s, ctx := setup(t, 0)
	for _, pool := range []struct {
		name string
		q    queryer
	}{{"work", s.db}, {"lease", s.lease}} {
		for pragma, want := range map[string]string{
			"journal_mode": "wal",
			"synchronous":  "2", // FULL
			"foreign_keys": "1",
			"busy_timeout": fmt.Sprint(BusyTimeout.Milliseconds()),
		} {
			var got string
			if err := pool.q.QueryRowContext(ctx, "PRAGMA "+pragma).Scan(&got); err != nil {
				t.Fatalf("%s pool: PRAGMA %s: %v", pool.name, pragma, err)
			}
			if got != want {
				t.Errorf("%s pool: PRAGMA %s = %s, want %s", pool.name, pragma, got, want)
			}
		}
	}
}

func TestOpenEscapesPath(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "odd dir?#%", "bam.db")
	s := openAt(t, ctx, path)
	if _, _, err := s.Migrate(ctx); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	if s.Path() != path {
		t.Errorf("Path = %s, want %s", s.Path(), path)
	}
	if err := openAt(t, ctx, path).CheckSchema(ctx); err != nil {
		t.Fatalf("the same file reopened: %v", err)
	}
}

func TestSchemaVersions(t *testing.T) {
	s, ctx := setup(t, 0)

	t.Run("older store refused until migrated", func(t *testing.T) {
		// A newer bam knows a second version; the store has only the first.
		newer := openAt(t, ctx, s.Path())
		newer.migs = append(newer.migs, migration{version: 2, name: "0002_test.sql", sql: `CREATE TABLE bam_test_v2 (x INTEGER) STRICT;`})
		err := newer.CheckSchema(ctx)
		if !errors.Is(err, store.ErrSchemaOld) || !strings.Contains(err.Error(), "store has version 1, this bam knows 2") {
			t.Fatalf("CheckSchema = %v, want ErrSchemaOld with both versions", err)
		}
		from, to, err := newer.Migrate(ctx)
		if err != nil || from != 1 || to != 2 {
			t.Fatalf("Migrate = %d, %d, %v; want 1, 2, nil", from, to, err)
		}
		if err := newer.CheckSchema(ctx); err != nil {
			t.Fatalf("CheckSchema after the upgrade: %v", err)
		}
	})

	t.Run("newer store refused", func(t *testing.T) {
		// s still knows only version 1, and the store is now at 2.
		err := s.CheckSchema(ctx)
		if !errors.Is(err, store.ErrSchemaNewer) || !strings.Contains(err.Error(), "store has version 2, this bam knows 1") {
			t.Fatalf("CheckSchema = %v, want ErrSchemaNewer with both versions", err)
		}
		if _, _, err := s.Migrate(ctx); !errors.Is(err, store.ErrSchemaNewer) {
			t.Fatalf("Migrate = %v, want ErrSchemaNewer", err)
		}
	})

	t.Run("failed migration leaves nothing behind", func(t *testing.T) {
		fresh := openAt(t, ctx, filepath.Join(t.TempDir(), "bam.db"))
		fresh.migs = append(fresh.migs, migration{version: 2, name: "0002_bad.sql", sql: `CREATE TABLE bam_half (x INTEGER); SELECT * FROM no_such_table;`})
		if _, _, err := fresh.Migrate(ctx); err == nil {
			t.Fatal("Migrate with a bad script succeeded")
		}
		if err := fresh.CheckSchema(ctx); !errors.Is(err, store.ErrSchemaMissing) {
			t.Fatalf("after a failed first migration CheckSchema = %v, want ErrSchemaMissing (all rolled back)", err)
		}
	})
}

func TestMigrationsAreContiguous(t *testing.T) {
	migs, err := loadMigrations()
	if err != nil {
		t.Fatal(err)
	}
	if len(migs) == 0 || migs[0].name != "0001_init.sql" {
		t.Fatalf("migrations = %+v", migs)
	}
}

// Without AUTOINCREMENT, SQLite gives a new row max(id)+1: once a partition
// is trimmed to empty, ids would be handed out again, and a reader whose
// checkpoint is past them would skip the new events.
func TestBufferIDsNeverReusedAfterTrim(t *testing.T) {
	s, ctx := setup(t, 1)
	id := store.SessionID{Source: "src"}
	appendN(t, ctx, s, 5)
	recs, _, err := s.ReadBuffer(ctx, id, store.Position{}, 0)
	if err != nil || len(recs) != 5 {
		t.Fatalf("read = %d, %v", len(recs), err)
	}
	checkpoint := recs[4].Position
	if err := s.TrimBuffer(ctx, id, checkpoint); err != nil {
		t.Fatal(err)
	}
	// Reopen too: the sequence lives in the file, not in the connection.
	s2 := openAt(t, ctx, s.Path())
	appendN(t, ctx, s2, 1)
	after, _, err := s2.ReadBuffer(ctx, id, checkpoint, 0)
	if err != nil || len(after) != 1 {
		t.Fatalf("an event appended after trimming everything is not after the checkpoint %v: %d records, %v", checkpoint, len(after), err)
	}
	if after[0].Position.Major != 0 || after[0].Position.Minor <= checkpoint.Minor {
		t.Fatalf("new position %v not after %v", after[0].Position, checkpoint)
	}
}

func appendN(t *testing.T, ctx context.Context, s *Store, n int) {
	t.Helper()
	evs := make([]store.BufferEvent, n)
	for i := range evs {
		evs[i] = store.BufferEvent{Payload: []byte(fmt.Sprintf(`{"n":%d}`, i))}
	}
	if err := s.AppendBuffer(ctx, "src", evs); err != nil {
		t.Fatalf("append: %v", err)
	}
}

func TestAppendBufferRefusesBadTargets(t *testing.T) {
	s, ctx := setup(t, 2)
	if err := s.AppendBuffer(ctx, "nope", []store.BufferEvent{{}}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("append to a missing source = %v, want ErrNotFound", err)
	}
	if err := s.AppendBuffer(ctx, "src", []store.BufferEvent{{Partition: 0}, {Partition: 2}}); err == nil {
		t.Errorf("append to partition 2 of 2 succeeded")
	}
	if n, _ := s.BufferBacklog(ctx, store.SessionID{Source: "src"}, store.Position{}); n != 0 {
		t.Errorf("a refused append left %d events behind", n)
	}
	if err := s.AddSource(ctx, store.Source{Name: "app", Kind: store.KindPgOutbox, Partitions: 1, Enabled: true}); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendBuffer(ctx, "app", []store.BufferEvent{{}}); err == nil {
		t.Errorf("append to a pg-outbox source succeeded")
	}
}

// A Watch sees appends made through another Store on the same file (as
// another process would make them) through the sequence poll.
func TestWatchSeesOtherWriters(t *testing.T) {
	s, ctx := setup(t, 1)
	s.PollInterval = 10 * time.Millisecond
	other := openAt(t, ctx, s.Path())

	wctx, cancel := context.WithCancel(ctx)
	got := make(chan store.Notice, 100)
	done := make(chan error, 1)
	go func() { done <- s.Watch(wctx, func(n store.Notice) { got <- n }) }()
	defer func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Watch ended with %v, want context.Canceled", err)
		}
	}()

	deadline := time.After(10 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case n := <-got:
			if n.Topic == "buffer" && n.Source == "" {
				return
			}
			t.Errorf("unexpected notice %+v: only the other store wrote", n)
		case <-tick.C:
			appendN(t, ctx, other, 1)
		case err := <-done:
			t.Fatalf("Watch ended early: %v", err)
		case <-deadline:
			t.Fatal("no notice of another store's append within 10s")
		}
	}
}

func TestWatchEndsOnClose(t *testing.T) {
	s, ctx := setup(t, 0)
	done := make(chan error, 1)
	go func() { done <- s.Watch(ctx, func(store.Notice) {}) }()
	_ = s.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Watch returned nil after Close")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Watch still running 10s after Close")
	}
}

// bam_merge_items must be event.Merge exactly: random deltas applied one
// batch at a time end in the items a fold of event.Merge gives.
func TestMergeMatchesEventMerge(t *testing.T) {
	s, ctx := setup(t, 1)
	if err := s.Join(ctx, store.Node{ID: "a", State: store.NodeRunning}); err != nil {
		t.Fatal(err)
	}
	l, err := s.Claim(ctx, store.SessionID{Source: "src"}, "a", "", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	want := map[string]event.Items{}
	var pos int64
	for range 200 {
		var deltas []event.Delta
		for inst := range 3 {
			if rng.IntN(2) == 0 {
				continue
			}
			d := event.Delta{
				Key:          event.Key{Activity: "A", Instance: fmt.Sprint(inst)},
				LastModified: time.UnixMicro(int64(rng.IntN(5))),
				Events:       1,
				Items:        event.Items{},
			}
			for _, name := range []string{"x", "y", "z"} {
				if rng.IntN(2) == 0 {
					// Few distinct times, so ties (the newer wins) are common.
					d.Items[name] = event.Item{Value: json.RawMessage(fmt.Sprint(rng.IntN(1000))), Time: int64(rng.IntN(4))}
				}
			}
			deltas = append(deltas, d)
			want[d.Instance] = event.Merge(want[d.Instance], d.Items)
		}
		b := store.Batch{Lease: l, Node: "a", From: store.Position{Minor: pos}, Checkpoint: store.Position{Minor: pos + 1}, Deltas: deltas, Applied: len(deltas)}
		if err := s.Apply(ctx, b); err != nil {
			t.Fatalf("apply: %v", err)
		}
		pos++
	}
	for inst, items := range want {
		in, err := s.Instance(ctx, event.Key{Activity: "A", Instance: inst})
		if err != nil {
			t.Fatal(err)
		}
		wantData := items.Values()
		if len(in.Data) != len(wantData) {
			t.Fatalf("instance %s: data %v, want %v", inst, in.Data, wantData)
		}
		for k, v := range wantData {
			if string(in.Data[k]) != string(v) {
				t.Errorf("instance %s item %s = %s, want %s", inst, k, in.Data[k], v)
			}
		}
	}
}

func TestRemoveSourceRefusedWhileOwned(t *testing.T) {
	s, ctx := setup(t, 1)
	appendN(t, ctx, s, 3)
	if _, err := s.Claim(ctx, store.SessionID{Source: "src"}, "a", "", time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveSource(ctx, "src"); !errors.Is(err, store.ErrNotClaimable) {
		t.Fatalf("RemoveSource of an enabled, owned source = %v, want ErrNotClaimable", err)
	}
	if err := s.SetSourceEnabled(ctx, "src", false); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveSource(ctx, "src"); err != nil {
		t.Fatalf("RemoveSource of a disabled source: %v", err)
	}
	var left int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM bam_buffer`).Scan(&left); err != nil || left != 0 {
		t.Fatalf("%d buffered events left after RemoveSource (%v)", left, err)
	}
}

func TestLivenessHoldEnds(t *testing.T) {
	s, ctx := setup(t, 0)
	peer := openAt(t, ctx, s.Path())

	hctx, cancel := context.WithCancel(ctx)
	lost, err := s.HoldLiveness(hctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := peer.HoldLiveness(ctx, 1); err == nil {
		t.Fatal("a second holder of one key succeeded")
	}
	cancel()
	<-lost // closed once the lock is let go
	if held, err := peer.LivenessHeld(ctx, []int64{1}); err != nil || held[1] {
		t.Fatalf("after the holder's ctx ended: held = %v, %v", held, err)
	}

	// Close lets go of every hold too.
	lost, err = s.HoldLiveness(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-lost:
	default:
		t.Fatal("Close returned before the hold ended")
	}
	if held, err := peer.LivenessHeld(ctx, []int64{2}); err != nil || held[2] {
		t.Fatalf("after Close: held = %v, %v", held, err)
	}
	// A new holder takes the key over.
	if _, err := peer.HoldLiveness(ctx, 2); err != nil {
		t.Fatalf("taking over a released key: %v", err)
	}
}

// Lease statements have their own connections: with every batch-work
// connection taken, a renewal still goes through at once.
func TestRenewNotBehindWork(t *testing.T) {
	s, ctx := setup(t, 1)
	n := store.Node{ID: "a", State: store.NodeRunning}
	if _, err := s.Claim(ctx, store.SessionID{Source: "src"}, "a", "", time.Minute); err != nil {
		t.Fatal(err)
	}
	for range workConns {
		c, err := s.db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	leases, err := s.Renew(rctx, n, time.Minute)
	if err != nil || len(leases) != 1 {
		t.Fatalf("Renew with the work pool exhausted = %+v, %v", leases, err)
	}
}
