package metrics

import (
	"context"
	"database/sql"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/metrics/metricstest"
	"github.com/bam-dev/bam/internal/pool"
	"github.com/bam-dev/bam/internal/store"
	"github.com/bam-dev/bam/internal/store/sqlite"
	"github.com/bam-dev/bam/internal/testwait"
)

func scrape(t *testing.T, m *Node) metricstest.Families {
	t.Helper()
	fams, err := metricstest.Serve(m.Handler())
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

// want fails unless the series of name with labels add up to value.
func want(t *testing.T, fams metricstest.Families, value float64, name string, labels ...string) {
	t.Helper()
	got, found := fams.Sum(name, labels...)
	if !found || got != value {
		t.Errorf("%s%v = %v (found %v), want %v", name, labels, got, found, value)
	}
}

func TestRecordersMoveTheirSeries(t *testing.T) {
	m := New()
	orders0 := store.SessionID{Source: "orders", Partition: 0}
	s := m.Session(orders0)
	s.Committed(10, 4, 2, 3*time.Millisecond)
	s.Committed(5, 5, 0, time.Millisecond)
	s.Failed(2 * time.Second)
	m.OwnerChanged(orders0, pool.Claimed)
	m.OwnerChanged(orders0, pool.HandedOver)
	m.OwnerChanged(store.SessionID{Source: "orders", Partition: 1}, pool.TakenFromDead)
	m.Renewed(4*time.Millisecond, nil)
	m.Renewed(time.Second, errors.New("store down"))
	m.Balanced(3, nil)
	m.Balanced(0, errors.New("store down"))
	m.Request("GET /v1/sources/{source}", 200, time.Millisecond)
	m.Request("", 421, time.Millisecond)

	fams := scrape(t, m)
	session := []string{"source", "orders", "partition", "0"}
	want(t, fams, 15, "bam_events_committed_total", session...)
	want(t, fams, 9, "bam_records_committed_total", session...)
	want(t, fams, 2, "bam_events_failed_total", session...)
	want(t, fams, 2, "bam_batches_committed_total", session...)
	want(t, fams, 1, "bam_batches_failed_total", session...)
	want(t, fams, 3, "bam_batch_apply_duration_seconds", "source", "orders")
	want(t, fams, 1, "bam_session_owner_changes_total", "source", "orders", "partition", "0", "cause", "claim")
	want(t, fams, 1, "bam_session_owner_changes_total", "source", "orders", "partition", "0", "cause", "handoff")
	want(t, fams, 1, "bam_session_owner_changes_total", "source", "orders", "partition", "1", "cause", "takeover_death")
	want(t, fams, 2, "bam_lease_renew_duration_seconds")
	want(t, fams, 1, "bam_lease_renew_failures_total")
	want(t, fams, 2, "bam_balance_rounds_total")
	want(t, fams, 1, "bam_balance_round_failures_total")
	want(t, fams, 3, "bam_balance_moves_total")
	want(t, fams, 1, "bam_http_requests_total", "route", "GET /v1/sources/{source}", "code", "200")
	want(t, fams, 1, "bam_http_requests_total", "route", "none", "code", "421")
	want(t, fams, 2, "bam_http_request_duration_seconds")
	if _, ok := fams["go_goroutines"]; !ok {
		t.Error("no go_goroutines: the Go collector is not registered")
	}
	if _, ok := fams["process_start_time_seconds"]; !ok {
		t.Error("no process_start_time_seconds: the process collector is not registered")
	}

	// Two nodes in one process keep their own counts.
	if got, _ := scrape(t, New()).Sum("bam_events_committed_total"); got != 0 {
		t.Errorf("a new node's metrics count %v events, want 0: registries are shared", got)
	}
}

// TestABatchRecordsWithoutAllocating: a session's recorder, resolved once,
// costs no allocation per batch (doc.go, "On the hot path").
func TestABatchRecordsWithoutAllocating(t *testing.T) {
	s := New().Session(store.SessionID{Source: "orders", Partition: 3})
	if n := testing.AllocsPerRun(100, func() { s.Committed(1000, 800, 1, 5*time.Millisecond) }); n != 0 {
		t.Errorf("Committed allocates %v times per batch, want 0", n)
	}
	if n := testing.AllocsPerRun(100, func() { s.Failed(5 * time.Millisecond) }); n != 0 {
		t.Errorf("Failed allocates %v times per batch, want 0", n)
	}
}

// TestNamesFollowTheConventions checks every bam_ metric of a node that has
// recorded everything once: counters end in _total and nothing else does,
// histograms are in seconds, and no label names a node, an instance or an
// event.
func TestNamesFollowTheConventions(t *testing.T) {
	fams := scrape(t, everythingOnce(t))
	for name, fam := range fams {
		if !strings.HasPrefix(name, "bam_") {
			continue
		}
		isCounter := fam.GetType() == dto.MetricType_COUNTER
		if isCounter != strings.HasSuffix(name, "_total") {
			t.Errorf("%s is a %v: only counters, and every counter, end in _total", name, fam.GetType())
		}
		if fam.GetType() == dto.MetricType_HISTOGRAM && !strings.HasSuffix(name, "_seconds") {
			t.Errorf("%s is a histogram not in seconds", name)
		}
		if fam.GetHelp() == "" {
			t.Errorf("%s has no help", name)
		}
		for _, m := range fam.GetMetric() {
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "source", "partition", "cause", "route", "code":
				default:
					t.Errorf("%s has label %q: labels are bounded (source, partition, cause, route, code)", name, l.GetName())
				}
			}
		}
	}
}

