package pool

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"github.com/bam-dev/bam/internal/store"
)

func sid(source string, partition int) store.SessionID {
	return store.SessionID{Source: source, Partition: partition}
}

func up(ids ...string) []NodeView {
	var ns []NodeView
	for _, id := range ids {
		ns = append(ns, NodeView{ID: id, Alive: true})
	}
	return ns
}

// owned returns n enabled sessions of source src, all held by owner
// ("" for free).
func owned(src, owner string, n int) []SessionView {
	var ss []SessionView
	for p := range n {
		ss = append(ss, SessionView{ID: sid(src, p), Owner: owner, Enabled: true})
	}
	return ss
}

// applyPlan does to sessions what the store would do with p, decided by node.
func applyPlan(sessions []SessionView, node string, p Plan) {
	for _, id := range p.Release {
		for i := range sessions {
			if sessions[i].ID == id && sessions[i].Owner == node {
				sessions[i].Owner, sessions[i].Expired = "", false
			}
		}
	}
	for _, c := range p.Claim {
		for i := range sessions {
			if sessions[i].ID == c.ID && sessions[i].Owner == c.PrevOwner {
				sessions[i].Owner, sessions[i].Expired = node, false
			}
		}
	}
}

// targets returns each working node's target.
func targets(b balance) map[string]int {
	t := map[string]int{}
	for _, m := range b.working {
		t[m.id] = m.target
	}
	return t
}

func holding(sessions []SessionView, node string) int {
	n := 0
	for _, s := range sessions {
		if s.Owner == node && s.Enabled {
			n++
		}
	}
	return n
}

// The seed scenario (DESIGN.md): node 1 owns both sessions, node 2 joins,
// node 1 gives up exactly one and keeps the other running, node 2 takes it;
// node 1 dies, node 2 takes its session too.
func TestDecideSeedScenario(t *testing.T) {
	a, b := sid("A", 0), sid("B", 0)
	sessions := []SessionView{
		{ID: a, Owner: "node1", Enabled: true},
		{ID: b, Owner: "node1", Enabled: true},
	}
	nodes := up("node1")

	// A: alone, node 1 keeps both.
	if p := Decide(View{Self: "node1", Nodes: nodes, Sessions: sessions}, 1); !reflect.DeepEqual(p, Plan{}) {
		t.Fatalf("alone: plan = %+v, want nothing", p)
	}

	// B: node 2 joins.
	nodes = up("node1", "node2")
	p1 := Decide(View{Self: "node1", Nodes: nodes, Sessions: sessions}, 5)
	if len(p1.Release) != 1 || len(p1.Claim) != 0 {
		t.Fatalf("node1 after join: plan = %+v, want exactly one release", p1)
	}
	given := p1.Release[0]
	if p := Decide(View{Self: "node2", Nodes: nodes, Sessions: sessions}, 5); !reflect.DeepEqual(p, Plan{}) {
		t.Fatalf("node2 before the handover: plan = %+v, want nothing", p)
	}
	applyPlan(sessions, "node1", p1)
	if p := Decide(View{Self: "node1", Nodes: nodes, Sessions: sessions}, 5); !reflect.DeepEqual(p, Plan{}) {
		t.Fatalf("node1 after its handover: plan = %+v, want nothing (no take-back)", p)
	}
	p2 := Decide(View{Self: "node2", Nodes: nodes, Sessions: sessions}, 5)
	if want := (Plan{Claim: []Claim{{ID: given}}}); !reflect.DeepEqual(p2, want) {
		t.Fatalf("node2 after the handover: plan = %+v, want %+v", p2, want)
	}
	applyPlan(sessions, "node2", p2)
	for _, self := range []string{"node1", "node2"} {
		if p := Decide(View{Self: self, Nodes: nodes, Sessions: sessions}, 5); !reflect.DeepEqual(p, Plan{}) {
			t.Fatalf("%s when balanced: plan = %+v, want nothing", self, p)
		}
	}

	// C, D: node 1 dies; node 2 takes its session over.
	nodes[0].Alive = false
	kept := a
	if given == a {
		kept = b
	}
	p2 = Decide(View{Self: "node2", Nodes: nodes, Sessions: sessions}, 1)
	if want := (Plan{Claim: []Claim{{ID: kept, PrevOwner: "node1"}}}); !reflect.DeepEqual(p2, want) {
		t.Fatalf("node2 after node1 died: plan = %+v, want %+v", p2, want)
	}
}

