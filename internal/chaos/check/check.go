package check

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The kinds of Violation, in the order a Report lists them.
const (
	// KindLost: an acknowledged event whose "e<Seq>" item is absent from its
	// instance, or whose instance is not in the store at all.
	KindLost = "lost"
	// KindDoubled: an instance whose Events counter is larger than its number
	// of distinct "e<n>" items: some event was applied more than once.
	KindDoubled = "doubled"
	// KindReordered: the "seq" item is not the largest n among the "e<n>"
	// items (at the end or in a snapshot), or what snapshots showed of an
	// instance shrank over time (the store went backwards).
	KindReordered = "reordered"
	// KindPhantom: an "e<n>" item that no written event of that instance and
	// Seq accounts for, or an instance of a workload activity that no event
	// was written for.
	KindPhantom = "phantom"
	// KindPoisonApplied: a poison event's ID found in an instance's data, or
	// the instance a poison event names exists.
	KindPoisonApplied = "poison-applied"
	// KindPoisonMissing: an acknowledged poison event that is not among the
	// failed events, or is there without a reason, or with one that does not
	// say its Event.WantReason (see Event on how IDs are found).
	KindPoisonMissing = "poison-missing"
	// KindSplitBrain: two different nodes seen holding one session under one
	// epoch, in the claims nodes logged or in the session table.
	KindSplitBrain = "split-brain"
	// KindEpochRegressed: a session's epoch went down over time, in the
	// session table, or in the claims one node logged.
	KindEpochRegressed = "epoch-regressed"
	// KindUnowned: a session without a live owner after the pool drained.
	KindUnowned = "unowned"
	// KindIncomplete: an instance all of whose events, its continuation's
	// included, were acknowledged, ends and all, that is not completed.
	KindIncomplete = "incomplete"
	// KindAggregation: an aggregation's cells, as the store kept them
	// through the run, differ from a recomputation from the instances at
	// its end.
	KindAggregation = "aggregation"
	// KindAlert: the workload's alert broke a promise (checkAlert): an
	// instance fired twice or never, or a delivery was lost.
	KindAlert = "alert"
)

var kindOrder = []string{
	KindLost, KindDoubled, KindReordered, KindPhantom, KindPoisonApplied,
	KindPoisonMissing, KindSplitBrain, KindEpochRegressed, KindUnowned, KindIncomplete, KindAggregation, KindAlert,
}

// EventData returns the data items the workload writes with event seq of an
// instance: "seq" = seq and "e<seq>" = 1. Both the harness and Check rely on
// it; see the package comment for why.
func EventData(seq int) map[string]any {
	return map[string]any{trackSeq[Main]: seq, itemKey(Main, seq): 1}
}

// ContinuationData is EventData for the events of an instance's
// continuation: "cseq" = seq and "c<seq>" = 1.
func ContinuationData(seq int) map[string]any {
	return map[string]any{trackSeq[Cont]: seq, itemKey(Cont, seq): 1}
}

func itemKey(t Track, n int) string { return string(trackPrefix[t]) + strconv.Itoa(n) }

// Event is one event a writer tried to write. The ID of a poison event is
// searched for in failed payloads and instance data as a whole word: where
// neither neighbour is a letter, digit, '-', '_' or '.' (as inside a JSON
// string), so that "p-1" is not found inside "p-10".
type Event struct {
	ID       string // unique, e.g. "w3-17"; a poison event carries it inside its payload bytes
	Source   string
	Activity string
	Instance string
	// Track is Main for the instance's own events, Cont for the events of
	// its continuation, written under Token.
	Track Track
	Token string
	Seq   int // 1-based write order within the track; 0 for poison and itemless events
	// Last marks the track's end event.
	Last bool
	// Itemless marks an event that sets no item (enable-continuation,
	// relate): it counts in the instance's Events only.
	Itemless bool
	// Related is the instance a relate event links to, "activity/id".
	Related string
	Acked   bool // the writer saw the write committed; false: outcome unknown, may be applied at most once
	Poison  bool // deliberately invalid: must be quarantined and never applied
	// PoisonKind names what is wrong with a poison event ("truncated",
	// "numeric", "store-refused", ...), for the report's count per kind.
	PoisonKind string
	// WantReason, when set, is what the reason of a poison event's
	// quarantine must say: it proves which check caught it (the door's,
	// or the store's refusal found by the session).
	WantReason string
}

