package pool

import (
	"context"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"time"

	"github.com/bam-dev/bam/internal/store"
)

// roundTimeout bounds one balance round, every statement of it included:
// a round that meets a store too slow to answer ends, and the next one
// starts from a fresh view. It is generous (a round takes milliseconds)
// so that a node on a slow link still gets its claims through.
func (n *Node) roundTimeout() time.Duration { return 2 * n.cfg.LeaseTTL }

func (n *Node) balanceLoop(ctx, workCtx context.Context) {
	// A node that just joined sits out one balance interval before its
	// first round: nodes started together (a deploy, a restart of the whole
	// pool) then see one another before they claim, instead of the first
	// one claiming every free session and handing most of them back. Peers
	// answer the join at once by handing over its share, which waits free
	// for it meanwhile.
	if !sleepCtx(ctx, n.live().BalanceInterval) {
		return
	}
	for {
		rctx, cancel := context.WithTimeout(ctx, n.roundTimeout())
		handedOver, err := n.balance(rctx, workCtx)
		cancel()
		if ctx.Err() == nil {
			// A round cut short by the node's stop is not counted.
			n.cfg.Metrics.Balanced(handedOver, err)
			if err != nil {
				n.log.Warn("balance round failed", "err", err)
			}
		}
		n.mu.Lock()
		n.roundDone = time.Now()
		n.mu.Unlock()
		// ±20% jitter keeps nodes from deciding in lockstep.
		d := n.live().BalanceInterval
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

// balance runs one round from a fresh view. It returns how many sessions
// it began to hand over.
func (n *Node) balance(ctx, workCtx context.Context) (handedOver int, err error) {
	nodes, err := n.st.Nodes(ctx)
	if err != nil {
		return 0, fmt.Errorf("read nodes: %w", err)
	}
	sessions, err := n.st.Sessions(ctx)
	if err != nil {
		return 0, fmt.Errorf("read sessions: %w", err)
	}
	verdicts := n.liveNodes(ctx, nodes)
	v := View{Self: n.self.ID}
	draining := false
	for _, nd := range nodes {
		if nd.ID == n.self.ID {
			draining = nd.Draining
			continue
		}
		// A node an operator drains is, for balancing, a stopping node
		// that stays up (Decide's rule 6).
		v.Nodes = append(v.Nodes, NodeView{ID: nd.ID, Alive: verdicts[nd.ID] == peerAlive, Stopping: nd.State == store.NodeStopping || nd.Draining})
	}
	v.Nodes = append(v.Nodes, NodeView{ID: n.self.ID, Alive: true, Stopping: draining})
	n.noteDraining(draining)
	kinds := map[string]store.SourceKind{}
	for _, s := range sessions {
		kinds[s.Source] = s.Kind
		// A paused source is, for balancing, a disabled one: neither is
		// applied (doc.go, "Disabled and paused sources").
		// So is a session of a kind this node cannot run (AttachWorker).
		v.Sessions = append(v.Sessions, SessionView{ID: s.SessionID, Owner: s.Owner, Expired: s.Owner != "" && s.LeaseRemaining <= 0,
			Enabled: s.Applies() && n.runs(s.Kind), GivenUpBy: s.GivenUpBy, MoveTo: s.MoveTo})
	}
	plan := Decide(v, n.live().MaxMovesPerRound)
	moving := map[store.SessionID]string{}
	for _, s := range sessions {
		if s.MoveTo != "" && s.Owner == n.self.ID && s.MoveTo != n.self.ID {
			moving[s.SessionID] = s.MoveTo
		}
	}
	for _, id := range plan.Release {
		if !n.handOver(id) {
			continue
		}
		handedOver++
		if to, ok := moving[id]; ok {
			n.log.Info("handing a session over: an operator moved it to another node (bam session move)",
				"source", id.Source, "partition", id.Partition, "to", to)
		}
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
			return handedOver, fmt.Errorf("claim %s/%d: %w", c.ID.Source, c.ID.Partition, err)
		}
		delete(n.lockedSeen, c.ID)
		attrs := []any{"source", l.Source, "partition", l.Partition, "epoch", l.Epoch,
			"checkpoint", fmt.Sprintf("%d/%d", l.Checkpoint.Major, l.Checkpoint.Minor)}
		if l.EndedBackends > 0 {
			attrs = append(attrs, "ended_stalled_backends", l.EndedBackends)
		}
		n.gained(l.SessionID, attrs, c.PrevOwner, verdicts)
		n.start(workCtx, l, kinds[l.Source], start.Add(n.cfg.LeaseTTL-n.cfg.SafetyMargin))
	}
	return handedOver, togetherErr
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
		n.gained(l.SessionID, attrs, prev[l.SessionID], verdicts)
		n.start(workCtx, l, kinds[l.Source], start.Add(n.cfg.LeaseTTL-n.cfg.SafetyMargin))
	}
	return nil
}