func TestDecideTakesOverDeadOwner(t *testing.T) {
	nodes := append(up("n1", "n2", "n3"), NodeView{ID: "dead"})
	var sessions []SessionView
	sessions = append(sessions, owned("a", "n1", 2)...)
	sessions = append(sessions, owned("b", "n2", 2)...)
	sessions = append(sessions, owned("c", "n3", 2)...)
	sessions = append(sessions, owned("d", "dead", 6)...)

	// From one view the survivors claim disjoint sets covering every
	// session of the dead node, unbounded by maxMovesPerRound.
	claimed := map[store.SessionID]string{}
	for _, self := range []string{"n1", "n2", "n3"} {
		p := Decide(View{Self: self, Nodes: nodes, Sessions: sessions}, 1)
		if len(p.Release) != 0 || len(p.Claim) != 2 {
			t.Fatalf("%s: plan = %+v, want 2 claims", self, p)
		}
		for _, c := range p.Claim {
			if c.PrevOwner != "dead" {
				t.Errorf("%s claims %v from %q, want from dead", self, c.ID, c.PrevOwner)
			}
			if other, dup := claimed[c.ID]; dup {
				t.Errorf("%v claimed by both %s and %s", c.ID, other, self)
			}
			claimed[c.ID] = self
		}
	}
	if len(claimed) != 6 {
		t.Errorf("claimed %d sessions of the dead node, want 6", len(claimed))
	}

	// A node missing from the membership is dead too.
	sessions = owned("a", "gone", 3)
	p := Decide(View{Self: "n1", Nodes: up("n1"), Sessions: sessions}, 1)
	if len(p.Claim) != 3 || p.Claim[0].PrevOwner != "gone" {
		t.Errorf("sessions of a forgotten node: plan = %+v, want 3 claims from gone", p)
	}
}

func TestDecideExpiredLeaseIsFree(t *testing.T) {
	sessions := owned("a", "n2", 2)
	sessions[0].Expired = true
	p := Decide(View{Self: "n1", Nodes: up("n1", "n2"), Sessions: sessions}, 1)
	if want := (Plan{Claim: []Claim{{ID: sid("a", 0), PrevOwner: "n2"}}}); !reflect.DeepEqual(p, want) {
		t.Errorf("plan = %+v, want %+v", p, want)
	}

	// Our own expired lease is no longer ours: it is claimed anew.
	sessions = owned("a", "n1", 1)
	sessions[0].Expired = true
	p = Decide(View{Self: "n1", Nodes: up("n1"), Sessions: sessions}, 1)
	if want := (Plan{Claim: []Claim{{ID: sid("a", 0), PrevOwner: "n1"}}}); !reflect.DeepEqual(p, want) {
		t.Errorf("own expired lease: plan = %+v, want %+v", p, want)
	}
}

