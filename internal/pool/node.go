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
	mrand "math/rand/v2"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/bam-dev/bam/internal/bus"
	"github.com/bam-dev/bam/internal/lease"
	"github.com/bam-dev/bam/internal/source"
	"github.com/bam-dev/bam/internal/store"
)

// Config tunes a node. Start from DefaultConfig and change what you need:
// every field must be set (Validate), so that a zero typed on a command
// line is refused instead of quietly meaning a default. The defaults are
// chosen so that a crashed node's sessions run elsewhere within 5 s (TTL +
// a balance round) and a clean handoff takes well under 1 s.
type Config struct {
	Name             string        // shown in status; the host name when empty
	LeaseTTL         time.Duration // a lease lives this long past its last renewal; default 3s
	RenewInterval    time.Duration // between renewals; default 1s
	SafetyMargin     time.Duration // stop committing this long before the lease could expire; default 500ms
	BalanceInterval  time.Duration // between balance rounds (±20% jitter); default 500ms
	MaxMovesPerRound int           // handovers from one node to another per round; default 32 (each pauses only the session it moves)
	ForgetAfter      time.Duration // a dead node's row is deleted after this; default 1m
	LivenessConfirm  time.Duration // a peer's liveness lock gone this long, with no heartbeat from it: dead (doc.go, "Death verdicts"); default 200ms
	StopTimeout      time.Duration // how long a clean stop waits for batches in hand; default 10s
	// SourceGiveUp: a session whose source this node has failed to read
	// for this long is handed over, so that a peer that may reach the
	// source tries it (store.Store.GiveUp); only while another node
	// works. Default 30s.
	SourceGiveUp time.Duration
	// PurgeInterval is how often the node purges the completed instances
	// past their activity's window (when its store keeps windows:
	// WindowStore); default 1m.
	PurgeInterval time.Duration
	Session       bus.Config
}

// ConfigError names the setting of a Config that is out of range, by its
// field name ("LeaseTTL", "Session.BatchSize").
type ConfigError = bus.ConfigError

// DefaultConfig returns the defaults, the session's included.
func DefaultConfig() Config {
	return Config{
		LeaseTTL:         3 * time.Second,
		RenewInterval:    time.Second,
		SafetyMargin:     500 * time.Millisecond,
		BalanceInterval:  500 * time.Millisecond,
		MaxMovesPerRound: 32,
		ForgetAfter:      time.Minute,
		LivenessConfirm:  200 * time.Millisecond,
		StopTimeout:      10 * time.Second,
		SourceGiveUp:     30 * time.Second,
		PurgeInterval:    time.Minute,
		Session:          bus.DefaultConfig(),
	}
}

// Validate reports the first setting out of range, or a combination
// that would break the lease protocol, as a *ConfigError.
func (c Config) Validate() error {
	for _, f := range []struct {
		name string
		ok   bool
	}{
		{"LeaseTTL", c.LeaseTTL > 0},
		{"RenewInterval", c.RenewInterval > 0},
		{"SafetyMargin", c.SafetyMargin > 0},
		{"BalanceInterval", c.BalanceInterval > 0},
		{"MaxMovesPerRound", c.MaxMovesPerRound > 0},
		{"ForgetAfter", c.ForgetAfter > 0},
		{"LivenessConfirm", c.LivenessConfirm > 0},
		{"StopTimeout", c.StopTimeout > 0},
		{"SourceGiveUp", c.SourceGiveUp > 0},
		{"PurgeInterval", c.PurgeInterval > 0},
	} {
		if !f.ok {
			return &ConfigError{Field: f.name, Err: errors.New("must be positive")}
		}
	}
	switch {
	case c.LivenessConfirm >= c.LeaseTTL:
		return &ConfigError{Field: "LivenessConfirm", Err: fmt.Errorf("%v must be shorter than the lease TTL (%v): past the TTL a silent node's leases expire anyway", c.LivenessConfirm, c.LeaseTTL)}
	case c.LeaseTTL < 2*c.RenewInterval:
		return &ConfigError{Field: "LeaseTTL", Err: fmt.Errorf("%v must be at least twice the renew interval (%v), so one slow renewal does not lose every lease", c.LeaseTTL, c.RenewInterval)}
	case c.SafetyMargin >= c.LeaseTTL-c.RenewInterval:
		return &ConfigError{Field: "SafetyMargin", Err: fmt.Errorf("%v must be less than lease TTL − renew interval (%v)", c.SafetyMargin, c.LeaseTTL-c.RenewInterval)}
	}
	if err := c.Session.Validate(); err != nil {
		var ce *ConfigError
		if errors.As(err, &ce) {
			return &ConfigError{Field: "Session." + ce.Field, Err: ce.Err}
		}
		return err
	}
	return nil
}

// Node is one member of the pool.
type Node struct {
	cfg  Config
	st   Store
	log  *slog.Logger
	self store.Node

	balanceNow chan struct{}
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
	// lockedSeen holds the sessions whose claim met a locked row and was
	// logged, so that a lasting lock is logged once (balance loop only).
	lockedSeen map[store.SessionID]bool

	// services run beside the sessions (Attach); started is set by Run
	// (guarded by mu).
	services []Service
	started  bool
}