// PartitionKey is the id the event's partition is chosen by: its
// continuation's token, or its instance.
func (e Event) PartitionKey() string {
	if e.Track == Cont {
		return e.Token
	}
	return e.Instance
}

// Instance is an activity instance as read from the store.
type Instance struct {
	Activity, ID string
	State        string // pending, active or completed; "" when not read
	Events       int64  // how many events the store applied to it
	Data         map[string]json.RawMessage
	// Related lists the instances related to it, "activity/id"; nil when
	// not read (the check of relations is then skipped for it).
	Related []string
}

// Failed is a failed (quarantined) event in the store.
type Failed struct {
	Source    string
	Partition int
	Reason    string
	Payload   []byte
}

// Snapshot is an instance's state polled during the run.
type Snapshot struct {
	At       time.Time
	Instance Instance
}

// Claim is a node's log line saying it claimed or took over Session
// ("source/partition") at Epoch.
type Claim struct {
	At      time.Time
	Session string
	Node    string
	Epoch   int64
}

// OwnerSample is one row of the store's session table, polled at At. Live
// says the session has an owner whose lease has not expired.
type OwnerSample struct {
	At      time.Time
	Session string
	Owner   string
	Epoch   int64
	Live    bool
}

// History is what the harness recorded during a run.
type History struct {
	Events    []Event
	Snapshots []Snapshot
	Claims    []Claim
	Owners    []OwnerSample
	Faults    map[string]int // faults injected, by kind; only reported
	// Start and End span the run; End is when fault injection stopped and
	// the drain began.
	Start, End time.Time
	// Struck lists the faults injected, NodeNames maps every node id seen
	// to the name of its process in the harness (a restarted process has
	// a new id), and LeaseTTL is the nodes' lease TTL: with them the report
	// tells, per kind of fault, how long sessions went unowned (faults.go).
	Struck    []Struck
	NodeNames map[string]string
	LeaseTTL  time.Duration
}

// StoreState is the store after the pool drained.
type StoreState struct {
	Instances []Instance
	Failed    []Failed
	Sessions  []OwnerSample // the final state of every enabled session
	// Pending counts the events kept aside under the token of an
	// instance's continuation ("activity/id"), not linked to it: read for
	// the instances whose enable-continuation was of unknown outcome.
	Pending map[string]int64
	// AggregationsDiffer says how the aggregations' cells differ from a
	// recomputation from the instances; empty when they are equal.
	AggregationsDiffer string
	// Alert is the workload's alert; nil when the run did not check it.
	Alert *AlertState
}

// Violation is one broken rule. Kind is one of the Kind constants.
type Violation struct {
	Kind   string
	Detail string
}

// Report is Check's verdict on a run.
type Report struct {
	Faults map[string]int
	// Written counts the non-poison events, Acked and Unknown split them by
	// outcome; Applied sums the Events counters of the workload's instances;
	// Lost counts lost events and Doubled the surplus applications.
	Written, Acked, Unknown, Applied, Lost, Doubled int
	// Poison counts the poison events written, PoisonAcked those a writer
	// saw acknowledged (the rest may or may not have reached a source), and
	// Quarantined those found among the failed events.
	Poison, PoisonAcked, Quarantined int
	// PoisonByKind counts the poison events written and quarantined per
	// Event.PoisonKind.
	PoisonByKind map[string]PoisonCount
	// Continuations counts the enable-continuation events written,
	// ContinuationEvents the events written under tokens, and Relations
	// the relate events written.
	Continuations, ContinuationEvents, Relations int
	// LongestUnowned is the longest time a session went without a live
	// owner in History.Owners, and LongestUnownedSession that session.
	LongestUnowned        time.Duration
	LongestUnownedSession string
	// UnownedByFault is, per kind of fault, the longest of those spans
	// that the fault caused (FaultNone: those no fault explains), and
	// TakeoverByFault, per kind of fault that struck a node, the longest
	// time from the fault's start until a session that node held was live
	// under a newer epoch (faults.go).
	UnownedByFault, TakeoverByFault map[string]Span
	// AlertFirings and AlertDeliveries count the workload's alert's
	// firings and their deliveries; AlertRepeats the deliveries the
	// receiver accepted more than once (allowed: at least once), and
	// AlertRefused the attempts it refused on purpose.
	AlertFirings, AlertDeliveries, AlertRepeats, AlertRefused int
	Violations                                                []Violation
}