func TestDecideStoppingNode(t *testing.T) {
	nodes := append(up("n1", "n2"), NodeView{ID: "n3", Alive: true, Stopping: true})
	var sessions []SessionView
	sessions = append(sessions, owned("a", "n1", 2)...)
	sessions = append(sessions, owned("b", "n2", 2)...)
	sessions = append(sessions, owned("c", "n3", 4)...)
	sessions = append(sessions, SessionView{ID: sid("off", 0), Owner: "n3"}) // disabled

	b := assess(View{Self: "n1", Nodes: nodes, Sessions: sessions})
	if want := map[string]int{"n1": 4, "n2": 4}; !reflect.DeepEqual(targets(b), want) {
		t.Errorf("targets = %v, want %v: a stopping node is never a target", targets(b), want)
	}
	if b.lo != 4 || b.hi != 4 || b.soonFree != 4 {
		t.Errorf("lo, hi, soon free = %d, %d, %d; want 4, 4, 4", b.lo, b.hi, b.soonFree)
	}
	// Its sessions are not free while it holds them.
	for _, self := range []string{"n1", "n2"} {
		if p := Decide(View{Self: self, Nodes: nodes, Sessions: sessions}, 1); !reflect.DeepEqual(p, Plan{}) {
			t.Errorf("%s while n3 drains: plan = %+v, want nothing", self, p)
		}
	}
	// It hands over everything at once, enabled or not, unbounded.
	p3 := Decide(View{Self: "n3", Nodes: nodes, Sessions: sessions}, 1)
	want := []store.SessionID{sid("c", 0), sid("c", 1), sid("c", 2), sid("c", 3), sid("off", 0)}
	if len(p3.Claim) != 0 || !reflect.DeepEqual(p3.Release, want) {
		t.Fatalf("stopping n3: plan = %+v, want release of %v", p3, want)
	}
	applyPlan(sessions, "n3", p3)
	// The others take them; the stopping node takes none back.
	for _, self := range []string{"n1", "n2"} {
		p := Decide(View{Self: self, Nodes: nodes, Sessions: sessions}, 1)
		if len(p.Claim) != 2 || len(p.Release) != 0 {
			t.Errorf("%s after n3 drained: plan = %+v, want 2 claims", self, p)
		}
		applyPlan(sessions, self, p)
	}
	if p := Decide(View{Self: "n3", Nodes: nodes, Sessions: sessions}, 1); !reflect.DeepEqual(p, Plan{}) {
		t.Errorf("stopping n3 after it drained: plan = %+v, want nothing", p)
	}
	if h1, h2 := holding(sessions, "n1"), holding(sessions, "n2"); h1 != 4 || h2 != 4 {
		t.Errorf("holding n1, n2 = %d, %d; want 4, 4", h1, h2)
	}

	// What a stopping node is about to hand over is nobody's reason to
	// give: n2 waits for it instead of taking from n1.
	sessions = append(owned("a", "n1", 4), owned("c", "n3", 4)...)
	for _, self := range []string{"n1", "n2"} {
		if p := Decide(View{Self: self, Nodes: nodes, Sessions: sessions}, 1); !reflect.DeepEqual(p, Plan{}) {
			t.Errorf("%s: plan = %+v, want nothing", self, p)
		}
	}
}

func TestDecideIgnoresDisabledSources(t *testing.T) {
	sessions := owned("on", "n1", 2)
	for p := range 6 { // free, and held by n1, but disabled
		owner := ""
		if p < 3 {
			owner = "n1"
		}
		sessions = append(sessions, SessionView{ID: sid("off", p), Owner: owner})
	}
	nodes := up("n1", "n2")
	b := assess(View{Self: "n1", Nodes: nodes, Sessions: sessions})
	if b.sessions != 2 || b.working[0].held != 2 || len(b.free) != 0 || b.lo != 1 || b.hi != 1 {
		t.Errorf("sessions %d, n1 holds %d, free %d, lo %d, hi %d; want 2, 2, 0, 1, 1",
			b.sessions, b.working[0].held, len(b.free), b.lo, b.hi)
	}
	p1 := Decide(View{Self: "n1", Nodes: nodes, Sessions: sessions}, 10)
	if len(p1.Release) != 1 || p1.Release[0].Source != "on" || len(p1.Claim) != 0 {
		t.Errorf("n1: plan = %+v, want one release of an enabled session", p1)
	}
	if p := Decide(View{Self: "n2", Nodes: nodes, Sessions: sessions}, 10); !reflect.DeepEqual(p, Plan{}) {
		t.Errorf("n2: plan = %+v, want nothing (disabled sessions are never claimed)", p)
	}
}

