package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/source/buffer"
	"github.com/bam-dev/bam/internal/source/sourcetest"
	"github.com/bam-dev/bam/internal/store"
	"github.com/bam-dev/bam/internal/store/storetest"
	"github.com/bam-dev/bam/internal/testpg"
	"github.com/bam-dev/bam/internal/testwait"
)

// open returns a store on a fresh database, without schema.
func open(t testing.TB, url string) *Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := Open(ctx, url)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

type bundle struct {
	s   *Store
	url string
	ctx context.Context
}

// setup returns a migrated store on a fresh database.
func setup(t testing.TB) bundle {
	t.Helper()
	url := testpg.NewDatabase(t)
	s := open(t, url)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	if _, _, err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	return bundle{s: s, url: url, ctx: ctx}
}

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) store.Store {
		url := testpg.NewDatabase(t)
		return sqlStore{Store: open(t, url), url: url}
	})
}

// TestBufferNeverSkips is DESIGN.md promise 4: transaction A writes first
// and commits last; B writes after A and commits first. A reader must not
// move past A's position while A is open, however the ids were handed out.
func TestBufferNeverSkips(t *testing.T) {
	t.Parallel()
	for _, idsFirst := range []bool{true, false} {
		name := "A inserts first"
		if !idsFirst {
			name = "A takes its xid first, B takes the smaller id"
		}
		t.Run(name, func(t *testing.T) {
			b := setup(t)
			ctx, s := b.ctx, b.s
			if err := s.AddSource(ctx, store.Source{Name: "src", Kind: store.KindBuffer, Partitions: 1, Enabled: true}); err != nil {
				t.Fatal(err)
			}
			id := store.SessionID{Source: "src"}
			a := connect(t, b.url)
			txA, err := a.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer txA.Rollback(ctx)
			insertA := func() {
				if _, err := txA.Exec(ctx, `INSERT INTO bam_buffer (source, partition, payload) VALUES ('src', 0, 'A')`); err != nil {
					t.Fatal(err)
				}
			}
			if idsFirst {
				insertA()
			} else if _, err := txA.Exec(ctx, `SELECT pg_current_xact_id()`); err != nil {
				t.Fatal(err)
			}
			if err := s.AppendBuffer(ctx, "src", []store.BufferEvent{{Payload: []byte("B")}}); err != nil {
				t.Fatal(err)
			}
			if !idsFirst {
				insertA()
			}

			recs, held, err := s.ReadBuffer(ctx, id, store.Position{}, 100)
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != 0 || !held {
				t.Fatalf("while A is open: read %d records (%v), held=%v; want none, held", len(recs), payloads(recs), held)
			}
			if n, _ := s.BufferBacklog(ctx, id, store.Position{}); n != 1 {
				t.Fatalf("backlog while A is open = %d, want 1 (B, committed but held)", n)
			}
			if err := txA.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			// Other tests on this server may hold the horizon for a moment.
			testwait.Until(t, 10*time.Second, "A then B readable", func() bool {
				recs, held, err = s.ReadBuffer(ctx, id, store.Position{}, 100)
				return err == nil && !held && len(recs) == 2
			})
			if got := payloads(recs); got != "A,B" {
				t.Fatalf("after A commits: read %s, want A,B", got)
			}
			if !recs[0].Position.Less(recs[1].Position) {
				t.Fatalf("positions %v, %v not increasing", recs[0].Position, recs[1].Position)
			}
			// A later append lands after everything read so far.
			if err := s.AppendBuffer(ctx, "src", []store.BufferEvent{{Payload: []byte("C")}}); err != nil {
				t.Fatal(err)
			}
			testwait.Until(t, 10*time.Second, "C readable", func() bool {
				recs, held, err = s.ReadBuffer(ctx, id, recs[1].Position, 100)
				return err == nil && len(recs) == 1
			})
			if string(recs[0].Payload) != "C" {
				t.Fatalf("after B: %s, want C", payloads(recs))
			}
		})
	}
}

// TestBufferHorizonIsThisDatabase: a transaction open in another database
// of the server cannot write to this buffer and must not hold it back; one
// open in this database must, even after a full batch.
func TestBufferHorizonIsThisDatabase(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx, s := b.ctx, b.s
	if err := s.AddSource(ctx, store.Source{Name: "src", Kind: store.KindBuffer, Partitions: 1, Enabled: true}); err != nil {
		t.Fatal(err)
	}
	id := store.SessionID{Source: "src"}
	elsewhere := connect(t, testpg.NewDatabase(t))
	txOther, err := elsewhere.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer txOther.Rollback(ctx)
	if _, err := txOther.Exec(ctx, `SELECT pg_current_xact_id()`); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendBuffer(ctx, "src", []store.BufferEvent{{Payload: []byte("1")}, {Payload: []byte("2")}}); err != nil {
		t.Fatal(err)
	}
	recs, held, err := s.ReadBuffer(ctx, id, store.Position{}, 10)
	if err != nil || held || payloads(recs) != "1,2" {
		t.Fatalf("with a transaction open in another database: read %s, held=%v, %v; want 1,2, not held", payloads(recs), held, err)
	}

	here := connect(t, b.url)
	txHere, err := here.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer txHere.Rollback(ctx)
	if _, err := txHere.Exec(ctx, `SELECT pg_current_xact_id()`); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendBuffer(ctx, "src", []store.BufferEvent{{Payload: []byte("3")}}); err != nil {
		t.Fatal(err)
	}
	recs, held, err = s.ReadBuffer(ctx, id, store.Position{}, 2)
	if err != nil || !held || payloads(recs) != "1,2" {
		t.Fatalf("full batch before a row held by this database: read %s, held=%v, %v; want 1,2, held", payloads(recs), held, err)
	}
	if err := txHere.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	recs, held, err = s.ReadBuffer(ctx, id, store.Position{}, 10)
	if err != nil || held || payloads(recs) != "1,2,3" {
		t.Fatalf("after the transaction ended: read %s, held=%v, %v; want 1,2,3", payloads(recs), held, err)
	}
}

