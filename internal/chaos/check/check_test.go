package check

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

const activity = "PurchaseOrder"

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

// builder builds a history and a final store state, one fact at a time.
type builder struct {
	h History
	s StoreState
}

func newBuilder() *builder {
	return &builder{h: History{Start: t0, End: at(time.Minute), Faults: map[string]int{"kill": 2, "stop": 1}}}
}

// write records events 1..k of instance id, all acknowledged.
func (b *builder) write(id string, k int) *builder {
	for seq := 1; seq <= k; seq++ {
		b.event(id, seq, true)
	}
	return b
}

// event records event seq of instance id.
func (b *builder) event(id string, seq int, acked bool) *builder {
	b.h.Events = append(b.h.Events, Event{
		ID: fmt.Sprintf("w-%s-%d", id, seq), Source: "buffer", Activity: activity, Instance: id, Seq: seq, Acked: acked,
	})
	return b
}

// store puts instance id in the final state as the store leaves it after
// applying the events seqs in that order.
func (b *builder) store(id string, seqs ...int) *builder {
	b.s.Instances = append(b.s.Instances, applied(id, seqs...))
	return b
}

// snapshot records instance id as polled at d, after applying seqs in order.
func (b *builder) snapshot(d time.Duration, id string, seqs ...int) *builder {
	b.h.Snapshots = append(b.h.Snapshots, Snapshot{At: at(d), Instance: applied(id, seqs...)})
	return b
}

// applied merges EventData of each event of seqs, in order, the way the
// store does when all events carry the same time: the later applied wins.
func applied(id string, seqs ...int) Instance {
	in := Instance{Activity: activity, ID: id, Events: int64(len(seqs)), Data: map[string]json.RawMessage{}}
	for _, seq := range seqs {
		for k, v := range EventData(seq) {
			raw, err := json.Marshal(v)
			if err != nil {
				panic(err)
			}
			in.Data[k] = raw
		}
	}
	return in
}

// poison records a poison event, naming instance (may be "").
func (b *builder) poison(id, instance string, acked bool) *builder {
	b.h.Events = append(b.h.Events, Event{ID: id, Source: "buffer", Activity: activity, Instance: instance, Acked: acked, Poison: true})
	return b
}

// quarantine puts a failed event holding id in its payload in the store.
func (b *builder) quarantine(id, reason string) *builder {
	b.s.Failed = append(b.s.Failed, Failed{Source: "buffer", Partition: 1, Reason: reason,
		Payload: []byte(`{"type":"bogus","id":"` + id + `"}`)})
	return b
}

func (b *builder) claim(d time.Duration, session, node string, epoch int64) *builder {
	b.h.Claims = append(b.h.Claims, Claim{At: at(d), Session: session, Node: node, Epoch: epoch})
	return b
}

func (b *builder) owner(d time.Duration, session, owner string, epoch int64, live bool) *builder {
	b.h.Owners = append(b.h.Owners, OwnerSample{At: at(d), Session: session, Owner: owner, Epoch: epoch, Live: live})
	return b
}

// final records the state of a session after the drain.
func (b *builder) final(session, owner string, epoch int64, live bool) *builder {
	b.s.Sessions = append(b.s.Sessions, OwnerSample{At: at(2 * time.Minute), Session: session, Owner: owner, Epoch: epoch, Live: live})
	return b
}

func (b *builder) check() Report { return Check(b.h, b.s) }

// clean builds a run that breaks no rule, with a little of everything:
// events of unknown outcome applied and not, snapshots, a quarantined
// poison event, a failover.
func clean() *builder {
	b := newBuilder()
	b.write("po-1", 4).store("po-1", 1, 2, 3, 4)
	b.write("po-2", 2).event("po-2", 3, false).store("po-2", 1, 2, 3)
	b.write("po-3", 2).event("po-3", 3, false).store("po-3", 1, 2)
	b.snapshot(time.Second, "po-1", 1).snapshot(2*time.Second, "po-1", 1, 2).snapshot(3*time.Second, "po-1", 1, 2, 3)
	b.snapshot(time.Second, "po-2", 1, 2)
	b.poison("p-1", "bad-1", true).quarantine("p-1", "decode: unknown type bogus")
	b.claim(0, "buffer/0", "n1", 1).claim(10*time.Second, "buffer/0", "n2", 2)
	b.owner(0, "buffer/0", "n1", 1, true).owner(9*time.Second, "buffer/0", "n1", 1, false).owner(10*time.Second, "buffer/0", "n2", 2, true)
	b.owner(0, "buffer/1", "n2", 1, true)
	b.final("buffer/0", "n2", 2, true).final("buffer/1", "n2", 1, true)
	return b
}

