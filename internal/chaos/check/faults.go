package check

import (
	"slices"
	"strings"
	"time"
)

// Struck is one fault as the harness injected it: its kind, the name of
// the node process it struck ("" for a fault of the whole pool: a store
// restart, an outbox cut, a burst), and when it struck and was undone.
type Struck struct {
	Kind      string
	Node      string
	At, Until time.Time
}

// Span is the longest time of some kind, and the session it was seen on.
type Span struct {
	Longest time.Duration
	Session string
}

// FaultNone is the kind under which UnownedByFault counts the spans no
// fault explains (a rebalancing handoff, say).
const FaultNone = "none"

// faultReach is how long after a fault is undone a session may still be
// unowned because of it: the lease of a node that resumes has expired by
// then (at most one TTL), and the balance round that claims it comes
// within a second or two.
func (h History) faultReach() time.Duration { return h.LeaseTTL + 2*time.Second }

// byFault fills UnownedByFault and TakeoverByFault.
//
// An unowned span (longestUnowned's: from a sample without a live owner to
// the next with one) belongs to the latest fault that struck the node that
// owned the session last, begun before the span and undone at most
// faultReach before it; failing that, to the latest fault of the whole
// pool in the same window; failing that, to FaultNone.
//
// A takeover is measured for every fault that struck a node, on each
// session that node held live when it struck: from the fault's start to
// the first sample live under a newer epoch, if that comes within
// faultReach of the fault's end (else the node kept the session through
// the fault). It includes the time the lease took to expire, which the
// unowned span does not: it is what a session waited for a working owner.
func (c *checker) byFault() {
	c.r.UnownedByFault, c.r.TakeoverByFault = map[string]Span{}, map[string]Span{}
	longer := func(m map[string]Span, kind, session string, d time.Duration) {
		if d > m[kind].Longest {
			m[kind] = Span{Longest: d, Session: session}
		}
	}
	reach := c.h.faultReach()
	blame := func(owner string, start time.Time) string {
		name := c.h.NodeNames[owner]
		var node, pool *Struck
		for i := range c.h.Struck {
			f := &c.h.Struck[i]
			if f.At.After(start) || start.After(f.Until.Add(reach)) {
				continue
			}
			switch {
			case f.Node == "":
				if pool == nil || f.At.After(pool.At) {
					pool = f
				}
			case name != "" && f.Node == name:
				if node == nil || f.At.After(node.At) {
					node = f
				}
			}
		}
		switch {
		case node != nil:
			return node.Kind
		case pool != nil:
			return pool.Kind
		}
		return FaultNone
	}

	groups := groupBy(c.h.Owners, func(o *OwnerSample) (string, time.Time) { return o.Session, o.At })
	slices.SortFunc(groups, func(a, b group[string]) int { return strings.Compare(a.key, b.key) })
	for _, g := range groups {
		var start time.Time
		var owner string // of the last live sample, or of the span's first
		unowned := false
		for _, i := range g.idx {
			o := &c.h.Owners[i]
			switch {
			case o.Live && unowned:
				longer(c.r.UnownedByFault, blame(owner, start), g.key, o.At.Sub(start))
				unowned = false
			case !o.Live && !unowned:
				start, unowned = o.At, true
				if owner == "" {
					owner = o.Owner
				}
			}
			if o.Live {
				owner = o.Owner
			}
		}
		if unowned {
			end := c.h.End
			if last := c.h.Owners[g.idx[len(g.idx)-1]].At; last.After(end) {
				end = last
			}
			longer(c.r.UnownedByFault, blame(owner, start), g.key, end.Sub(start))
		}

		for _, f := range c.h.Struck {
			if f.Node == "" {
				continue
			}
			// The session's owner when the fault struck.
			var held *OwnerSample
			for _, i := range g.idx {
				o := &c.h.Owners[i]
				if o.At.After(f.At) {
					break
				}
				held = o
			}
			if held == nil || !held.Live || c.h.NodeNames[held.Owner] != f.Node {
				continue
			}
			for _, i := range g.idx {
				o := &c.h.Owners[i]
				if !o.At.After(f.At) || !o.Live || o.Epoch <= held.Epoch {
					continue
				}
				if !o.At.After(f.Until.Add(reach)) {
					longer(c.r.TakeoverByFault, f.Kind, g.key, o.At.Sub(f.At))
				}
				break
			}
		}
	}
}