func payloads(recs []store.Record) string {
	var p []string
	for _, r := range recs {
		p = append(p, string(r.Payload))
	}
	return strings.Join(p, ",")
}

// TestMergeItemsMatchesEventMerge checks bam_merge_items against
// event.Merge on random items, with many ties on time.
func TestMergeItemsMatchesEventMerge(t *testing.T) {
	t.Parallel()
	b := setup(t)
	rng := rand.New(rand.NewPCG(1, 2))
	randItems := func() event.Items {
		if rng.IntN(8) == 0 {
			return nil
		}
		its := event.Items{}
		for _, k := range []string{"A", "B", "C", "D", "E"} {
			if rng.IntN(2) == 0 {
				continue
			}
			var v string
			switch rng.IntN(3) {
			case 0:
				v = fmt.Sprint(rng.IntN(1000))
			case 1:
				v = fmt.Sprintf(`"s%d"`, rng.IntN(1000))
			default:
				v = []string{"true", "false", "0.125"}[rng.IntN(3)]
			}
			its[k] = event.Item{Value: json.RawMessage(v), Time: 1795606920000000 + int64(rng.IntN(4))}
		}
		return its
	}
	type pair struct{ a, b event.Items }
	var cases []pair
	batch := &pgx.Batch{}
	for range 500 {
		p := pair{randItems(), randItems()}
		cases = append(cases, p)
		batch.Queue(`SELECT bam_merge_items($1::jsonb, $2::jsonb)`, jsonOrNil(t, p.a), jsonOrNil(t, p.b))
	}
	br := b.s.work.SendBatch(b.ctx, batch)
	defer br.Close()
	for i, p := range cases {
		var got []byte
		if err := br.QueryRow().Scan(&got); err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		var gotItems event.Items
		if err := json.Unmarshal(got, &gotItems); err != nil {
			t.Fatalf("case %d: %s: %v", i, got, err)
		}
		want := event.Merge(p.a, p.b)
		if !sameItems(gotItems, want) {
			t.Fatalf("case %d: bam_merge_items(%s, %s) = %s, want %v", i, jsonOrNil(t, p.a), jsonOrNil(t, p.b), got, want)
		}
	}
}

// TestUpsertItemsMatchEventMerge checks the items the upsert stores
// against event.Merge through both of its paths: the fast one (the
// delta's first event is not older than the instance's last_modified, so
// plain ||) and bam_merge_items. Each round applies one delta per
// instance, whose events arrive in order (at or after the instance's last
// event, ties included), out of order (any time), or in a delta without a
// first event time, which must take the slow path. Event times carry
// nanoseconds, which the store drops, with either protocol (the simple
// one sends times as text).
func TestUpsertItemsMatchEventMerge(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"cache_statement", "simple_protocol"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			url := testpg.NewDatabase(t)
			s := open(t, url+"&default_query_exec_mode="+mode)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			if _, _, err := s.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			testUpsertItems(t, ctx, s)
		})
	}
}