// Exact figures: 10 sessions over 3 working nodes (one more stopping, one
// dead) make lo 3, hi 4, one node at hi.
func TestAssessTargets(t *testing.T) {
	nodes := append(up("n1", "n2", "n3"),
		NodeView{ID: "n4", Alive: true, Stopping: true}, NodeView{ID: "n5"})
	var sessions []SessionView
	sessions = append(sessions, owned("a", "n1", 5)...)
	sessions = append(sessions, owned("b", "n2", 4)...)
	sessions = append(sessions, owned("c", "n5", 1)...)                                    // dead: free
	sessions = append(sessions, SessionView{ID: sid("d", 0), Owner: "n4", Enabled: false}) // disabled
	b := assess(View{Self: "n3", Nodes: nodes, Sessions: sessions})
	if b.sessions != 10 || b.lo != 3 || b.hi != 4 || len(b.free) != 1 || b.soonFree != 0 {
		t.Fatalf("sessions %d, lo %d, hi %d, free %d, soon free %d; want 10, 3, 4, 1, 0",
			b.sessions, b.lo, b.hi, len(b.free), b.soonFree)
	}
	// n1 and n2 both hold more than lo: n1 comes first by id and keeps hi,
	// n2 gives one, n3 takes the free one and n2's.
	want := map[string]int{"n1": 4, "n2": 3, "n3": 3}
	if !reflect.DeepEqual(targets(b), want) {
		t.Errorf("targets = %v, want %v", targets(b), want)
	}
	p1 := Decide(View{Self: "n1", Nodes: nodes, Sessions: sessions}, 10)
	p2 := Decide(View{Self: "n2", Nodes: nodes, Sessions: sessions}, 10)
	p3 := Decide(View{Self: "n3", Nodes: nodes, Sessions: sessions}, 10)
	if len(p1.Release) != 1 || len(p2.Release) != 1 || len(p3.Claim) != 1 || p3.Claim[0].PrevOwner != "n5" {
		t.Errorf("plans n1 %+v, n2 %+v, n3 %+v; want 1 and 1 releases, n3 claiming from n5", p1, p2, p3)
	}

	// Nobody above lo: the hi places go to the first ids.
	b = assess(View{Self: "n1", Nodes: up("n1", "n2", "n3"), Sessions: owned("a", "", 5)})
	if want := map[string]int{"n1": 2, "n2": 2, "n3": 1}; !reflect.DeepEqual(targets(b), want) {
		t.Errorf("targets from all free = %v, want %v", targets(b), want)
	}
}

// The bound is per giver-taker pairing: n1 holds 10 of 10 over 5 nodes
// (2 each), so it is paired with each of the 4 others for 2 sessions.
func TestDecideBoundsHandovers(t *testing.T) {
	nodes := up("n1", "n2", "n3", "n4", "n5")
	sessions := owned("a", "n1", 10)
	for _, tc := range []struct{ max, want int }{{100, 8}, {3, 8}, {2, 8}, {1, 4}, {0, 4}, {-5, 4}} {
		p := Decide(View{Self: "n1", Nodes: nodes, Sessions: sessions}, tc.max)
		if len(p.Release) != tc.want || len(p.Claim) != 0 {
			t.Errorf("maxMovesPerRound %d: %d releases, %d claims; want %d, 0", tc.max, len(p.Release), len(p.Claim), tc.want)
		}
	}
	// One taker missing 5: one pairing, bounded.
	for _, tc := range []struct{ max, want int }{{100, 5}, {3, 3}, {1, 1}} {
		p := Decide(View{Self: "n1", Nodes: up("n1", "n2"), Sessions: sessions}, tc.max)
		if len(p.Release) != tc.want {
			t.Errorf("two nodes, maxMovesPerRound %d: %d releases, want %d", tc.max, len(p.Release), tc.want)
		}
	}
	// Two givers, two takers: 12 sessions over 4 nodes (3 each). n1 holds
	// 7 (4 too many), n2 holds 4 (1 too many), one is free; n3 and n4 hold
	// none. The free session goes to n3, which still misses 2, n4 misses
	// 3. In id order the queues pair n1-n3 for 2, n1-n4 for 2, n2-n4 for 1.
	mixed := append(owned("a", "n1", 7), owned("b", "n2", 4)...)
	mixed = append(mixed, owned("c", "", 1)...)
	v := View{Nodes: up("n1", "n2", "n3", "n4"), Sessions: mixed}
	for _, tc := range []struct {
		max    int
		n1, n2 int
	}{{100, 4, 1}, {2, 4, 1}, {1, 2, 1}} {
		v.Self = "n1"
		n1 := len(Decide(v, tc.max).Release)
		v.Self = "n2"
		n2 := len(Decide(v, tc.max).Release)
		if n1 != tc.n1 || n2 != tc.n2 {
			t.Errorf("two givers, bound %d: n1 releases %d, n2 %d; want %d, %d", tc.max, n1, n2, tc.n1, tc.n2)
		}
	}
	// Claims of free sessions are not bounded.
	p := Decide(View{Self: "n1", Nodes: up("n1"), Sessions: owned("a", "", 10)}, 1)
	if len(p.Claim) != 10 {
		t.Errorf("alone with 10 free sessions: %d claims, want 10", len(p.Claim))
	}
}

