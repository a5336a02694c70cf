package check

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
)

// cont records event seq of instance id's continuation (token id~c).
func (b *builder) cont(id string, seq int, acked, last bool) *builder {
	b.h.Events = append(b.h.Events, Event{
		ID: fmt.Sprintf("w-%s-c%d", id, seq), Source: "buffer", Activity: activity, Instance: id,
		Track: Cont, Token: id + "~c", Seq: seq, Last: last, Acked: acked,
	})
	return b
}

// end records instance id's events 1..k, the k-th its end, all acknowledged.
func (b *builder) end(id string, k int) *builder {
	b.write(id, k)
	b.h.Events[len(b.h.Events)-1].Last = true
	return b
}

// itemless records an event of instance id that sets no item: an enable
// of its continuation (related "") or a relate event.
func (b *builder) itemless(id, related string, acked bool) *builder {
	e := Event{ID: fmt.Sprintf("w-%s-x%d", id, len(b.h.Events)), Source: "buffer", Activity: activity, Instance: id,
		Itemless: true, Related: related, Acked: acked}
	if related == "" {
		e.Token = id + "~c"
	}
	b.h.Events = append(b.h.Events, e)
	return b
}

// storeFull puts instance id in the final state after applying main's and
// cont's events in order and itemless events without items.
func (b *builder) storeFull(id, state string, main, cont []int, itemless int, related ...string) *builder {
	in := applied(id, main...)
	for _, seq := range cont {
		for k, v := range ContinuationData(seq) {
			raw, _ := json.Marshal(v)
			in.Data[k] = raw
		}
	}
	in.Events += int64(len(cont) + itemless)
	in.State = state
	in.Related = append([]string{}, related...)
	b.s.Instances = append(b.s.Instances, in)
	return b
}

func TestContinuationsAndRelations(t *testing.T) {
	ref := activity + "/y"
	// base: instance x, 3 events and an enable, a continuation of 2, a
	// relation to y; y, 1 event.
	base := func(b *builder) *builder {
		return b.end("x", 3).itemless("x", "", true).cont("x", 1, true, false).cont("x", 2, true, true).
			itemless("x", ref, true).write("y", 1)
	}
	tests := []struct {
		name  string
		fault func(b *builder)
		want  []string
	}{
		{"all there", func(b *builder) {
			base(b).storeFull("x", "completed", []int{1, 2, 3}, []int{1, 2}, 2, ref).storeFull("y", "active", []int{1}, nil, 0, activity+"/x")
		}, nil},
		{"the continuation's events arrive before the instance's", func(b *builder) {
			base(b).storeFull("x", "completed", []int{1, 2, 3}, []int{1, 2}, 2, ref).store("y", 1)
		}, nil},
		{"a continuation event lost", func(b *builder) {
			base(b).storeFull("x", "completed", []int{1, 2, 3}, []int{1}, 2, ref).store("y", 1)
		}, []string{KindLost}},
		{"a continuation event doubled", func(b *builder) {
			base(b).storeFull("x", "completed", []int{1, 2, 3}, []int{1, 2, 2}, 2, ref).store("y", 1)
		}, []string{KindDoubled}},
		{"the continuation reordered", func(b *builder) {
			base(b).storeFull("x", "completed", []int{1, 2, 3}, []int{2, 1}, 2, ref).store("y", 1)
		}, []string{KindReordered}},
		{"an itemless event not counted", func(b *builder) {
			base(b).storeFull("x", "completed", []int{1, 2, 3}, []int{1, 2}, 1, ref).store("y", 1)
		}, []string{KindLost}},
		{"an itemless event counted twice", func(b *builder) {
			base(b).storeFull("x", "completed", []int{1, 2, 3}, []int{1, 2}, 3, ref).store("y", 1)
		}, []string{KindDoubled}},
		{"an itemless event of unknown outcome, not applied", func(b *builder) {
			base(b).itemless("x", activity+"/z", false).storeFull("x", "completed", []int{1, 2, 3}, []int{1, 2}, 2, ref).store("y", 1)
		}, nil},
		{"the relation lost", func(b *builder) {
			base(b).storeFull("x", "completed", []int{1, 2, 3}, []int{1, 2}, 2).store("y", 1)
		}, []string{KindLost}},
		{"a relation nobody wrote", func(b *builder) {
			base(b).storeFull("x", "completed", []int{1, 2, 3}, []int{1, 2}, 2, ref, activity+"/q").store("y", 1)
		}, []string{KindPhantom}},
		{"ended, continuation ended, not completed", func(b *builder) {
			base(b).storeFull("x", "active", []int{1, 2, 3}, []int{1, 2}, 2, ref).store("y", 1)
		}, []string{KindIncomplete}},
		{"continuation's end not written: active is right", func(b *builder) {
			b.end("x", 2).itemless("x", "", true).cont("x", 1, true, false).storeFull("x", "active", []int{1, 2}, []int{1}, 1)
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBuilder()
			tt.fault(b)
			r := b.check()
			var got []string
			for _, v := range r.Violations {
				if !slices.Contains(got, v.Kind) {
					got = append(got, v.Kind)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("kinds = %v, want %v\n%s", got, tt.want, r)
			}
		})
	}
}

func TestAContinuationWhoseEnableWasNotAppliedIsKeptAside(t *testing.T) {
	for _, tt := range []struct {
		name     string
		cont     []int // the continuation's items in the instance
		instance bool  // the instance is in the store
		pending  int64 // events kept aside under the token; -1: not read
		want     []string
	}{
		{"kept aside, all of it", nil, true, 2, nil},
		{"kept aside, the instance absent too", nil, false, 2, nil},
		{"kept aside, one missing", nil, true, 1, []string{KindLost}},
		{"kept aside, one too many", nil, true, 3, []string{KindDoubled}},
		{"not read", nil, true, -1, []string{KindLost}},
		{"some of it shows: the enable was applied, the rest is lost", []int{1}, true, -1, []string{KindLost}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := newBuilder()
			b.write("x", 2).itemless("x", "", false).cont("x", 1, true, false).cont("x", 2, true, true)
			if tt.instance {
				itemless := 0
				if len(tt.cont) > 0 {
					itemless = 1
				}
				b.storeFull("x", "active", []int{1, 2}, tt.cont, itemless)
			} else {
				b.h.Events = b.h.Events[2:] // the instance's own events were never written
			}
			if tt.pending >= 0 {
				b.s.Pending = map[string]int64{activity + "/x": tt.pending}
			}
			var got []string
			for _, v := range b.check().Violations {
				if !slices.Contains(got, v.Kind) {
					got = append(got, v.Kind)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("kinds = %v, want %v", got, tt.want)
			}
		})
	}
}