func testUpsertItems(t *testing.T, ctx context.Context, s *Store) {
	if err := s.AddSource(ctx, store.Source{Name: "src", Kind: store.KindBuffer, Partitions: 1, Enabled: true}); err != nil {
		t.Fatal(err)
	}
	l, err := s.Claim(ctx, store.SessionID{Source: "src"}, "a", "", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(5, 6))
	base := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	model := map[event.Key]event.Items{}
	last := map[event.Key]time.Time{} // the stored last_modified, in microseconds
	// fast and slow count the updates by the path the upsert takes; lost
	// counts those where a stored item beats an incoming one, which a
	// fast path taken wrongly would get wrong.
	var fast, slow, lost int
	var pos store.Position
	for round := range 12 {
		var deltas []event.Delta
		for n := range 60 {
			k := event.Key{Activity: "PO", Instance: fmt.Sprintf("PO-%02d", n)}
			lm, seen := last[k]
			inOrder := seen && rng.IntN(2) == 0
			var evs []event.Event
			for range 1 + rng.IntN(3) {
				at := base.Add(time.Duration(rng.IntN(40)) * time.Microsecond)
				if inOrder {
					at = lm.Add(time.Duration(rng.IntN(3)) * time.Microsecond) // + 0: a tie
				}
				ev := event.Event{Activity: k.Activity, Instance: k.Instance, Kind: event.Update,
					Time: at.Add(time.Duration(rng.IntN(1000))), Data: map[string]json.RawMessage{}}
				for _, name := range []string{"A", "B", "C", "D"} {
					if rng.IntN(2) == 0 {
						ev.Data[name] = json.RawMessage(fmt.Sprintf(`"r%d-%d"`, round, rng.IntN(100)))
					}
				}
				evs = append(evs, ev)
			}
			d := event.Coalesce(evs)[0]
			if rng.IntN(6) == 0 {
				d.First = time.Time{} // not known
			}
			if seen {
				if !d.First.IsZero() && !lm.After(d.First.Truncate(time.Microsecond)) {
					fast++
				} else {
					slow++
				}
				plain := maps.Clone(model[k])
				maps.Copy(plain, d.Items)
				if !sameItems(plain, event.Merge(model[k], d.Items)) {
					lost++
				}
			}
			model[k] = event.Merge(model[k], d.Items)
			if t := d.LastModified.Truncate(time.Microsecond); t.After(lm) {
				last[k] = t
			}
			deltas = append(deltas, d)
		}
		next := store.Position{Minor: pos.Minor + int64(len(deltas))}
		if err := s.Apply(ctx, store.Batch{Lease: l, Node: "a", From: pos, Checkpoint: next, Deltas: deltas, Applied: len(deltas)}); err != nil {
			t.Fatal(err)
		}
		pos = next

		type row struct {
			id    string
			items []byte
			last  time.Time
		}
		rows, _ := s.work.Query(ctx, `SELECT instance_id, items, last_modified FROM bam_instances`)
		stored, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
			var x row
			return x, r.Scan(&x.id, &x.items, &x.last)
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range stored {
			k := event.Key{Activity: "PO", Instance: r.id}
			var got event.Items
			if err := json.Unmarshal(r.items, &got); err != nil {
				t.Fatal(err)
			}
			if !sameItems(got, model[k]) {
				t.Fatalf("round %d, %s: items %s, want %v", round, r.id, r.items, model[k])
			}
			if !r.last.Equal(last[k]) {
				t.Fatalf("round %d, %s: last_modified %v, want %v", round, r.id, r.last, last[k])
			}
		}
	}
	t.Logf("fast %d slow %d lost %d", fast, slow, lost)
	if fast < 100 || slow < 100 || lost < 50 {
		t.Fatalf("updates: %d by the fast path, %d by the slow one, %d where a stored item won; want at least 100, 100, 50", fast, slow, lost)
	}
}

func jsonOrNil(t *testing.T, its event.Items) any {
	t.Helper()
	if its == nil {
		return nil
	}
	b, err := json.Marshal(its)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// sameItems compares items by meaning: jsonb may respell a value.
func sameItems(a, b event.Items) bool {
	if len(a) != len(b) {
		return false
	}
	for k, x := range a {
		y, ok := b[k]
		if !ok || x.Time != y.Time || !sameJSON(x.Value, y.Value) {
			return false
		}
	}
	return true
}

func sameJSON(a, b json.RawMessage) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

func sameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Equal(*b)
}