// Leveling: when the nodes below lo cannot be served from free sessions,
// exactly the missing number of designated givers gives one each, whoever
// decides from the same view.
func TestDecideLevelingDesignatedGivers(t *testing.T) {
	var ids []string
	var sessions []SessionView
	for i := 1; i <= 10; i++ {
		id := fmt.Sprintf("n%02d", i)
		ids = append(ids, id)
		sessions = append(sessions, owned("s"+id, id, 3)...)
	}
	nodes := up(append(ids, "n11")...) // 30 sessions, 11 nodes: lo 2, hi 3, 8 at hi
	var released []string
	plans := map[string]Plan{}
	for _, self := range append(ids, "n11") {
		p := Decide(View{Self: self, Nodes: nodes, Sessions: sessions}, 5)
		plans[self] = p
		if len(p.Claim) != 0 {
			t.Errorf("%s claims %v with nothing free", self, p.Claim)
		}
		if len(p.Release) > 1 {
			t.Errorf("%s releases %d, want at most 1", self, len(p.Release))
		}
		if len(p.Release) == 1 {
			released = append(released, self)
		}
	}
	if want := []string{"n09", "n10"}; !slices.Equal(released, want) {
		t.Fatalf("givers = %v, want %v (what n11 misses, the last ids)", released, want)
	}

	// One giver has handed over, the other not yet: the other still
	// gives the same session, and nobody else starts giving.
	applyPlan(sessions, "n10", plans["n10"])
	for _, self := range ids {
		p := Decide(View{Self: self, Nodes: nodes, Sessions: sessions}, 5)
		want := Plan{}
		if self == "n09" {
			want = plans["n09"]
		}
		if !reflect.DeepEqual(p, want) {
			t.Errorf("%s after n10 gave: plan = %+v, want %+v", self, p, want)
		}
	}
	applyPlan(sessions, "n09", plans["n09"])
	p := Decide(View{Self: "n11", Nodes: nodes, Sessions: sessions}, 5)
	if len(p.Claim) != 2 {
		t.Fatalf("n11: plan = %+v, want 2 claims", p)
	}
	applyPlan(sessions, "n11", p)
	for _, self := range append(ids, "n11") {
		if p := Decide(View{Self: self, Nodes: nodes, Sessions: sessions}, 5); !reflect.DeepEqual(p, Plan{}) {
			t.Errorf("%s when balanced: plan = %+v, want nothing", self, p)
		}
	}

	// When free sessions cover what the newcomer misses, nobody gives.
	sessions = append(sessions[:0:0], sessions...)
	sessions = append(sessions, owned("extra", "", 3)...)
	nodes = append(nodes, NodeView{ID: "n12", Alive: true}) // 33 sessions, 12 nodes: lo 2, hi 3, 9 at hi
	for _, self := range append(ids, "n11") {
		p := Decide(View{Self: self, Nodes: nodes, Sessions: sessions}, 5)
		if len(p.Release) != 0 {
			t.Errorf("%s releases %v although 3 free sessions cover n12", self, p.Release)
		}
	}
}

// From one view, many nodes claim disjoint sessions, all of them, each
// node spread over the sources.
func TestDecideClaimsFromOneViewAreDisjoint(t *testing.T) {
	var sessions []SessionView
	for s := range 10 {
		sessions = append(sessions, owned(fmt.Sprintf("src%d", s), "", 100)...)
	}
	sessions = sessions[:999] // 999 over 50: lo 19, hi 20
	var nodes []NodeView
	for i := range 50 {
		nodes = append(nodes, NodeView{ID: fmt.Sprintf("node%02d", i), Alive: true})
	}
	claimed := map[store.SessionID]string{}
	for _, n := range nodes {
		p := Decide(View{Self: n.ID, Nodes: nodes, Sessions: sessions}, 1)
		if len(p.Claim) != 19 && len(p.Claim) != 20 {
			t.Errorf("%s claims %d, want 19 or 20", n.ID, len(p.Claim))
		}
		sources := map[string]bool{}
		for _, c := range p.Claim {
			if other, dup := claimed[c.ID]; dup {
				t.Errorf("%v claimed by %s and %s", c.ID, other, n.ID)
			}
			claimed[c.ID] = n.ID
			sources[c.ID.Source] = true
		}
		if len(sources) < 9 {
			t.Errorf("%s claims from %d sources, want them spread over 9 or 10", n.ID, len(sources))
		}
	}
	if len(claimed) != 999 {
		t.Errorf("claimed %d sessions, want 999", len(claimed))
	}
}