// everythingOnce returns a node's metrics with every series present: each
// recorder called once, and the store gauges of a session it owns in a
// real SQLite store.
func everythingOnce(t *testing.T) *Node {
	t.Helper()
	m := New()
	id := store.SessionID{Source: "orders", Partition: 0}
	m.Session(id).Committed(1, 1, 0, time.Millisecond)
	m.OwnerChanged(id, pool.Claimed)
	m.Renewed(time.Millisecond, nil)
	m.Balanced(0, nil)
	m.Request("GET /healthz", 200, time.Millisecond)
	st, node := storeWithOwnedSession(t)
	m.WatchNode(st, node, StoreOptions{})
	return m
}

// owner is a node as WatchNode sees it.
type owner struct {
	id    string
	owned int
}

func (o owner) ID() string { return o.id }
func (o owner) Owned() int { return o.owned }

func openSQLite(t *testing.T) *sqlite.Store {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "bam.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return st
}

// storeWithOwnedSession returns a store with a buffer source "orders" of
// two partitions, and a node that holds partition 0's lease (and runs
// nothing: the events written stay in the backlog).
func storeWithOwnedSession(t *testing.T) (*sqlite.Store, owner) {
	t.Helper()
	ctx := context.Background()
	st := openSQLite(t)
	if err := st.AddSource(ctx, store.Source{Name: "orders", Kind: store.KindBuffer, Partitions: 2, Enabled: true}); err != nil {
		t.Fatal(err)
	}
	node := store.NodeRow{ID: "n1", Name: "n1", Host: "h", PID: 1, StartedAt: time.Now().UTC(), State: store.NodeRunning, LockKey: 1}
	if err := st.Join(ctx, node); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Claim(ctx, store.SessionID{Source: "orders", Partition: 0}, node.ID, "", time.Hour); err != nil {
		t.Fatal(err)
	}
	return st, owner{id: node.ID, owned: 1}
}

// ageHeartbeat moves node's last heartbeat by back into the past, as a
// node that stopped heartbeating that long ago would have left it.
func ageHeartbeat(t *testing.T, st *sqlite.Store, node string, by time.Duration) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Clean(st.Path()))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	res, err := db.ExecContext(context.Background(), `UPDATE bam_nodes SET heartbeat_at = heartbeat_at - ? WHERE id = ?`, by.Microseconds(), node)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("no node %s to age", node)
	}
}

// write appends n events of instances that fall in partition of the
// source "orders" (2 partitions).
func write(t *testing.T, st store.Store, partition, n int) {
	t.Helper()
	var evs []store.BufferEvent
	for i := 0; len(evs) < n; i++ {
		id := "PO-" + strings.Repeat("x", i%7) + string(rune('a'+i%26))
		if event.Partition(id, 2) != partition {
			continue
		}
		ev := event.Event{Activity: "PurchaseOrder", Instance: id, Kind: event.Update, Time: time.Now().UTC()}
		evs = append(evs, store.BufferEvent{Partition: partition, Payload: event.Encode(ev)})
	}
	if err := st.AppendBuffer(context.Background(), "orders", evs); err != nil {
		t.Fatal(err)
	}
}