// PoisonCount counts the poison events of one kind.
type PoisonCount struct{ Written, Acked, Quarantined int }

// OK says the run broke no rule.
func (r Report) OK() bool { return len(r.Violations) == 0 }

// Check compares the history of a run with the store's state after it and
// reports every violation, sorted by kind in the order of the Kind constants
// and, within a kind, in the order of the inputs.
func Check(h History, s StoreState) Report {
	c := &checker{h: h, s: s, r: Report{Faults: h.Faults}}
	c.groupEvents()
	c.checkInstances()
	c.checkLost()
	c.checkKeptAside()
	c.checkSnapshots()
	c.checkQuarantine()
	c.checkSessions()
	if c.s.AggregationsDiffer != "" {
		c.add(KindAggregation, "%s", c.s.AggregationsDiffer)
	}
	c.checkAlert()
	c.longestUnowned()
	c.byFault()
	slices.SortStableFunc(c.r.Violations, func(a, b Violation) int {
		return cmp.Compare(slices.Index(kindOrder, a.Kind), slices.Index(kindOrder, b.Kind))
	})
	return c.r
}

type key struct{ activity, id string }

func (k key) String() string { return k.activity + "/" + k.id }

// written is the Seq of every event written to one track, ascending.
type written []int

func (w written) has(n int) bool {
	_, ok := slices.BinarySearch(w, n)
	return ok
}

// work is what was written to one instance.
type work struct {
	seqs                    [2]written
	itemless, itemlessAcked int
	related                 map[string]bool // relate targets written
	relatedAcked            []string        // relate targets acknowledged
	unacked                 int             // events of unknown outcome
	ends                    [2]bool         // each track's end written
	cont                    bool            // a continuation was enabled (its events or enable written)
	enableAcked             bool            // the enable of its continuation was acknowledged
	contAcked, contWritten  int             // events of its continuation
}

type poison struct {
	event    *Event
	applied  bool   // already reported as applied
	found    bool   // among the failed events
	reasonOK bool   // found, and every failed event holding it has a reason that says WantReason
	reason   string // the reason that did not
}

type checker struct {
	h History
	s StoreState
	r Report

	work       map[key]*work
	activities map[string]bool
	poisons    []poison
	ids        *matcher       // the poison IDs, valued by index into poisons
	named      map[key]int    // instances poison events name, to index into poisons
	namedID    map[string]int // the same for poison events without an activity
	final      map[key]int    // index into s.Instances and states
	states     []state        // parsed s.Instances
}

func (c *checker) add(kind, format string, args ...any) {
	c.r.Violations = append(c.r.Violations, Violation{Kind: kind, Detail: fmt.Sprintf(format, args...)})
}