func TestDecideIsDeterministic(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var nodes []NodeView
	for i := range 20 {
		nodes = append(nodes, NodeView{ID: fmt.Sprintf("n%02d", i), Alive: i != 3, Stopping: i == 7})
	}
	var sessions []SessionView
	for i := range 300 {
		owner := ""
		if r := rng.IntN(30); r < 20 {
			owner = nodes[min(r, rng.IntN(20))].ID // skewed towards low ids
		}
		sessions = append(sessions, SessionView{ID: sid(fmt.Sprintf("s%d", i%7), i), Owner: owner,
			Expired: rng.IntN(20) == 0, Enabled: rng.IntN(10) != 0})
	}
	for _, n := range nodes {
		v := View{Self: n.ID, Nodes: slices.Clone(nodes), Sessions: slices.Clone(sessions)}
		want := Decide(v, 3)
		for range 5 {
			rng.Shuffle(len(v.Nodes), func(i, j int) { v.Nodes[i], v.Nodes[j] = v.Nodes[j], v.Nodes[i] })
			rng.Shuffle(len(v.Sessions), func(i, j int) { v.Sessions[i], v.Sessions[j] = v.Sessions[j], v.Sessions[i] })
			if got := Decide(v, 3); !reflect.DeepEqual(got, want) {
				t.Fatalf("%s: plan from a shuffled view = %+v, want %+v", n.ID, got, want)
			}
		}
	}
}

func TestDecideWhenSelfIsNotWorking(t *testing.T) {
	sessions := owned("a", "", 4)
	if p := Decide(View{Self: "n1", Nodes: up("n2"), Sessions: sessions}, 1); !reflect.DeepEqual(p, Plan{}) {
		t.Errorf("absent from the view: plan = %+v, want nothing", p)
	}
	nodes := []NodeView{{ID: "n1"}}
	if p := Decide(View{Self: "n1", Nodes: nodes, Sessions: sessions}, 1); !reflect.DeepEqual(p, Plan{}) {
		t.Errorf("not alive in its own view: plan = %+v, want nothing", p)
	}
	// Listed twice: alive if either entry says so, stopping if either does.
	nodes = []NodeView{{ID: "n1"}, {ID: "n1", Alive: true}}
	if p := Decide(View{Self: "n1", Nodes: nodes, Sessions: sessions}, 1); len(p.Claim) != 4 {
		t.Errorf("listed dead and alive: plan = %+v, want 4 claims", p)
	}
	nodes = append(nodes, NodeView{ID: "n1", Alive: true, Stopping: true})
	if p := Decide(View{Self: "n1", Nodes: nodes, Sessions: sessions}, 1); !reflect.DeepEqual(p, Plan{}) {
		t.Errorf("listed running and stopping: plan = %+v, want nothing", p)
	}
}

// Different givers with the same kind of holding pick different sessions:
// the release order is a hash of node and session.
func TestDecideReleasePicksDifferPerNode(t *testing.T) {
	sessions := owned("a", "", 64)
	picks := map[store.SessionID]bool{}
	for i := range 8 {
		self := fmt.Sprintf("n%d", i)
		for j := range sessions {
			sessions[j].Owner = self
		}
		p := Decide(View{Self: self, Nodes: up(self, "other"), Sessions: sessions}, 1)
		if len(p.Release) != 1 {
			t.Fatalf("%s: plan = %+v, want one release", self, p)
		}
		picks[p.Release[0]] = true
	}
	if len(picks) < 4 {
		t.Errorf("8 nodes holding the same 64 sessions picked only %d distinct ones to release", len(picks))
	}
}