func TestStoreGaugesOfTheSessionsANodeOwns(t *testing.T) {
	st, node := storeWithOwnedSession(t)
	// n0, a live member with a smaller id, reports the sessions nobody
	// owns; n1 reports only its own.
	if err := st.Join(context.Background(), store.NodeRow{ID: "n0", Name: "n0", Host: "h", PID: 2, StartedAt: time.Now().UTC(), State: store.NodeRunning, LockKey: 2}); err != nil {
		t.Fatal(err)
	}
	write(t, st, 0, 3)
	write(t, st, 1, 2)
	time.Sleep(20 * time.Millisecond) // the oldest event has waited a while
	m := New()
	m.WatchNode(st, node, StoreOptions{CacheFor: time.Hour})
	fams := scrape(t, m)
	p0 := []string{"source", "orders", "partition", "0"}
	want(t, fams, 3, "bam_session_backlog_events", p0...)
	want(t, fams, 0, "bam_session_failed_events_outstanding", p0...)
	if age, _ := fams.Sum("bam_session_backlog_age_seconds", p0...); age <= 0 {
		t.Errorf("backlog age %v, want > 0: events wait", age)
	}
	if _, found := fams.Sum("bam_session_backlog_events", "partition", "1"); found {
		t.Error("partition 1's backlog is reported by a node that does not own it")
	}
	want(t, fams, 1, "bam_pool_sessions_unowned")
	want(t, fams, 1, "bam_sessions_owned")
	want(t, fams, 1, "bam_session_gauges_up")

	// Within CacheFor, a scrape reads nothing: the last reading again.
	write(t, st, 0, 2)
	want(t, scrape(t, m), 3, "bam_session_backlog_events", p0...)
	fresh := New()
	fresh.WatchNode(st, node, StoreOptions{})
	want(t, scrape(t, fresh), 5, "bam_session_backlog_events", p0...)

	// A bound keeps the count cheap.
	bounded := New()
	bounded.WatchNode(st, node, StoreOptions{Bound: 4})
	want(t, scrape(t, bounded), 4, "bam_session_backlog_events", p0...)

	// The pool's reporter (n0, the smallest live id) reports the session
	// nobody owns, and not n1's.
	p1 := []string{"source", "orders", "partition", "1"}
	reporter := New()
	reporter.WatchNode(st, owner{id: "n0"}, StoreOptions{})
	rf := scrape(t, reporter)
	want(t, rf, 2, "bam_session_backlog_events", p1...)
	if _, found := rf.Sum("bam_session_backlog_events", p0...); found {
		t.Error("the pool's reporter reports a session another node owns")
	}
	// A reporter whose heartbeat is older than the lease TTL is none: n1,
	// the next id, reports the unowned session then. (n0's heartbeat is
	// aged in the file rather than waited out: a short TTL and a sleep
	// made n1's own heartbeat stale too on a loaded machine.)
	ageHeartbeat(t, st, "n0", time.Hour)
	next := New()
	next.WatchNode(st, node, StoreOptions{LeaseTTL: time.Minute})
	want(t, scrape(t, next), 2, "bam_session_backlog_events", p1...)

	// A failed event kept under a partition repartitioned away has no
	// owner ever: the reporter reports it, no other node.
	other, err := st.Claim(context.Background(), store.SessionID{Source: "orders", Partition: 1}, "n0", "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	err = st.Apply(context.Background(), store.Batch{Lease: other, Node: "n0", From: other.Checkpoint, Checkpoint: store.Position{Minor: 1 << 40},
		Failures: []store.Failure{{SessionID: other.SessionID, Position: store.Position{Minor: 1 << 40}, Reason: "malformed JSON", Payload: []byte("{")}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Repartition(context.Background(), "orders", 1); err != nil {
		t.Fatal(err)
	}
	// (n0's heartbeat is an hour old: it is the reporter under a 2h TTL.)
	reporter = New()
	reporter.WatchNode(st, owner{id: "n0"}, StoreOptions{LeaseTTL: 2 * time.Hour})
	want(t, scrape(t, reporter), 1, "bam_session_failed_events_outstanding", p1...)
	notReporter := New()
	notReporter.WatchNode(st, node, StoreOptions{LeaseTTL: 2 * time.Hour})
	if _, found := scrape(t, notReporter).Sum("bam_session_failed_events_outstanding", p1...); found {
		t.Error("a node other than the reporter reports the failed events of no session")
	}

	// The pool-wide pause, from the same read.
	want(t, fams, 0, "bam_pool_paused")
	if err := st.SetPoolPaused(context.Background(), true, "ops@host"); err != nil {
		t.Fatal(err)
	}
	paused := New()
	paused.WatchNode(st, node, StoreOptions{})
	want(t, scrape(t, paused), 1, "bam_pool_paused")

	// A store that cannot be read: no session gauge, and up is 0.
	st.Close()
	down := New()
	down.WatchNode(st, node, StoreOptions{})
	fams = scrape(t, down)
	want(t, fams, 0, "bam_session_gauges_up")
	if _, found := fams.Sum("bam_session_backlog_events"); found {
		t.Error("a backlog is reported from a store that could not be read")
	}
}

// TestANodeReportsWhatItApplies runs a real node on a SQLite store: the
// batches it commits, a poison event it quarantines and the claims it
// makes move its metrics, and a second node that joins gets a session
// handed over, counted on both sides.
func TestANodeReportsWhatItApplies(t *testing.T) {
	st := openSQLite(t)
	ctx := context.Background()
	if err := st.AddSource(ctx, store.Source{Name: "orders", Kind: store.KindBuffer, Partitions: 2, Enabled: true}); err != nil {
		t.Fatal(err)
	}
	m1 := New()
	runNode(t, st, m1, "n1")
	fams := waitFor(t, m1, "node 1 to claim both sessions", func(f metricstest.Families) bool {
		claims, _ := f.Sum("bam_session_owner_changes_total", "cause", "claim")
		owned, _ := f.Sum("bam_sessions_owned")
		return claims == 2 && owned == 2
	})
	want(t, fams, 0, "bam_events_committed_total")

	write(t, st, 0, 5)
	write(t, st, 1, 3)
	poison := store.BufferEvent{Partition: 1, Payload: []byte(`{"activity": "PurchaseOrder", "instance": `)}
	if err := st.AppendBuffer(ctx, "orders", []store.BufferEvent{poison}); err != nil {
		t.Fatal(err)
	}
	fams = waitFor(t, m1, "node 1 to apply 8 events and quarantine 1", func(f metricstest.Families) bool {
		applied, _ := f.Sum("bam_events_committed_total")
		failed, _ := f.Sum("bam_events_failed_total")
		outstanding, _ := f.Sum("bam_session_failed_events_outstanding", "partition", "1")
		// The collectors are read concurrently: the store's gauges may
		// have been read just before the last batch committed.
		backlog, _ := f.Sum("bam_session_backlog_events")
		return applied == 8 && failed == 1 && outstanding == 1 && backlog == 0
	})
	want(t, fams, 5, "bam_events_committed_total", "partition", "0")
	want(t, fams, 1, "bam_events_failed_total", "partition", "1")
	want(t, fams, 0, "bam_batches_failed_total")
	if b, _ := fams.Sum("bam_batches_committed_total"); b < 2 {
		t.Errorf("%v batches committed, want at least one per partition", b)
	}
	if r, _ := fams.Sum("bam_records_committed_total"); r < 1 || r > 8 {
		t.Errorf("%v instance records written for 8 events, want 1 to 8", r)
	}
	if c, _ := fams.Sum("bam_batch_apply_duration_seconds"); c < 2 {
		t.Errorf("%v apply durations observed, want one per batch", c)
	}
	if r, _ := fams.Sum("bam_balance_rounds_total"); r < 1 {
		t.Error("no balance round counted")
	}
	waitFor(t, m1, "node 1 to renew its leases", func(f metricstest.Families) bool {
		renewals, _ := f.Sum("bam_lease_renew_duration_seconds")
		return renewals >= 1
	})

	// A second node joins: node 1 hands one session over, node 2 claims it.
	m2 := New()
	runNode(t, st, m2, "n2")
	waitFor(t, m1, "node 1 to hand a session over", func(f metricstest.Families) bool {
		handoffs, _ := f.Sum("bam_session_owner_changes_total", "cause", "handoff")
		moves, _ := f.Sum("bam_balance_moves_total")
		owned, _ := f.Sum("bam_sessions_owned")
		return handoffs == 1 && moves == 1 && owned == 1
	})
	waitFor(t, m2, "node 2 to claim it", func(f metricstest.Families) bool {
		claims, _ := f.Sum("bam_session_owner_changes_total", "cause", "claim")
		owned, _ := f.Sum("bam_sessions_owned")
		return claims == 1 && owned == 1
	})
}

// runNode runs a node with short leases and rounds, its metrics in m, until
// the test ends.
func runNode(t *testing.T, st store.Store, m *Node, name string) {
	t.Helper()
	cfg := pool.DefaultConfig()
	cfg.Name, cfg.LeaseTTL, cfg.RenewInterval = name, time.Second, 250*time.Millisecond
	cfg.SafetyMargin, cfg.BalanceInterval = 200*time.Millisecond, 100*time.Millisecond
	cfg.Session.PollInterval = 200 * time.Millisecond
	cfg.Metrics, cfg.Session.Metrics = m, m
	n, err := pool.NewNode(st, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	m.WatchNode(st, n, StoreOptions{CacheFor: time.Nanosecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("node %s: %v", name, err)
		}
	})
}

// waitFor scrapes m until cond holds, and returns that scrape.
func waitFor(t *testing.T, m *Node, what string, cond func(metricstest.Families) bool) metricstest.Families {
	t.Helper()
	var fams metricstest.Families
	testwait.Until(t, 20*time.Second, what, func() bool {
		fams = scrape(t, m)
		return cond(fams)
	})
	return fams
}
