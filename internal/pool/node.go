package pool

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bam-dev/bam/internal/lease"
	"github.com/bam-dev/bam/internal/source"
	"github.com/bam-dev/bam/internal/store"
)

// Node is one member of the pool.
type Node struct {
	cfg  Config
	st   Store
	log  *slog.Logger
	self store.NodeRow

	balanceNow chan struct{}
	// settingsNow wakes whoever follows the pool settings (SettingsNotices).
	settingsNow chan struct{}
	// tuned holds the settings a running node changes live (Tune).
	tuned      atomic.Pointer[Live]
	handedOver releaseQueue
	deaths     *deathWatch // what the balance rounds saw of the liveness locks
	relook     *time.Timer // the next balance round's wake-up to confirm a suspect

	mu       sync.Mutex
	sessions map[store.SessionID]*running
	// claiming holds the sessions between their Claim and their start: a
	// renewal that sees their lease must not take it for a stale one.
	claiming map[store.SessionID]bool
	readers  map[string]*readerEntry
	// openSource opens a source's reader: openReader, replaced in tests
	// by one that fails on this node only.
	openSource func(ctx context.Context, st Store, src store.Source, log *slog.Logger) (source.Reader, store.Source, error)
	sessionWG  sync.WaitGroup // session goroutines
	wg         sync.WaitGroup // other goroutines: watchers, liveness, releases

	// roundDone is when the balance loop last finished a round (guarded
	// by mu): the renewal loop stops heartbeating when it is older than
	// stuckAfter.
	roundDone time.Time
	// draining is whether the last balance round found this node drained
	// by an operator (guarded by mu), so that the change is logged once.
	draining bool
	// lockedSeen holds the sessions whose claim met a locked row and was
	// logged, so that a lasting lock is logged once (balance loop only).
	lockedSeen map[store.SessionID]bool

	// services run beside the sessions (Attach); started is set by Run
	// (guarded by mu).
	services []Service
	started  bool
	// workers make the workers of built-in kinds (AttachWorker).
	workers map[store.SourceKind]NewWorker

	// What Health reports (guarded by mu): joined is set once Join
	// succeeded, lastHeartbeat when the last Join or Renew that succeeded
	// began, liveness whether the liveness lock is held.
	joined        bool
	lastHeartbeat time.Time
	liveness      LivenessState
}

type running struct {
	s Worker // a bus.Session, or the worker of a built-in kind
	// lease is the session's lease as this node holds it: renewals extend
	// it, and the session ends with it (package lease).
	lease   *lease.Lease
	kind    store.SourceKind
	cancel  context.CancelFunc
	handoff bool // stopped to hand it over: release the lease when it ends
	// giveUp is why the session is handed over because its source could
	// not be read from this node (store.Store.GiveUp); empty otherwise.
	giveUp string
	// claimedAt is when the claim returned. A renewal that began before it
	// may not see the lease yet, so it cannot tell that the lease is lost.
	claimedAt time.Time
}

type readerEntry struct {
	r      source.Reader
	src    store.Source       // the source as the reader was opened for
	cancel context.CancelFunc // ends the source's watcher
}

