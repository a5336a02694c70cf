package check

import (
	"strings"
	"testing"
	"time"
)

// TestByFault: unowned spans go to the fault that struck the session's last
// owner (by the name of its process, whatever its id), else to a fault of
// the whole pool, else to none; takeovers are measured from the fault's
// start, only on sessions the struck node held, and only when they happen
// within reach of the fault's end.
func TestByFault(t *testing.T) {
	b := newBuilder()
	b.h.LeaseTTL = 3 * time.Second
	b.h.NodeNames = map[string]string{"id1": "n1", "id1b": "n1", "id2": "n2"}
	b.h.Struck = []Struck{
		{Kind: "mid-batch", Node: "n1", At: at(10 * time.Second), Until: at(15 * time.Second)},
		{Kind: "restart", At: at(9 * time.Second), Until: at(11 * time.Second)},
		{Kind: "cut", Node: "n2", At: at(30 * time.Second), Until: at(31 * time.Second)},
	}
	// a: held by n1 (its second process), struck mid-batch at 10 s; lease
	// expired at 13 s, taken over by n2 at 14.5 s.
	b.owner(9*time.Second, "a", "id1b", 4, true).owner(13*time.Second, "a", "id1b", 4, false).
		owner(14500*time.Millisecond, "a", "id2", 5, true)
	// b: held by n2 through the restart; a 1 s gap the restart explains.
	b.owner(9*time.Second, "b", "id2", 1, true).owner(10*time.Second, "b", "", 1, false).
		owner(11*time.Second, "b", "id2", 2, true)
	// c: a handoff long after every fault: none.
	b.owner(40*time.Second, "c", "id2", 1, true).owner(41*time.Second, "c", "", 1, false).
		owner(41200*time.Millisecond, "c", "id1", 2, true)
	// d: held by n2 through its short cut, kept: no takeover.
	b.owner(29*time.Second, "d", "id2", 3, true).owner(50*time.Second, "d", "id1", 4, true)
	r := b.check()

	wantUnowned := map[string]Span{
		"mid-batch": {1500 * time.Millisecond, "a"},
		"restart":   {time.Second, "b"},
		FaultNone:   {200 * time.Millisecond, "c"},
	}
	for k, want := range wantUnowned {
		if got := r.UnownedByFault[k]; got != want {
			t.Errorf("unowned by %s = %v, want %v", k, got, want)
		}
	}
	if len(r.UnownedByFault) != len(wantUnowned) {
		t.Errorf("unowned by fault = %v, want %v", r.UnownedByFault, wantUnowned)
	}
	if got, want := r.TakeoverByFault, (map[string]Span{"mid-batch": {4500 * time.Millisecond, "a"}}); len(got) != 1 || got["mid-batch"] != want["mid-batch"] {
		t.Errorf("takeover by fault = %v, want %v", got, want)
	}
	s := r.String()
	for _, want := range []string{
		"longest unowned by fault: mid-batch 1.5s (a), none 200ms (c), restart 1s (b)",
		"longest takeover from a node fault's start: mid-batch 4.5s (a)",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("report lacks %q:\n%s", want, s)
		}
	}
}
