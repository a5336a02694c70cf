package pool

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bam-dev/bam/internal/bus"
	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/source"
	"github.com/bam-dev/bam/internal/source/pgoutbox"
	"github.com/bam-dev/bam/internal/store"
	"github.com/bam-dev/bam/internal/store/postgres"
	"github.com/bam-dev/bam/internal/store/sqlite"
	"github.com/bam-dev/bam/internal/testpg"
)

// These tests run several nodes in one process against a real store. The
// multi-process failover tests (SIGKILL, SIGSTOP) are in test/e2e.

func fastConfig(name string) Config {
	return Config{
		Name: name, LeaseTTL: time.Second, RenewInterval: 250 * time.Millisecond,
		SafetyMargin: 200 * time.Millisecond, BalanceInterval: 100 * time.Millisecond,
		StopTimeout: 5 * time.Second,
		Session:     bus.Config{BatchSize: 100, PollInterval: 200 * time.Millisecond},
	}
}

// newTestNode returns a node with cfg, its zero settings filled with the
// defaults, so that a test states only what it is about.
func newTestNode(t testing.TB, st Store, cfg Config, log *slog.Logger) *Node {
	t.Helper()
	d := DefaultConfig()
	cfg.LeaseTTL = cmp.Or(cfg.LeaseTTL, d.LeaseTTL)
	cfg.RenewInterval = cmp.Or(cfg.RenewInterval, d.RenewInterval)
	cfg.SafetyMargin = cmp.Or(cfg.SafetyMargin, d.SafetyMargin)
	cfg.BalanceInterval = cmp.Or(cfg.BalanceInterval, d.BalanceInterval)
	cfg.MaxMovesPerRound = cmp.Or(cfg.MaxMovesPerRound, d.MaxMovesPerRound)
	cfg.ForgetAfter = cmp.Or(cfg.ForgetAfter, d.ForgetAfter)
	cfg.LivenessConfirm = cmp.Or(cfg.LivenessConfirm, d.LivenessConfirm)
	cfg.StopTimeout = cmp.Or(cfg.StopTimeout, d.StopTimeout)
	cfg.SourceGiveUp = cmp.Or(cfg.SourceGiveUp, d.SourceGiveUp)
	cfg.PurgeInterval = cmp.Or(cfg.PurgeInterval, d.PurgeInterval)
	s, ds := &cfg.Session, d.Session
	s.BatchSize = cmp.Or(s.BatchSize, ds.BatchSize)
	s.MaxBatchSize = cmp.Or(s.MaxBatchSize, ds.MaxBatchSize)
	s.PollInterval = cmp.Or(s.PollInterval, ds.PollInterval)
	s.HeldRetry = cmp.Or(s.HeldRetry, ds.HeldRetry)
	s.MaxBackoff = cmp.Or(s.MaxBackoff, ds.MaxBackoff)
	s.MaxEventSize = cmp.Or(s.MaxEventSize, ds.MaxEventSize)
	s.TrimEvery = cmp.Or(s.TrimEvery, ds.TrimEvery)
	n, err := NewNode(st, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func eachStore(t *testing.T, f func(t *testing.T, open func() store.Store)) {
	t.Run("sqlite", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "bam.db")
		f(t, func() store.Store {
			st, err := sqlite.Open(context.Background(), path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			return st
		})
	})
	t.Run("postgres", func(t *testing.T) {
		url := testpg.NewDatabase(t)
		f(t, func() store.Store {
			st, err := postgres.Open(context.Background(), url)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			return st
		})
	})
}

type testNode struct {
	*Node
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

func runNode(t *testing.T, st store.Store, cfg Config) *testNode {
	t.Helper()
	n := newTestNode(t, st, cfg, testLogger(t).With("name", cfg.Name))
	ctx, cancel := context.WithCancel(context.Background())
	tn := &testNode{Node: n, cancel: cancel, done: make(chan error, 1)}
	go func() { tn.done <- n.Run(ctx) }()
	t.Cleanup(func() { tn.stop(t) })
	return tn
}

func (tn *testNode) stop(t *testing.T) {
	tn.once.Do(func() {
		tn.cancel()
		select {
		case err := <-tn.done:
			if err != nil {
				t.Errorf("node %s: Run = %v", tn.ID(), err)
			}
		case <-time.After(20 * time.Second):
			t.Errorf("node %s did not stop", tn.ID())
		}
	})
}

func setupStore(t *testing.T, st store.Store, partitions int) {
	t.Helper()
	ctx := context.Background()
	if _, _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := st.AddSource(ctx, store.Source{Name: "s", Kind: store.KindBuffer, Partitions: partitions, Enabled: true}); err != nil {
		t.Fatal(err)
	}
}

func ownedCount(t *testing.T, st Leases) map[string]int {
	ss, err := st.Sessions(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, s := range ss {
		if s.Owner != "" && s.LeaseRemaining > 0 {
			out[s.Owner]++
		}
	}
	return out
}

func waitUntil(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", limit, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func appendEvents(t *testing.T, st store.Store, partitions, instances, perInstance int) {
	t.Helper()
	var evs []store.BufferEvent
	for i := 0; i < instances; i++ {
		id := fmt.Sprintf("PO-%d", i)
		for j := 0; j < perInstance; j++ {
			kind := event.Update
			if j == 0 {
				kind = event.Begin
			}
			ev := event.Event{Activity: "PO", Instance: id, Kind: kind, Time: time.Now(), Data: map[string]json.RawMessage{"N": json.RawMessage(fmt.Sprint(j))}}
			evs = append(evs, store.BufferEvent{Partition: event.Partition(id, partitions), Payload: event.Encode(ev)})
		}
	}
	if err := st.AppendBuffer(context.Background(), "s", evs); err != nil {
		t.Fatal(err)
	}
}

func checkApplied(t *testing.T, st store.Store, instances int, want int64) {
	t.Helper()
	ctx := context.Background()
	waitUntil(t, 20*time.Second, "every event to be applied", func() bool {
		all, err := st.Instances(ctx, store.InstanceFilter{Activity: "PO"})
		if err != nil || len(all) != instances {
			return false
		}
		for _, in := range all {
			if in.Events < want {
				return false
			}
		}
		return true
	})
	all, _ := st.Instances(ctx, store.InstanceFilter{Activity: "PO"})
	for _, in := range all {
		if in.Events != want {
			t.Errorf("instance %s: %d events applied, want %d", in.ID, in.Events, want)
		}
	}
}

func TestNodesShareSessionsAndHandOverOnStop(t *testing.T) {
	eachStore(t, func(t *testing.T, open func() store.Store) {
		st := open()
		setupStore(t, st, 6)
		nodes := []*testNode{runNode(t, open(), fastConfig("a")), runNode(t, open(), fastConfig("b")), runNode(t, open(), fastConfig("c"))}
		waitUntil(t, 10*time.Second, "three nodes to own two sessions each", func() bool {
			o := ownedCount(t, st)
			return o[nodes[0].ID()] == 2 && o[nodes[1].ID()] == 2 && o[nodes[2].ID()] == 2
		})
		appendEvents(t, st, 6, 50, 4)
		checkApplied(t, st, 50, 4)

		// A clean stop hands every session over without waiting for a lease.
		start := time.Now()
		nodes[0].stop(t)
		waitUntil(t, 3*time.Second, "the two others to own three sessions each", func() bool {
			o := ownedCount(t, st)
			return o[nodes[1].ID()] == 3 && o[nodes[2].ID()] == 3
		})
		t.Logf("sessions moved %v after the stop began", time.Since(start))
		appendEvents(t, st, 6, 50, 2)
		checkApplied(t, st, 50, 6)
	})
}

// releaseCounter counts the release statements of one node, passing the
// driver's optional extras through.
type releaseCounter struct {
	store.Store
	statements, leases atomic.Int64
}

func (r *releaseCounter) Release(ctx context.Context, l store.Lease, node string) error {
	r.statements.Add(1)
	r.leases.Add(1)
	return r.Store.Release(ctx, l, node)
}

func (r *releaseCounter) ReleaseBatch(ctx context.Context, leases []store.Lease, node string) error {
	r.statements.Add(1)
	r.leases.Add(int64(len(leases)))
	return r.Store.(store.BatchReleaser).ReleaseBatch(ctx, leases, node)
}

// claimCounter counts the claim statements of one node, passing the
// driver's optional extras through.
type claimCounter struct {
	releaseCounter
	claimStatements, claims atomic.Int64
}

func (c *claimCounter) Claim(ctx context.Context, id store.SessionID, node, prev string, ttl time.Duration) (store.Lease, error) {
	c.claimStatements.Add(1)
	c.claims.Add(1)
	return c.Store.Claim(ctx, id, node, prev, ttl)
}

func (c *claimCounter) ClaimBatch(ctx context.Context, claims []store.ClaimRequest, node string, ttl time.Duration) ([]store.Lease, error) {
	c.claimStatements.Add(1)
	c.claims.Add(int64(len(claims)))
	return c.Store.(store.BatchClaimer).ClaimBatch(ctx, claims, node, ttl)
}

// Issue 8, item 6: a node claims the sessions of a round together, in one
// statement, not one round trip each (20 of them made a newcomer's share
// take a second on a loaded store).
func TestNodeClaimsItsShareInOneStatement(t *testing.T) {
	eachStore(t, func(t *testing.T, open func() store.Store) {
		st := open()
		setupStore(t, st, 20)
		cc := &claimCounter{releaseCounter: releaseCounter{Store: open()}}
		a := runNode(t, cc, fastConfig("a"))
		waitUntil(t, 10*time.Second, "node a to own every session", func() bool { return ownedCount(t, st)[a.ID()] == 20 })
		statements, claims := cc.claimStatements.Load(), cc.claims.Load()
		t.Logf("%d sessions claimed in %d statements", claims, statements)
		if statements != 1 {
			t.Errorf("%d sessions claimed in %d statements; want 1", claims, statements)
		}
	})
}

func (r *releaseCounter) Watch(ctx context.Context, fn func(store.Notice)) error {
	return r.Store.(store.Watcher).Watch(ctx, fn)
}

func (r *releaseCounter) HoldLiveness(ctx context.Context, key int64) (<-chan struct{}, error) {
	return r.Store.(store.Liveness).HoldLiveness(ctx, key)
}

func (r *releaseCounter) LivenessHeld(ctx context.Context, keys []int64) (map[int64]bool, error) {
	return r.Store.(store.Liveness).LivenessHeld(ctx, keys)
}

// Issue 8, item 6: a node handing over many sessions at once releases them
// together, a few statements per round of handovers, not one each (which held every lease
// connection while its renewal waited, and woke every node once per
// session).
func TestNodeReleasesHandedOverSessionsTogether(t *testing.T) {
	eachStore(t, func(t *testing.T, open func() store.Store) {
		st := open()
		setupStore(t, st, 80)
		cfg := func(name string) Config {
			c := fastConfig(name)
			// 80 sessions on a loaded machine: leases that one slow
			// renewal does not lose.
			c.LeaseTTL, c.RenewInterval, c.SafetyMargin = 5*time.Second, time.Second, time.Second
			return c
		}
		rc := &releaseCounter{Store: open()}
		a := runNode(t, rc, cfg("a"))
		waitUntil(t, 10*time.Second, "node a to own every session", func() bool { return ownedCount(t, st)[a.ID()] == 80 })
		others := []*testNode{runNode(t, open(), cfg("b")), runNode(t, open(), cfg("c")), runNode(t, open(), cfg("d"))}
		waitUntil(t, 20*time.Second, "four nodes to own 20 sessions each", func() bool {
			o := ownedCount(t, st)
			return o[a.ID()] == 20 && o[others[0].ID()] == 20 && o[others[1].ID()] == 20 && o[others[2].ID()] == 20
		})
		statements, leases := rc.statements.Load(), rc.leases.Load()
		t.Logf("%d leases released in %d statements", leases, statements)
		if leases < 60 || statements > leases/2 {
			t.Errorf("%d leases released in %d statements; want at least 60, in at most half as many statements", leases, statements)
		}
	})
}

// faultyStore fails the lease statements (Renew, Claim) on demand, as a
// store that the node's lease connections cannot reach, and records when
// Apply is called.
type faultyStore struct {
	store.Store
	failRenew atomic.Bool

	mu         sync.Mutex
	failedFrom time.Time // first failed renewal since failRenew was set
	lateApply  []time.Time
	lease      time.Duration
}

func (f *faultyStore) Renew(ctx context.Context, n store.Node, ttl time.Duration) ([]store.Lease, error) {
	if f.failRenew.Load() {
		f.mu.Lock()
		if f.failedFrom.IsZero() {
			f.failedFrom = time.Now()
		}
		f.mu.Unlock()
		return nil, errors.New("injected: store unreachable")
	}
	return f.Store.Renew(ctx, n, ttl)
}

func (f *faultyStore) Claim(ctx context.Context, id store.SessionID, node, prev string, ttl time.Duration) (store.Lease, error) {
	if f.failRenew.Load() {
		return store.Lease{}, errors.New("injected: store unreachable")
	}
	return f.Store.Claim(ctx, id, node, prev, ttl)
}

func (f *faultyStore) Apply(ctx context.Context, b store.Batch) error {
	f.mu.Lock()
	// The last successful renewal started before failedFrom, so the
	// lease cannot be trusted past failedFrom + TTL.
	if !f.failedFrom.IsZero() && time.Since(f.failedFrom) > f.lease {
		f.lateApply = append(f.lateApply, time.Now())
	}
	f.mu.Unlock()
	return f.Store.Apply(ctx, b)
}

func TestNodeThatCannotRenewStopsCommitting(t *testing.T) {
	eachStore(t, func(t *testing.T, open func() store.Store) {
		st := open()
		setupStore(t, st, 2)
		cfg := fastConfig("a")
		fs := &faultyStore{Store: open(), lease: cfg.LeaseTTL}
		a := runNode(t, fs, cfg)
		waitUntil(t, 10*time.Second, "node a to own both sessions", func() bool { return ownedCount(t, st)[a.ID()] == 2 })

		fs.failRenew.Store(true)
		// Keep events coming while the node cannot renew.
		stop := make(chan struct{})
		calls := 0
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				case <-time.After(20 * time.Millisecond):
					appendEvents(t, st, 2, 5, 1)
					calls++
				}
			}
		}()
		waitUntil(t, 10*time.Second, "node a's leases to expire", func() bool { return ownedCount(t, st)[a.ID()] == 0 })
		time.Sleep(cfg.LeaseTTL)
		close(stop)
		wg.Wait()
		fs.mu.Lock()
		late := len(fs.lateApply)
		fs.mu.Unlock()
		if late > 0 {
			t.Fatalf("node a tried %d commits after its leases could have expired", late)
		}
		// Renewal works again: the node takes its sessions back and applies
		// everything exactly once.
		fs.failRenew.Store(false)
		fs.mu.Lock()
		fs.failedFrom = time.Time{}
		fs.mu.Unlock()
		waitUntil(t, 10*time.Second, "node a to own both sessions again", func() bool { return ownedCount(t, st)[a.ID()] == 2 })
		checkApplied(t, st, 5, int64(calls))
	})
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
		var shown store.Session
		waitUntil(t, 10*time.Second, "the session to show its error", func() bool {
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
		waitUntil(t, 10*time.Second, "the error to clear", func() bool {
			ss, err := st.Sessions(ctx)
			return err == nil && ss[0].LastError == ""
		})
	})
}