type running struct {
	s *bus.Session
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
	var b [8]byte
	_, _ = rand.Read(b[:])
	host, _ := os.Hostname()
	self := store.Node{
		ID:        hex.EncodeToString(b[:6]),
		Name:      cmp.Or(cfg.Name, host),
		Host:      host,
		PID:       os.Getpid(),
		StartedAt: time.Now().UTC(),
		State:     store.NodeRunning,
		LockKey:   int64(binary.BigEndian.Uint64(b[:]) & (1<<62 - 1)),
	}
	return &Node{
		cfg: cfg, st: st, self: self,
		log:        log.With("node", self.ID),
		balanceNow: make(chan struct{}, 1),
		deaths:     newDeathWatch(cfg.LeaseTTL, cfg.RenewInterval, cfg.LivenessConfirm),
		sessions:   map[store.SessionID]*running{},
		claiming:   map[store.SessionID]bool{},
		readers:    map[string]*readerEntry{},
		openSource: openReader,
	}, nil
}

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
		n.wg.Add(1)
		go n.keepLiveness(lctx, lv, lost)
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
		err := n.st.Join(ctx, n.self)
		if err == nil {
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
		n.log.Info("node left the pool; all leases released", "sessions_released", stopped)
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
// StopTimeout, then cancels what is left. It returns how many ran.
func (n *Node) stopSessions(stopWork context.CancelFunc) int {
	n.mu.Lock()
	count := len(n.sessions)
	for _, r := range n.sessions {
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
	return count
}

// holdLiveness takes the liveness lock, retrying while the store is
// unreachable, until ctx (the node's) ends.
func (n *Node) holdLiveness(ctx, lctx context.Context, lv store.Liveness) (<-chan struct{}, error) {
	for attempt := 1; ; attempt++ {
		lost, err := lv.HoldLiveness(lctx, n.self.LockKey)
		if err == nil {
			n.deaths.ownTaken(time.Now(), false)
			return lost, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("take liveness lock: %w", err)
		}
		n.log.Warn("cannot take the liveness lock yet; retrying", "err", err, "attempt", attempt)
		if !sleepCtx(ctx, backoff(attempt)) {
			return nil, fmt.Errorf("take liveness lock: %w", err)
		}
	}
}

// keepLiveness takes the liveness lock again whenever its connection
// breaks, at once and then every livenessRetry at most: peers find a node
// whose lock vanished dead unless it takes the lock back or heartbeats
// within LivenessConfirm (doc.go, "Death verdicts"), so meanwhile it also
// renews every LivenessConfirm/4 (renewLockless).
func (n *Node) keepLiveness(ctx context.Context, lv store.Liveness, lost <-chan struct{}) {
	defer n.wg.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case <-lost:
		}
		if ctx.Err() != nil {
			return // the hold ended because the node is stopping
		}
		lostAt := time.Now()
		n.deaths.ownLost()
		n.log.Warn("liveness lock lost (its store connection broke); taking it again; peers keep this node's sessions while it heartbeats or once it holds the lock again",
			"liveness_confirm", n.cfg.LivenessConfirm)
		hctx, stopRenewing := context.WithTimeout(ctx, n.cfg.LeaseTTL)
		relocked := make(chan struct{})
		n.wg.Add(1)
		go func() { defer stopRenewing(); n.renewLockless(hctx, relocked) }()
		var attempts int
		lost, attempts = n.retakeLiveness(ctx, lv)
		if lost == nil {
			return
		}
		n.deaths.ownTaken(time.Now(), true)
		close(relocked)
		n.log.Info("liveness lock taken again", "after", time.Since(lostAt).Round(time.Millisecond), "attempts", attempts)
	}
}

// retakeLiveness takes the liveness lock again, retrying until ctx ends
// (then lost is nil).
func (n *Node) retakeLiveness(ctx context.Context, lv store.Liveness) (lost <-chan struct{}, attempts int) {
	for attempt := 1; ; attempt++ {
		lost, err := lv.HoldLiveness(ctx, n.self.LockKey)
		if err == nil {
			return lost, attempt
		}
		if ctx.Err() != nil {
			return nil, attempt
		}
		if attempt == 1 || attempt%50 == 0 {
			n.log.Warn("cannot take the liveness lock again yet; retrying", "err", err, "attempt", attempt)
		}
		if !sleepCtx(ctx, livenessRetry(attempt)) {
			return nil, attempt
		}
	}
}