// TestDecideGivenUpSessions: a session a node gave up because it could not
// reach its source is dealt to another node, beyond its target if need be,
// and handed over last; the node that gave it up takes it back only when it
// is alone.
func TestDecideGivenUpSessions(t *testing.T) {
	s1, s2, s3 := sid("a", 0), sid("b", 0), sid("c", 0)
	t.Run("dealt to a node at target", func(t *testing.T) {
		v := View{Nodes: up("n1", "n2"), Sessions: []SessionView{
			{ID: s1, Owner: "n1", Enabled: true},
			{ID: s2, Enabled: true, GivenUpBy: "n2"},
		}}
		v.Self = "n2"
		if p := Decide(v, 32); len(p.Claim) != 0 || len(p.Release) != 0 {
			t.Errorf("n2, which gave s2 up, plans %+v; want nothing", p)
		}
		v.Self = "n1"
		if p := Decide(v, 32); !reflect.DeepEqual(p, Plan{Claim: []Claim{{ID: s2}}}) {
			t.Errorf("n1 plans %+v; want to claim s2 beyond its target", p)
		}
	})
	t.Run("passed over for the next node below target", func(t *testing.T) {
		v := View{Self: "n3", Nodes: up("n1", "n2", "n3"), Sessions: []SessionView{
			{ID: s1, Owner: "n1", Enabled: true},
			{ID: s2, Enabled: true, GivenUpBy: "n2"},
			{ID: s3, Enabled: true},
		}}
		// n2 and n3 each miss one: n2 passes s2 over and takes s3; n3 takes s2.
		if p := Decide(v, 32); !reflect.DeepEqual(p, Plan{Claim: []Claim{{ID: s2}}}) {
			t.Errorf("n3 plans %+v; want s2", p)
		}
		v.Self = "n2"
		if p := Decide(v, 32); !reflect.DeepEqual(p, Plan{Claim: []Claim{{ID: s3}}}) {
			t.Errorf("n2 plans %+v; want s3", p)
		}
	})
	t.Run("never handed over for balance", func(t *testing.T) {
		v := View{Self: "n1", Nodes: up("n1", "n2"), Sessions: []SessionView{
			{ID: s1, Owner: "n1", Enabled: true},
			{ID: s2, Owner: "n1", Enabled: true, GivenUpBy: "n2"},
		}}
		if p := Decide(v, 32); !reflect.DeepEqual(p, Plan{Release: []store.SessionID{s1}}) {
			t.Errorf("n1 plans %+v; want to hand s1 over to n2, not s2, which n2 gave up", p)
		}
		v.Sessions[0].GivenUpBy = "n2" // n2 reads neither: n1 keeps both
		if p := Decide(v, 32); len(p.Release) != 0 || len(p.Claim) != 0 {
			t.Errorf("n1 plans %+v; want nothing: n2 gave both up", p)
		}
	})
	t.Run("alone, the node that gave it up tries again", func(t *testing.T) {
		v := View{Self: "n1", Nodes: up("n1"), Sessions: []SessionView{{ID: s1, Enabled: true, GivenUpBy: "n1"}}}
		if p := Decide(v, 32); !reflect.DeepEqual(p, Plan{Claim: []Claim{{ID: s1}}}) {
			t.Errorf("n1 alone plans %+v; want to claim s1 again", p)
		}
	})
}

