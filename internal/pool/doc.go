// Package pool is a node of the pool: its membership, its leases and the
// balancing that decides which sessions it runs.
//
// Its files, by concern: node.go (the node and its life cycle), config.go,
// services.go and purge.go (what runs beside the sessions), renew.go (the
// node's renewal of its leases and heartbeat), liveness.go (its own
// liveness lock and its verdicts on peers), rounds.go (the balance loop:
// a view, Decide, then claims, releases and takeovers), balance.go
// (Decide, a pure function of a view), sessions.go (starting, handing over
// and releasing sessions), readers.go (one reader per source, shared by
// its sessions), store.go (what the node needs of the store), health.go
// (what the node knows of its own health).
//
// # A session's lease, as one node sees it
//
//	          Claim (epoch+1, expiry = store now() + TTL)
//	free ─────────────────────────────────────────────► owned
//	 ▲                                                   │ │ │
//	 │ Release after the batch in hand commits (handoff) │ │ │
//	 ├───────────────────────────────────────────────────┘ │ │
//	 │ Leave on SIGTERM (every lease at once)              │ │
//	 ├─────────────────────────────────────────────────────┘ │
//	 │ expiry passes (no renewal), or ExpireLeases by a peer │
//	 │ that found this node dead ("Death verdicts")          │
//	 └───────────────────────────────────────────────────────┘
//
// While owned, one statement renews every lease of the node each
// RenewInterval, and the node keeps a local deadline per lease:
//
//	trustedUntil = start of the last successful Claim or Renew + TTL − SafetyMargin
//
// measured on this process's monotonic clock. Each session runs under a
// lease.Lease (package lease) whose context ends at that deadline (or, if
// a renewal begun before it is still out, when that renewal fails to move
// it), or when a renewal finds the lease lost: past it the session commits nothing (a
// paused or cut-off node stops before the store would let a peer take over),
// and the Apply fence (owner, epoch, checkpoint) stops anything that still
// slips through (DESIGN.md, promise 1). Renewals extend the leases; the
// sessions know nothing of them.
//
// # A node's loops, each with its own goroutine and end
//
//	renew    heartbeat + renew all leases (own connection pool in the
//	         driver); leases the store no longer returns are lost: they
//	         end, and their sessions stop at once, logged; a lease returned busy
//	         (its row held by our own batch) is kept, its deadline unmoved.
//	         It stops heartbeating and renewing while the balance loop has
//	         not completed a round for stuckAfter, so that a node that no
//	         longer decides is seen dead instead of hoarding dealt sessions
//	balance  every BalanceInterval (with jitter) and on a "sessions" notice,
//	         each round under a deadline (roundTimeout):
//	         read a fresh view (nodes, sessions, liveness locks), expire the
//	         leases of nodes found dead ("Death verdicts"), then Decide
//	         (balance.go): claim free sessions up to the fair share, hand over
//	         what is above it, at most MaxMovesPerRound to each node below
//	         its share per round; a node that just joined sits out one
//	         interval first. A claim that meets a locked row
//	         (store.ErrLocked) is skipped, never waited for; the driver ends
//	         an expired owner's stalled backend first
//	watch    store notices (new buffer events, released sessions) and
//	         source notices (pg-outbox) wake the sessions and the balancer;
//	         a settings notice wakes whoever follows the pool settings
//	         (SettingsNotices: package settings), which may Tune the
//	         node's live settings (balance interval, moves per round,
//	         source give-up, the sessions' largest event) while it runs
//	liveness hold the liveness lock (PostgreSQL advisory lock, file lock)
//	         for the process's life, so a SIGKILL is seen by peers at once;
//	         when its connection breaks, take it again at once, then
//	         every 250 ms at most, renewing meanwhile
//	sessions one bus.Session per owned lease
//
// # Death verdicts
//
// A peer's sessions move before its leases expire only when two signals
// say it died (DESIGN.md, "Death verdicts from one signal"): its liveness
// lock vanished (the store or the OS releases it when the holder's
// connection or process ends), and it has not heartbeat since. A lock
// alone is not enough: it also vanishes from a live node when its lock
// connection is reset (a network blip, a proxy recycling it,
// pg_terminate_backend) or when the store restarts (every node's at once).
//
// Each balance round reads the members (heartbeat_at and the heartbeat's
// age, both by the store's clock) and the locks of every peer and of this
// node, and judges each peer; what it saw is kept from round to round:
//
//	heartbeat  lock      verdict
//	fresh      held      alive
//	fresh      gone      suspect, alive for now; look again LivenessConfirm
//	                     (200 ms) after the first look that saw it gone:
//	                       lock back                      → alive
//	                       heartbeat_at past the store's  → alive, lockless: until its lock
//	                       now() at the first look          is seen again, dead once it
//	                                                        misses a heartbeat (none for
//	                                                        2 × RenewInterval)
//	                       neither, LivenessConfirm later → died
//	stale      gone      died (no heartbeat for a TTL, and no lock)
//	stale      held      silent: paused or cut off
//	fresh      unknown   alive    (no lock in the driver, the read failed,
//	stale      unknown   silent    or the locks are not trusted now: below)
//
// Fresh means younger than LeaseTTL. A died peer's leases are expired at
// once (ExpireLeases) and its row deleted (ForgetNode), which records it
// as departed, found dead by this node and why, for bam status to show
// for store.DepartedMemory; it is logged "node died", and its sessions
// "taken over from a dead node". A silent peer's leases expire by
// themselves, within the TTL of its last renewal; its sessions are "taken
// over from an expired lease": a stale heartbeat alone never says that a
// node died. A peer silent for ForgetAfter is forgotten, recorded the same
// way with that reason; if it heartbeats again, it is a member again.
//
// Why it is fast when the node really died: a killed process heartbeats no
// more and its lock vanishes with it, so the verdict comes LivenessConfirm
// after the first round that sees the lock gone (a round every
// BalanceInterval, and one is scheduled for the second look). Why a live
// node keeps its sessions: the driver reads the lock connection all the
// time, so a reset is noticed at once; the node then renews (heartbeat
// included) every LivenessConfirm/4 while it takes its lock again (one
// connection and one statement, at once, then every 250 ms at most), and
// until a renewal succeeds with the lock back (for a TTL at most), so
// every peer sees the lock back or a heartbeat since its first look within
// LivenessConfirm. A node that cannot take its lock again keeps
// heartbeating on its renew loop's schedule, and is judged by that alone:
// no lock and a missed heartbeat are two signals.
// After a store restart the same quick renewals extend the sessions' local
// deadlines as soon as the store is back, instead of at the renew loop's
// next tick.
//
// The locks say nothing while this node's own is in doubt: while its own
// lock is lost, when a round finds its own lock gone in the store (the
// store lost every lock: a restart), and for a LeaseTTL after it took its
// lock again, peers are judged by heartbeat alone. Every live node takes
// its lock again within 250 ms of the store's return, and renews within
// LivenessConfirm/4 of it, so a restart moves no session unless it
// outlasts the sessions' local deadline (then the lease rules stop and
// move them, each once); a node that really died meanwhile is taken over
// when its leases expire. A wrong verdict costs each of the
// node's sessions one move, never a duplicate: the leases and epochs stay
// the authority (the node finds its leases gone at its next renewal).
//
// # Disabled and paused sources
//
// A disabled source refuses writes; a paused one accepts them (bam emit,
// the HTTP API, the SDK's streams, an application's outbox rows) and keeps
// them for when it is resumed. Neither is applied: for the pool the two are
// one state, and the node folds them into SessionView.Enabled
// (store.SessionRow.Applies) before Decide sees the view. Decide then neither
// claims nor counts such sessions (its rule 1), reconcile stops the ones
// this node runs after their batch in hand and releases them, and the
// store refuses to claim them (store.Store.Claim), so that a view read
// before the pause cannot start one again. Resuming (or enabling) tells
// the nodes to balance, and the sessions are claimed from their
// checkpoints like any free session. This is the least the pool could
// change: no new state in Decide, its simulation or its tests, and no
// path by which a paused session could be applied that a disabled one
// could not.
//
// # Metrics
//
// Config.Metrics (metrics.go) hears of each owner change where this node
// sees it happen, with its cause: a claim or a takeover (from a dead node,
// or an expired lease, as logTakeover logs them) when a claim returns; a
// handoff when its release returns (a clean stop's Leave counts each
// session it released); lost where a renewal, a balance round or the
// session itself (local deadline, fence) finds it lost, once per session.
// It also hears of each renewal (its time, its error) and each balance
// round (the sessions it began to hand over, its error). Owned says how
// many sessions the node runs, for a gauge.
//
// # Life cycle and services
//
// A node is built once (NewNode, which refuses an invalid Config) and run
// once (Run). Beside its sessions it runs services: long-running parts
// that live exactly as long as the node does — the window purge, built in
// whenever the store keeps windows (WindowStore), and whatever the
// program attaches (Attach) before Run, such as the HTTP API.
//
//	NewNode ──Attach*──▶ Run ──▶ starting ──▶ joined ──▶ stopping ──▶ stopped
//	                              │ liveness lock,          │ ctx ended, or a
//	                              │ services started        │ service failed
//	                              ▼                         ▼
//	                        services run ─────────── services' ctx ends;
//	                        while the node           sessions finish their
//	                        joins and works          batch; the node leaves;
//	                                                 Run waits for every
//	                                                 service, then returns
//
// Services start when Run begins, before the node has joined (the HTTP API
// answers while a store that is down at start is waited for, and a write
// it cannot make is refused with a clear error). A service that returns an
// error before the node stops stops the node, cleanly, and Run returns
// that error. Run returns only once every service has returned, so a
// program may close the store right after Run.
//
// # Health
//
// Health (health.go) returns what the node knows of itself without asking
// the store: whether it joined and is not stopping, whether it holds its
// liveness lock, when its last heartbeat that succeeded began (the join,
// then each renewal, the lockless ones included), and each session it runs
// with its batches' progress (bus.Progress). Package health judges a
// node's readiness on these and on a write to the store.
//
// # Stopping
//
// When Run's context ends (SIGTERM, SIGINT), the services are told to
// stop, every session finishes the batch in hand, the node leaves the
// pool (releasing every lease in one statement, which notifies the peers)
// and Run returns once the services have: peers take the sessions over
// without waiting for a timeout (promise 8).
package pool