// renewLockless heartbeats and renews every LivenessConfirm/4, from the
// loss of the liveness lock until a renewal succeeds after the lock is
// back (relocked closed), or ctx ends (a lease TTL after the loss). A peer
// that saw the lock gone thus sees a heartbeat within LivenessConfirm of
// its first look, however long taking the lock back takes. And when the
// lock went with the store (a restart), the first renewal after the
// store's return comes within LivenessConfirm/4, not at the renew loop's
// next tick up to RenewInterval later: the sessions' local deadlines
// (TTL − SafetyMargin after the last renewal began) are extended in time
// whenever the store was back before them. A node that is stopping does
// not renew: it may have left the pool.
func (n *Node) renewLockless(ctx context.Context, relocked <-chan struct{}) {
	defer n.wg.Done()
	t := time.NewTicker(n.cfg.LivenessConfirm / 4)
	defer t.Stop()
	for {
		n.mu.Lock()
		self := n.self
		stuck := time.Since(n.roundDone) > n.stuckAfter()
		n.mu.Unlock()
		if self.State != store.NodeRunning || stuck {
			// A node whose balance loop is stuck must not heartbeat
			// (renewLoop): these renewals do not either.
			return
		}
		back := isClosed(relocked)
		start := time.Now()
		// Not cancelled with ctx: cutting a statement short would cost its
		// connection.
		done := n.renewing()
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), n.cfg.LeaseTTL)
		leases, err := n.st.Renew(rctx, self, n.cfg.LeaseTTL)
		cancel()
		if err == nil {
			n.renewed(leases, start, start.Add(n.cfg.LeaseTTL-n.cfg.SafetyMargin))
		}
		done()
		if err == nil && back {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// livenessRetry is the wait before taking the liveness lock again after
// attempt failed: short, because a store that is back must see every live
// node's lock again within a fraction of the lease TTL, and one attempt is
// only a connection (refused at once while the store is down).
func livenessRetry(attempt int) time.Duration {
	return min(25*time.Millisecond<<min(attempt, 4), 250*time.Millisecond)
}

// roundTimeout bounds one balance round, every statement of it included:
// a round that meets a store too slow to answer ends, and the next one
// starts from a fresh view. It is generous (a round takes milliseconds)
// so that a node on a slow link still gets its claims through.
func (n *Node) roundTimeout() time.Duration { return 2 * n.cfg.LeaseTTL }

// stuckAfter is how long the balance loop may go without finishing a
// round before the node stops heartbeating. A working loop finishes one at
// least every roundTimeout + the longest interval (BalanceInterval + 20 %),
// even when each round fails; twice that leaves room for a slow machine,
// so only a loop that truly hangs trips it.
func (n *Node) stuckAfter() time.Duration {
	return 2 * (n.roundTimeout() + n.cfg.BalanceInterval*6/5)
}

// renewLoop heartbeats and renews every lease, each RenewInterval, as long
// as the balance loop works.
func (n *Node) renewLoop(ctx context.Context) {
	t := time.NewTicker(n.cfg.RenewInterval)
	defer t.Stop()
	failing, stuck := false, false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		start := time.Now()
		n.mu.Lock()
		self := n.self
		stuckFor := start.Sub(n.roundDone)
		n.mu.Unlock()
		if self.State != store.NodeStopping && stuckFor > n.stuckAfter() {
			// The balance loop no longer decides: free sessions dealt to
			// this node would stay unowned (Decide, rule 5). Stop
			// heartbeating and renewing, so that peers count this node dead
			// and take its sessions over, and its sessions stop at their
			// local deadline.
			if !stuck {
				n.log.Error("balance loop stuck; not heartbeating nor renewing leases until it completes a round, so that peers take this node's sessions over",
					"since", stuckFor.Round(time.Millisecond), "bound", n.stuckAfter())
				stuck = true
			}
			continue // the sessions stop at their leases' local deadlines
		}
		if stuck {
			n.log.Info("balance loop works again; heartbeating again")
			stuck = false
		}
		done := n.renewing()
		rctx, cancel := context.WithTimeout(ctx, n.cfg.LeaseTTL)
		leases, err := n.st.Renew(rctx, self, n.cfg.LeaseTTL)
		cancel()
		if err != nil {
			done()
			if ctx.Err() != nil {
				return
			}
			if !failing {
				n.log.Warn("cannot renew leases; sessions stop committing at their local deadline", "err", err)
			}
			failing = true
			continue
		}
		if failing {
			n.log.Info("lease renewal works again")
			failing = false
		}
		n.renewed(leases, start, start.Add(n.cfg.LeaseTTL-n.cfg.SafetyMargin))
		done()
	}
}

// renewing marks a renewal in flight on the lease of every running
// session, and returns what ends it, to call once renewed has run (or the
// renewal failed): a lease whose deadline passes while a renewal begun
// before it is out ends only if that renewal does not extend it
// (lease.Lease.Renewing), so a renewal that is slow but succeeds stops no
// idle session.
func (n *Node) renewing() (done func()) {
	n.mu.Lock()
	held := make([]*lease.Lease, 0, len(n.sessions))
	for _, r := range n.sessions {
		r.lease.Renewing()
		held = append(held, r.lease)
	}
	n.mu.Unlock()
	return func() {
		for _, l := range held {
			l.RenewDone()
		}
	}
}