// NewNode returns a node of the pool sharing st, or cfg's error
// (Config.Validate). The node's id is random: a restarted process is a new
// member.
func NewNode(st Store, cfg Config, log *slog.Logger) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("node config: %w", err)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = noMetrics{}
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	host, _ := os.Hostname()
	self := store.NodeRow{
		ID:        hex.EncodeToString(b[:6]),
		Name:      cmp.Or(cfg.Name, host),
		Host:      host,
		PID:       os.Getpid(),
		StartedAt: time.Now().UTC(),
		State:     store.NodeRunning,
		LockKey:   int64(binary.BigEndian.Uint64(b[:]) & (1<<62 - 1)),
	}
	n := &Node{
		cfg: cfg, st: st, self: self,
		log:         log.With("node", self.ID),
		balanceNow:  make(chan struct{}, 1),
		settingsNow: make(chan struct{}, 1),
		deaths:      newDeathWatch(cfg.LeaseTTL, cfg.RenewInterval, cfg.LivenessConfirm),
		sessions:    map[store.SessionID]*running{},
		claiming:    map[store.SessionID]bool{},
		readers:     map[string]*readerEntry{},
		openSource:  openReader,
		workers:     map[store.SourceKind]NewWorker{},
	}
	n.tuned.Store(&Live{BalanceInterval: cfg.BalanceInterval, MaxMovesPerRound: cfg.MaxMovesPerRound, SourceGiveUp: cfg.SourceGiveUp, MaxEventSize: cfg.Session.MaxEventSize})
	n.cfg.Session.CurrentMaxEventSize = func() int { return n.tuned.Load().MaxEventSize }
	return n, nil
}

// Live are the settings of a running node that Tune changes; the others
// of Config are fixed for the node's life.
type Live struct {
	BalanceInterval  time.Duration
	MaxMovesPerRound int
	SourceGiveUp     time.Duration
	MaxEventSize     int // of the events its sessions read, from their next batch
}

// Tune changes the Live settings of the node, running or not: the next
// balance round, hand-over check or batch uses them. A setting out of
// range is refused as a *ConfigError, and nothing changes.
func (n *Node) Tune(l Live) error {
	c := n.cfg
	c.BalanceInterval, c.MaxMovesPerRound, c.SourceGiveUp, c.Session.MaxEventSize = l.BalanceInterval, l.MaxMovesPerRound, l.SourceGiveUp, l.MaxEventSize
	if err := c.Validate(); err != nil {
		return err
	}
	n.tuned.Store(&l)
	// A round now reschedules the balance loop on the new interval: a
	// loop left waiting out a much longer old one would look stuck
	// (stuckAfter) and stop the heartbeats.
	select {
	case n.balanceNow <- struct{}{}:
	default:
	}
	return nil
}

// live returns the node's Live settings as they are now.
func (n *Node) live() Live { return *n.tuned.Load() }

// SettingsNotices receives a value when the store says the pool settings
// changed (store.TopicSettings), for the one follower of the settings
// (package settings). A notice that finds the channel full is dropped:
// one read covers both.
func (n *Node) SettingsNotices() <-chan struct{} { return n.settingsNow }

// ID returns the node's id.
func (n *Node) ID() string { return n.self.ID }

// Run joins the pool and works until ctx ends or a service fails, then
// stops cleanly: batches in hand commit, every lease is released, the node
// leaves, and every service has returned (doc.go, "Life cycle and
// services"). A node runs once.
func (n *Node) Run(ctx context.Context) error {
	n.mu.Lock()
	if n.started {
		n.mu.Unlock()
		return errors.New("pool: a node runs once; make a new one")
	}
	n.started = true
	services := slices.Clone(n.services)
	n.mu.Unlock()
	if ws, ok := n.st.(WindowStore); ok {
		services = append([]Service{newWindowPurge(ws, n.cfg.PurgeInterval, n.log)}, services...)
	}
	ctx, stopNode := context.WithCancel(ctx)
	defer stopNode()
	group := startServices(services, n.log)
	defer context.AfterFunc(ctx, group.cancel)()
	go func() {
		select {
		case <-group.failed:
			stopNode()
		case <-ctx.Done():
		}
	}()
	err := n.run(ctx)
	group.cancel()
	return errors.Join(err, group.stop())
}

