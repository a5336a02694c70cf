package check

import (
	"slices"
	"strings"
	"time"
)

// checkSessions checks promise 1 over the claims and the session table, and
// that the drain left every session with a live owner.
func (c *checker) checkSessions() {
	c.checkSplitBrain()

	// The final state of each session comes after every sample of the
	// run, whatever its At says.
	finals := make(map[string]*OwnerSample, len(c.s.Sessions))
	for i := range c.s.Sessions {
		finals[c.s.Sessions[i].Session] = &c.s.Sessions[i]
	}
	for _, g := range groupBy(c.h.Owners, func(o *OwnerSample) (string, time.Time) { return o.Session, o.At }) {
		var prev *OwnerSample
		chain := func(o *OwnerSample, final bool) {
			if o.Owner == "" {
				return
			}
			if prev != nil && o.Epoch < prev.Epoch {
				where := "the final state"
				if !final {
					where = "the session table at " + stamp(o.At)
				}
				c.add(KindEpochRegressed, "session %s: %s showed epoch %d (node %s) after epoch %d (node %s) at %s",
					g.key, where, o.Epoch, o.Owner, prev.Epoch, prev.Owner, stamp(prev.At))
			}
			prev = o
		}
		for _, i := range g.idx {
			chain(&c.h.Owners[i], false)
		}
		if o, ok := finals[g.key]; ok {
			chain(o, true)
		}
	}

	// A node's own claims of a session rise in its log. Across nodes, the
	// time of a log line is not the time of its claim's commit: a node
	// stopped (SIGSTOP) between the two logs its claim seconds later, after
	// a newer claim by another node. The session table, sampled from the
	// store, is what orders epochs across nodes (above).
	claims := groupBy(c.h.Claims, func(cl *Claim) (string, time.Time) { return cl.Session + " " + cl.Node, cl.At })
	for _, g := range claims {
		for n := 1; n < len(g.idx); n++ {
			prev, cl := &c.h.Claims[g.idx[n-1]], &c.h.Claims[g.idx[n]]
			if cl.Epoch < prev.Epoch {
				c.add(KindEpochRegressed, "session %s: node %s claimed epoch %d at %s after node %s claimed epoch %d at %s",
					g.key, cl.Node, cl.Epoch, stamp(cl.At), prev.Node, prev.Epoch, stamp(prev.At))
			}
		}
	}

	for _, o := range c.s.Sessions {
		if !o.Live {
			owner := o.Owner
			if owner == "" {
				owner = "none"
			}
			c.add(KindUnowned, "session %s has no live owner after the drain (owner %s, epoch %d)", o.Session, owner, o.Epoch)
		}
	}
}

// checkSplitBrain reports every (session, epoch) more than one node was seen
// holding, in the claims, the session table or its final state.
func (c *checker) checkSplitBrain() {
	type term struct {
		session string
		epoch   int64
	}
	nodes := make(map[term][]string)
	var order []term
	see := func(session string, epoch int64, node string) {
		if node == "" {
			return
		}
		t := term{session, epoch}
		held, ok := nodes[t]
		if !ok {
			order = append(order, t)
		}
		if !slices.Contains(held, node) {
			nodes[t] = append(held, node)
		}
	}
	for _, cl := range c.h.Claims {
		see(cl.Session, cl.Epoch, cl.Node)
	}
	for _, o := range c.h.Owners {
		see(o.Session, o.Epoch, o.Owner)
	}
	for _, o := range c.s.Sessions {
		see(o.Session, o.Epoch, o.Owner)
	}
	for _, t := range order {
		if held := nodes[t]; len(held) > 1 {
			c.add(KindSplitBrain, "session %s epoch %d held by nodes %s", t.session, t.epoch, strings.Join(held, ", "))
		}
	}
}

// longestUnowned finds, over History.Owners, the longest span a session
// went from a sample without a live owner to the next sample with one. A
// span that no live sample ends runs to History.End, or to the session's
// last sample if that is later (the drain's samples still count).
func (c *checker) longestUnowned() {
	groups := groupBy(c.h.Owners, func(o *OwnerSample) (string, time.Time) { return o.Session, o.At })
	slices.SortFunc(groups, func(a, b group[string]) int { return strings.Compare(a.key, b.key) })
	for _, g := range groups {
		var start time.Time
		unowned := false
		for _, i := range g.idx {
			o := &c.h.Owners[i]
			switch {
			case !o.Live && !unowned:
				start, unowned = o.At, true
			case o.Live && unowned:
				c.unownedFor(g.key, o.At.Sub(start))
				unowned = false
			}
		}
		if unowned {
			end := c.h.End
			if last := c.h.Owners[g.idx[len(g.idx)-1]].At; last.After(end) {
				end = last
			}
			c.unownedFor(g.key, end.Sub(start))
		}
	}
}

func (c *checker) unownedFor(session string, d time.Duration) {
	if d > c.r.LongestUnowned {
		c.r.LongestUnowned, c.r.LongestUnownedSession = d, session
	}
}

// group is the indices of the elements of a slice that share a key, in
// time order.
type group[K comparable] struct {
	key K
	idx []int
}

// groupBy groups the elements of xs by key, in the order keys first appear,
// each group sorted by time (stably: ties keep the input's order).
func groupBy[T any, K comparable](xs []T, by func(*T) (K, time.Time)) []group[K] {
	at := make(map[K]int)
	var groups []group[K]
	for i := range xs {
		k, _ := by(&xs[i])
		g, ok := at[k]
		if !ok {
			g = len(groups)
			at[k] = g
			groups = append(groups, group[K]{key: k})
		}
		groups[g].idx = append(groups[g].idx, i)
	}
	for _, g := range groups {
		slices.SortStableFunc(g.idx, func(a, b int) int {
			_, ta := by(&xs[a])
			_, tb := by(&xs[b])
			return ta.Compare(tb)
		})
	}
	return groups
}