// renewed updates the sessions from the leases the store still gives us,
// as of a renewal begun at began. A session claimed after that is left
// alone: the renewal's statement may have run before the claim committed,
// and the next renewal will tell (its own local deadline still holds).
func (n *Node) renewed(leases []store.Lease, began, trustedUntil time.Time) {
	held := make(map[store.SessionID]store.Lease, len(leases))
	for _, l := range leases {
		held[l.SessionID] = l
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for id, r := range n.sessions {
		l, ok := held[id]
		switch {
		case ok && l.Epoch == r.lease.Row().Epoch && l.Busy:
			// Still ours, but its row was locked by our batch in progress:
			// not extended this time, so its deadline stays.
		case ok && l.Epoch == r.lease.Row().Epoch:
			// An ended lease stays ended (its session stops): the next
			// renewal finds it not running and releases it.
			r.lease.Extend(trustedUntil)
		case r.handoff:
			// Already being handed over.
		case r.claimedAt.After(began):
			// Too new for this renewal to have seen.
		default:
			n.log.Warn("session lost: the store no longer holds our lease (it expired or a peer took it)",
				"source", id.Source, "partition", id.Partition, "epoch", r.lease.Row().Epoch)
			r.lease.Lose(nil)
			delete(n.sessions, id)
		}
	}
	// Leases we hold but do not run (a session stopped at its local
	// deadline while renewal failed): give them back.
	for id, l := range held {
		if _, ok := n.sessions[id]; !ok && !n.claiming[id] && !l.Busy && !n.handedOver.holds(id) {
			n.wg.Add(1)
			go func() {
				defer n.wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), n.cfg.LeaseTTL)
				defer cancel()
				if err := n.st.Release(ctx, l, n.self.ID); err != nil {
					n.log.Warn("release stale lease", "source", id.Source, "partition", id.Partition, "err", err)
				}
			}()
		}
	}
}

func (n *Node) balanceLoop(ctx, workCtx context.Context) {
	// A node that just joined sits out one balance interval before its
	// first round: nodes started together (a deploy, a restart of the whole
	// pool) then see one another before they claim, instead of the first
	// one claiming every free session and handing most of them back. Peers
	// answer the join at once by handing over its share, which waits free
	// for it meanwhile.
	if !sleepCtx(ctx, n.cfg.BalanceInterval) {
		return
	}
	for {
		rctx, cancel := context.WithTimeout(ctx, n.roundTimeout())
		err := n.balance(rctx, workCtx)
		cancel()
		if err != nil && ctx.Err() == nil {
			n.log.Warn("balance round failed", "err", err)
		}
		n.mu.Lock()
		n.roundDone = time.Now()
		n.mu.Unlock()
		// ±20% jitter keeps nodes from deciding in lockstep.
		d := n.cfg.BalanceInterval
		d += time.Duration(mrand.Int64N(int64(d)*2/5+1)) - d/5
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case <-n.balanceNow:
			t.Stop()
		}
	}
}

