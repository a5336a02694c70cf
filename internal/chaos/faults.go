package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bam-dev/bam/internal/chaos/check"
	"github.com/bam-dev/bam/internal/faultproxy"
)

// The kinds of fault, as named in --faults and in the report.
const (
	faultKill      = "kill"
	faultPause     = "pause"
	faultCut       = "cut"
	faultBlackhole = "blackhole"
	faultSlow      = "slow"
	faultJoinLeave = "join-leave"
	faultOutboxCut = "outbox-cut"
	faultRestart   = "restart"
	faultBurst     = "burst"
	faultMidBatch  = "mid-batch"
	faultLockReset = "lock-reset"
	// Operator faults (operate.go).
	faultDrain     = "drain"
	faultMove      = "move"
	faultPoolPause = "pool-pause"
)

// AllFaults lists every kind of fault, in the order the report shows them.
var AllFaults = []string{faultKill, faultPause, faultCut, faultBlackhole, faultSlow, faultJoinLeave, faultOutboxCut, faultRestart, faultBurst, faultMidBatch, faultLockReset,
	faultDrain, faultMove, faultPoolPause}

// injector strikes faults at random and undoes them when the run heals.
type injector struct {
	h       *harness
	rng     *rand.Rand
	kinds   []string // the kinds that apply to this run
	mu      sync.Mutex
	busy    map[*nodeProc]bool // nodes under a fault now
	global  bool               // a restart or outbox cut is under way
	lastRst time.Time
	counts  map[string]int
	struck  []check.Struck
	wg      sync.WaitGroup
	flaps   int
	// midRequest counts the mid-batch faults that left a backend of the
	// node stalled in the middle of a request.
	midRequest int
}

// applicable returns the kinds of cfg.Faults that this run can inject.
func (h *harness) applicableFaults() []string {
	var kinds []string
	for _, k := range h.cfg.Faults {
		switch k {
		case faultCut, faultBlackhole, faultSlow, faultMidBatch, faultLockReset:
			if h.storeProxied {
				kinds = append(kinds, k)
			}
		case faultRestart:
			if h.server != nil {
				kinds = append(kinds, k)
			}
		case faultOutboxCut:
			if h.outboxProxy != nil {
				kinds = append(kinds, k)
			}
		default:
			kinds = append(kinds, k)
		}
	}
	return kinds
}

// run injects faults until ctx ends, then waits until every fault has been
// undone (their own contexts end with ctx).
func (in *injector) run(ctx context.Context) {
	defer in.wg.Wait()
	if len(in.kinds) == 0 {
		<-ctx.Done()
		return
	}
	every := in.h.cfg.FaultEvery
	for {
		d := every/2 + time.Duration(in.rng.Int64N(int64(every)))
		if !sleepCtx(ctx, d) {
			return
		}
		in.strike(ctx, in.kinds[in.rng.IntN(len(in.kinds))])
	}
}

// between returns a random duration in [lo, hi).
func (in *injector) between(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(in.rng.Int64N(int64(hi-lo)))
}

// target picks a node that is running and under no fault, never the last
// healthy one; nil if there is none.
func (in *injector) target() *nodeProc {
	in.mu.Lock()
	defer in.mu.Unlock()
	var healthy []*nodeProc
	for _, n := range in.h.nodes {
		if !in.busy[n] && n.isRunning() {
			healthy = append(healthy, n)
		}
	}
	if len(healthy) < 2 {
		return nil
	}
	n := healthy[in.rng.IntN(len(healthy))]
	in.busy[n] = true
	return n
}

func (in *injector) release(n *nodeProc) {
	in.mu.Lock()
	delete(in.busy, n)
	in.mu.Unlock()
}

func (in *injector) count(kind string) {
	in.mu.Lock()
	in.counts[kind]++
	in.mu.Unlock()
}

// strikeAt records a fault struck now on node ("" for the whole pool) and
// returns the function that records it undone.
func (in *injector) strikeAt(kind, node string) (undone func()) {
	in.mu.Lock()
	defer in.mu.Unlock()
	i := len(in.struck)
	in.struck = append(in.struck, check.Struck{Kind: kind, Node: node, At: time.Now()})
	return func() {
		in.mu.Lock()
		in.struck[i].Until = time.Now()
		in.mu.Unlock()
	}
}

// history returns the faults struck so far; one not undone yet ends now.
func (in *injector) history() []check.Struck {
	in.mu.Lock()
	defer in.mu.Unlock()
	out := slices.Clone(in.struck)
	for i := range out {
		if out[i].Until.IsZero() {
			out[i].Until = time.Now()
		}
	}
	return out
}