// The log lines of a claim, each with the session (source, partition),
// the node and the new epoch: the chaos checker reads them to find two
// nodes under one epoch, so a claim logged under another message would
// escape it (ClaimLogMessages).
const (
	LogClaimed          = "session claimed"
	LogClaimedAgain     = "session claimed again: this node's own lease on it had expired (it was paused or late to renew)"
	LogTakenFromDead    = "session taken over from a dead node"
	LogTakenFromExpired = "session taken over from an expired lease"
)

// ClaimLogMessages are the messages of the log lines of a claim.
var ClaimLogMessages = []string{LogClaimed, LogClaimedAgain, LogTakenFromDead, LogTakenFromExpired}

// gained logs and counts a session this node just claimed, from prev (empty
// for a free session).
func (n *Node) gained(id store.SessionID, attrs []any, prev string, verdicts map[string]verdict) {
	cause := Claimed
	switch prev {
	case "":
		n.log.Info(LogClaimed, attrs...)
	case n.self.ID:
		// Its own lease, expired while this node was paused or late to
		// renew, and nobody else's since: no takeover from anyone.
		n.log.Info(LogClaimedAgain, attrs...)
	default:
		cause = n.logTakeover(attrs, prev, verdicts)
	}
	n.cfg.Metrics.OwnerChanged(id, cause)
}

// logTakeover says whom a session was taken from, and why it could be:
// its owner died (its liveness lock went with its connection), or its lease
// expired while the owner was silent (paused, cut off, or dead without its
// connection closing) or alive but late. docs/OPERATIONS.md explains the
// lines.
// It returns the takeover's cause, as its log line says it.
func (n *Node) logTakeover(attrs []any, from string, verdicts map[string]verdict) OwnerChange {
	attrs = append(attrs, "from", from)
	v, member := verdicts[from]
	switch {
	case !member:
		n.log.Info(LogTakenFromDead,
			append(attrs, "why", "its owner is no longer a member of the pool (a peer found it dead, or it was silent past the forget delay)")...)
		return TakenFromDead
	case v == peerDied:
		n.log.Info(LogTakenFromDead,
			append(attrs, "why", "its owner's liveness lock was released with its connection, and it has not heartbeat since")...)
		return TakenFromDead
	case v == peerSilent:
		n.log.Info(LogTakenFromExpired,
			append(attrs, "why", "its owner stopped heartbeating but was not seen to die (paused, cut off, or dead without its connection closing)")...)
	default:
		n.log.Info(LogTakenFromExpired,
			append(attrs, "why", "its owner heartbeats but did not renew this lease in time")...)
	}
	return TakenFromExpired
}

// reconcile stops the running sessions that the fresh view says are not
// ours to run: lost to another owner or epoch (at once: their next commit
// would be refused anyway), or of a disabled, paused or removed source
// (after the batch in hand, then released).
func (n *Node) reconcile(sessions []store.SessionRow) {
	inView := make(map[store.SessionID]store.SessionRow, len(sessions))
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
			msg := "stopping session: its source was disabled"
			switch {
			case !ok:
				msg = "stopping session: its source or partition no longer exists (bam source remove or repartition)"
			case s.PoolPaused:
				msg = "stopping session: the pool was paused (bam pause); its events wait in its source until bam resume"
			case s.SourceEnabled:
				msg = "stopping session: its source was paused; its events wait in it until it is resumed"
			}
			n.log.Info(msg, "source", id.Source, "partition", id.Partition)
			r.handoff = true
			r.s.Stop()
		case s.Owner != n.self.ID || s.Epoch != l.Epoch:
			n.logLost(&s, l.Epoch)
			r.cancel()
			delete(n.sessions, id)
			n.cfg.Metrics.OwnerChanged(id, Lost)
		}
	}
}

