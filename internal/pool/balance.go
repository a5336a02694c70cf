package pool

import (
	"cmp"
	"slices"

	"github.com/bam-dev/bam/internal/store"
)

// View is what a node knows of the pool when it decides: the membership
// and every session, read fresh from the store.
type View struct {
	Self     string // the deciding node's id
	Nodes    []NodeView
	Sessions []SessionView
}

// NodeView is one member as the deciding node sees it.
type NodeView struct {
	ID string
	// Alive: heartbeat fresh by the store's clock and, where the driver
	// can tell, its liveness lock held (the caller decides).
	Alive bool
	// Stopping: draining on SIGTERM; it gets no new work.
	Stopping bool
}

// SessionView is one session as the deciding node sees it.
type SessionView struct {
	ID      store.SessionID
	Owner   string // node id; empty when free
	Expired bool   // the lease expired, by the store's clock
	// Enabled: the source's events are applied, which is to say it is
	// enabled and not paused (store.SessionRow.Applies). Decide needs no
	// more: the two differ only in what writers may do (doc.go).
	Enabled bool
	// GivenUpBy is the node that recently handed the session over because
	// it could not reach its source (store.SessionRow.GivenUpBy): the
	// session is dealt to it last.
	GivenUpBy string
	// MoveTo is the node an operator moved the session to
	// (store.SessionRow.MoveTo), or empty (rule 7).
	MoveTo string
}

// Plan is what a node does in one balance round: release (after committing
// the batch in hand), then claim.
type Plan struct {
	Claim   []Claim
	Release []store.SessionID
}

// Claim is a session to claim with store.Store.Claim.
type Claim struct {
	ID store.SessionID
	// PrevOwner is "" for a session without owner, else the dead or
	// expired owner being taken over (the caller expires a dead owner's
	// leases first when the store would still count them as live).
	PrevOwner string
}