// strike starts one fault of kind; it is undone in the background after
// its own duration or when ctx ends, whichever comes first.
func (in *injector) strike(ctx context.Context, kind string) {
	h := in.h
	var undo func()
	var hold time.Duration
	var what, node string
	switch kind {
	case faultDrain, faultMove, faultPoolPause:
		in.strikeOperator(ctx, kind)
		return
	case faultMidBatch:
		n := in.target()
		if n == nil {
			return
		}
		plan := in.planMidBatch()
		in.wg.Add(1)
		go func() {
			defer in.wg.Done()
			defer in.release(n)
			in.midBatch(ctx, n, plan)
		}()
		return
	case faultKill, faultPause, faultCut, faultBlackhole, faultSlow, faultLockReset:
		n := in.target()
		if n == nil {
			return
		}
		what, node = n.name, n.name
		switch kind {
		case faultKill:
			n.kill()
			hold = in.between(time.Second, 4*time.Second)
			undo = func() {
				if err := n.start(); err != nil {
					h.logf("restart %s: %v", n.name, err)
				}
			}
		case faultPause:
			// Longer than the lease, so that a peer takes over.
			hold = in.between(h.cfg.LeaseTTL+500*time.Millisecond, h.cfg.LeaseTTL+3*time.Second)
			n.signal(syscall.SIGSTOP)
			undo = func() { n.signal(syscall.SIGCONT) }
		case faultCut:
			hold = in.between(500*time.Millisecond, 5*time.Second)
			n.proxy.SetMode(faultproxy.Cut)
			undo = func() { n.proxy.SetMode(faultproxy.Pass) }
		case faultBlackhole:
			hold = in.between(time.Second, 6*time.Second)
			n.proxy.SetMode(faultproxy.Blackhole)
			undo = func() { n.proxy.SetMode(faultproxy.Pass) }
		case faultSlow:
			hold = in.between(2*time.Second, 8*time.Second)
			delay := in.between(50*time.Millisecond, 400*time.Millisecond)
			what += fmt.Sprintf(" by %v", delay.Round(time.Millisecond))
			n.proxy.SetDelay(delay)
			n.proxy.SetMode(faultproxy.Slow)
			undo = func() { n.proxy.SetMode(faultproxy.Pass) }
		case faultLockReset:
			// At once; the node stays out of other faults for a moment,
			// so that what follows is its own taking the lock back.
			hold = 2 * time.Second
			ended, err := h.resetLiveness(ctx, n.name)
			if err != nil {
				h.logf("%v", err)
			}
			what += fmt.Sprintf(" (%d backend ended)", ended)
			undo = func() {}
		}
		inner := undo
		undo = func() { inner(); in.release(n) }
	case faultJoinLeave:
		in.mu.Lock()
		in.flaps++
		name := fmt.Sprintf("flap%d", in.flaps)
		in.mu.Unlock()
		n := h.newNode(name, false)
		if err := n.start(); err != nil {
			h.logf("start %s: %v", name, err)
			return
		}
		what, node = name, name
		hold = in.between(time.Second, 4*time.Second)
		undo = func() {
			if !n.stop(20 * time.Second) {
				h.logf("%s did not stop within 20 s of SIGTERM; killed", name)
			}
		}
	case faultBurst:
		hold = in.between(3*time.Second, 8*time.Second)
		what = "10× the writers' pace"
		h.load.burstUntil.Store(time.Now().Add(hold).UnixNano())
		undo = func() { h.load.burstUntil.Store(0) }
	case faultOutboxCut, faultRestart:
		in.mu.Lock()
		if in.global || (kind == faultRestart && time.Since(in.lastRst) < 15*time.Second) {
			in.mu.Unlock()
			return
		}
		in.global = true
		in.mu.Unlock()
		done := func() {
			in.mu.Lock()
			in.global = false
			in.mu.Unlock()
		}
		if kind == faultOutboxCut {
			what = "outbox database"
			hold = in.between(time.Second, 4*time.Second)
			h.outboxProxy.SetMode(faultproxy.Cut)
			undo = func() { h.outboxProxy.SetMode(faultproxy.Pass); done() }
		} else {
			mode := "fast"
			if in.rng.IntN(2) == 0 {
				mode = "immediate"
			}
			what = "PostgreSQL server (" + mode + ")"
			in.count(kind)
			h.logf("fault %s: %s", kind, what)
			undone := in.strikeAt(kind, "")
			in.wg.Add(1)
			go func() {
				defer in.wg.Done()
				defer undone()
				start := time.Now()
				rctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
				defer cancel()
				if err := h.server.Restart(rctx, mode); err != nil {
					h.logf("restart PostgreSQL: %v", err)
				} else {
					h.logf("PostgreSQL back after %v", time.Since(start).Round(time.Millisecond))
					// On a SQLite store the server holds the outboxes
					// alone: the nodes' liveness locks are files.
					if h.cfg.Store != "sqlite" {
						in.waitRelocked(rctx, time.Now())
					}
				}
				in.mu.Lock()
				in.lastRst = time.Now()
				in.mu.Unlock()
				done()
			}()
			return
		}
	default:
		h.logf("unknown fault %q", kind)
		return
	}
	in.count(kind)
	h.logf("fault %s: %s for %v", kind, what, hold.Round(time.Millisecond))
	undone := in.strikeAt(kind, node)
	in.wg.Add(1)
	go func() {
		defer in.wg.Done()
		sleepCtx(ctx, hold)
		undo()
		undone()
	}()
}

