package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/source/buffer"
	"github.com/bam-dev/bam/internal/source/sourcetest"
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
	cur, next := s.latest(), s.latest()+1

	t.Run("older store refused until migrated", func(t *testing.T) {
		// A newer bam knows one more version than the store has.
		newer := openAt(t, ctx, s.Path())
		newer.migs = append(newer.migs, store.Migration{Version: next, Name: "9999_test.sql", SQL: `CREATE TABLE bam_test_next (x INTEGER) STRICT;`})
		err := newer.CheckSchema(ctx)
		if want := fmt.Sprintf("store has version %d, this bam knows %d", cur, next); !errors.Is(err, store.ErrSchemaOld) || !strings.Contains(err.Error(), want) {
			t.Fatalf("CheckSchema = %v, want ErrSchemaOld with %q", err, want)
		}
		from, to, err := newer.Migrate(ctx)
		if err != nil || from != cur || to != next {
			t.Fatalf("Migrate = %d, %d, %v; want %d, %d, nil", from, to, err, cur, next)
		}
		if err := newer.CheckSchema(ctx); err != nil {
			t.Fatalf("CheckSchema after the upgrade: %v", err)
		}
	})

	t.Run("failed migration leaves nothing behind", func(t *testing.T) {
		fresh := openAt(t, ctx, filepath.Join(t.TempDir(), "bam.db"))
		fresh.migs = append(fresh.migs, store.Migration{Version: next, Name: "9999_bad.sql", SQL: `CREATE TABLE bam_half (x INTEGER); SELECT * FROM no_such_table;`})
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
	if len(migs) == 0 || migs[0].Name != "0001_init.sql" {
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

// The notice counter moves only on the changes that call for a balance
// round, never on renewals, claims or batches, and the moves a Store made
// itself are known to it (its watchers heard of them at once).
func TestSessionNoticeCounter(t *testing.T) {
	s, ctx := setup(t, 1)
	other := openAt(t, ctx, s.Path())
	counter := func() int64 {
		t.Helper()
		seqs, err := s.sequences(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return seqs.sessions
	}
	node := store.NodeRow{ID: "a", State: store.NodeRunning}
	if err := s.Join(ctx, node); err != nil {
		t.Fatal(err)
	}
	c0 := counter()
	l, err := s.Claim(ctx, store.SessionID{Source: "src"}, "a", "", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Renew(ctx, node, time.Minute); err != nil {
		t.Fatal(err)
	}
	b := store.Batch{Lease: l, Node: "a", Checkpoint: store.Position{Minor: 1}, Applied: 1}
	if err := s.Apply(ctx, b); err != nil {
		t.Fatal(err)
	}
	if err := s.Release(ctx, store.Lease{SessionID: l.SessionID, Epoch: l.Epoch + 1}, "a"); err != nil {
		t.Fatal(err) // not the owner's epoch: nothing released
	}
	if n, err := s.ExpireLeases(ctx, "nobody"); err != nil || n != 0 {
		t.Fatalf("ExpireLeases = %d, %v", n, err)
	}
	if c := counter(); c != c0 {
		t.Fatalf("counter moved from %d to %d without a change to balance for", c0, c)
	}

	if err := s.Release(ctx, l, "a"); err != nil {
		t.Fatal(err)
	}
	if err := s.Leave(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	c1 := counter()
	if c1 != c0+2 || !s.own.covers(c0, c1) || other.own.covers(c0, c1) {
		t.Fatalf("after Release and Leave: counter %d (was %d), own to s %v, own to other %v; want +2, true, false",
			c1, c0, s.own.covers(c0, c1), other.own.covers(c0, c1))
	}
	if err := other.Join(ctx, node); err != nil {
		t.Fatal(err)
	}
	if c2 := counter(); s.own.covers(c0, c2) || s.own.covers(c1, c2) {
		t.Fatalf("a change by the other Store (counter %d to %d) counted as s's own", c1, c2)
	}
}

// The upsert must follow package event's rules exactly, on both of its
// paths for items: random events, mostly in time order but often late, with
// ties and awkward values, applied in random batches through Coalesce, end
// in what a fold of the same deltas with event.Merge gives.
func TestApplyMatchesEventMerge(t *testing.T) {
	s, ctx := setup(t, 1)
	a := claimAll(t, ctx, s)
	type instance struct {
		begin, end *time.Time
		modified   time.Time
		events     int64
		items      event.Items
	}
	want := map[string]*instance{}
	values := []string{`12345678901234567890`, `-12345678901234567890123`, `0.125`, `1e300`, `-0`, `1E-7`,
		`true`, `false`, `null`, `""`, `"Contoso"`, `"a\"b\\c\u00e9\n\t"`, `"<&>\u2028"`, `"\ud83d\ude00é"`}
	rng := rand.New(rand.NewPCG(1, 2))
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	clock := 0
	var fast, slow int
	for range 400 {
		var events []event.Event
		for range 1 + rng.IntN(8) {
			clock += rng.IntN(2)
			at := clock
			if rng.IntN(4) == 0 {
				at -= rng.IntN(20) // late
			}
			ev := event.Event{
				Activity: "A", Instance: fmt.Sprint(rng.IntN(6)), Kind: event.Update,
				Time: t0.Add(time.Duration(at) * time.Microsecond), Data: map[string]json.RawMessage{},
			}
			switch rng.IntN(6) {
			case 0:
				ev.Kind = event.Begin
			case 1:
				ev.Kind = event.End
			}
			for _, name := range []string{"x", "y", "z"} {
				if rng.IntN(2) == 0 {
					ev.Data[name] = json.RawMessage(values[rng.IntN(len(values))])
				}
			}
			if err := ev.Validate(); err != nil {
				t.Fatal(err)
			}
			events = append(events, ev)
		}
		deltas := event.Coalesce(events)
		for _, d := range deltas {
			in := want[d.Instance]
			if in == nil {
				in = &instance{}
				want[d.Instance] = in
			} else if stored, err := s.Instance(ctx, d.Key); err != nil {
				t.Fatal(err)
			} else if !stored.LastModified.After(d.First) {
				fast++
			} else {
				slow++
			}
			if d.Begin != nil && (in.begin == nil || d.Begin.Before(*in.begin)) {
				in.begin = d.Begin
			}
			if d.End != nil && (in.end == nil || d.End.After(*in.end)) {
				in.end = d.End
			}
			if d.LastModified.After(in.modified) {
				in.modified = d.LastModified
			}
			in.events += int64(d.Events)
			in.items = event.Merge(in.items, d.Items)
		}
		a.apply(t, deltas, len(events))
		// After every batch: a wrong merge may be overwritten later.
		for _, d := range deltas {
			w := want[d.Instance]
			got, err := s.Instance(ctx, d.Key)
			if err != nil {
				t.Fatal(err)
			}
			state := store.StatePending
			if w.begin != nil {
				state = store.StateActive
				if w.end != nil {
					state = store.StateCompleted
				}
			}
			if got.State != state || !sameTime(got.Begin, w.begin) || !sameTime(got.End, w.end) ||
				!got.LastModified.Equal(w.modified) || got.Events != w.events {
				t.Fatalf("instance %s = %s, begin %v, end %v, modified %v, %d events; want %s, %v, %v, %v, %d",
					d.Instance, got.State, got.Begin, got.End, got.LastModified, got.Events, state, w.begin, w.end, w.modified, w.events)
			}
			wantData := w.items.Values()
			if len(got.Data) != len(wantData) {
				t.Fatalf("instance %s: data %s, want %s", d.Instance, got.Data, wantData)
			}
			for k, v := range wantData {
				if string(got.Data[k]) != string(v) { // the text, not just the value
					t.Fatalf("instance %s item %s = %s, want %s", d.Instance, k, got.Data[k], v)
				}
			}
		}
	}
	t.Logf("%d merges on the fast path, %d on the slow one", fast, slow)
	if fast < 100 || slow < 100 {
		t.Fatalf("%d merges took the fast path and %d the slow one; want both exercised", fast, slow)
	}
	// What the fast path relies on: no stored item is newer than its
	// instance's last change.
	var newer int
	err := s.db.QueryRowContext(ctx, `
		SELECT count(*) FROM bam_instances i, json_each(i.items) AS it
		WHERE it.value ->> 't' > i.last_modified`).Scan(&newer)
	if err != nil || newer != 0 {
		t.Fatalf("%d stored items newer than their instance's last_modified (%v)", newer, err)
	}
}

func sameTime(a, b *time.Time) bool {
	return a == nil && b == nil || a != nil && b != nil && a.Equal(*b)
}

// batcher applies batches of one session in order.
type batcher struct {
	s    *Store
	ctx  context.Context
	l    store.Lease
	from store.Position
}

// claimAll joins node "a" and claims the session of partition 0.
func claimAll(t *testing.T, ctx context.Context, s *Store) *batcher {
	t.Helper()
	if err := s.Join(ctx, store.NodeRow{ID: "a", State: store.NodeRunning}); err != nil {
		t.Fatal(err)
	}
	l, err := s.Claim(ctx, store.SessionID{Source: "src"}, "a", "", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return &batcher{s: s, ctx: ctx, l: l}
}

// apply commits deltas as the next batch, covering positions up to
// from + n.
func (b *batcher) apply(t *testing.T, deltas []event.Delta, n int) {
	t.Helper()
	b.applyTo(t, deltas, store.Position{Minor: b.from.Minor + int64(n)})
}

func (b *batcher) applyTo(t *testing.T, deltas []event.Delta, cp store.Position) {
	t.Helper()
	applied := 0
	for _, d := range deltas {
		applied += d.Events
	}
	batch := store.Batch{Lease: b.l, Node: "a", From: b.from, Checkpoint: cp, Deltas: deltas, Applied: applied}
	if err := b.s.Apply(b.ctx, batch); err != nil {
		t.Fatalf("apply: %v", err)
	}
	b.from = cp
}

// An instance written by a bam of schema version 1 has no first_event_at
// (NULL): after the upgrade it merges as well on both paths.
func TestUpgradedInstanceMerges(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "bam.db")
	old := openAt(t, ctx, path)
	old.migs = old.migs[:1]
	if _, _, err := old.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	_, err := old.db.ExecContext(ctx, `
		INSERT INTO bam_instances (activity, instance_id, state, begin_time, last_modified, items, events, updated_at)
		VALUES ('A', '1', 'active', 10, 20, '{"x":{"v":1,"t":20},"y":{"v":"two","t":15}}', 2, 0)`)
	if err != nil {
		t.Fatal(err)
	}
	s := openAt(t, ctx, path)
	if from, to, err := s.Migrate(ctx); err != nil || from != 1 || to != s.latest() {
		t.Fatalf("Migrate = %d, %d, %v", from, to, err)
	}
	if err := s.AddSource(ctx, store.Source{Name: "src", Kind: store.KindBuffer, Partitions: 1, Enabled: true}); err != nil {
		t.Fatal(err)
	}
	a := claimAll(t, ctx, s)
	at := func(us int64) time.Time { return time.UnixMicro(us).UTC() }
	delta := func(us int64, name, value string) event.Delta {
		return event.Delta{
			Key: event.Key{Activity: "A", Instance: "1"}, First: at(us), LastModified: at(us), Events: 1,
			Items: event.Items{name: {Value: json.RawMessage(value), Time: us}},
		}
	}
	a.apply(t, []event.Delta{delta(25, "x", "3")}, 1)    // in order: json_patch
	a.apply(t, []event.Delta{delta(5, "y", `"old"`)}, 1) // late: bam_merge_items, y keeps "two"
	a.apply(t, []event.Delta{delta(5, "z", "true")}, 1)  // late, a new item
	in, err := s.Instance(ctx, event.Key{Activity: "A", Instance: "1"})
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprintf("x=%s y=%s z=%s, %d events, modified %d", in.Data["x"], in.Data["y"], in.Data["z"], in.Events, in.LastModified.UnixMicro())
	if want := `x=3 y="two" z=true, 5 events, modified 25`; got != want {
		t.Fatalf("instance: %s; want %s", got, want)
	}
	var first sql.NullInt64
	if err := s.db.QueryRowContext(ctx, `SELECT first_event_at FROM bam_instances`).Scan(&first); err != nil || first.Valid {
		t.Fatalf("first_event_at = %v, %v; want NULL (unknown) for an instance of version 1", first, err)
	}
}

// Apply deletes the buffer records its batch covers, and only those, so
// that TrimBuffer has nothing left to do.
func TestApplyTrimsBuffer(t *testing.T) {
	s, ctx := setup(t, 2)
	a := claimAll(t, ctx, s)
	evs := make([]store.BufferEvent, 6)
	for i := range evs {
		evs[i] = store.BufferEvent{Partition: i % 2, Payload: []byte(fmt.Sprintf(`{"n":%d}`, i))}
	}
	if err := s.AppendBuffer(ctx, "src", evs); err != nil {
		t.Fatal(err)
	}
	p0 := store.SessionID{Source: "src"}
	recs, _, err := s.ReadBuffer(ctx, p0, store.Position{}, 0)
	if err != nil || len(recs) != 3 {
		t.Fatalf("read = %d records, %v", len(recs), err)
	}
	a.applyTo(t, nil, recs[1].Position)
	rest, _, err := s.ReadBuffer(ctx, p0, store.Position{}, 0)
	if err != nil || len(rest) != 1 || rest[0].Position != recs[2].Position {
		t.Fatalf("partition 0 after a batch up to its second record: %+v, %v", rest, err)
	}
	if n, err := s.BufferBacklog(ctx, store.SessionID{Source: "src", Partition: 1}, store.Position{}); err != nil || n != 3 {
		t.Fatalf("partition 1 backlog = %d, %v; want 3, untouched", n, err)
	}
	if err := s.TrimBuffer(ctx, p0, recs[1].Position); err != nil {
		t.Fatalf("TrimBuffer of what Apply deleted: %v", err)
	}
	if err := s.TrimBuffer(ctx, p0, recs[2].Position); err != nil {
		t.Fatal(err)
	}
	if n, err := s.BufferBacklog(ctx, p0, store.Position{}); err != nil || n != 0 {
		t.Fatalf("partition 0 backlog after TrimBuffer = %d, %v; want 0", n, err)
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

	// Close ends every hold, lost closed, before it returns (that the
	// lock is free then is the suite's Liveness/EndsWithStore).
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
}

// Lease statements have their own connections: with every batch-work
// connection taken, a renewal still goes through at once.
func TestRenewNotBehindWork(t *testing.T) {
	s, ctx := setup(t, 1)
	n := store.NodeRow{ID: "a", State: store.NodeRunning}
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

// TestClaimDoesNotWaitLongForTheWriteLock: while another process holds the
// file's write lock (a node paused inside a write transaction), a claim
// gives up within ClaimLockWait with store.ErrLocked instead of waiting
// the busy timeout (10 s) and failing with SQLITE_BUSY.
func TestClaimDoesNotWaitLongForTheWriteLock(t *testing.T) {
	s, ctx := setup(t, 1)
	other := openAt(t, ctx, s.path)
	tx, err := other.db.BeginTx(ctx, nil) // BEGIN IMMEDIATE: the write lock
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	id := store.SessionID{Source: "src"}
	start := time.Now()
	_, err = s.Claim(ctx, id, "a", "", time.Minute)
	if took := time.Since(start); !errors.Is(err, store.ErrLocked) || took > 3*time.Second {
		t.Fatalf("claim while the write lock is taken = %v after %v, want ErrLocked within %v", err, took, ClaimLockWait)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Claim(ctx, id, "a", "", time.Minute); err != nil {
		t.Fatalf("claim once the lock is free: %v", err)
	}
}

// TestMigrationStoresTimesInOneForm: items written before version 10 keep
// times as their writers sent them (…43Z, …43.5131Z, offsets); the
// migration rewrites them in event.StoredTimeLayout, in instances, the
// archive and continuations, so that the views' text order is time order.
// Other values are left as they were.
func TestMigrationStoresTimesInOneForm(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "bam.db")
	old := openAt(t, ctx, path)
	old.migs = old.migs[:9]
	if _, _, err := old.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	items := `{"Approved":{"v":"2026-11-25T12:02:43.5131+02:00","t":1},"Note":{"v":"2026-11-25 10:02:43Z","t":1},"Qty":{"v":3,"t":1},"Shipped":{"v":"2026-11-25T10:02:43Z","t":2}}`
	for _, q := range []string{
		`INSERT INTO bam_instances (activity, instance_id, state, last_modified, items, updated_at) VALUES ('A', '1', 'active', 1, ?, 0)`,
		`INSERT INTO bam_instances (activity, instance_id, state, last_modified, items, updated_at) VALUES ('A', '2', 'active', 1, '{"Qty":{"v":3,"t":1}}', 0)`,
		`INSERT INTO bam_instances_archive (activity, instance_id, state, last_modified, items, updated_at, archived_at) VALUES ('A', '3', 'completed', 1, ?, 0, 0)`,
		`INSERT INTO bam_continuations (activity, token, items, updated_at) VALUES ('A', 'tok', ?, 0)`,
	} {
		var args []any
		if strings.Contains(q, "?") {
			args = append(args, items)
		}
		if _, err := old.db.ExecContext(ctx, q, args...); err != nil {
			t.Fatal(err)
		}
	}
	s := openAt(t, ctx, path)
	if from, to, err := s.Migrate(ctx); err != nil || from != 9 || to != s.latest() {
		t.Fatalf("Migrate = %d, %d, %v", from, to, err)
	}
	want := `{"Approved":{"v":"2026-11-25T10:02:43.513100Z","t":1},"Note":{"v":"2026-11-25 10:02:43Z","t":1},"Qty":{"v":3,"t":1},"Shipped":{"v":"2026-11-25T10:02:43.000000Z","t":2}}`
	for _, c := range []struct{ table, key, want string }{
		{"bam_instances", "instance_id = '1'", want},
		{"bam_instances", "instance_id = '2'", `{"Qty":{"v":3,"t":1}}`},
		{"bam_instances_archive", "instance_id = '3'", want},
		{"bam_continuations", "token = 'tok'", want},
	} {
		var got string
		if err := s.db.QueryRowContext(ctx, `SELECT items FROM `+c.table+` WHERE `+c.key).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != c.want {
			t.Errorf("%s %s: items %s\nwant %s", c.table, c.key, got, c.want)
		}
	}
}

// TestBufferConformance holds the SQLite buffer's reader to the suite
// every source.Reader passes; its writer is the driver's own insert, one
// transaction at a time (SQLite's writers take turns).
func TestBufferConformance(t *testing.T) {
	sourcetest.Run(t, func(t *testing.T, partitions int) sourcetest.Harness {
		s, _ := setup(t, partitions)
		return sourcetest.Harness{
			Reader: buffer.New(s, "src"),
			Begin: func(ctx context.Context) (sourcetest.Tx, error) {
				tx, err := s.db.BeginTx(ctx, nil)
				return bufferTx{tx: tx, partitions: partitions}, err
			},
		}
	})
}

// bufferTx is a transaction that writes to the buffer source "src".
type bufferTx struct {
	tx         *sql.Tx
	partitions int
}

func (b bufferTx) Write(ctx context.Context, segment string, payload []byte) error {
	return appendBuffer(ctx, b.tx, "src", b.partitions, []store.BufferEvent{{Partition: event.Partition(segment, b.partitions), Payload: payload}})
}

func (b bufferTx) Commit(context.Context) error   { return b.tx.Commit() }
func (b bufferTx) Rollback(context.Context) error { return b.tx.Rollback() }