func TestEventData(t *testing.T) {
	got, err := json.Marshal(EventData(7))
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"e7":1,"seq":7}`; string(got) != want {
		t.Errorf("EventData(7) = %s, want %s", got, want)
	}
}

func TestCleanRunPasses(t *testing.T) {
	r := clean().check()
	if !r.OK() {
		t.Fatalf("clean run reported violations:\n%s", r)
	}
	got := [...]int{r.Written, r.Acked, r.Unknown, r.Applied, r.Lost, r.Doubled, r.Poison, r.PoisonAcked, r.Quarantined}
	want := [...]int{10, 8, 2, 9, 0, 0, 1, 1, 1}
	if got != want {
		t.Errorf("written, acked, unknown, applied, lost, doubled, poison, poison acked, quarantined = %v, want %v", got, want)
	}
	if r.LongestUnowned != time.Second || r.LongestUnownedSession != "buffer/0" {
		t.Errorf("longest unowned = %v (%q), want 1s (buffer/0)", r.LongestUnowned, r.LongestUnownedSession)
	}
}

// TestViolations adds one fault to a clean run and checks that Check reports
// exactly the kinds of violation that fault makes.
func TestViolations(t *testing.T) {
	tests := []struct {
		name  string
		fault func(b *builder)
		want  []string // the kinds reported, in report order
	}{
		{"acked event missing", func(b *builder) { b.write("x", 3).store("x", 1, 2) }, []string{KindLost}},
		{"instance missing", func(b *builder) { b.write("x", 2) }, []string{KindLost}},
		{"unknown event absent", func(b *builder) { b.write("x", 2).event("x", 3, false).store("x", 1, 2) }, nil},
		{"unknown event present once", func(b *builder) { b.write("x", 2).event("x", 3, false).store("x", 1, 2, 3) }, nil},
		{"unknown event present twice", func(b *builder) { b.write("x", 2).event("x", 3, false).store("x", 1, 2, 3, 3) }, []string{KindDoubled}},
		{"doubled", func(b *builder) { b.write("x", 3).store("x", 1, 2, 3, 3) }, []string{KindDoubled}},
		{"doubled early, applied again after newer events", func(b *builder) { b.write("x", 3).store("x", 1, 2, 3, 2) }, []string{KindDoubled, KindReordered}},
		{"reordered", func(b *builder) { b.write("x", 4).store("x", 1, 2, 4, 3) }, []string{KindReordered}},
		{"seq item missing", func(b *builder) {
			b.write("x", 2).store("x", 1, 2)
			delete(b.s.Instances[len(b.s.Instances)-1].Data, "seq")
		}, []string{KindReordered}},
		{"reordered in a snapshot only", func(b *builder) {
			b.write("x", 3).snapshot(time.Second, "x", 1, 3, 2).store("x", 1, 2, 3)
		}, []string{KindReordered}},
		{"doubled in a snapshot only", func(b *builder) {
			b.write("x", 2).snapshot(time.Second, "x", 1, 1).store("x", 1, 2)
		}, []string{KindDoubled}},
		{"snapshot items shrink", func(b *builder) {
			b.write("x", 3).snapshot(time.Second, "x", 1, 2).snapshot(2*time.Second, "x", 1).store("x", 1, 2, 3)
		}, []string{KindReordered}},
		{"snapshots out of input order are sorted by time", func(b *builder) {
			b.write("x", 3).snapshot(2*time.Second, "x", 1, 2).snapshot(time.Second, "x", 1).store("x", 1, 2, 3)
		}, nil},
		{"final state lacks what a snapshot showed", func(b *builder) {
			b.write("x", 2).event("x", 3, false).snapshot(time.Second, "x", 1, 2, 3).store("x", 1, 2)
		}, []string{KindReordered}},
		{"instance seen mid-run vanishes", func(b *builder) {
			b.event("x", 1, false).snapshot(time.Second, "x", 1) // nothing acked: only the snapshot shows it was there
		}, []string{KindReordered}},
		{"phantom item", func(b *builder) { b.write("x", 2).store("x", 1, 2, 3) }, []string{KindPhantom}},
		{"aggregation differs", func(b *builder) {
			b.write("x", 1).store("x", 1)
			b.s.AggregationsDiffer = "aggregations differ: cell [active] instances = 2, recomputed 1"
		}, []string{KindAggregation}},
		{"alert kept its promises", func(b *builder) {
			b.write("x", 1).store("x", 1)
			b.s.Alert = &AlertState{Matching: []string{"a", "b"}, Received: map[string]int{"d1": 2, "d2": 1}, Refused: 3,
				Firings: []AlertFiring{{Key: "a", Deliveries: []AlertDelivery{{"d1", "delivered"}}}, {Key: "b", Deliveries: []AlertDelivery{{"d2", "delivered"}}}}}
		}, nil},
		{"alert fired twice, missed one, fired a stranger", func(b *builder) {
			b.write("x", 1).store("x", 1)
			b.s.Alert = &AlertState{Matching: []string{"a", "b"}, Received: map[string]int{},
				Firings: []AlertFiring{{Key: "a"}, {Key: "a", Cleared: true}, {Key: "z"}}}
		}, []string{KindAlert}},
		{"alert delivery lost", func(b *builder) {
			b.write("x", 1).store("x", 1)
			b.s.Alert = &AlertState{Matching: []string{"a"}, Received: map[string]int{"d9": 1},
				Firings: []AlertFiring{{Key: "a", Deliveries: []AlertDelivery{{"d1", "delivered"}, {"d2", "pending"}}}}}
		}, []string{KindAlert}},
		{"phantom instance", func(b *builder) { b.store("ghost", 1) }, []string{KindPhantom}},
		{"instance of another activity is ignored", func(b *builder) {
			b.s.Instances = append(b.s.Instances, Instance{Activity: "Shipment", ID: "s-1", Events: 1})
		}, nil},
		{"poison instance exists", func(b *builder) { b.poison("p-2", "bad-2", true).quarantine("p-2", "bad").store("bad-2", 1) }, []string{KindPoisonApplied}},
		{"poison ID in data", func(b *builder) {
			b.poison("p-2", "", true).quarantine("p-2", "bad")
			b.s.Instances[0].Data["note"] = json.RawMessage(`"from p-2"`)
		}, []string{KindPoisonApplied}},
		{"poison ID in a snapshot's data", func(b *builder) {
			b.poison("p-2", "", true).quarantine("p-2", "bad").write("x", 1).store("x", 1).snapshot(time.Second, "x", 1)
			b.h.Snapshots[len(b.h.Snapshots)-1].Instance.Data["seq"] = json.RawMessage(`"p-2"`)
		}, []string{KindReordered, KindPoisonApplied}},
		{"poison not quarantined", func(b *builder) { b.poison("p-2", "bad-2", true) }, []string{KindPoisonMissing}},
		{"poison quarantined without reason", func(b *builder) { b.poison("p-2", "bad-2", true).quarantine("p-2", "") }, []string{KindPoisonMissing}},
		{"poison quarantined with a reason that does not say the one wanted", func(b *builder) {
			b.poison("p-2", "bad-2", true).quarantine("p-2", "data.seq: number 1e200000 is beyond")
			b.h.Events[len(b.h.Events)-1].WantReason = "the store refused the event: "
		}, []string{KindPoisonMissing}},
		{"poison quarantined with the reason wanted", func(b *builder) {
			b.poison("p-2", "bad-2", true).quarantine("p-2", "the store refused the event: smallint out of range (SQLSTATE 22003)")
			b.h.Events[len(b.h.Events)-1].WantReason = "the store refused the event: "
		}, nil},
		{"poison not quarantined, another whose ID extends its own is", func(b *builder) {
			b.poison("p-2", "", true).poison("p-20", "", true).quarantine("p-20", "bad")
		}, []string{KindPoisonMissing}},
		{"poison of unknown outcome not quarantined", func(b *builder) { b.poison("p-2", "bad-2", false) }, nil},
		{"split brain in claims", func(b *builder) {
			b.claim(time.Second, "buffer/9", "n1", 5).claim(2*time.Second, "buffer/9", "n2", 5)
		}, []string{KindSplitBrain}},
		{"split brain between a claim and the session table", func(b *builder) {
			b.claim(20*time.Second, "buffer/1", "n3", 1)
		}, []string{KindSplitBrain}},
		{"epoch regressed in the session table", func(b *builder) {
			b.owner(20*time.Second, "buffer/0", "n1", 1, true)
		}, []string{KindEpochRegressed}},
		{"epoch regressed in the claims of one node", func(b *builder) {
			b.claim(20*time.Second, "buffer/0", "n2", 1)
		}, []string{KindSplitBrain, KindEpochRegressed}},
		{"a claim logged late, after a newer one by another node", func(b *builder) {
			// n3 claimed epoch 3, was stopped before it logged it, and logged
			// it after n1 had claimed epoch 4.
			b.claim(20*time.Second, "buffer/0", "n1", 4).claim(25*time.Second, "buffer/0", "n3", 3)
			b.owner(19*time.Second, "buffer/0", "n3", 3, true).owner(21*time.Second, "buffer/0", "n1", 4, true)
			b.s.Sessions[0].Owner, b.s.Sessions[0].Epoch = "n1", 4
		}, nil},
		{"epoch regressed in the final state", func(b *builder) {
			b.s.Sessions[0].Epoch = 1
		}, []string{KindSplitBrain, KindEpochRegressed}},
		{"final state without a time comes after the samples", func(b *builder) {
			b.s.Sessions[0].At = time.Time{}
		}, nil},
		{"session unowned after the drain", func(b *builder) { b.final("buffer/2", "", 0, false) }, []string{KindUnowned}},
		{"session's lease expired after the drain", func(b *builder) {
			b.s.Sessions[1].Live = false
		}, []string{KindUnowned}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := clean()
			tt.fault(b)
			r := b.check()
			var got []string
			for _, v := range r.Violations {
				if len(got) == 0 || got[len(got)-1] != v.Kind {
					got = append(got, v.Kind)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("kinds = %v, want %v; report:\n%s", got, tt.want, r)
			}
			if r.OK() != (len(tt.want) == 0) {
				t.Errorf("OK() = %v with %d violations", r.OK(), len(r.Violations))
			}
		})
	}
}

func TestCounts(t *testing.T) {
	b := clean()
	b.write("x", 3).store("x", 1, 2, 2, 2) // e3 lost, e2 applied twice more
	b.poison("p-2", "", true)
	r := b.check()
	if r.Lost != 1 || r.Doubled != 2 || r.Written != 13 || r.Applied != 13 || r.Poison != 2 || r.Quarantined != 1 {
		t.Errorf("lost %d doubled %d written %d applied %d poison %d quarantined %d, want 1 2 13 13 2 1",
			r.Lost, r.Doubled, r.Written, r.Applied, r.Poison, r.Quarantined)
	}
	for _, want := range []string{"w-x-3", "x", "e3"} {
		if !strings.Contains(r.Violations[0].Detail, want) {
			t.Errorf("lost detail %q does not name %q", r.Violations[0].Detail, want)
		}
	}
}

func TestLongestUnowned(t *testing.T) {
	tests := []struct {
		name        string
		samples     func(b *builder)
		want        time.Duration
		wantSession string
	}{
		{"never unowned", func(b *builder) {
			b.owner(0, "a", "n1", 1, true).owner(time.Second, "a", "n1", 1, true)
		}, 0, ""},
		{"from the first unowned sample to the next live one", func(b *builder) {
			b.owner(0, "a", "n1", 1, true).owner(time.Second, "a", "n1", 1, false).owner(2*time.Second, "a", "", 1, false).
				owner(5*time.Second, "a", "n2", 2, true).owner(6*time.Second, "a", "n2", 2, false).owner(7*time.Second, "a", "n3", 3, true)
		}, 4 * time.Second, "a"},
		{"the longest of several sessions", func(b *builder) {
			b.owner(0, "a", "", 0, false).owner(2*time.Second, "a", "n1", 1, true)
			b.owner(0, "b", "", 0, false).owner(3*time.Second, "b", "n1", 1, true)
			b.owner(0, "c", "", 0, false).owner(time.Second, "c", "n1", 1, true)
		}, 3 * time.Second, "b"},
		{"never live again runs to End", func(b *builder) {
			b.owner(0, "a", "n1", 1, true).owner(50*time.Second, "a", "n1", 1, false)
		}, 10 * time.Second, "a"},
		{"live again during the drain", func(b *builder) {
			b.owner(0, "a", "n1", 1, true).owner(50*time.Second, "a", "n1", 1, false).owner(65*time.Second, "a", "n2", 2, true)
		}, 15 * time.Second, "a"},
		{"still unowned in the drain runs to the last sample", func(b *builder) {
			b.owner(0, "a", "n1", 1, true).owner(50*time.Second, "a", "n1", 1, false).owner(70*time.Second, "a", "n1", 1, false)
		}, 20 * time.Second, "a"},
		{"samples given out of order", func(b *builder) {
			b.owner(5*time.Second, "a", "n2", 2, true).owner(time.Second, "a", "", 1, false).owner(0, "a", "n1", 1, true)
		}, 4 * time.Second, "a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBuilder()
			tt.samples(b)
			r := b.check()
			if r.LongestUnowned != tt.want || r.LongestUnownedSession != tt.wantSession {
				t.Errorf("longest unowned = %v (%q), want %v (%q)", r.LongestUnowned, r.LongestUnownedSession, tt.want, tt.wantSession)
			}
		})
	}
}

func TestReportString(t *testing.T) {
	b := clean()
	b.write("x", 3).store("x", 1, 2, 2) // lost e3, doubled e2
	r := b.check()
	for _, k := range kindOrder[2:] {
		r.Violations = append(r.Violations, Violation{Kind: k, Detail: "detail of " + k})
	}
	s := r.String()
	for _, want := range []string{
		"kill 2, stop 1",
		"13 written (11 acked, 2 unknown), 12 applied, 1 lost, 1 doubled",
		"poison: 1 written (1 acked, 0 unknown), 1 quarantined",
		"longest unowned: 1s (session buffer/0)",
		"violations: 12 (lost 1, doubled 1, reordered 1, phantom 1, poison-applied 1",
		"w-x-3",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("report lacks %q:\n%s", want, s)
		}
	}
	for _, k := range kindOrder {
		if !strings.Contains(s, "  "+k+": ") {
			t.Errorf("report lists no %s violation:\n%s", k, s)
		}
	}
	if s := clean().check().String(); !strings.Contains(s, "violations: none") {
		t.Errorf("clean report:\n%s", s)
	}
}

func TestReportStringCapsTheList(t *testing.T) {
	var r Report
	for i := range 60 {
		r.Violations = append(r.Violations, Violation{Kind: KindLost, Detail: fmt.Sprint("event ", i)})
	}
	s := r.String()
	if !strings.Contains(s, "event 49\n") || strings.Contains(s, "event 50\n") || !strings.Contains(s, "… and 10 more") {
		t.Errorf("report of 60 violations:\n%s", s)
	}
}

// big builds a clean run of n events: n/20 instances of 20 events, a
// snapshot of each halfway, 100 sessions polled 2,000 times. Instances share
// their Data (Check only reads it), so that building stays cheap.
func big(n int) *builder {
	b := newBuilder()
	b.h.Events = make([]Event, 0, n)
	whole, half := applied("", seqs(20)...), applied("", seqs(10)...)
	for i := range n / 20 {
		id := "po-" + strconv.Itoa(i)
		for seq := 1; seq <= 20; seq++ {
			b.h.Events = append(b.h.Events, Event{ID: id + "-" + strconv.Itoa(seq), Activity: activity, Instance: id, Seq: seq, Acked: true})
		}
		whole.ID, half.ID = id, id
		b.s.Instances = append(b.s.Instances, whole)
		b.h.Snapshots = append(b.h.Snapshots, Snapshot{At: at(time.Second), Instance: half})
	}
	for i := range 2000 {
		for s := range 100 {
			b.owner(time.Duration(i)*30*time.Millisecond, "buffer/"+strconv.Itoa(s), "n1", 1, true)
		}
	}
	return b
}

func seqs(k int) []int {
	s := make([]int, k)
	for i := range s {
		s[i] = i + 1
	}
	return s
}

func TestMillionEvents(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a million events")
	}
	b := big(1_000_000)
	start := time.Now()
	r := b.check()
	t.Logf("checked %d events, %d instances, %d snapshots, %d owner samples in %v",
		len(b.h.Events), len(b.s.Instances), len(b.h.Snapshots), len(b.h.Owners), time.Since(start))
	if !r.OK() || r.Applied != 1_000_000 {
		t.Errorf("report:\n%s", r)
	}
}

func BenchmarkCheck(b *testing.B) {
	run := big(1_000_000)
	b.ResetTimer()
	for b.Loop() {
		Check(run.h, run.s)
	}
}