// Decide returns what the node v.Self does this balance round: which
// sessions it claims and which it hands over. Every node decides for
// itself from its own fresh view, with no leader and no messages between
// nodes (DESIGN.md, promises 6-8, "Rebalance storms", "Scale").
//
// Decide is pure and deterministic: the same view and bound give the same
// plan whatever the order of v.Nodes and v.Sessions. Session ids must be
// unique; a node id listed twice is alive if either entry says so, and
// stopping if either does. maxMovesPerRound below 1 counts as 1.
//
// The rules:
//  1. Only sessions of enabled sources count (SessionView.Enabled: enabled
//     and not paused); the others are neither claimed nor counted (the
//     runtime stops the ones it still runs).
//  2. A session is free when it has no owner, its lease expired, or its
//     owner is not alive. A session held by a live stopping node is not
//     free yet: it is about to be, and counts as supply, so nobody gives
//     up a session to cover what a stopping node will hand over anyway.
//  3. Working nodes are the alive, not stopping ones. With S sessions and
//     N working nodes, lo = ⌊S/N⌋, hi = ⌈S/N⌉ and rem = S mod N nodes may
//     hold hi. Those rem places go first to nodes holding more than lo
//     (they keep one session more instead of moving it), then to the rest,
//     each group in node-id order. Every other working node's target is
//     lo. Targets add up to S, and ranking by id, not by count, keeps them
//     stable while sessions move: a node reaching its target changes no
//     other node's target.
//  4. A node holding more than its target hands over the difference,
//     always picking the same sessions from the same holding (a hash of
//     the node id and the session id ranks them, so givers spread their
//     picks). The bound is per pairing, not per giver: what the nodes
//     below target still miss once the free and soon-free sessions are
//     dealt is matched against the givers' excess, both in id order, and
//     each giver-taker pairing carries at most maxMovesPerRound sessions a
//     round (a handover pauses that session). So a node holding everything
//     serves 49 newcomers in one round, a newcomer is served by every giver
//     at once, and no node is handed more than maxMovesPerRound by any one
//     giver in a round. This one rule covers both "above hi" and
//     "leveling": when more than rem nodes hold more than lo, those ranked
//     past rem are the designated givers of one session each, exactly as
//     many as the nodes below lo miss beyond what the free, soon-free and
//     above-hi sessions cover.
//  5. A node holding less than its target claims free sessions, as many as
//     it misses, unbounded (claiming a free session pauses nothing, so
//     failover is one round). Every node computes the same hand-out from
//     the same view: free sessions interleaved by partition then source
//     (so nobody gets a whole source), dealt in node-id order to the nodes
//     below target, each taking a run as long as what it misses. From one
//     view no two nodes claim the same session; from different views a
//     collision only costs the loser an ErrNotClaimable. A node that is
//     alive but never decides leaves what is dealt to it free: a node
//     whose balance loop is stuck must stop heartbeating. A session a
//     node gave up because it could not read its source
//     (SessionView.GivenUpBy) is dealt to it last (deal), and never handed
//     over for balance by the node that holds it.
//  6. A stopping node hands over everything it holds at once and claims
//     nothing; a dead or stopping node is never a target. A node that is
//     not alive in its own view, or absent from it, does nothing. A node
//     an operator drains (bam node drain) is a stopping node that stays up.
//  7. A session moved to a working node T (SessionView.MoveTo) counts as
//     T's, wherever it is: its owner, if another node, hands it over this
//     round, beyond any bound; once it is free, T claims it and no other
//     node does; T never hands it over for balance. The balance then
//     counts T one session more, and rule 4 evens that out with T's other
//     sessions, so the moved one stays. A move to a node that is not
//     working (dead, stopping, unknown) is ignored: the session is dealt
//     as any other, and the first claim by another node forgets the move.
//
// Why a view a round old does not thrash: while sessions move, givers only
// leave the giving set and targets depend on ids, so an old view never asks
// a node to hand over more than it holds above target, and the sessions
// given add up to what the nodes below target miss: each one moves once,
// to a node that needs it. The same holding gives the same picks, so a
// decision repeated from an old view repeats no-ops (a release of a session
// already handed over, a claim whose previous owner changed). The
// simulation in sim_test.go checks it: from such views the pool balances a
// few rounds later, with no extra moves.
//
// Why there is no storm: nobody hands over a session that no node below
// target needs (excess and needs add up), so a node joining and leaving
// moves only its share each way, and the pool-wide handovers of a round
// are at most maxMovesPerRound per giver-taker pairing (fewer pairings than
// givers plus takers). A pool can move its whole imbalance at once only
// when every pairing is small: exactly the case of many nodes each missing
// a small share.
func Decide(v View, maxMovesPerRound int) Plan {
	b := assess(v)
	if !b.selfAlive {
		return Plan{}
	}
	if b.selfStopping {
		return Plan{Release: b.mine}
	}
	// Rule 7 first: what moves goes, beyond the bound, whatever balance
	// wants besides.
	var p Plan
	p.Release = append(p.Release, b.moveOut...)
	p.Claim = append(p.Claim, b.moveIn...)
	held, target := b.working[b.self].held, b.working[b.self].target
	if held > target {
		type ranked struct {
			rank uint64
			id   store.SessionID
		}
		// A session another node gave up (it could not read the source) is
		// never handed over for balance: it found a node that reads its
		// source, and the nodes below target may be the ones that cannot.
		// Nor is a session moved here (rule 7).
		mine := make([]ranked, 0, len(b.mine))
		for _, id := range b.mine {
			if !b.givenUp[id] && !b.movedHere[id] {
				mine = append(mine, ranked{releaseRank(v.Self, id), id})
			}
		}
		slices.SortFunc(mine, func(x, y ranked) int { return cmp.Or(cmp.Compare(y.rank, x.rank), compareID(x.id, y.id)) })
		for _, r := range mine[:min(b.handovers(b.self, max(maxMovesPerRound, 1)), len(mine))] {
			p.Release = append(p.Release, r.id)
		}
		return p
	}
	for _, s := range b.deal()[b.self] {
		p.Claim = append(p.Claim, Claim{ID: s.ID, PrevOwner: s.Owner})
	}
	return p
}