// groupEvents counts the events and groups the workload's by instance.
func (c *checker) groupEvents() {
	c.work = make(map[key]*work)
	c.activities = make(map[string]bool)
	c.named = make(map[key]int)
	c.namedID = make(map[string]int)
	var ids []string
	for i := range c.h.Events {
		e := &c.h.Events[i]
		c.activities[e.Activity] = true
		if e.Poison {
			c.r.Poison++
			if e.Acked {
				c.r.PoisonAcked++
			}
			p := len(c.poisons)
			c.poisons = append(c.poisons, poison{event: e})
			ids = append(ids, e.ID)
			switch {
			case e.Instance == "":
			case e.Activity == "":
				c.namedID[e.Instance] = p
			default:
				c.named[key{e.Activity, e.Instance}] = p
			}
			continue
		}
		c.r.Written++
		if e.Acked {
			c.r.Acked++
		} else {
			c.r.Unknown++
		}
		k := key{e.Activity, e.Instance}
		w := c.work[k]
		if w == nil {
			w = &work{related: map[string]bool{}}
			c.work[k] = w
		}
		if !e.Acked {
			w.unacked++
		}
		if e.Track == Cont || e.Token != "" {
			w.cont = true
		}
		switch {
		case e.Track == Cont:
			c.r.ContinuationEvents++
			w.contWritten++
			if e.Acked {
				w.contAcked++
			}
		case e.Itemless && e.Related != "":
			c.r.Relations++
		case e.Itemless:
			c.r.Continuations++
		}
		if e.Last {
			w.ends[e.Track] = true
		}
		switch {
		case e.Itemless:
			w.itemless++
			if e.Acked {
				w.itemlessAcked++
			}
			if e.Related == "" && e.Acked {
				w.enableAcked = true
			}
			if e.Related != "" {
				w.related[e.Related] = true
				if e.Acked {
					w.relatedAcked = append(w.relatedAcked, e.Related)
				}
			}
		default:
			w.seqs[e.Track] = append(w.seqs[e.Track], e.Seq)
		}
	}
	for _, w := range c.work {
		for t := range w.seqs {
			slices.Sort(w.seqs[t])
			w.seqs[t] = slices.Compact(w.seqs[t])
		}
	}
	c.ids = newMatcher(ids)
}

// poisonNamed returns the poison event that names the instance k, if any.
func (c *checker) poisonNamed(k key) (int, bool) {
	if p, ok := c.named[k]; ok {
		return p, true
	}
	p, ok := c.namedID[k.id]
	return p, ok
}

// scanPoison reports every poison ID found in the items of st that are not
// shaped like the workload's, once per poison event.
func (c *checker) scanPoison(st *state, where func() string) {
	if len(st.extra) == 0 {
		return
	}
	c.ids.each(st.extra, func(p int) {
		c.applied(p, "poison event %s found in the data of %s", c.poisons[p].event.ID, where())
	})
}

// applied reports poison event p as applied, unless it already was.
func (c *checker) applied(p int, format string, args ...any) {
	if !c.poisons[p].applied {
		c.poisons[p].applied = true
		c.add(KindPoisonApplied, format, args...)
	}
}

// checkInstances checks each instance of the final state on its own, and
// counts Applied and Doubled.
func (c *checker) checkInstances() {
	c.final = make(map[key]int, len(c.s.Instances))
	c.states = make([]state, len(c.s.Instances))
	for i := range c.s.Instances {
		in := &c.s.Instances[i]
		k := key{in.Activity, in.ID}
		c.final[k] = i
		st := &c.states[i]
		*st = parse(in)
		c.scanPoison(st, func() string { return "instance " + k.String() })
		if p, ok := c.poisonNamed(k); ok {
			c.applied(p, "instance %s, named by poison event %s, exists (%d events)", k, c.poisons[p].event.ID, in.Events)
			continue
		}
		if !c.activities[in.Activity] {
			continue
		}
		w, ok := c.work[k]
		if !ok {
			c.add(KindPhantom, "instance %s is in the store (%d events) but no event of it was written", k, in.Events)
			continue
		}
		c.r.Applied += int(in.Events)
		for t := range st.tracks {
			for _, n := range st.tracks[t].items {
				if !w.seqs[t].has(n) {
					c.add(KindPhantom, "instance %s has item %s but no event with that seq was written", k, itemKey(Track(t), n))
				}
			}
		}
		if extra := st.surplus(w.itemless); extra > 0 {
			c.r.Doubled += int(extra)
			c.add(KindDoubled, "instance %s: %d events applied but %d distinct items and %d events without items written: %d applied more than once",
				k, in.Events, st.distinct(), w.itemless, extra)
		}
		if short := int64(w.itemlessAcked) - (st.events - st.distinct()); short > 0 {
			c.r.Lost += int(short)
			c.add(KindLost, "instance %s: %d events applied for %d distinct items, but %d acknowledged events without items (enable-continuation, relate) were written: %d not applied",
				k, in.Events, st.distinct(), w.itemlessAcked, short)
		}
		if why := st.orderProblem(); why != "" {
			c.add(KindReordered, "instance %s: %s", k, why)
		}
		c.checkRelated(k, in, w)
		if w.unacked == 0 && w.ends[Main] && (!w.cont || w.ends[Cont]) && in.State != "" && in.State != "completed" {
			c.add(KindIncomplete, "instance %s is %s, though all its events were acknowledged, its end and its continuation's included", k, in.State)
		}
	}
}