// TestNodeGivesUpASessionWhoseSourceItCannotRead: a node that cannot read a
// source hands the session over once a peer works, and the peer, not it,
// takes it; alone, the node keeps trying. (Before, the node kept the
// session for as long as it lived.)
func TestNodeGivesUpASessionWhoseSourceItCannotRead(t *testing.T) {
	eachStore(t, func(t *testing.T, open func() store.Store) {
		st := open()
		setupStore(t, st, 1)
		ctx := context.Background()
		id := store.SessionID{Source: "s"}

		cfg := fastConfig("blind")
		cfg.SourceGiveUp = 500 * time.Millisecond
		cfg.Session.MaxBackoff = 100 * time.Millisecond
		blind := newTestNode(t, st, cfg, testLogger(t).With("name", cfg.Name))
		blind.openSource = func(_ context.Context, _ Store, src store.Source, _ *slog.Logger) (source.Reader, store.Source, error) {
			return nil, src, errors.New("dial tcp 10.0.0.9:5432: connect: no route to host")
		}
		bctx, stopBlind := context.WithCancel(ctx)
		blindDone := make(chan error, 1)
		go func() { blindDone <- blind.Run(bctx) }()
		defer func() {
			stopBlind()
			<-blindDone
		}()

		waitUntil(t, 10*time.Second, "the blind node owns the session", func() bool { return owner(t, st, id) == blind.ID() })
		// Alone, it keeps the session well past SourceGiveUp.
		time.Sleep(3 * cfg.SourceGiveUp)
		if o := owner(t, st, id); o != blind.ID() {
			t.Fatalf("alone, the blind node gave its session up (owner %q)", o)
		}

		if err := st.AppendBuffer(ctx, "s", []store.BufferEvent{{Payload: []byte(`{"activity":"A","instance":"I-1","kind":"begin"}`)}}); err != nil {
			t.Fatal(err)
		}
		seeing := runNode(t, st, fastConfig("seeing"))
		waitUntil(t, 15*time.Second, "the seeing node takes the session over and applies the event", func() bool {
			_, err := st.Instance(ctx, event.Key{Activity: "A", Instance: "I-1"})
			return owner(t, st, id) == seeing.ID() && err == nil
		})
		var se store.Session
		ss, _ := st.Sessions(ctx)
		for _, x := range ss {
			if x.SessionID == id {
				se = x
			}
		}
		if se.GivenUpBy != blind.ID() {
			t.Errorf("session given up by %q, want the blind node %s", se.GivenUpBy, blind.ID())
		}
		// The blind node does not take it back: it is dealt elsewhere.
		time.Sleep(3 * cfg.BalanceInterval)
		if o := owner(t, st, id); o != seeing.ID() {
			t.Errorf("owner %q after a few rounds, want the seeing node", o)
		}
	})
}