// deal hands the free sessions out to the working nodes (rule 5), by index
// in b.working. The nodes below target, in id order, each take the next
// sessions of the hand-out order, as many as they miss, passing over the
// sessions they gave up (SessionView.GivenUpBy), which stay for the nodes
// after them. A session every node below target passed over goes to the
// first working node, in id order, that did not give it up, beyond its
// target (a session waiting for a node that reaches its source matters more
// than the balance, which a later round restores with one move), and to the
// node that gave it up only when no other node works.
func (b balance) deal() [][]SessionView {
	out := make([][]SessionView, len(b.working))
	taken := make([]bool, len(b.free))
	first := 0 // every session before it is taken
	for i, m := range b.working {
		need := m.target - m.held
		for j := first; j < len(b.free) && need > 0; j++ {
			if taken[j] || b.free[j].GivenUpBy == m.id {
				continue
			}
			taken[j] = true
			out[i] = append(out[i], b.free[j])
			need--
			if j == first {
				for first < len(b.free) && taken[first] {
					first++
				}
			}
		}
	}
	for j := first; j < len(b.free); j++ {
		if taken[j] {
			continue
		}
		to := -1
		for i, m := range b.working {
			if m.id != b.free[j].GivenUpBy {
				to = i
				break
			}
		}
		if to < 0 && len(b.working) > 0 {
			to = 0 // the only working node gave it up: it tries again
		}
		if to >= 0 {
			out[to] = append(out[to], b.free[j])
		}
	}
	return out
}

// balance is what a view says of the pool, as Decide uses it.
type balance struct {
	selfAlive, selfStopping bool
	working                 []member // alive and not stopping, by id
	self                    int      // Self's index in working; -1 when not working
	sessions                int      // enabled sessions
	lo, hi                  int
	soonFree                int                      // enabled sessions held by live stopping nodes
	free                    []SessionView            // enabled and free, in hand-out order
	mine                    []store.SessionID        // held by Self (all of them if Self is stopping)
	givenUp                 map[store.SessionID]bool // held sessions that another node gave up
	movedHere               map[store.SessionID]bool // held sessions moved to Self (rule 7)
	moveOut                 []store.SessionID        // held by Self, moved to another working node
	moveIn                  []Claim                  // free, moved to Self
}

// assessMove files a session moved to a working node (rule 7), counted as
// that node's by the caller: Self hands it over when it holds it for
// another node, claims it when it is free (rule 2) and moved to Self, and
// keeps it out of its balance handovers when it holds it moved to itself.
func (b *balance) assessMove(self string, s SessionView, toSelf, free bool) {
	switch {
	case toSelf && s.Owner == self && !free:
		b.mine = append(b.mine, s.ID)
		if b.movedHere == nil {
			b.movedHere = map[store.SessionID]bool{}
		}
		b.movedHere[s.ID] = true
	case toSelf && free:
		b.moveIn = append(b.moveIn, Claim{ID: s.ID, PrevOwner: s.Owner})
	case !toSelf && s.Owner == self && !free:
		b.moveOut = append(b.moveOut, s.ID)
	}
}

// member is a working node.
type member struct {
	id     string
	held   int // enabled sessions it holds
	target int // what it should hold; targets add up to sessions
}