// balance runs one round from a fresh view.
func (n *Node) balance(ctx, workCtx context.Context) error {
	nodes, err := n.st.Nodes(ctx)
	if err != nil {
		return fmt.Errorf("read nodes: %w", err)
	}
	sessions, err := n.st.Sessions(ctx)
	if err != nil {
		return fmt.Errorf("read sessions: %w", err)
	}
	verdicts := n.liveNodes(ctx, nodes)
	v := View{Self: n.self.ID}
	for _, nd := range nodes {
		if nd.ID == n.self.ID {
			continue
		}
		v.Nodes = append(v.Nodes, NodeView{ID: nd.ID, Alive: verdicts[nd.ID] == peerAlive, Stopping: nd.State == store.NodeStopping})
	}
	v.Nodes = append(v.Nodes, NodeView{ID: n.self.ID, Alive: true})
	kinds := map[string]store.SourceKind{}
	for _, s := range sessions {
		kinds[s.Source] = s.Kind
		// A paused source is, for balancing, a disabled one: neither is
		// applied (doc.go, "Disabled and paused sources").
		v.Sessions = append(v.Sessions, SessionView{ID: s.SessionID, Owner: s.Owner, Expired: s.Owner != "" && s.LeaseRemaining <= 0,
			Enabled: s.Applies(), GivenUpBy: s.GivenUpBy})
	}
	plan := Decide(v, n.cfg.MaxMovesPerRound)

	for _, id := range plan.Release {
		n.handOver(id)
	}
	n.reconcile(sessions)
	n.giveUpUnreachable(v)

	// Free sessions are claimed together, in one statement; a takeover of
	// another node's expired lease goes alone, through Claim, which first
	// ends a stalled backend of the expired owner that holds the row (a
	// batch claim skips a locked row, and would skip it every round).
	one := plan.Claim
	var togetherErr error
	if bc, ok := n.st.(store.BatchClaimer); ok {
		var free []Claim
		one = nil
		for _, c := range plan.Claim {
			if c.PrevOwner == "" {
				free = append(free, c)
			} else {
				one = append(one, c)
			}
		}
		if len(free) > 1 {
			togetherErr = n.claimTogether(ctx, workCtx, bc, free, verdicts, kinds)
		} else {
			one = append(free, one...)
		}
	}
	for _, c := range one {
		n.mu.Lock()
		_, runs := n.sessions[c.ID]
		if !runs {
			n.claiming[c.ID] = true
		}
		n.mu.Unlock()
		if runs {
			continue
		}
		start := time.Now()
		l, err := n.st.Claim(ctx, c.ID, n.self.ID, c.PrevOwner, n.cfg.LeaseTTL)
		if err != nil {
			n.mu.Lock()
			delete(n.claiming, c.ID)
			n.mu.Unlock()
		}
		if errors.Is(err, store.ErrNotClaimable) {
			continue // a peer was faster, or the owner renewed: fine
		}
		if errors.Is(err, store.ErrLocked) {
			// A transaction holds its row (a batch of the previous owner,
			// slow or stalled): never wait for it, claim the others; the
			// next round tries again.
			if n.lockedSeen == nil {
				n.lockedSeen = map[store.SessionID]bool{}
			}
			if !n.lockedSeen[c.ID] {
				n.lockedSeen[c.ID] = true
				n.log.Warn("session skipped this round: its row is locked by a transaction in progress",
					"source", c.ID.Source, "partition", c.ID.Partition, "from", c.PrevOwner, "err", err)
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("claim %s/%d: %w", c.ID.Source, c.ID.Partition, err)
		}
		delete(n.lockedSeen, c.ID)
		attrs := []any{"source", l.Source, "partition", l.Partition, "epoch", l.Epoch,
			"checkpoint", fmt.Sprintf("%d/%d", l.Checkpoint.Major, l.Checkpoint.Minor)}
		if l.EndedBackends > 0 {
			attrs = append(attrs, "ended_stalled_backends", l.EndedBackends)
		}
		if c.PrevOwner == "" {
			n.log.Info("session claimed", attrs...)
		} else {
			n.logTakeover(attrs, c.PrevOwner, verdicts)
		}
		n.start(workCtx, l, kinds[l.Source], start.Add(n.cfg.LeaseTTL-n.cfg.SafetyMargin))
	}
	return togetherErr
}

// claimTogether claims the sessions of a plan in one statement and starts
// those it got. A session the store refused (a peer was faster, the owner
// renewed) or whose row was locked is left for a later round, as a claim
// that fails with ErrNotClaimable.
func (n *Node) claimTogether(ctx, workCtx context.Context, bc store.BatchClaimer, claims []Claim, verdicts map[string]verdict, kinds map[string]store.SourceKind) error {
	prev := map[store.SessionID]string{}
	var want []store.ClaimRequest
	n.mu.Lock()
	for _, c := range claims {
		if _, runs := n.sessions[c.ID]; !runs {
			n.claiming[c.ID] = true
			prev[c.ID] = c.PrevOwner
			want = append(want, store.ClaimRequest{ID: c.ID, PrevOwner: c.PrevOwner})
		}
	}
	n.mu.Unlock()
	if len(want) == 0 {
		return nil
	}
	// A claim that has not returned within a lease's life has taken
	// nothing worth waiting for: what it took is released as stale.
	cctx, cancel := context.WithTimeout(ctx, n.cfg.LeaseTTL)
	defer cancel()
	start := time.Now()
	leases, err := bc.ClaimBatch(cctx, want, n.self.ID, n.cfg.LeaseTTL)
	got := map[store.SessionID]bool{}
	for _, l := range leases {
		got[l.SessionID] = true
	}
	n.mu.Lock()
	for _, c := range want {
		if !got[c.ID] {
			delete(n.claiming, c.ID)
		}
	}
	n.mu.Unlock()
	if err != nil {
		return fmt.Errorf("claim %d sessions: %w", len(want), err)
	}
	for _, l := range leases {
		attrs := []any{"source", l.Source, "partition", l.Partition, "epoch", l.Epoch,
			"checkpoint", fmt.Sprintf("%d/%d", l.Checkpoint.Major, l.Checkpoint.Minor)}
		if from := prev[l.SessionID]; from == "" {
			n.log.Info("session claimed", attrs...)
		} else {
			n.logTakeover(attrs, from, verdicts)
		}
		n.start(workCtx, l, kinds[l.Source], start.Add(n.cfg.LeaseTTL-n.cfg.SafetyMargin))
	}
	return nil
}

// logTakeover says whom a session was taken from, and why it could be:
// its owner died (its liveness lock went with its connection), or its lease
// expired while the owner was silent (paused, cut off, or dead without its
// connection closing) or alive but late. docs/OPERATIONS.md explains the
// lines.
func (n *Node) logTakeover(attrs []any, from string, verdicts map[string]verdict) {
	attrs = append(attrs, "from", from)
	v, member := verdicts[from]
	switch {
	case !member:
		n.log.Info("session taken over from a dead node",
			append(attrs, "why", "its owner is no longer a member of the pool (a peer found it dead, or it was silent past the forget delay)")...)
	case v == peerDied:
		n.log.Info("session taken over from a dead node",
			append(attrs, "why", "its owner's liveness lock was released with its connection, and it has not heartbeat since")...)
	case v == peerSilent:
		n.log.Info("session taken over from an expired lease",
			append(attrs, "why", "its owner stopped heartbeating but was not seen to die (paused, cut off, or dead without its connection closing)")...)
	default:
		n.log.Info("session taken over from an expired lease",
			append(attrs, "why", "its owner heartbeats but did not renew this lease in time")...)
	}
}

// reconcile stops the running sessions that the fresh view says are not
// ours to run: lost to another owner or epoch (at once: their next commit
// would be refused anyway), or of a disabled, paused or removed source
// (after the batch in hand, then released).
func (n *Node) reconcile(sessions []store.Session) {
	inView := make(map[store.SessionID]store.Session, len(sessions))
	for _, s := range sessions {
		inView[s.SessionID] = s
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for id, r := range n.sessions {
		s, ok := inView[id]
		l := r.s.Lease()
		switch {
		case r.handoff:
		case !ok || !s.Applies():
			msg := "stopping session: its source was disabled or removed"
			if ok && s.SourceEnabled {
				msg = "stopping session: its source was paused; its events wait in it until it is resumed"
			}
			n.log.Info(msg, "source", id.Source, "partition", id.Partition)
			r.handoff = true
			r.s.Stop()
		case s.Owner != n.self.ID || s.Epoch != l.Epoch:
			n.log.Warn("session lost: a peer owns it now (this node was paused or cut off past its lease)",
				"source", id.Source, "partition", id.Partition, "epoch", l.Epoch, "new_owner", s.Owner, "new_epoch", s.Epoch)
			r.cancel()
			delete(n.sessions, id)
		}
	}
}

// liveNodes judges every member (doc.go, "Death verdicts"): alive while its
// heartbeat is fresh by the store's clock, unless its liveness lock vanished
// and a second signal confirms that it died. A peer found dead has its
// leases expired at once, so its sessions move now, not after the TTL; a
// wrong verdict costs each of its sessions one move. This node is alive.
func (n *Node) liveNodes(ctx context.Context, nodes []store.Node) map[string]verdict {
	verdicts := map[string]verdict{n.self.ID: peerAlive}
	var peers []store.Node
	keys := []int64{n.self.LockKey}
	for _, nd := range nodes {
		switch {
		case nd.ID == n.self.ID:
		case nd.HeartbeatAge > n.cfg.ForgetAfter:
			verdicts[nd.ID] = peerSilent
			why := store.Departure{FoundDeadBy: n.self.ID, Why: fmt.Sprintf("silent past the forget delay: no heartbeat for %v (more than %v)",
				nd.HeartbeatAge.Round(time.Second), n.cfg.ForgetAfter)}
			if err := n.st.ForgetNode(ctx, nd.ID, why); err == nil {
				n.log.Info("forgot a node silent for long", "dead_node", nd.ID, "name", nd.Name, "silent_for", nd.HeartbeatAge.Round(time.Second))
			}
		default:
			peers = append(peers, nd)
			keys = append(keys, nd.LockKey)
		}
	}
	l := look{now: time.Now(), peers: peers, selfKey: n.self.LockKey}
	if lv, ok := n.st.(store.Liveness); ok && len(peers) > 0 {
		held, err := lv.LivenessHeld(ctx, keys)
		if err != nil {
			n.log.Warn("cannot check liveness locks; relying on heartbeats", "err", err)
		}
		l.held = held
	}
	judged, relook := n.deaths.judge(l)
	if relook > 0 {
		n.balanceAfter(relook)
	}
	for _, nd := range peers {
		v := judged[nd.ID]
		verdicts[nd.ID] = v
		if v != peerDied {
			continue
		}
		expired, err := n.st.ExpireLeases(ctx, nd.ID)
		if err != nil {
			n.log.Warn("expire a dead node's leases", "dead_node", nd.ID, "err", err)
			continue
		}
		why := store.Departure{FoundDeadBy: n.self.ID, Why: fmt.Sprintf("its liveness lock was released with its connection, and it had not heartbeat since (its last heartbeat %v before)",
			nd.HeartbeatAge.Round(time.Millisecond))}
		if err := n.st.ForgetNode(ctx, nd.ID, why); err != nil {
			n.log.Warn("forget a dead node", "dead_node", nd.ID, "err", err)
		}
		n.log.Warn("node died: its liveness lock was released with its connection; its leases are expired now",
			"dead_node", nd.ID, "name", nd.Name, "host", nd.Host, "pid", nd.PID, "leases_expired", expired,
			"heartbeat_age", nd.HeartbeatAge.Round(time.Millisecond))
	}
	return verdicts
}

// balanceAfter runs a balance round d from now (or sooner), to look again
// at a peer whose liveness lock was seen gone.
func (n *Node) balanceAfter(d time.Duration) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.relook != nil {
		n.relook.Stop()
	}
	n.relook = time.AfterFunc(d, func() {
		select {
		case n.balanceNow <- struct{}{}:
		default:
		}
	})
}

// giveUpUnreachable hands over the sessions whose source this node has
// failed to read for SourceGiveUp, while another node works: that node may
// reach the source (a network path, a firewall, credentials that differ per
// host). The store records this node as the one that gave the session up,
// so that balancing deals it elsewhere (SessionView.GivenUpBy). Alone, a
// node keeps trying.
func (n *Node) giveUpUnreachable(v View) {
	others := 0
	for _, nd := range v.Nodes {
		if nd.ID != n.self.ID && nd.Alive && !nd.Stopping {
			others++
		}
	}
	if others == 0 {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for id, r := range n.sessions {
		since, trouble := r.s.SourceTrouble()
		if r.handoff || since.IsZero() || time.Since(since) < n.cfg.SourceGiveUp {
			continue
		}
		n.log.Warn("handing a session over: its source cannot be read from this node; another node will try",
			"source", id.Source, "partition", id.Partition, "failing_for", time.Since(since).Round(time.Second), "err", trouble)
		r.handoff = true
		r.giveUp = fmt.Sprintf("handed over by node %s after its source failed for %v: %s", n.self.ID, time.Since(since).Round(time.Second), trouble)
		r.s.Stop()
	}
}

// handOver stops a session after its batch in hand; it is released when it ends.
func (n *Node) handOver(id store.SessionID) {
	n.mu.Lock()
	defer n.mu.Unlock()
	r, ok := n.sessions[id]
	if !ok || r.handoff {
		return
	}
	r.handoff = true
	r.s.Stop()
}

// start runs a session for a freshly claimed lease.
func (n *Node) start(workCtx context.Context, l store.Lease, kind store.SourceKind, trustedUntil time.Time) {
	ctx, cancel := context.WithCancel(workCtx)
	held := lease.New(ctx, l, trustedUntil)
	// The session's first batch checks the open reader against the
	// source's configuration (sameReader); the session goroutine alone
	// calls this function.
	checked := false
	s := bus.NewSession(n.cfg.Session, n.st, n.self.ID, held,
		func(ctx context.Context) (source.Reader, error) {
			r, err := n.reader(ctx, l.Source, !checked)
			checked = checked || err == nil
			return r, err
		}, n.log)
	r := &running{s: s, lease: held, kind: kind, cancel: cancel, claimedAt: time.Now()}
	n.mu.Lock()
	n.sessions[l.SessionID] = r
	delete(n.claiming, l.SessionID)
	n.mu.Unlock()
	n.sessionWG.Add(1)
	go func() {
		defer n.sessionWG.Done()
		defer cancel()
		err := s.Run(ctx)
		n.mu.Lock()
		if n.sessions[l.SessionID] == r {
			delete(n.sessions, l.SessionID)
		}
		handoff, giveUp := r.handoff, r.giveUp
		n.mu.Unlock()
		attrs := []any{"source", l.Source, "partition", l.Partition, "epoch", l.Epoch}
		switch {
		case errors.Is(err, lease.ErrLost):
			// renewed said why.
		case errors.Is(err, lease.ErrExpired):
			n.log.Warn("session stopped: its lease could not be renewed before its local deadline", attrs...)
		case errors.Is(err, bus.ErrLost):
			n.log.Warn("session lost to a newer owner; nothing of the batch in hand was committed", append(attrs, "reason", err)...)
		case err == nil && handoff && giveUp != "":
			rctx, cancel := context.WithTimeout(context.Background(), n.cfg.LeaseTTL)
			defer cancel()
			if err := n.st.GiveUp(rctx, l, n.self.ID, giveUp); err != nil {
				n.log.Warn("give up session: release failed; the lease will expire instead", append(attrs, "err", err)...)
			}
		case err == nil && handoff:
			n.releaseHandedOver(l)
		}
	}()
	s.Wake()
}

// releaseQueue holds the leases of sessions handed over, from the end of
// their session until their release returns.
type releaseQueue struct {
	mu       sync.Mutex
	pending  []store.Lease // not yet being released
	flushing bool          // a session's goroutine is releasing
	queued   map[store.SessionID]bool
}

// holds reports whether the lease of id waits for its release or is being
// released: a renewal meanwhile still returns it, and must not take it for
// a stale one.
func (q *releaseQueue) holds(id store.SessionID) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.queued[id]
}

// releaseHandedOver releases the lease of a session stopped to be handed
// over. A balance round may hand over hundreds of sessions, which end at
// about the same time: the first to end releases its lease, then, in one
// statement where the driver can (store.BatchReleaser), every lease queued
// meanwhile, until none is left; the others only queue theirs. So the
// releases neither hold every lease connection while the renewal waits nor
// wake every node once per session, and the first waits for nobody.
func (n *Node) releaseHandedOver(l store.Lease) {
	q := &n.handedOver
	q.mu.Lock()
	q.pending = append(q.pending, l)
	if q.queued == nil {
		q.queued = map[store.SessionID]bool{}
	}
	q.queued[l.SessionID] = true
	if q.flushing {
		q.mu.Unlock()
		return
	}
	q.flushing = true
	for len(q.pending) > 0 {
		batch := q.pending
		q.pending = nil
		q.mu.Unlock()
		n.release(batch)
		q.mu.Lock()
		for _, l := range batch {
			delete(q.queued, l.SessionID)
		}
	}
	q.flushing = false
	q.mu.Unlock()
}

func (n *Node) release(leases []store.Lease) {
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.LeaseTTL)
	defer cancel()
	failed := map[store.SessionID]error{}
	if br, ok := n.st.(store.BatchReleaser); ok && len(leases) > 1 {
		if err := br.ReleaseBatch(ctx, leases, n.self.ID); err != nil {
			for _, l := range leases {
				failed[l.SessionID] = err
			}
		}
	} else {
		for _, l := range leases {
			if err := n.st.Release(ctx, l, n.self.ID); err != nil {
				failed[l.SessionID] = err
			}
		}
	}
	for _, l := range leases {
		attrs := []any{"source", l.Source, "partition", l.Partition, "epoch", l.Epoch}
		if err := failed[l.SessionID]; err != nil {
			n.log.Warn("hand over: release failed; the lease will expire instead", append(attrs, "err", err)...)
			continue
		}
		n.log.Info("session handed over", attrs...)
	}
}