// logLost says why this node no longer owns a session it ran under epoch,
// from the session's row as the store holds it now. Only a peer's claim
// means a peer owns it: a fence without an owner is an operator's change
// to its source, and a release under our own epoch a peer that found this
// node dead.
func (n *Node) logLost(row *store.SessionRow, epoch int64) {
	attrs := []any{"source", row.Source, "partition", row.Partition, "epoch", epoch}
	switch {
	case row.Owner == "" && row.Epoch > epoch:
		n.log.Info("session fenced by a change to its source (bam source repartition or reset-checkpoint): nothing of the batch in hand was committed; it is claimed again from its new checkpoint",
			append(attrs, "new_epoch", row.Epoch)...)
	case row.Owner == "":
		n.log.Warn("session lost: its lease was released by a peer that found this node dead or silent (this node was paused or cut off past its lease)", attrs...)
	case row.Owner == n.self.ID:
		// Read after this node's next claim: what ended the old epoch is
		// gone from the row.
		n.log.Info("session restarted: its old epoch ended and this node claimed it again", append(attrs, "new_epoch", row.Epoch)...)
	default:
		n.log.Warn("session lost: a peer owns it now (this node was paused or cut off past its lease)",
			append(attrs, "new_owner", row.Owner, "new_epoch", row.Epoch)...)
	}
}

// explainLost logs why sessions this node ran under their leases were
// lost, found by a renewal or a refused batch, which see only that they
// are no longer ours: it reads the sessions' rows, once for all, to say
// why (logLost), or, when they cannot be read, says what it knows
// (generic).
func (n *Node) explainLost(lost []store.Lease, generic string, attrs ...any) {
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.LeaseTTL)
	defer cancel()
	rows, err := n.st.Sessions(ctx)
	byID := make(map[store.SessionID]*store.SessionRow, len(rows))
	for i := range rows {
		byID[rows[i].SessionID] = &rows[i]
	}
	for _, l := range lost {
		switch row, ok := byID[l.SessionID]; {
		case err != nil:
			n.log.Warn(generic, append([]any{"source", l.Source, "partition", l.Partition, "epoch", l.Epoch}, attrs...)...)
		case ok:
			n.logLost(row, l.Epoch)
		default:
			n.log.Info("session ended: its source or partition no longer exists (bam source remove or repartition)",
				"source", l.Source, "partition", l.Partition, "epoch", l.Epoch)
		}
	}
}

// liveNodes judges every member (doc.go, "Death verdicts"): alive while its
// heartbeat is fresh by the store's clock, unless its liveness lock vanished
// and a second signal confirms that it died. A peer found dead has its
// leases expired at once, so its sessions move now, not after the TTL; a
// wrong verdict costs each of its sessions one move. This node is alive.
func (n *Node) liveNodes(ctx context.Context, nodes []store.NodeRow) map[string]verdict {
	verdicts := map[string]verdict{n.self.ID: peerAlive}
	var peers []store.NodeRow
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
	giveUp := n.live().SourceGiveUp
	n.mu.Lock()
	defer n.mu.Unlock()
	for id, r := range n.sessions {
		since, trouble := r.s.SourceTrouble()
		if r.handoff || since.IsZero() || time.Since(since) < giveUp {
			continue
		}
		n.log.Warn("handing a session over: its source cannot be read from this node; another node will try",
			"source", id.Source, "partition", id.Partition, "failing_for", time.Since(since).Round(time.Second), "err", trouble)
		r.handoff = true
		r.giveUp = fmt.Sprintf("handed over by node %s after its source failed for %v: %s", n.self.ID, time.Since(since).Round(time.Second), trouble)
		r.s.Stop()
	}
}

// noteDraining logs when an operator starts or ends this node's drain (bam
// node drain), once each time.
func (n *Node) noteDraining(draining bool) {
	n.mu.Lock()
	was := n.draining
	n.draining = draining
	held := len(n.sessions)
	n.mu.Unlock()
	switch {
	case draining && !was:
		n.log.Info("node draining: an operator drained it (bam node drain); handing every session over, claiming none, staying up",
			"sessions", held)
	case !draining && was:
		n.log.Info("node no longer draining (bam node undrain): it takes its share of sessions again")
	}
}
