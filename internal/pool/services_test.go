package pool

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/bam-dev/bam/internal/definition"
	"github.com/bam-dev/bam/internal/store"
	"github.com/bam-dev/bam/internal/store/memstore"
	"github.com/bam-dev/bam/internal/testlog"
)

// recordingService records its life: when it started, whether it was
// still running when it was told to stop, and fails when fail is closed.
type recordingService struct {
	name    string
	started chan struct{}
	fail    chan struct{}
	stopped atomic.Bool
	// linger keeps Run going this long after its context ends, as a
	// server that waits for its requests in flight.
	linger time.Duration
}

func newRecordingService(name string) *recordingService {
	return &recordingService{name: name, started: make(chan struct{}), fail: make(chan struct{})}
}

func (s *recordingService) Name() string { return s.name }

func (s *recordingService) Run(ctx context.Context) error {
	close(s.started)
	select {
	case <-ctx.Done():
		time.Sleep(s.linger) // fake clock: the bubble's time passes
		s.stopped.Store(true)
		return nil
	case <-s.fail:
		return errors.New(s.name + ": injected failure")
	}
}

func TestServicesLiveAsLongAsTheNode(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newFakePool(t, 1, 4)
		svc := newRecordingService("svc")
		svc.linger = 3 * time.Second
		n := newTestNode(t, &cutStore{Store: p.st}, Config{Name: "a"}, testLogger(t))
		n.Attach(svc)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- n.Run(ctx) }()
		<-svc.started
		time.Sleep(5 * time.Second) // the node joins and claims
		if owned := p.owned()[n.ID()]; owned != 4 {
			t.Fatalf("node owns %d sessions, want 4", owned)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run = %v", err)
		}
		if !svc.stopped.Load() {
			t.Fatal("Run returned before its service had stopped")
		}
		if err := n.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "runs once") {
			t.Fatalf("a second Run = %v, want a refusal", err)
		}
	})
}

func TestAFailingServiceStopsTheNodeCleanly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newFakePool(t, 1, 4)
		failing, other := newRecordingService("failing"), newRecordingService("other")
		n := newTestNode(t, &cutStore{Store: p.st}, Config{Name: "a"}, testLogger(t))
		n.Attach(failing, other)
		done := make(chan error, 1)
		go func() { done <- n.Run(context.Background()) }()
		time.Sleep(5 * time.Second)
		if owned := p.owned()[n.ID()]; owned != 4 {
			t.Fatalf("node owns %d sessions, want 4", owned)
		}
		close(failing.fail)
		err := <-done
		if err == nil || !strings.Contains(err.Error(), "failing: injected failure") {
			t.Fatalf("Run = %v, want the service's error", err)
		}
		if !other.stopped.Load() {
			t.Fatal("the other service was not stopped")
		}
		// A clean stop: the node left, releasing its sessions at once.
		if owned := p.owned()[n.ID()]; owned != 0 {
			t.Fatalf("the stopped node still owns %d sessions", owned)
		}
	})
}

func TestAServiceThatStopsEarlyStopsTheNode(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newFakePool(t, 1, 1)
		n := newTestNode(t, &cutStore{Store: p.st}, Config{Name: "a"}, testLogger(t))
		n.Attach(serviceFunc{"quitter", func(context.Context) error { return nil }})
		err := n.Run(context.Background())
		if err == nil || !strings.Contains(err.Error(), "quitter stopped before the node did") {
			t.Fatalf("Run = %v, want the early stop named", err)
		}
	})
}

type serviceFunc struct {
	name string
	run  func(context.Context) error
}

func (s serviceFunc) Name() string                  { return s.name }
func (s serviceFunc) Run(ctx context.Context) error { return s.run(ctx) }

// windowStore is an in-memory store that keeps windows: it counts the
// purges, and fails the ones listed in failAt (by number, from 1).
type windowStore struct {
	*memstore.Store
	mu     sync.Mutex
	purges []time.Time
	failAt map[int]bool
}

func (w *windowStore) Definitions(context.Context) ([]store.DeployedActivity, int64, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.purges = append(w.purges, time.Now())
	if w.failAt[len(w.purges)] {
		return nil, 0, errors.New("injected: the store is down")
	}
	return []store.DeployedActivity{
		{Activity: definition.Activity{Name: "Shipment"}, Window: store.Window{Keep: time.Hour}},
		{Activity: definition.Activity{Name: "Kept"}},
	}, 1, nil
}

func (w *windowStore) PurgeCompleted(_ context.Context, activity string) (int64, error) {
	if activity != "Shipment" {
		return 0, errors.New("purged " + activity + ", which has no window")
	}
	return 2, nil
}

func TestNodePurgesWindowsEveryIntervalThroughFailures(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ws := &windowStore{Store: memstore.New(), failAt: map[int]bool{2: true}}
		var _ WindowStore = ws
		lines, log := testlog.Capture(testLogger(t).Handler())
		n, err := NewNode(ws, func() Config { c := DefaultConfig(); c.PurgeInterval = time.Minute; return c }(), log)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		start := time.Now()
		go func() { done <- n.Run(ctx) }()
		time.Sleep(3*time.Minute + time.Second)
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run = %v", err)
		}
		ws.mu.Lock()
		defer ws.mu.Unlock()
		if len(ws.purges) < 3 {
			t.Fatalf("%d purges in 3 minutes and a second, want 3 or 4 (at %v)", len(ws.purges), ws.purges)
		}
		if first := ws.purges[0].Sub(start); first > time.Minute+time.Millisecond {
			t.Errorf("first purge after %v, want within one interval", first)
		}
		for i := 1; i < len(ws.purges); i++ {
			if gap := ws.purges[i].Sub(ws.purges[i-1]); gap != time.Minute {
				t.Errorf("purge %d came %v after the one before, want 1m", i+1, gap)
			}
		}
		if lines.Count("purge of completed instances past their window failed; retrying at the next interval", "") != 1 {
			t.Error("the failed purge was not logged once")
		}
		if got := lines.Count("purged completed instances past their window", ""); got != len(ws.purges)-1 {
			t.Errorf("%d purges logged, want %d (all but the failed one)", got, len(ws.purges)-1)
		}
	})
}