func assess(v View) balance {
	// One record per node id, found with one map lookup per session.
	type node struct {
		alive, stopping bool
		held            int
	}
	index := make(map[string]int, len(v.Nodes))
	ids := make([]string, 0, len(v.Nodes))
	var nodes []node
	for _, n := range v.Nodes {
		i, ok := index[n.ID]
		if !ok {
			i = len(nodes)
			index[n.ID] = i
			ids = append(ids, n.ID)
			nodes = append(nodes, node{})
		}
		nodes[i].alive = nodes[i].alive || n.Alive
		nodes[i].stopping = nodes[i].stopping || n.Stopping
	}
	b := balance{self: -1}
	self, ok := index[v.Self]
	if !ok {
		return b
	}
	b.selfAlive, b.selfStopping = nodes[self].alive, nodes[self].stopping

	lastOwner, last, lastKnown := "", 0, false // sessions often come grouped by owner
	for _, s := range v.Sessions {
		if b.selfStopping {
			// A clean stop hands over every lease, enabled or not.
			if s.Owner == v.Self {
				b.mine = append(b.mine, s.ID)
			}
			continue
		}
		if !s.Enabled {
			continue
		}
		b.sessions++
		if to, moving := index[s.MoveTo]; moving && s.MoveTo != "" && nodes[to].alive && !nodes[to].stopping {
			owner, known := index[s.Owner]
			free := s.Owner == "" || s.Expired || !known || !nodes[owner].alive
			b.assessMove(v.Self, s, to == self, free)
			nodes[to].held++
			continue
		}
		if s.Owner != lastOwner {
			lastOwner = s.Owner
			last, lastKnown = index[s.Owner]
		}
		switch {
		case s.Owner == "" || s.Expired || !lastKnown || !nodes[last].alive:
			b.free = append(b.free, s)
		case nodes[last].stopping:
			b.soonFree++
		default:
			nodes[last].held++
			if last == self {
				b.mine = append(b.mine, s.ID)
				if s.GivenUpBy != "" && s.GivenUpBy != v.Self {
					if b.givenUp == nil {
						b.givenUp = map[store.SessionID]bool{}
					}
					b.givenUp[s.ID] = true
				}
			}
		}
	}
	slices.SortFunc(b.mine, compareID)
	slices.SortFunc(b.free, func(x, y SessionView) int {
		return cmp.Or(cmp.Compare(x.ID.Partition, y.ID.Partition), cmp.Compare(x.ID.Source, y.ID.Source))
	})

	for i, n := range nodes {
		if n.alive && !n.stopping {
			b.working = append(b.working, member{id: ids[i], held: n.held})
		}
	}
	if len(b.working) == 0 {
		return b
	}
	slices.SortFunc(b.working, func(x, y member) int { return cmp.Compare(x.id, y.id) })
	n := len(b.working)
	b.lo, b.hi = b.sessions/n, (b.sessions+n-1)/n
	// The rem places at hi: nodes holding more than lo first, then the
	// others, each in id order.
	places := b.sessions % n
	for pass := range 2 {
		for i := range b.working {
			m := &b.working[i]
			if pass == 0 {
				m.target = b.lo
			}
			if places > 0 && (m.held > b.lo) == (pass == 0) {
				m.target = b.hi
				places--
			}
		}
	}
	for i, m := range b.working {
		if m.id == v.Self {
			b.self = i
		}
	}
	return b
}

// handovers returns how many sessions the working node giver hands over
// this round (rule 4). The nodes below target, in id order, are first
// served by the free and the soon-free sessions, as the hand-out deals
// them; what each still misses is matched against the excess of the nodes
// above target, both in id order, like two merged queues. Each pairing of
// a giver with a taker carries at most bound sessions a round; the giver
// hands over the sum of its pairings. The pairings cover every excess, so
// over the rounds each giver hands over exactly what it holds above target.
func (b balance) handovers(giver, bound int) int {
	supply := len(b.free) + b.soonFree
	var missing []int // by the nodes below target, in id order
	for _, m := range b.working {
		if need := m.target - m.held; need > supply {
			missing = append(missing, need-supply)
			supply = 0
		} else if need > 0 {
			supply -= need
		}
	}
	out, t := 0, 0
	for i, m := range b.working[:giver+1] {
		for excess := m.held - m.target; excess > 0 && t < len(missing); {
			paired := min(excess, missing[t])
			if i == giver {
				out += min(paired, bound)
			}
			excess -= paired
			if missing[t] -= paired; missing[t] == 0 {
				t++
			}
		}
	}
	return out
}

// releaseRank orders the sessions a node hands over: the highest first.
// It is fixed per node and session, so a node deciding twice from views
// of the same holding picks the same sessions, and differs between nodes.
func releaseRank(node string, id store.SessionID) uint64 {
	// FNV-1a over node, source and partition.
	const prime = 1099511628211
	h := uint64(14695981039346656037)
	add := func(s string) {
		for i := range len(s) {
			h = (h ^ uint64(s[i])) * prime
		}
		h *= prime // a zero byte between fields (h ^ 0 == h)
	}
	add(node)
	add(id.Source)
	for p := uint64(id.Partition); ; p >>= 8 {
		h = (h ^ (p & 0xff)) * prime
		if p < 0x100 {
			break
		}
	}
	return h
}

func compareID(x, y store.SessionID) int {
	return cmp.Or(cmp.Compare(x.Source, y.Source), cmp.Compare(x.Partition, y.Partition))
}
