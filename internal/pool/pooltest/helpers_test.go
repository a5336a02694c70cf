package pooltest

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/pool"
	"github.com/bam-dev/bam/internal/store"
	"github.com/bam-dev/bam/internal/store/postgres"
	"github.com/bam-dev/bam/internal/store/sqlite"
	"github.com/bam-dev/bam/internal/testlog"
	"github.com/bam-dev/bam/internal/testpg"
	"github.com/bam-dev/bam/internal/testwait"
)

// fastConfig makes a node whose leases and rounds are short, so that the
// tests on real time take seconds.
func fastConfig(name string) pool.Config {
	c := pool.DefaultConfig()
	c.Name, c.LeaseTTL, c.RenewInterval = name, time.Second, 250*time.Millisecond
	c.SafetyMargin, c.BalanceInterval, c.StopTimeout = 200*time.Millisecond, 100*time.Millisecond, 5*time.Second
	c.Session.BatchSize, c.Session.PollInterval = 100, 200*time.Millisecond
	return c
}

func testHandler() slog.Handler {
	if testing.Verbose() {
		return slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})
	}
	return slog.NewTextHandler(io.Discard, nil)
}

// eachStore runs f on SQLite and on PostgreSQL; open opens another handle
// on the same store (one per node, as processes would have).
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
		f(t, func() store.Store { return openPostgres(t, url) })
	})
}

func openPostgres(t *testing.T, url string) store.Store {
	t.Helper()
	st, err := postgres.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// testNode is a node running until the test ends, its log recorded.
type testNode struct {
	*pool.Node
	log    *testlog.Lines
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

func runNode(t *testing.T, st pool.Store, cfg pool.Config) *testNode {
	t.Helper()
	lines, log := testlog.Capture(testHandler().WithAttrs([]slog.Attr{slog.String("name", cfg.Name)}))
	n, err := pool.NewNode(st, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tn := &testNode{Node: n, log: lines, cancel: cancel, done: make(chan error, 1)}
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

// lockKey returns the node's liveness lock key, as the store records it.
func (tn *testNode) lockKey(t *testing.T, st store.Store) int64 {
	t.Helper()
	nodes, err := st.Nodes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if n.ID == tn.ID() {
			return n.LockKey
		}
	}
	t.Fatalf("node %s is not a member", tn.ID())
	return 0
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

// ownedCount returns how many live leases each node holds.
func ownedCount(t *testing.T, st store.Store) map[string]int {
	out := map[string]int{}
	for _, s := range epochs(t, st) {
		if s.Owner != "" && s.LeaseRemaining > 0 {
			out[s.Owner]++
		}
	}
	return out
}

// checkApplied waits until instances PO instances have want events
// applied each, and fails if one has more.
func checkApplied(t *testing.T, st store.Store, instances int, want int64) {
	t.Helper()
	ctx := context.Background()
	testwait.Until(t, 20*time.Second, "every event to be applied", func() bool {
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

// epochs returns every session as the store has it.
func epochs(t *testing.T, st store.Store) map[store.SessionID]store.SessionRow {
	t.Helper()
	ss, err := st.Sessions(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[store.SessionID]store.SessionRow{}
	for _, s := range ss {
		out[s.SessionID] = s
	}
	return out
}

// moves counts the claims between two readings: every claim raises a
// session's epoch by one, whether it moves the session or takes it back.
func moves(before, after map[store.SessionID]store.SessionRow) int64 {
	var n int64
	for id, s := range after {
		n += s.Epoch - before[id].Epoch
	}
	return n
}

// watchedStore is a node's real store, with what its balance rounds saw of
// the liveness locks recorded, and its lock taken back late on demand.
type watchedStore struct {
	store.Store
	// retakeDelay delays every HoldLiveness but the first: the node takes
	// its lock back that much later than it could.
	retakeDelay time.Duration

	mu    sync.Mutex
	holds int
	looks []map[int64]bool // every LivenessHeld answer, in order
}

func (w *watchedStore) HoldLiveness(ctx context.Context, key int64) (<-chan struct{}, error) {
	w.mu.Lock()
	w.holds++
	again := w.holds > 1
	w.mu.Unlock()
	if again {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(w.retakeDelay): // the slow reconnect the test is about
		}
	}
	return w.Store.(store.Liveness).HoldLiveness(ctx, key)
}

func (w *watchedStore) LivenessHeld(ctx context.Context, keys []int64) (map[int64]bool, error) {
	held, err := w.Store.(store.Liveness).LivenessHeld(ctx, keys)
	if err == nil {
		w.mu.Lock()
		w.looks = append(w.looks, held)
		w.mu.Unlock()
	}
	return held, err
}

func (w *watchedStore) Watch(ctx context.Context, fn func(store.Notice)) error {
	return w.Store.(store.Watcher).Watch(ctx, fn)
}

// looksSince returns the LivenessHeld answers after the first n.
func (w *watchedStore) looksSince(n int) []map[int64]bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.looks[min(n, len(w.looks)):])
}

func (w *watchedStore) lookCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.looks)
}