func owner(t *testing.T, st store.Store, id store.SessionID) string {
	t.Helper()
	ss, err := st.Sessions(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range ss {
		if s.SessionID == id {
			return s.Owner
		}
	}
	return ""
}

// TestPausedSourceIsNotApplied: pausing a source stops its sessions after
// their batch and no node claims them while events are written to it;
// resumed, the sessions go on from their checkpoints and apply each event
// once.
func TestPausedSourceIsNotApplied(t *testing.T) {
	eachStore(t, func(t *testing.T, open func() store.Store) {
		st := open()
		setupStore(t, st, 4)
		ctx := context.Background()
		a, aLog := runLoggedNode(t, open(), fastConfig("a"))
		b, _ := runLoggedNode(t, open(), fastConfig("b"))
		waitUntil(t, 10*time.Second, "a and b to own two sessions each", func() bool {
			o := ownedCount(t, st)
			return o[a.ID()] == 2 && o[b.ID()] == 2
		})
		appendEvents(t, st, 4, 20, 2)
		checkApplied(t, st, 20, 2)

		if err := st.SetSourcePaused(ctx, "s", true); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, 10*time.Second, "every session to be let go", func() bool { return len(ownedCount(t, st)) == 0 })
		if n := aLog.count("stopping session: its source was paused; its events wait in it until it is resumed", ""); n != 2 {
			t.Errorf("a logged %d sessions stopped for the pause, want 2", n)
		}
		before := epochs(t, st)
		appendEvents(t, st, 4, 20, 2)
		time.Sleep(10 * fastConfig("").BalanceInterval)
		if o := ownedCount(t, st); len(o) != 0 {
			t.Fatalf("sessions of a paused source owned: %v", o)
		}
		if n := moves(before, epochs(t, st)); n != 0 {
			t.Errorf("%d claims of a paused source's sessions", n)
		}
		all, err := st.Instances(ctx, store.InstanceFilter{Activity: "PO"})
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range all {
			if in.Events != 2 {
				t.Fatalf("instance %s: %d events applied while paused, want the 2 from before", in.ID, in.Events)
			}
		}

		if err := st.SetSourcePaused(ctx, "s", false); err != nil {
			t.Fatal(err)
		}
		checkApplied(t, st, 20, 4)
		waitUntil(t, 10*time.Second, "a and b to own two sessions each again", func() bool {
			o := ownedCount(t, st)
			return o[a.ID()] == 2 && o[b.ID()] == 2
		})
	})
}