// TestDecideMovedSessions holds rule 7 over rounds of every node deciding
// from the same view: the moved session goes to its node in one handover,
// stays there, and the balance comes back by moving another session.
func TestDecideMovedSessions(t *testing.T) {
	nodes := []string{"n1", "n2", "n3"}
	balanced := func() []SessionView {
		var ss []SessionView
		for i, n := range nodes {
			for p := range 3 {
				ss = append(ss, SessionView{ID: sid("s", i*3+p), Owner: n, Enabled: true})
			}
		}
		return ss
	}
	// rounds runs k rounds and returns how many times each session changed
	// owner, doing what the store does: a claim by another node than the
	// one a session moves to forgets the move.
	rounds := func(ss []SessionView, view []NodeView, k int) map[store.SessionID]int {
		moves := map[store.SessionID]int{}
		for range k {
			before := map[store.SessionID]string{}
			for _, s := range ss {
				before[s.ID] = s.Owner
			}
			for _, n := range view {
				if !n.Alive || n.Stopping {
					continue
				}
				p := Decide(View{Self: n.ID, Nodes: view, Sessions: ss}, 32)
				applyPlan(ss, n.ID, p)
				for _, c := range p.Claim {
					for i := range ss {
						if ss[i].ID == c.ID && ss[i].MoveTo != n.ID {
							ss[i].MoveTo = ""
						}
					}
				}
			}
			for _, s := range ss {
				if s.Owner != before[s.ID] && s.Owner != "" {
					moves[s.ID]++
				}
			}
		}
		return moves
	}
	held := func(ss []SessionView) map[string]int {
		out := map[string]int{}
		for _, s := range ss {
			out[s.Owner]++
		}
		return out
	}

	t.Run("moves once and stays", func(t *testing.T) {
		ss := balanced()
		moved := sid("s", 0) // n1's
		ss[0].MoveTo = "n2"
		moves := rounds(ss, up(nodes...), 6)
		if ss[0].Owner != "n2" || ss[0].MoveTo != "n2" {
			t.Fatalf("moved session: owner %q, moving to %q; want n2 and the move kept", ss[0].Owner, ss[0].MoveTo)
		}
		if moves[moved] != 1 {
			t.Errorf("the moved session changed owner %d times, want 1", moves[moved])
		}
		if h := held(ss); h["n1"] != 3 || h["n2"] != 3 || h["n3"] != 3 {
			t.Errorf("holdings after the move = %v, want 3 each (balance restored with another session)", h)
		}
		total := 0
		for _, n := range moves {
			total += n
		}
		if total != 2 {
			t.Errorf("%d owner changes in all (%v), want 2: the move and one session back", total, moves)
		}
	})

	t.Run("the owner hands it over beyond the bound", func(t *testing.T) {
		ss := balanced()
		ss[0].MoveTo, ss[1].MoveTo = "n3", "n3"
		p := Decide(View{Self: "n1", Nodes: up(nodes...), Sessions: ss}, 1)
		if !reflect.DeepEqual(p, Plan{Release: []store.SessionID{sid("s", 0), sid("s", 1)}}) {
			t.Errorf("n1 plans %+v; want both moved sessions released, whatever the bound of 1", p)
		}
		p = Decide(View{Self: "n2", Nodes: up(nodes...), Sessions: append(ss[:0:0], ss...)}, 32)
		if len(p.Claim) != 0 {
			t.Errorf("n2 plans %+v; want no claim of sessions moving to n3", p)
		}
	})

	t.Run("only the node it moves to claims it once free", func(t *testing.T) {
		ss := balanced()
		ss[0].Owner, ss[0].MoveTo = "", "n3"
		for _, n := range []string{"n1", "n2"} {
			if p := Decide(View{Self: n, Nodes: up(nodes...), Sessions: ss}, 32); len(p.Claim) != 0 {
				t.Errorf("%s plans %+v; want no claim of a session moving to n3", n, p)
			}
		}
		p := Decide(View{Self: "n3", Nodes: up(nodes...), Sessions: ss}, 32)
		if len(p.Claim) != 1 || p.Claim[0].ID != sid("s", 0) {
			t.Errorf("n3 plans %+v; want to claim the session moved to it", p)
		}
	})

	t.Run("a move to a node that does not work is ignored", func(t *testing.T) {
		for _, view := range [][]NodeView{
			{{ID: "n1", Alive: true}, {ID: "n2", Alive: true}, {ID: "n3", Alive: false}},
			{{ID: "n1", Alive: true}, {ID: "n2", Alive: true}, {ID: "n3", Alive: true, Stopping: true}},
			up("n1", "n2"), // n3 unknown
		} {
			ss := balanced()
			for i := range ss {
				if ss[i].Owner == "n3" {
					ss[i].Owner = ""
				}
			}
			ss[0].MoveTo = "n3"
			p := Decide(View{Self: "n1", Nodes: view, Sessions: ss}, 32)
			if slices.Contains(p.Release, sid("s", 0)) {
				t.Errorf("view %+v: n1 plans %+v; it hands over a session moving to a node that does not work", view, p)
			}
			rounds(ss, view, 4)
			if h := held(ss); h[""] != 0 || h["n1"]+h["n2"] != 9 {
				t.Errorf("view %+v: holdings %v; want every session dealt to n1 and n2", view, h)
			}
			if ss[0].MoveTo != "" && ss[0].Owner != "n1" {
				t.Errorf("view %+v: the move was kept by another node's claim", view)
			}
		}
	})

	t.Run("moved here is not handed over for balance", func(t *testing.T) {
		v := View{Self: "n1", Nodes: up("n1", "n2"), Sessions: []SessionView{
			{ID: sid("s", 0), Owner: "n1", Enabled: true, MoveTo: "n1"},
			{ID: sid("s", 1), Owner: "n1", Enabled: true, MoveTo: "n1"},
		}}
		if p := Decide(v, 32); len(p.Release) != 0 {
			t.Errorf("n1 plans %+v; want to keep both sessions moved to it", p)
		}
	})
}
