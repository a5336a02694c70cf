// Package pool is a node of the pool: its membership, its leases and the
// balancing that decides which sessions it runs.
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
//	 │ that saw our liveness lock vanish                     │
//	 └───────────────────────────────────────────────────────┘
//
// While owned, one statement renews every lease of the node each
// RenewInterval, and the node keeps a local deadline per lease:
//
//	trustedUntil = start of the last successful Claim or Renew + TTL − SafetyMargin
//
// measured on this process's monotonic clock. Past it the session commits
// nothing (a paused or cut-off node stops before the store would let a peer
// take over), and the Apply fence (owner, epoch, checkpoint) stops anything
// that still slips through (DESIGN.md, promise 1).
//
// # A node's loops, each with its own goroutine and end
//
//	renew    heartbeat + renew all leases (own connection pool in the
//	         driver); leases the store no longer returns are lost: their
//	         sessions are stopped at once and logged; a lease returned busy
//	         (its row held by our own batch) is kept, its deadline unmoved.
//	         It stops heartbeating and renewing while the balance loop has
//	         not completed a round for stuckAfter, so that a node that no
//	         longer decides is seen dead instead of hoarding dealt sessions
//	balance  every BalanceInterval (with jitter) and on a "sessions" notice,
//	         each round under a deadline (roundTimeout):
//	         read a fresh view (nodes, sessions, liveness locks), expire the
//	         leases of nodes whose liveness lock vanished, then Decide
//	         (balance.go): claim free sessions up to the fair share, hand over
//	         what is above it, at most MaxMovesPerRound to each node below
//	         its share per round; a node that just joined sits out one
//	         interval first. A claim that meets a locked row
//	         (store.ErrLocked) is skipped, never waited for; the driver ends
//	         an expired owner's stalled backend first
//	watch    store notices (new buffer events, released sessions) and
//	         source notices (pg-outbox) wake the sessions and the balancer
//	liveness hold the liveness lock (PostgreSQL advisory lock, file lock)
//	         for the process's life, so a SIGKILL is seen by peers at once
//	sessions one bus.Session per owned lease
//
// # Stopping
//
// When Run's context ends (SIGTERM, SIGINT), every session finishes the
// batch in hand, the node leaves the pool (releasing every lease in one
// statement, which notifies the peers) and Run returns: peers take the
// sessions over without waiting for a timeout (promise 8).
package pool
