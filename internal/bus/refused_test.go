package bus

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/bits"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/lease"
	"github.com/bam-dev/bam/internal/source"
	"github.com/bam-dev/bam/internal/source/buffer"
	"github.com/bam-dev/bam/internal/source/pgoutbox"
	"github.com/bam-dev/bam/internal/store"
	"github.com/bam-dev/bam/internal/store/postgres"
	"github.com/bam-dev/bam/internal/store/sqlite"
	"github.com/bam-dev/bam/internal/testpg"
	"github.com/bam-dev/bam/internal/testwait"
)

// The tests of this file stand for a value class the door (event.Decode)
// does not know, which only the store refuses, with a trigger on
// bam_instances that holds the item Qty to a typed column: on PostgreSQL
// a cast to smallint (SQLSTATE 22P02 for "many"), on SQLite an INTEGER
// PRIMARY KEY (SQLITE_MISMATCH for "many"). Their other poison rows hold
// values the door refuses (they were written straight into the buffer or
// the outbox, as an application may), which PostgreSQL refuses as data
// too, and SQLite stored as it should not.

const pgQtyTrigger = `
	CREATE FUNCTION test_qty_is_smallint() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		PERFORM (NEW.items -> 'Qty' ->> 'v')::smallint;
		RETURN NEW;
	END $$;
	CREATE TRIGGER test_qty_is_smallint BEFORE INSERT OR UPDATE ON bam_instances
		FOR EACH ROW EXECUTE FUNCTION test_qty_is_smallint()`

var sqliteQtyTrigger = []string{
	`CREATE TABLE test_qty (q INTEGER PRIMARY KEY)`,
	`CREATE TRIGGER test_qty_is_integer BEFORE INSERT ON bam_instances
		WHEN json_extract(NEW.items, '$.Qty.v') IS NOT NULL
		BEGIN INSERT OR REPLACE INTO test_qty (q) VALUES (json_extract(NEW.items, '$.Qty.v')); END`,
}

// refusalCase is a session over one partition of a real store, with the
// trigger installed.
type refusalCase struct {
	st    store.Store
	lease store.Lease
}

func claimOne(t *testing.T, st store.Store, src store.Source) store.Lease {
	t.Helper()
	ctx := context.Background()
	if _, _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := st.AddSource(ctx, src); err != nil {
		t.Fatal(err)
	}
	if err := st.Join(ctx, store.NodeRow{ID: "n", Name: "n", StartedAt: time.Now(), State: store.NodeRunning}); err != nil {
		t.Fatal(err)
	}
	l, err := st.Claim(ctx, store.SessionID{Source: src.Name}, "n", "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// pgCase opens a PostgreSQL store on a database of its own (url options
// appended to its URL), with the trigger and src.
func pgCase(t *testing.T, options string, src store.Source) (*refusalCase, string) {
	t.Helper()
	ctx := context.Background()
	url := testpg.NewDatabase(t) + options
	st, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	l := claimOne(t, st, src)
	conn := pgConnect(t, url)
	if _, err := conn.Exec(ctx, pgQtyTrigger); err != nil {
		t.Fatal(err)
	}
	return &refusalCase{st: st, lease: l}, url
}

func pgConnect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func sqliteCase(t *testing.T) *refusalCase {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "bam.db")
	st, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	l := claimOne(t, st, store.Source{Name: "s", Kind: store.KindBuffer, Partitions: 1, Enabled: true})
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, stmt := range sqliteQtyTrigger {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			t.Fatal(err)
		}
	}
	return &refusalCase{st: st, lease: l}
}