// reader returns the open reader of a source, opening it on first use.
// fresh reads the source's configuration first and replaces a reader
// opened for another one (a source removed and added again,
// repartitioned, or reset onto another outbox): sessions claimed since
// must not read through it.
func (n *Node) reader(ctx context.Context, name string, fresh bool) (source.Reader, error) {
	n.mu.Lock()
	if e, ok := n.readers[name]; ok && !fresh {
		n.mu.Unlock()
		return e.r, nil
	}
	n.mu.Unlock()
	src, err := n.st.Source(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("read source %q: %w", name, err)
	}
	n.mu.Lock()
	if e, ok := n.readers[name]; ok {
		if sameReader(e.src, src) && !stoppedForGood(e.r) {
			n.mu.Unlock()
			return e.r, nil
		}
		n.log.Info("source changed; reopening its reader", "source", name)
		e.cancel()
		_ = e.r.Close()
		delete(n.readers, name)
	}
	n.mu.Unlock()
	r, src, err := n.openSource(ctx, n.st, src, n.log)
	if err != nil {
		return nil, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if e, ok := n.readers[name]; ok && sameReader(e.src, src) && !stoppedForGood(e.r) { // another session opened it meanwhile
		_ = r.Close()
		return e.r, nil
	} else if ok {
		e.cancel()
		_ = e.r.Close()
	}
	wctx, cancel := context.WithCancel(context.Background())
	n.readers[name] = &readerEntry{r: r, src: src, cancel: cancel}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.watchSource(wctx, name, r)
	}()
	return r, nil
}