// run is Run without the services.
func (n *Node) run(ctx context.Context) error {
	// The liveness lock lives as long as the process works, and is taken
	// before the node is visible, so no peer ever sees it without one.
	lctx, stopLiveness := context.WithCancel(context.Background())
	defer stopLiveness()
	if lv, ok := n.st.(store.Liveness); ok {
		lost, err := n.holdLiveness(ctx, lctx, lv)
		if err != nil {
			return err
		}
		n.setLiveness(LivenessHeld)
		n.wg.Add(1)
		go n.keepLiveness(lctx, lv, lost)
	} else {
		n.setLiveness(LivenessNone)
	}
	// Watch before joining: peers answer a join by releasing sessions,
	// and their notices must find this node listening.
	loops := sync.WaitGroup{}
	if w, ok := n.st.(store.Watcher); ok {
		loops.Add(1)
		go func() { defer loops.Done(); n.watchStore(ctx, w) }()
	}
	// A store that is down at start is waited for, like one that goes
	// down later: the node never exits on trouble, only on a signal.
	for attempt := 1; ; attempt++ {
		start := time.Now()
		err := n.st.Join(ctx, n.self)
		if err == nil {
			n.heartbeat(start)
			n.mu.Lock()
			n.joined = true
			n.mu.Unlock()
			break
		}
		if ctx.Err() == nil {
			n.log.Warn("cannot join the pool yet; retrying", "err", err, "attempt", attempt)
		}
		if ctx.Err() != nil || !sleepCtx(ctx, backoff(attempt)) {
			loops.Wait()
			return fmt.Errorf("join the pool: %w", err)
		}
	}
	n.log.Info("node joined the pool", "name", n.self.Name, "host", n.self.Host, "pid", n.self.PID,
		"lease_ttl", n.cfg.LeaseTTL, "renew_interval", n.cfg.RenewInterval, "balance_interval", n.cfg.BalanceInterval)

	// Sessions and renewals outlive ctx: they must keep going while the
	// node drains.
	workCtx, stopWork := context.WithCancel(context.Background())
	defer stopWork()
	renewCtx, stopRenew := context.WithCancel(context.Background())
	n.mu.Lock()
	n.roundDone = time.Now()
	n.mu.Unlock()
	renewDone := make(chan struct{})
	go func() { defer close(renewDone); n.renewLoop(renewCtx) }()

	loops.Add(1)
	go func() { defer loops.Done(); n.balanceLoop(ctx, workCtx) }()
	<-ctx.Done()
	loops.Wait()

	// Clean stop.
	n.mu.Lock()
	n.self.State = store.NodeStopping
	n.mu.Unlock()
	stopped := n.stopSessions(stopWork)
	stopRenew()
	<-renewDone
	leaveCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := n.st.Leave(leaveCtx, n.self.ID)
	if err != nil {
		n.log.Error("could not release leases on leaving; peers will take them over when they expire", "err", err, "lease_ttl", n.cfg.LeaseTTL)
	} else {
		n.log.Info("node left the pool; all leases released", "sessions_released", len(stopped))
		for _, id := range stopped {
			n.cfg.Metrics.OwnerChanged(id, HandedOver)
		}
	}
	n.closeReaders()
	stopLiveness()
	n.wg.Wait()
	if err != nil {
		return fmt.Errorf("leave the pool: %w", err)
	}
	return nil
}

// stopSessions asks every session to finish its batch, waits up to
// StopTimeout, then cancels what is left. It returns the sessions that ran,
// but for those already being handed over.
func (n *Node) stopSessions(stopWork context.CancelFunc) []store.SessionID {
	n.mu.Lock()
	ran := make([]store.SessionID, 0, len(n.sessions))
	for id, r := range n.sessions {
		if !r.handoff { // a session being handed over is counted when released
			ran = append(ran, id)
		}
		r.s.Stop()
	}
	n.mu.Unlock()
	done := make(chan struct{})
	go func() { n.sessionWG.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(n.cfg.StopTimeout):
		n.log.Warn("sessions did not finish their batch in time; abandoning it (the next owner reads it again)", "stop_timeout", n.cfg.StopTimeout)
		stopWork()
		<-done
	}
	return ran
}

func backoff(attempt int) time.Duration {
	d := 100 * time.Millisecond << min(attempt, 6)
	return min(d, 5*time.Second)
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