// checkLost reports every acknowledged event missing from the store.
func (c *checker) checkLost() {
	for i := range c.h.Events {
		e := &c.h.Events[i]
		if e.Poison || !e.Acked {
			continue
		}
		k := key{e.Activity, e.Instance}
		j, ok := c.final[k]
		switch {
		case e.Track == Cont && c.keptAside(k):
			// Counted by checkKeptAside.
		case !ok:
			c.r.Lost++
			c.add(KindLost, "event %s (%s seq %d) was acknowledged but instance %s is not in the store", e.ID, k, e.Seq, k)
		case e.Itemless: // counted per instance by checkInstances
		case !c.states[j].has(e.Track, e.Seq):
			c.r.Lost++
			c.add(KindLost, "event %s (%s seq %d) was acknowledged but item %s is absent", e.ID, k, e.Seq, itemKey(e.Track, e.Seq))
		}
	}
}

// checkSnapshots checks every snapshot like a final instance, and that each
// instance's snapshots, in time order and followed by its final state, never
// shrink.
func (c *checker) checkSnapshots() {
	groups := groupBy(c.h.Snapshots, func(s *Snapshot) (key, time.Time) { return key{s.Instance.Activity, s.Instance.ID}, s.At })
	for _, g := range groups {
		k := g.key
		p, named := c.poisonNamed(k)
		workload := c.activities[k.activity] && !named
		itemless := 0
		if w := c.work[k]; w != nil {
			itemless = w.itemless
		}
		var prev state
		var prevAt time.Time
		doubled, reordered := false, false // reported once per instance: they tend to last
		for n, i := range g.idx {
			snap := &c.h.Snapshots[i]
			st := parse(&snap.Instance)
			c.scanPoison(&st, func() string { return "the snapshot at " + stamp(snap.At) + " of instance " + k.String() })
			if named {
				c.applied(p, "instance %s, named by poison event %s, exists in the snapshot at %s", k, c.poisons[p].event.ID, stamp(snap.At))
			}
			if !workload {
				continue
			}
			if extra := st.surplus(itemless); extra > 0 && !doubled {
				doubled = true
				c.add(KindDoubled, "instance %s: the snapshot at %s shows %d events applied but %d distinct items and %d events without items written (a double visible mid-run)",
					k, stamp(snap.At), st.events, st.distinct(), itemless)
			}
			if why := st.orderProblem(); why != "" && !reordered {
				reordered = true
				c.add(KindReordered, "instance %s: the snapshot at %s shows %s", k, stamp(snap.At), why)
			}
			if why := shrink(&prev, &st); n > 0 && why != "" {
				c.add(KindReordered, "instance %s went backwards between the snapshots at %s and %s: %s", k, stamp(prevAt), stamp(snap.At), why)
			}
			prev, prevAt = st, snap.At
		}
		if !workload {
			continue
		}
		if j, ok := c.final[k]; ok {
			if why := shrink(&prev, &c.states[j]); why != "" {
				c.add(KindReordered, "instance %s went backwards between the snapshot at %s and the final state: %s", k, stamp(prevAt), why)
			}
		} else {
			c.add(KindReordered, "instance %s, seen with %d events by the snapshot at %s, is not in the final state (the store went backwards)", k, prev.events, stamp(prevAt))
		}
	}
}

// shrink says how b, observed after a, holds less than a, or returns "".
func shrink(a, b *state) string {
	for t := range a.tracks {
		if n, ok := missingFrom(a.tracks[t].items, b.tracks[t].items); ok {
			return "item " + itemKey(Track(t), n) + " vanished"
		}
	}
	if b.events < a.events {
		return fmt.Sprintf("its events went from %d to %d", a.events, b.events)
	}
	return ""
}