// start runs a session of c over reader until the test ends.
func (c *refusalCase) start(t *testing.T, reader source.Reader) {
	t.Helper()
	s := NewSession(defaulted(Config{BatchSize: 100, PollInterval: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}),
		c.st, "n", lease.New(context.Background(), c.lease, time.Now().Add(time.Hour)),
		func(context.Context) (source.Reader, error) { return reader, nil },
		slog.New(slog.NewTextHandler(testLogWriter{t}, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

func (c *refusalCase) session(t *testing.T) store.SessionRow {
	t.Helper()
	ss, err := c.st.Sessions(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range ss {
		if s.SessionID == c.lease.SessionID {
			return s
		}
	}
	t.Fatalf("no session %v", c.lease.SessionID)
	return store.SessionRow{}
}

// failed returns the failed events' reasons by the instance their payload
// names ("?" when unreadable).
func (c *refusalCase) failed(t *testing.T) map[string]string {
	t.Helper()
	fs, err := c.st.FailedEvents(context.Background(), "", 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, f := range fs {
		var v struct{ Instance string }
		_ = json.Unmarshal([]byte(strings.ToValidUTF8(string(f.Payload), "?")), &v)
		out[v.Instance+" "+tag(f.Payload)] = f.Reason
	}
	return out
}

// tag is the poison's name, inside its payload as the item Tag.
func tag(payload []byte) string {
	_, rest, _ := strings.Cut(string(payload), `"Tag":"`)
	name, _, _ := strings.Cut(rest, `"`)
	return name
}

// at is the event time of step n of a case: distinct times, in order, so
// that the merge is the same however the events are batched.
func at(n int) string {
	return time.Date(2026, 11, 25, 10, 0, n, 0, time.UTC).Format(time.RFC3339)
}

// poisonStream is the case's events: good ones of PO-1..PO-6, with poison
// of three kinds between them, two of them on PO-1 and PO-2 whose good
// events around them share their batch (and their coalesced delta).
func poisonStream(notUTF8 bool) (payloads []string, want map[string]string) {
	e := func(n int, instance, kind, data string) string {
		s := fmt.Sprintf(`{"activity":"PO","instance":%q,"kind":%q,"time":%q`, instance, kind, at(n))
		if data != "" {
			s += `,"data":{` + data + `}`
		}
		return s + "}"
	}
	payloads = []string{
		e(1, "PO-1", "begin", `"Qty":1`),
		e(2, "PO-2", "begin", ""),
		e(3, "PO-3", "begin", ""),
		e(4, "PO-1", "update", `"Tag":"numeric","Amount":1e200000`),
		e(5, "PO-4", "begin", ""),
		e(6, "PO-1", "update", `"Tag":"typed","Qty":"many","Note":"x"`),
		e(7, "PO-5", "begin", ""),
		e(8, "PO-1", "update", `"Approved":"`+at(8)+`"`),
		e(9, "PO-6", "begin", ""),
		e(10, "PO-3", "end", ""),
	}
	want = map[string]string{
		"PO-1 numeric": "data.Amount: number 1e200000 is beyond",
		"PO-1 typed":   "the store refused the event: ",
	}
	if notUTF8 {
		payloads = append(payloads, e(11, "PO-2", "update", `"Tag":"utf8","Customer":"Cont`+"\xff"+`so"`))
		want["PO-2 utf8"] = "data.Customer: text must be valid UTF-8"
	} else {
		// A text column holds no such byte: the NUL escape instead.
		payloads = append(payloads, e(11, "PO-2", "update", `"Tag":"nul","Customer":"Cont\u0000so"`))
		want["PO-2 nul"] = "data.Customer: text must not contain a NUL character"
	}
	payloads = append(payloads, e(12, "PO-2", "end", ""), e(13, "PO-1", "end", ""), e(14, "PO-7", "begin", ""))
	return payloads, want
}

// checkPoisonOutcome waits until the session covered every record, then
// checks that exactly the poison is quarantined, with its reason (the
// store's own for the typed value: typedReason), and every good event
// applied once.
func (c *refusalCase) checkPoisonOutcome(t *testing.T, last store.Position, want map[string]string, typedReason string) {
	t.Helper()
	ctx := context.Background()
	testwait.Until(t, 10*time.Second, "every record to be covered", func() bool { return c.session(t).Checkpoint == last })
	got := c.failed(t)
	if len(got) != len(want) {
		t.Errorf("failed events %v, want exactly %d (%v)", got, len(want), slices.Sorted(mapKeys(want)))
	}
	for k, reason := range want {
		if k == "PO-1 typed" {
			reason += typedReason
		}
		if !strings.Contains(got[k], reason) {
			t.Errorf("failed event %s: reason %q, want it to say %q", k, got[k], reason)
		}
	}
	row := c.session(t)
	if row.Failed != int64(len(want)) || row.Applied != 14-int64(len(want)) || row.LastError != "" {
		t.Errorf("session row: applied %d, failed %d, last error %q; want %d, %d, none", row.Applied, row.Failed, row.LastError, 14-len(want), len(want))
	}
	po1, err := c.st.Instance(ctx, event.Key{Activity: "PO", Instance: "PO-1"})
	if err != nil {
		t.Fatal(err)
	}
	if po1.Events != 3 || po1.State != store.StateCompleted || string(po1.Data["Qty"]) != "1" || po1.Data["Approved"] == nil || po1.Data["Note"] != nil || po1.Data["Amount"] != nil {
		t.Errorf("PO-1 = %+v; want 3 events (begin, Approved, end), completed, Qty 1, nothing of the poison", po1)
	}
	po2, err := c.st.Instance(ctx, event.Key{Activity: "PO", Instance: "PO-2"})
	if err != nil {
		t.Fatal(err)
	}
	if po2.Events != 2 || po2.State != store.StateCompleted || po2.Data["Customer"] != nil {
		t.Errorf("PO-2 = %+v; want 2 events, completed, no Customer", po2)
	}
	for _, id := range []string{"PO-3", "PO-4", "PO-5", "PO-6", "PO-7"} {
		if in, err := c.st.Instance(ctx, event.Key{Activity: "PO", Instance: id}); err != nil || (in.Events != 1 && id != "PO-3") || (id == "PO-3" && in.Events != 2) {
			t.Errorf("%s = %+v, %v; want its events applied once", id, in, err)
		}
	}
}

func mapKeys(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// appendBuffer writes payloads straight into a buffer source, past the
// door, as a writer of the store's tables might; it returns the last
// position.
func appendBuffer(t *testing.T, st store.Store, id store.SessionID, payloads []string) store.Position {
	t.Helper()
	ctx := context.Background()
	evs := make([]store.BufferEvent, len(payloads))
	for i, p := range payloads {
		evs[i] = store.BufferEvent{Partition: id.Partition, Payload: []byte(p)}
	}
	if err := st.AppendBuffer(ctx, id.Source, evs); err != nil {
		t.Fatal(err)
	}
	recs, _, err := st.ReadBuffer(ctx, id, store.Position{}, 1<<20)
	if err != nil || len(recs) == 0 {
		t.Fatalf("read back the buffer: %v, %v", recs, err)
	}
	return recs[len(recs)-1].Position
}

// TestRefusedValuesAreQuarantinedOnPostgres: in a buffer source, poison
// rows between good rows, one of a value the door does not know that the
// store refuses as data: the session quarantines exactly the poison, the
// store's value with the store's message, applies every other event once
// (the good events of the poisoned instances too) and goes on. Before, the
// store refused the batch on every retry and the partition stopped.
func TestRefusedValuesAreQuarantinedOnPostgres(t *testing.T) {
	t.Parallel()
	c, _ := pgCase(t, "", store.Source{Name: "s", Kind: store.KindBuffer, Partitions: 1, Enabled: true})
	payloads, want := poisonStream(true)
	last := appendBuffer(t, c.st, c.lease.SessionID, payloads)
	c.start(t, buffer.New(c.st, "s"))
	c.checkPoisonOutcome(t, last, want, `invalid input syntax for type smallint: "many" (SQLSTATE 22P02)`)
}

// TestRefusedValuesAreQuarantinedOnSQLite: the same on SQLite, whose
// typed column refuses with SQLITE_MISMATCH. Before, the number and the
// bytes that are not UTF-8 were stored, and the typed value blocked the
// partition.
func TestRefusedValuesAreQuarantinedOnSQLite(t *testing.T) {
	t.Parallel()
	c := sqliteCase(t)
	payloads, want := poisonStream(true)
	last := appendBuffer(t, c.st, c.lease.SessionID, payloads)
	c.start(t, buffer.New(c.st, "s"))
	c.checkPoisonOutcome(t, last, want, "datatype mismatch")
}

// TestRefusedValuesAreQuarantinedFromAnOutbox: the same through a
// pg-outbox source whose rows an application wrote straight into its
// table.
func TestRefusedValuesAreQuarantinedFromAnOutbox(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	appURL := testpg.NewDatabase(t)
	app, err := pgxpool.New(ctx, appURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(app.Close)
	if err := pgoutbox.Install(ctx, app, "bam_outbox"); err != nil {
		t.Fatal(err)
	}
	c, _ := pgCase(t, "", store.Source{Name: "app", Kind: store.KindPgOutbox, Partitions: 1, Enabled: true, DSN: appURL, Table: "bam_outbox"})
	payloads, want := poisonStream(false)
	var last store.Position
	for _, p := range payloads {
		var ev struct{ Instance string }
		_ = json.Unmarshal([]byte(p), &ev)
		if err := app.QueryRow(ctx, `INSERT INTO bam_outbox (instance_id, event) VALUES ($1, $2) RETURNING xid::text::bigint, id`,
			ev.Instance, p).Scan(&last.Major, &last.Minor); err != nil {
			t.Fatal(err)
		}
	}
	r, err := pgoutbox.Open(ctx, appURL, "bam_outbox", 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	c.start(t, r)
	c.checkPoisonOutcome(t, last, want, `invalid input syntax for type smallint: "many" (SQLSTATE 22P02)`)
}

// TestTransientErrorsQuarantineNothing: while the batch around a poison
// row waits for a lock that another transaction holds, the store's lock
// timeout, or its backend terminated, are retried and quarantine nothing;
// once the lock is released, only the poison is quarantined and every good
// event is applied once.
func TestTransientErrorsQuarantineNothing(t *testing.T) {
	t.Parallel()
	for name, c := range map[string]struct {
		options string // of the store URL
		says    string // in the session's last error
	}{
		"lock timeout":       {"&lock_timeout=100ms", "lock timeout"},
		"backend terminated": {"", ""},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			rc, url := pgCase(t, c.options, store.Source{Name: "s", Kind: store.KindBuffer, Partitions: 1, Enabled: true})
			e := func(n int, instance, kind, data string) string {
				return fmt.Sprintf(`{"activity":"PO","instance":%q,"kind":%q,"time":%q,"data":{%s}}`, instance, kind, at(n), data)
			}
			first := appendBuffer(t, rc.st, rc.lease.SessionID, []string{e(1, "PO-1", "begin", `"Qty":1`)})
			rc.start(t, buffer.New(rc.st, "s"))
			testwait.Until(t, 10*time.Second, "PO-1 to begin", func() bool { return rc.session(t).Checkpoint == first })

			locker := pgConnect(t, strings.TrimSuffix(url, c.options))
			tx, err := locker.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback(ctx)
			// A table lock, which takes no transaction id: a row lock
			// would, and hold the buffer's reads behind it (promise 4).
			if _, err := tx.Exec(ctx, `LOCK TABLE bam_instances IN SHARE MODE`); err != nil {
				t.Fatal(err)
			}
			err = rc.st.AppendBuffer(ctx, "s", []store.BufferEvent{
				{Payload: []byte(e(2, "PO-2", "begin", `"Tag":"good"`))},
				{Payload: []byte(e(3, "PO-1", "update", `"Tag":"typed","Qty":"many"`))},
				{Payload: []byte(e(4, "PO-1", "update", `"Note":"after"`))},
				{Payload: []byte(e(5, "PO-3", "begin", `"Tag":"good"`))},
			})
			if err != nil {
				t.Fatal(err)
			}
			if c.says != "" {
				testwait.Until(t, 10*time.Second, "the lock timeout to show", func() bool { return strings.Contains(rc.session(t).LastError, c.says) })
			} else {
				admin := pgConnect(t, testpg.AdminURL())
				var terminated bool
				testwait.Until(t, 10*time.Second, "a store backend waiting for the lock, terminated", func() bool {
					err := admin.QueryRow(ctx, `SELECT coalesce(bool_or(pg_terminate_backend(pid)), false) FROM pg_stat_activity
						WHERE datname = $1 AND wait_event_type = 'Lock'`, locker.Config().Database).Scan(&terminated)
					return err == nil && terminated
				})
				testwait.Until(t, 10*time.Second, "the error to show", func() bool { return rc.session(t).LastError != "" })
			}
			if got := rc.failed(t); len(got) > 0 {
				t.Fatalf("failed events while the lock is held: %v; want none", got)
			}
			if err := tx.Rollback(ctx); err != nil {
				t.Fatal(err)
			}
			testwait.Until(t, 10*time.Second, "every record to be covered", func() bool {
				in, err := rc.st.Instance(ctx, event.Key{Activity: "PO", Instance: "PO-3"})
				return err == nil && in.Events == 1 && rc.session(t).LastError == ""
			})
			if got := rc.failed(t); len(got) != 1 || !strings.Contains(got["PO-1 typed"], "the store refused the event: invalid input syntax for type smallint") {
				t.Errorf("failed events %v; want exactly the poison", got)
			}
			po1, err := rc.st.Instance(ctx, event.Key{Activity: "PO", Instance: "PO-1"})
			if err != nil || po1.Events != 2 || string(po1.Data["Note"]) != `"after"` || string(po1.Data["Qty"]) != "1" {
				t.Errorf("PO-1 = %+v, %v; want begin and the update after the poison", po1, err)
			}
			for _, id := range []string{"PO-2", "PO-3"} {
				if in, err := rc.st.Instance(ctx, event.Key{Activity: "PO", Instance: id}); err != nil || in.Events != 1 {
					t.Errorf("%s = %+v, %v; want it applied once", id, in, err)
				}
			}
		})
	}
}

type testLogWriter struct{ t *testing.T }

func (w testLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// failingApply is a store whose Apply fails once, with a transient error,
// at call failAt.
type failingApply struct {
	store.Store
	mu     sync.Mutex
	calls  int
	failAt int
}

func (f *failingApply) Apply(ctx context.Context, b store.Batch) error {
	f.mu.Lock()
	f.calls++
	fail := f.calls == f.failAt
	f.mu.Unlock()
	if fail {
		return errors.New("connection reset by peer")
	}
	return f.Store.Apply(ctx, b)
}

// TestIsolationResumesAfterATransientError: a transient error after the
// first parts of a refused batch committed ends the batch there; the
// session carries on from the checkpoint those parts moved (else its next
// batch would be fenced on a stale From, and the session lost) and applies
// the rest once.
func TestIsolationResumesAfterATransientError(t *testing.T) {
	t.Parallel()
	c := sqliteCase(t)
	e := func(n int, instance, kind, data string) string {
		return fmt.Sprintf(`{"activity":"PO","instance":%q,"kind":%q,"time":%q,"data":{%s}}`, instance, kind, at(n), data)
	}
	last := appendBuffer(t, c.st, c.lease.SessionID, []string{
		e(1, "PO-1", "begin", ""),
		e(2, "PO-2", "begin", `"Tag":"typed","Qty":"many"`),
		e(3, "PO-3", "begin", ""),
		e(4, "PO-4", "begin", ""),
	})
	// Apply calls: the batch (refused), its first half (refused), PO-1
	// (applied), PO-2's quarantine, then the second half: failed.
	c.st = &failingApply{Store: c.st, failAt: 5}
	c.start(t, buffer.New(c.st, "s"))
	testwait.Until(t, 10*time.Second, "every record to be covered", func() bool { return c.session(t).Checkpoint == last })
	row := c.session(t)
	if got := c.failed(t); len(got) != 1 || got["PO-2 typed"] == "" || row.Applied != 3 || row.Failed != 1 {
		t.Errorf("failed events %v, session %+v; want PO-2 quarantined, 3 applied", got, row)
	}
	for _, id := range []string{"PO-1", "PO-3", "PO-4"} {
		if in, err := c.st.Instance(context.Background(), event.Key{Activity: "PO", Instance: id}); err != nil || in.Events != 1 {
			t.Errorf("%s = %+v, %v; want it applied once", id, in, err)
		}
	}
}

// refusingStore refuses, as data, every batch whose deltas set the item
// Bad: a stand-in for a store's refusal, to drive the isolation through
// many random cases quickly over a real SQLite store.
type refusingStore struct {
	store.Store
	mu      sync.Mutex
	applies int
}

func (r *refusingStore) Apply(ctx context.Context, b store.Batch) error {
	r.mu.Lock()
	r.applies++
	r.mu.Unlock()
	for _, d := range b.Deltas {
		if _, bad := d.Items["Bad"]; bad {
			return fmt.Errorf("apply: %w", &store.DataRefusedError{Reason: "Bad is refused"})
		}
	}
	return r.Store.Apply(ctx, b)
}

// TestIsolationFindsExactlyTheRefused: random streams of events over a few
// instances, some of them refused, read in batches of random sizes: every
// refused event is quarantined, every other applied once, the checkpoint
// covers every record, and the extra transactions stay within the bound
// of the package doc (2k·log2(n) per batch of n with k refused).
func TestIsolationFindsExactlyTheRefused(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(8, 1))
	for round := range 12 {
		c := sqliteCase(t)
		rs := &refusingStore{Store: c.st}
		c.st = rs
		n := 1 + rng.IntN(300)
		var payloads []string
		events := map[string]int{} // good events per instance
		refused := 0
		for i := range n {
			id := fmt.Sprintf("PO-%d", rng.IntN(7))
			data := fmt.Sprintf(`"Step":%d`, i)
			if rng.IntN(10) == 0 {
				data, refused = `"Bad":1`, refused+1
			} else {
				events[id]++
			}
			payloads = append(payloads, fmt.Sprintf(`{"activity":"PO","instance":%q,"kind":"update","time":%q,"data":{%s}}`, id, at(i), data))
		}
		last := appendBuffer(t, c.st, c.lease.SessionID, payloads)
		batch := 1 + rng.IntN(n)
		s := NewSession(defaulted(Config{BatchSize: batch, MaxBatchSize: batch, PollInterval: 10 * time.Millisecond}), c.st, "n", lease.New(context.Background(), c.lease, time.Now().Add(time.Hour)),
			func(context.Context) (source.Reader, error) { return buffer.New(c.st, "s"), nil },
			slog.New(slog.NewTextHandler(io.Discard, nil)))
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()
		testwait.Until(t, 10*time.Second, "every record to be covered", func() bool { return c.session(t).Checkpoint == last })
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("round %d: Run = %v", round, err)
		}
		row := c.session(t)
		if row.Failed != int64(refused) || row.Applied != int64(n-refused) {
			t.Errorf("round %d: %d records in batches of %d, %d refused: session row applied %d, failed %d", round, n, batch, refused, row.Applied, row.Failed)
		}
		fs, err := c.st.FailedEvents(context.Background(), "", 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fs {
			if !strings.Contains(string(f.Payload), `"Bad":1`) || !strings.Contains(f.Reason, "the store refused the event: Bad is refused") {
				t.Errorf("round %d: quarantined %s (%s)", round, f.Payload, f.Reason)
			}
		}
		for id, want := range events {
			in, err := c.st.Instance(context.Background(), event.Key{Activity: "PO", Instance: id})
			if err != nil || in.Events != int64(want) {
				t.Errorf("round %d: %s = %+v, %v; want %d events", round, id, in, err, want)
			}
		}
		batches := (n + batch - 1) / batch
		bound := batches + 2*refused*(bits.Len(uint(batch))+1)
		if rs.applies > bound {
			t.Errorf("round %d: %d applies for %d records in batches of %d with %d refused, over %d", round, rs.applies, n, batch, refused, bound)
		}
	}
}