// midBatchPlan is a mid-batch fault's random choices, drawn by strike (the
// random source is the injector loop's alone).
type midBatchPlan struct {
	hold  time.Duration
	pause bool // SIGSTOP too; else the node keeps running behind the cut
}

func (in *injector) planMidBatch() midBatchPlan {
	return midBatchPlan{
		// Longer than the lease, so that a peer takes over.
		hold:  in.between(in.h.cfg.LeaseTTL+500*time.Millisecond, in.h.cfg.LeaseTTL+3*time.Second),
		pause: in.rng.IntN(2) == 0,
	}
}

// midBatchWire is the size of a chunk from a node that trips the wire of a
// mid-batch fault: a batch's pipelined request (the first use of a
// statement on a connection, which sends its text, may trip it too, and
// then stalls nothing).
const midBatchWire = 1500

// midBatchWait bounds how long a mid-batch fault waits for its node to
// send a large batch.
const midBatchWait = 10 * time.Second

// midBatch cuts node n's link in the middle of a large pipelined batch
// (DESIGN.md, "a lock held by a request that never finishes"): writers
// burst to build a backlog, of plain events only (a batch with
// continuations or relations is an explicit transaction, whose stalled
// backend idle_in_transaction_session_timeout ends), and n's proxy
// forwards the first half of the first large chunk n sends, then nothing
// more (faultproxy's BlackholeMidWrite). The server has run the batch's fence and waits for
// the rest, holding the session's row. n is also paused (SIGSTOP) when the
// plan says so. The fault lasts longer than the lease; the log says how
// many of n's backends were left stalled mid-request.
func (in *injector) midBatch(ctx context.Context, n *nodeProc, p midBatchPlan) {
	h := in.h
	until := time.Now().Add(midBatchWait).UnixNano()
	if cur := h.load.burstUntil.Load(); cur < until {
		h.load.burstUntil.CompareAndSwap(cur, until)
	}
	h.load.plainUntil.Store(until)
	tripped := n.proxy.BlackholeMidWrite(midBatchWire)
	wait := time.NewTimer(midBatchWait)
	select {
	case <-tripped:
	case <-wait.C:
	case <-ctx.Done():
	}
	wait.Stop()
	// The workload goes back to its pace and its vocabulary (unless a
	// burst fault has taken over the pace meanwhile).
	h.load.burstUntil.CompareAndSwap(until, 0)
	h.load.plainUntil.CompareAndSwap(until, 0)
	select {
	case <-tripped:
	default:
		n.proxy.SetMode(faultproxy.Pass)
		if ctx.Err() == nil {
			h.logf("fault %s: %s sent no large batch within %v; none struck", faultMidBatch, n.name, midBatchWait)
		}
		return
	}
	in.count(faultMidBatch)
	how := "cut off"
	if p.pause {
		how = "cut off and paused"
		n.signal(syscall.SIGSTOP)
	}
	undone := in.strikeAt(faultMidBatch, n.name)
	// Let what was on its way land before looking.
	sleepCtx(ctx, 300*time.Millisecond)
	stalled, err := h.stalledBackends(ctx, h.claims.idOf(n.name))
	caught := "could not look at its backends: " + fmt.Sprint(err)
	if err == nil {
		caught = fmt.Sprintf("%d of its backends stalled mid-request", stalled)
		if stalled > 0 {
			in.mu.Lock()
			in.midRequest++
			in.mu.Unlock()
		}
	}
	h.logf("fault %s: %s %s in the middle of a batch for %v; %s", faultMidBatch, n.name, how, p.hold.Round(time.Millisecond), caught)
	sleepCtx(ctx, p.hold-300*time.Millisecond)
	if p.pause {
		n.signal(syscall.SIGCONT)
	}
	n.proxy.SetMode(faultproxy.Pass)
	undone()
}

// stalledBackends counts the backends of node id that are in the middle of
// a request inside a transaction: active, waiting for the client to send
// the rest.
func (h *harness) stalledBackends(ctx context.Context, id string) (int, error) {
	if id == "" {
		return 0, fmt.Errorf("the node's id is not known yet")
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, h.pgAdmin)
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.Background())
	var k int
	err = conn.QueryRow(ctx, `
		SELECT count(*) FROM pg_stat_activity
		WHERE right(application_name, length($1)) = $1 AND state = 'active'
		  AND wait_event = 'ClientRead' AND backend_xid IS NOT NULL`, " node "+id).Scan(&k)
	return k, err
}

func (in *injector) faults() map[string]int {
	in.mu.Lock()
	defer in.mu.Unlock()
	out := make(map[string]int, len(in.counts))
	for _, k := range AllFaults {
		if in.counts[k] > 0 {
			out[k] = in.counts[k]
		}
	}
	return out
}

// validFault reports whether kind names a fault.
func validFault(kind string) bool { return slices.Contains(AllFaults, kind) }