// checkQuarantine looks for every poison event among the failed events.
func (c *checker) checkQuarantine() {
	for i := range c.s.Failed {
		f := &c.s.Failed[i]
		c.ids.each(f.Payload, func(p int) {
			if !c.poisons[p].found {
				c.poisons[p].found, c.poisons[p].reasonOK = true, true
			}
			if f.Reason == "" || !strings.Contains(f.Reason, c.poisons[p].event.WantReason) {
				c.poisons[p].reasonOK = false
				c.poisons[p].reason = f.Reason
			}
		})
	}
	c.r.PoisonByKind = make(map[string]PoisonCount)
	for _, p := range c.poisons {
		n := c.r.PoisonByKind[p.event.PoisonKind]
		n.Written++
		if p.event.Acked {
			n.Acked++
		}
		if p.found {
			n.Quarantined++
			c.r.Quarantined++
		}
		c.r.PoisonByKind[p.event.PoisonKind] = n
		switch {
		case p.found && !p.reasonOK && p.reason == "":
			c.add(KindPoisonMissing, "poison event %s is among the failed events without a reason", p.event.ID)
		case p.found && !p.reasonOK:
			c.add(KindPoisonMissing, "poison event %s (%s) is among the failed events with the reason %q, which does not say %q",
				p.event.ID, p.event.PoisonKind, p.reason, p.event.WantReason)
		case !p.found && p.event.Acked:
			c.add(KindPoisonMissing, "poison event %s (%s) was acknowledged but is not among the failed events", p.event.ID, p.event.PoisonKind)
		}
	}
}

// keptAside says the events of k's continuation may rightly be kept aside
// under its token: its enable-continuation is of unknown outcome and
// nothing of the continuation shows in the instance (or the instance is
// not in the store).
func (c *checker) keptAside(k key) bool {
	w := c.work[k]
	if w == nil || w.enableAcked {
		return false
	}
	j, ok := c.final[k]
	return !ok || len(c.states[j].tracks[Cont].items) == 0
}

// checkKeptAside checks the continuations kept aside: their token holds
// every acknowledged event of theirs, and no more than were written.
func (c *checker) checkKeptAside() {
	for k, w := range c.work {
		if w.contWritten == 0 || !c.keptAside(k) {
			continue
		}
		n, read := c.s.Pending[k.String()]
		switch {
		case !read && w.contAcked > 0:
			c.r.Lost += w.contAcked
			c.add(KindLost, "instance %s: %d acknowledged events of its continuation are neither in the instance nor read under its token", k, w.contAcked)
		case n < int64(w.contAcked):
			c.r.Lost += w.contAcked - int(n)
			c.add(KindLost, "instance %s: its continuation's enable was not applied, and its token keeps %d events aside, fewer than the %d acknowledged", k, n, w.contAcked)
		case n > int64(w.contWritten):
			c.r.Doubled += int(n) - w.contWritten
			c.add(KindDoubled, "instance %s: its continuation's token keeps %d events aside, more than the %d written", k, n, w.contWritten)
		}
	}
}

// checkRelated checks the relations the store shows for an instance against
// the relate events written: every acknowledged one is there, and none that
// nobody wrote. Skipped when the harness did not read them (Related nil).
func (c *checker) checkRelated(k key, in *Instance, w *work) {
	if in.Related == nil {
		return
	}
	for _, r := range w.relatedAcked {
		if !slices.Contains(in.Related, r) {
			c.r.Lost++
			c.add(KindLost, "instance %s: the acknowledged relation to %s is absent", k, r)
		}
	}
	for _, r := range in.Related {
		if w.related[r] {
			continue
		}
		// A relation shows from both instances: k may be the target.
		if o := c.work[keyOf(r)]; o != nil && o.related[k.String()] {
			continue
		}
		c.add(KindPhantom, "instance %s is related to %s, but no relate event between them was written", k, r)
	}
}

// keyOf parses "activity/id".
func keyOf(s string) key {
	a, id, _ := strings.Cut(s, "/")
	return key{a, id}
}

// stamp formats an instant for a Detail.
func stamp(t time.Time) string { return t.Format("15:04:05.000") }