// TestApplyStoresWhatJSONbRefuses: a string with \u0000 or a lone surrogate
// is valid JSON but not valid jsonb. It must not fail the batch forever.
func TestApplyStoresWhatJSONbRefuses(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx, s := b.ctx, b.s
	if err := s.AddSource(ctx, store.Source{Name: "src", Kind: store.KindBuffer, Partitions: 1, Enabled: true}); err != nil {
		t.Fatal(err)
	}
	l, err := s.Claim(ctx, store.SessionID{Source: "src"}, "a", "", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	ev := event.Event{Activity: "A", Instance: "1", Kind: event.Begin, Time: time.Now(), Data: map[string]json.RawMessage{
		"Nul":   json.RawMessage(`"a\u0000b"`),
		"Lone":  json.RawMessage(`"x\ud800y"`),
		"Pair":  json.RawMessage(`"\ud83d\ude00"`),
		"Slash": json.RawMessage(`"\\u0000"`),
	}}
	err = s.Apply(ctx, store.Batch{Lease: l, Node: "a", Checkpoint: store.Position{Minor: 1}, Deltas: event.Coalesce([]event.Event{ev}), Applied: 1,
		Failures: []store.Failure{{Position: store.Position{Minor: 1}, Reason: "bad \x00 \xff", Payload: []byte{0, 0xff}}}})
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	in, err := s.Instance(ctx, event.Key{Activity: "A", Instance: "1"})
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{"Nul": "a\uFFFDb", "Lone": "x\uFFFDy", "Pair": "😀", "Slash": `\u0000`} {
		var got string
		if err := json.Unmarshal(in.Data[k], &got); err != nil || got != want {
			t.Errorf("%s = %s (%v), want %q", k, in.Data[k], err, want)
		}
	}
	fes, err := s.FailedEvents(ctx, "src", 0)
	if err != nil || len(fes) != 1 || string(fes[0].Payload) != "\x00\xff" {
		t.Fatalf("failed events = %+v, %v", fes, err)
	}
}

// TestTakeoverIsExactlyOnce races a node that keeps applying under a short
// lease with a node that takes the session over as soon as the lease
// expires. Every event is counted once: by the batches whose Apply
// succeeded, never by a fenced one.
func TestTakeoverIsExactlyOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx, s := b.ctx, b.s
	id := store.SessionID{Source: "src"}
	if err := s.AddSource(ctx, store.Source{Name: "src", Kind: store.KindBuffer, Partitions: 1, Enabled: true}); err != nil {
		t.Fatal(err)
	}
	la, err := s.Claim(ctx, id, "a", "", 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	key := event.Key{Activity: "PO", Instance: "1"}
	one := func(n int) []event.Delta {
		var evs []event.Event
		for range n {
			evs = append(evs, event.Event{Activity: key.Activity, Instance: key.Instance, Kind: event.Update, Time: time.Now()})
		}
		return event.Coalesce(evs)
	}
	// applyLoop applies batches of 3 events from the session's checkpoint
	// until fenced, and returns how many events it committed.
	applyLoop := func(l store.Lease, node string, stopAfter int) (int, error) {
		committed := 0
		from := l.Checkpoint
		for i := 0; stopAfter == 0 || i < stopAfter; i++ {
			to := store.Position{Minor: from.Minor + 3}
			err := s.Apply(ctx, store.Batch{Lease: l, Node: node, From: from, Checkpoint: to, Deltas: one(3), Applied: 3})
			if errors.Is(err, store.ErrFenced) {
				return committed, nil
			}
			if err != nil {
				return committed, err
			}
			committed += 3
			from = to
		}
		return committed, nil
	}
	var wg sync.WaitGroup
	var aCommitted int
	var aErr error
	wg.Go(func() { aCommitted, aErr = applyLoop(la, "a", 0) })
	var lb store.Lease
	testwait.Until(t, 10*time.Second, "b takes over", func() bool {
		lb, err = s.Claim(ctx, id, "b", "a", time.Minute)
		return err == nil
	})
	wg.Wait()
	// A takeover ends the expired owner's backends that hold the session's
	// row (a batch in flight, or stalled): a may see its connection ended
	// instead of the fence. Whatever a believes, the checkpoint b claimed
	// at is what a committed.
	if aErr != nil && !isSQLState(aErr, "57P01") {
		t.Fatal(aErr)
	}
	if got := int(lb.Checkpoint.Minor); got < aCommitted || got > aCommitted+3 || (aErr == nil && got != aCommitted) {
		t.Fatalf("b claimed at checkpoint %d; a committed %d (a's error: %v)", got, aCommitted, aErr)
	}
	aCommitted = int(lb.Checkpoint.Minor)
	bCommitted, err := applyLoop(lb, "b", 5)
	if err != nil {
		t.Fatal(err)
	}
	in, err := s.Instance(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if in.Events != int64(aCommitted+bCommitted) {
		t.Fatalf("instance counts %d events; a committed %d and b %d", in.Events, aCommitted, bCommitted)
	}
	var se store.SessionRow
	ss, _ := s.Sessions(ctx)
	for _, x := range ss {
		if x.SessionID == id {
			se = x
		}
	}
	if se.Applied != int64(aCommitted+bCommitted) || se.Checkpoint.Minor != int64(aCommitted+bCommitted) {
		t.Fatalf("session %+v; want applied and checkpoint %d", se, aCommitted+bCommitted)
	}
}

// TestRenewDoesNotWaitForWork holds every connection of the work pool and
// checks that the lease statements still run (DESIGN.md, trap "renewals
// stuck behind work").
func TestRenewDoesNotWaitForWork(t *testing.T) {
	t.Parallel()
	url := testpg.NewDatabase(t) + "&pool_max_conns=2"
	s := open(t, url)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, _, err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.AddSource(ctx, store.Source{Name: "src", Kind: store.KindBuffer, Partitions: 1, Enabled: true}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		c, err := s.work.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Release()
	}
	short, cancelShort := context.WithTimeout(ctx, 2*time.Second)
	defer cancelShort()
	n := store.NodeRow{ID: "a", State: store.NodeRunning}
	if err := s.Join(short, n); err != nil {
		t.Fatalf("Join with the work pool exhausted: %v", err)
	}
	if _, err := s.Claim(short, store.SessionID{Source: "src"}, "a", "", time.Minute); err != nil {
		t.Fatalf("Claim with the work pool exhausted: %v", err)
	}
	leases, err := s.Renew(short, n, time.Minute)
	if err != nil || len(leases) != 1 {
		t.Fatalf("Renew with the work pool exhausted = %v, %v", leases, err)
	}
	if _, err := s.Sessions(short); err != nil {
		t.Fatalf("Sessions with the work pool exhausted: %v", err)
	}
}

// TestLivenessFollowsConnection: the lock is seen held while its
// connection lives, and free the moment the server ends that connection,
// which also closes lost.
func TestLivenessFollowsConnection(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx, s := b.ctx, b.s
	peer := open(t, b.url)
	keys := []int64{-5, 1<<40 | 3, 7}
	var losts []<-chan struct{}
	for _, k := range keys[:2] {
		lost, err := s.HoldLiveness(ctx, k)
		if err != nil {
			t.Fatalf("HoldLiveness(%d): %v", k, err)
		}
		losts = append(losts, lost)
	}
	held, err := peer.LivenessHeld(ctx, keys)
	if err != nil {
		t.Fatal(err)
	}
	if !held[-5] || !held[1<<40|3] || held[7] {
		t.Fatalf("LivenessHeld = %v; want -5 and 1<<40|3 held, 7 free", held)
	}
	// Asking does not take or disturb anything: still held, still one lock each.
	held, _ = peer.LivenessHeld(ctx, keys)
	if !held[-5] || !held[1<<40|3] {
		t.Fatalf("second LivenessHeld = %v", held)
	}

	// The server ends the holder's connections (as when its process dies).
	admin := connect(t, b.url)
	if _, err := admin.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = current_database() AND application_name = 'bam-liveness'`); err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, 10*time.Second, "locks free after the connection ended", func() bool {
		held, err := peer.LivenessHeld(ctx, keys[:2])
		return err == nil && !held[keys[0]] && !held[keys[1]]
	})
	for i, lost := range losts {
		select {
		case <-lost:
		case <-time.After(10 * time.Second):
			t.Fatalf("lost of key %d not closed after its connection ended", keys[i])
		}
	}

	// A lock taken by any other session on the key is seen too.
	other := connect(t, b.url)
	if _, err := other.Exec(ctx, `SELECT pg_advisory_lock($1)`, int64(7)); err != nil {
		t.Fatal(err)
	}
	if held, _ := peer.LivenessHeld(ctx, []int64{7}); !held[7] {
		t.Fatalf("a lock held by another session is not seen")
	}
	_ = other.Close(ctx)
	testwait.Until(t, 10*time.Second, "lock 7 free after close", func() bool {
		held, err := peer.LivenessHeld(ctx, []int64{7})
		return err == nil && !held[7]
	})
}

// TestLivenessLossIsSeenAtOnce: when the server ends the lock's
// connection, lost closes at once, not at the next ping: the node must take
// its lock back before peers conclude that it died (pool, "Death
// verdicts"). It used to take up to checkEvery (1 s).
func TestLivenessLossIsSeenAtOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx, s := b.ctx, b.s
	lost, err := s.HoldLiveness(ctx, 4242)
	if err != nil {
		t.Fatal(err)
	}
	admin := connect(t, b.url)
	var ended int
	if err := admin.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = current_database() AND application_name = 'bam-liveness'`).Scan(&ended); err != nil || ended != 1 {
		t.Fatalf("terminate the lock's backend: %d ended, %v", ended, err)
	}
	terminated := time.Now()
	select {
	case <-lost:
		t.Logf("lost closed %v after the backend was terminated", time.Since(terminated).Round(time.Millisecond))
	case <-time.After(10 * time.Second):
		t.Fatal("lost not closed 10 s after the lock's backend was terminated")
	}
	if took := time.Since(terminated); took > checkEvery/2 {
		t.Errorf("lost closed %v after the backend was terminated; want at once (well under the %v ping interval)", took, checkEvery)
	}
}

func TestMigrateConcurrent(t *testing.T) {
	t.Parallel()
	url := testpg.NewDatabase(t)
	const n = 4
	stores := make([]*Store, n)
	for i := range stores {
		stores[i] = open(t, url)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	froms := make([]int, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, s := range stores {
		wg.Go(func() { froms[i], _, errs[i] = s.Migrate(ctx) })
	}
	wg.Wait()
	fresh := 0
	for i := range stores {
		if errs[i] != nil {
			t.Fatalf("Migrate %d: %v", i, errs[i])
		}
		if froms[i] == 0 {
			fresh++
		}
	}
	if fresh != 1 {
		t.Fatalf("%d runs migrated from version 0, want exactly 1 (froms %v)", fresh, froms)
	}
	if err := stores[0].CheckSchema(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestMigrateKeepsVersion1Instances: instances written under version 1
// have no first event time. After the migration they keep NULL ("not
// known") and merge correctly through both paths of the upsert.
func TestMigrateKeepsVersion1Instances(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, c, ms := oldStore(t, ctx, 1)
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	t1 := t0.Add(time.Minute)
	old := fmt.Sprintf(`{"A": {"v": 1, "t": %d}, "B": {"v": "old", "t": %d}}`, t1.UnixMicro(), t0.UnixMicro())
	if _, err := c.Exec(ctx, `INSERT INTO bam_instances (activity, instance_id, state, begin_time, last_modified, events, items)
		VALUES ('PO', '1', 'active', $1, $2, 2, $3), ('PO', '2', 'active', $1, $2, 2, $3)`, t0, t1, old); err != nil {
		t.Fatal(err)
	}
	if from, to, err := s.Migrate(ctx); err != nil || from != 1 || to != len(ms) {
		t.Fatalf("Migrate = %d, %d, %v; want 1, %d", from, to, err, len(ms))
	}

	if err := s.AddSource(ctx, store.Source{Name: "src", Kind: store.KindBuffer, Partitions: 1, Enabled: true}); err != nil {
		t.Fatal(err)
	}
	l, err := s.Claim(ctx, store.SessionID{Source: "src"}, "a", "", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	evs := []event.Event{
		// In order, a tie with the stored A: the incoming value wins.
		{Activity: "PO", Instance: "1", Kind: event.Update, Time: t1, Data: map[string]json.RawMessage{"A": json.RawMessage(`2`)}},
		// Out of order: the stored A is later and stays; B ties and is replaced.
		{Activity: "PO", Instance: "2", Kind: event.Update, Time: t0, Data: map[string]json.RawMessage{"A": json.RawMessage(`3`), "B": json.RawMessage(`4`)}},
		{Activity: "PO", Instance: "3", Kind: event.Begin, Time: t0, Data: map[string]json.RawMessage{"A": json.RawMessage(`5`)}},
	}
	if err := s.Apply(ctx, store.Batch{Lease: l, Node: "a", Checkpoint: store.Position{Minor: 3}, Deltas: event.Coalesce(evs), Applied: 3}); err != nil {
		t.Fatal(err)
	}
	want := map[string]struct {
		data  string
		first *time.Time
	}{
		"1": {`{"A": 2, "B": "old"}`, nil},
		"2": {`{"A": 1, "B": 4}`, nil},
		"3": {`{"A": 5}`, &t0},
	}
	for id, w := range want {
		in, err := s.Instance(ctx, event.Key{Activity: "PO", Instance: id})
		if err != nil {
			t.Fatal(err)
		}
		data, _ := json.Marshal(in.Data)
		var first *time.Time
		if err := c.QueryRow(ctx, `SELECT first_event_at FROM bam_instances WHERE instance_id = $1`, id).Scan(&first); err != nil {
			t.Fatal(err)
		}
		if !sameJSON(data, json.RawMessage(w.data)) || !sameTime(first, w.first) {
			t.Errorf("instance %s: data %s, first event at %v; want %s, %v", id, data, first, w.data, w.first)
		}
	}
}

// TestOpenHidesPassword: no error of Open shows the password.
func TestOpenHidesPassword(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, url := range []string{
		"postgres://bam:s3cretpw@127.0.0.1:1/bam?connect_timeout=2",
		"postgres://bam:s3cretpw@127.0.0.1:notaport/bam",
		"postgres://bam@127.0.0.1:1/bam?password=s3cretpw&connect_timeout=2",
		"host=127.0.0.1 port=1 user=bam password=s3cretpw connect_timeout=2",
		"host=127.0.0.1 port=notaport user=bam password='s3cretpw'",
	} {
		s, err := Open(ctx, url)
		if err == nil {
			s.Close()
			t.Fatalf("Open(%s) succeeded", redact(url))
		}
		if strings.Contains(err.Error(), "s3cretpw") {
			t.Errorf("Open error shows the password: %v", err)
		}
		if strings.Contains(redact(url), "s3cretpw") {
			t.Errorf("redact(%q) = %q", url, redact(url))
		}
	}
}

// TestWatchEndsWhenConnectionKilled: a watch whose connection the server
// ends returns an error, so that the node watches again.
func TestWatchEndsWhenConnectionKilled(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx, s := b.ctx, b.s
	done := make(chan error, 1)
	go func() { done <- s.Watch(ctx, func(store.Notice) {}) }()
	admin := connect(t, b.url)
	testwait.Until(t, 10*time.Second, "listener connected", func() bool {
		var n int
		_ = admin.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'bam-listen'`).Scan(&n)
		return n == 1
	})
	if _, err := admin.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = current_database() AND application_name = 'bam-listen'`); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Watch returned nil after its connection was killed")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Watch did not notice its connection was killed")
	}
}

// BenchmarkApply measures Apply of batches of 1,000 events, each on its own
// instance with two items, as new instances and then as updates.
func BenchmarkApply(b *testing.B) {
	bb := setup(b)
	s, ctx := bb.s, context.Background()
	if err := s.AddSource(ctx, store.Source{Name: "src", Kind: store.KindBuffer, Partitions: 1, Enabled: true}); err != nil {
		b.Fatal(err)
	}
	l, err := s.Claim(ctx, store.SessionID{Source: "src"}, "a", "", time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	const size = 1000
	base := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	var pos store.Position
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		evs := make([]event.Event, size)
		for j := range evs {
			evs[j] = event.Event{Activity: "PO", Instance: fmt.Sprintf("PO-%d", (i*size+j)%20000), Kind: event.Update,
				Time: base.Add(time.Duration(i) * time.Millisecond),
				Data: map[string]json.RawMessage{"Amount": json.RawMessage(fmt.Sprint(j)), "Customer": json.RawMessage(`"Contoso"`)}}
		}
		deltas := event.Coalesce(evs)
		next := store.Position{Minor: pos.Minor + size}
		b.StartTimer()
		if err := s.Apply(ctx, store.Batch{Lease: l, Node: "a", From: pos, Checkpoint: next, Deltas: deltas, Applied: size}); err != nil {
			b.Fatal(err)
		}
		pos = next
	}
	b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkBufferDrain measures reading and trimming the buffer in batches
// of 1,000.
func BenchmarkBufferDrain(b *testing.B) {
	bb := setup(b)
	s, ctx := bb.s, context.Background()
	if err := s.AddSource(ctx, store.Source{Name: "src", Kind: store.KindBuffer, Partitions: 1, Enabled: true}); err != nil {
		b.Fatal(err)
	}
	const size = 1000
	payload := []byte(`{"activity":"PurchaseOrder","instance":"PO-1042","kind":"update","data":{"Amount":1200,"Customer":"Contoso"}}`)
	evs := make([]store.BufferEvent, size)
	for i := range evs {
		evs[i] = store.BufferEvent{Payload: payload}
	}
	for i := 0; i < b.N; i++ {
		if err := s.AppendBuffer(ctx, "src", evs); err != nil {
			b.Fatal(err)
		}
	}
	id := store.SessionID{Source: "src"}
	var pos store.Position
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		recs, _, err := s.ReadBuffer(ctx, id, pos, size)
		if err != nil || len(recs) != size {
			b.Fatalf("read %d, %v", len(recs), err)
		}
		pos = recs[len(recs)-1].Position
		if err := s.TrimBuffer(ctx, id, pos); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkUpsertArgs encodes a batch of 1,000 deltas like the drain
// benchmark's (bench/): one event of each instance, 3 items.
func BenchmarkUpsertArgs(b *testing.B) {
	at := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	evs := make([]event.Event, 1000)
	for i := range evs {
		evs[i] = event.Event{Activity: "PurchaseOrder", Instance: fmt.Sprintf("PO-%07d", 1000000+i), Kind: event.Update,
			Time: at.Add(time.Duration(i) * time.Millisecond), Data: map[string]json.RawMessage{
				"Status":   json.RawMessage(`"Approved"`),
				"Approver": json.RawMessage(fmt.Sprintf(`"user%03d@contoso.com"`, i%500)),
				"Step":     json.RawMessage(`3`),
			}}
	}
	deltas := event.Coalesce(evs)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := upsertArgs(deltas); err != nil {
			b.Fatal(err)
		}
	}
}

// A transaction left idle (its process paused mid-transaction) is ended by
// the server, so its row locks do not block a peer's takeover.
func TestIdleTransactionsAreEnded(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, testpg.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var got string
	if err := s.work.QueryRow(ctx, "SHOW idle_in_transaction_session_timeout").Scan(&got); err != nil {
		t.Fatal(err)
	}
	if got != idleTransactionTimeout {
		t.Fatalf("work pool idle_in_transaction_session_timeout = %s, want %s", got, idleTransactionTimeout)
	}
	if err := s.lease.QueryRow(ctx, "SHOW idle_in_transaction_session_timeout").Scan(&got); err != nil {
		t.Fatal(err)
	}
	if got != idleTransactionTimeout {
		t.Fatalf("lease pool idle_in_transaction_session_timeout = %s, want %s", got, idleTransactionTimeout)
	}
}

// TestStoredTimeMatchesGo: bam_stored_time, which migration 0009 rewrites
// old items with, gives what event.StoredTime gives new writes, for the
// edge cases and for random times in random forms.
func TestStoredTimeMatchesGo(t *testing.T) {
	t.Parallel()
	b := setup(t)
	inputs := []string{
		"2026-11-25T10:02:43Z", "2026-11-25T10:02:43.5131Z", "2026-11-25T10:02:43.123456789Z",
		"2026-11-25T10:02:43.9999999Z", "2026-11-25T12:02:43.5+02:00", "2026-11-25T00:30:00-01:30",
		"2026-01-01T00:30:00+01:00", "2026-12-31T23:30:00-23:59", "2026-11-25T10:02:43+16:00",
		"2024-02-29T00:00:00Z", "2026-02-29T00:00:00Z", "2026-02-30T10:02:43Z", "2026-11-25T24:00:00Z",
		"2026-11-25T10:02:60Z", "2026-11-25T10:02:43+24:00", "2026-11-25T10:02:43+10:60",
		"2026-11-25 10:02:43Z", "2026-11-25T10:02:43", "2026-11-25T10:02:43z", "2026-11-25T10:02:43.Z",
		"2026-11-25T10:02:43.1234567890Z", "2026-11-25T10:02:43,5Z", "2026-13-01T00:00:00Z",
		"0001-01-01T00:30:00+00:30", "9999-12-31T23:59:59.999999999Z", "hello", "",
	}
	r := rand.New(rand.NewPCG(20, 26))
	for range 500 {
		tm := time.Unix(r.Int64N(4e9), r.Int64N(1e9)).In(time.FixedZone("", (r.IntN(48)-24)*1800))
		layouts := []string{time.RFC3339, time.RFC3339Nano, "2006-01-02T15:04:05.000Z07:00", "2006-01-02T15:04:05.000000000Z07:00"}
		inputs = append(inputs, tm.Format(layouts[r.IntN(len(layouts))]))
	}
	for _, in := range inputs {
		var got *string
		if err := b.s.work.QueryRow(b.ctx, `SELECT bam_stored_time($1)`, in).Scan(&got); err != nil {
			t.Fatal(err)
		}
		v, _ := json.Marshal(in)
		want := string(event.StoredTime(v))
		gotJSON := string(v) // NULL: left as it is
		if got != nil {
			q, _ := json.Marshal(*got)
			gotJSON = string(q)
		}
		if gotJSON != want {
			t.Errorf("bam_stored_time(%q) = %s, event.StoredTime gives %s", in, gotJSON, want)
		}
	}
}

// TestMigrationStoresTimesInOneForm: items written before version 9 keep
// times as their writers sent them; the migration rewrites them in
// event.StoredTimeLayout, in instances, the archive and continuations, and
// leaves other values alone.
func TestMigrationStoresTimesInOneForm(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const before = 8
	s, c, ms := oldStore(t, ctx, before)
	items := `{"Approved": {"v": "2026-11-25T12:02:43.5131+02:00", "t": 1}, "Note": {"v": "2026-11-25 10:02:43Z", "t": 1}, "Qty": {"v": 3, "t": 1}, "Shipped": {"v": "2026-11-25T10:02:43Z", "t": 2}}`
	for _, q := range []string{
		`INSERT INTO bam_instances (activity, instance_id, state, last_modified, items) VALUES ('A', '1', 'active', now(), $1)`,
		`INSERT INTO bam_instances (activity, instance_id, state, last_modified, items) VALUES ('A', '2', 'active', now(), '{"Qty": {"v": 3, "t": 1}}')`,
		`INSERT INTO bam_instances_archive (activity, instance_id, state, last_modified, items, updated_at) VALUES ('A', '3', 'completed', now(), $1, now())`,
		`INSERT INTO bam_continuations (activity, token, items) VALUES ('A', 'tok', $1)`,
	} {
		var args []any
		if strings.Contains(q, "$1") {
			args = append(args, items)
		}
		if _, err := c.Exec(ctx, q, args...); err != nil {
			t.Fatal(err)
		}
	}
	if from, to, err := s.Migrate(ctx); err != nil || from != before || to != len(ms) {
		t.Fatalf("Migrate = %d, %d, %v; want %d, %d", from, to, err, before, len(ms))
	}
	want := `{"Approved": {"v": "2026-11-25T10:02:43.513100Z", "t": 1}, "Note": {"v": "2026-11-25 10:02:43Z", "t": 1}, "Qty": {"v": 3, "t": 1}, "Shipped": {"v": "2026-11-25T10:02:43.000000Z", "t": 2}}`
	for _, w := range []struct{ table, key, want string }{
		{"bam_instances", "instance_id = '1'", want},
		{"bam_instances", "instance_id = '2'", `{"Qty": {"v": 3, "t": 1}}`},
		{"bam_instances_archive", "instance_id = '3'", want},
		{"bam_continuations", "token = 'tok'", want},
	} {
		var got string
		var same bool
		if err := c.QueryRow(ctx, `SELECT items::text, items = $1::jsonb FROM `+w.table+` WHERE `+w.key, w.want).Scan(&got, &same); err != nil {
			t.Fatal(err)
		}
		if !same {
			t.Errorf("%s %s: items %s\nwant %s", w.table, w.key, got, w.want)
		}
	}
}

// oldStore returns a store on a new database whose schema stands at version
// `at`, as a bam of that version left it, with a connection to write rows
// the way that bam did, and all the migrations this bam knows.
func oldStore(t *testing.T, ctx context.Context, at int) (*Store, *pgx.Conn, []store.Migration) {
	t.Helper()
	url := testpg.NewDatabase(t)
	s := open(t, url)
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	c := connect(t, url)
	schema := `CREATE TABLE bam_schema (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now());`
	for i, m := range ms[:at] {
		schema += m.SQL + fmt.Sprintf(";\nINSERT INTO bam_schema (version, name) VALUES (%d, '%s');\n", i+1, m.Name)
	}
	if _, err := c.PgConn().Exec(ctx, schema).ReadAll(); err != nil {
		t.Fatal(err)
	}
	return s, c, ms
}

// TestBufferConformance holds the PostgreSQL buffer's reader to the suite
// every source.Reader passes; its writers are the driver's own insert in
// transactions the suite holds open and commits in any order.
func TestBufferConformance(t *testing.T) {
	sourcetest.Run(t, func(t *testing.T, partitions int) sourcetest.Harness {
		b := setup(t)
		if err := b.s.AddSource(b.ctx, store.Source{Name: "src", Kind: store.KindBuffer, Partitions: partitions, Enabled: true}); err != nil {
			t.Fatal(err)
		}
		return sourcetest.Harness{
			Reader:     buffer.New(b.s, "src"),
			Concurrent: true,
			Begin: func(ctx context.Context) (sourcetest.Tx, error) {
				tx, err := b.s.work.Begin(ctx)
				return bufferTx{Tx: tx, partitions: partitions}, err
			},
		}
	})
}

// bufferTx is a transaction that writes to the buffer source "src".
type bufferTx struct {
	pgx.Tx
	partitions int
}

func (b bufferTx) Write(ctx context.Context, segment string, payload []byte) error {
	return appendBuffer(ctx, b.Tx, "src", b.partitions, []store.BufferEvent{{Partition: event.Partition(segment, b.partitions), Payload: payload}})
}

// BenchmarkApplyAggregated is storetest.BenchApplyAggregated.
func BenchmarkApplyAggregated(b *testing.B) {
	storetest.BenchApplyAggregated(b, func(b *testing.B) store.Store { return setup(b).s })
}