func (n *Node) closeReaders() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for name, e := range n.readers {
		e.cancel()
		if err := e.r.Close(); err != nil {
			n.log.Warn("close source", "source", name, "err", err)
		}
		delete(n.readers, name)
	}
}

// watchSource wakes the source's sessions on its notifications.
func (n *Node) watchSource(ctx context.Context, name string, r source.Reader) {
	for attempt := 1; ; attempt++ {
		err := r.Watch(ctx, func() { n.wake(name, "") })
		if errors.Is(err, source.ErrNoWatch) || ctx.Err() != nil {
			return
		}
		n.log.Warn("source notifications broke; reading on the poll interval until they are back", "source", name, "err", err)
		if !sleepCtx(ctx, backoff(attempt)) {
			return
		}
	}
}

// watchStore turns store notices into wake-ups.
func (n *Node) watchStore(ctx context.Context, w store.Watcher) {
	broken := 0 // failed watches since the last notice
	for {
		err := w.Watch(ctx, func(nt store.Notice) {
			if broken > 0 {
				n.log.Info("store notifications work again")
				broken = 0
			}
			switch nt.Topic {
			case "buffer":
				n.wake(nt.Source, store.KindBuffer)
			case "sessions":
				select {
				case n.balanceNow <- struct{}{}:
				default:
				}
			}
		})
		if ctx.Err() != nil {
			return
		}
		broken++
		if broken == 1 {
			n.log.Warn("store notifications broke; reading on the poll interval until they are back", "err", err)
		}
		if !sleepCtx(ctx, backoff(broken)) {
			return
		}
	}
}

// wake wakes the sessions of a source; an empty name wakes every session of
// the kind.
func (n *Node) wake(sourceName string, kind store.SourceKind) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for id, r := range n.sessions {
		if id.Source == sourceName || (sourceName == "" && r.kind == kind) {
			r.s.Wake()
		}
	}
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
