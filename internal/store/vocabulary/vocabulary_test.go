package vocabulary

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/store"
)

var t0 = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

func at(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }

func TestHas(t *testing.T) {
	plain := event.Coalesce([]event.Event{{Activity: "PO", Instance: "1", Kind: event.Begin, Time: at(0)}})
	if Has(plain) {
		t.Errorf("Has(begin only) = true")
	}
	for _, ev := range []event.Event{
		{Activity: "PO", Continuation: "t", Kind: event.Update, Time: at(0)},
		{Activity: "PO", Instance: "1", Kind: event.EnableContinuation, Token: "t", Time: at(0)},
		{Activity: "PO", Instance: "1", Kind: event.Relate, Related: &event.Related{Activity: "B", Instance: "2"}, Time: at(0)},
		{Activity: "PO", Instance: "1", Kind: event.AddReference, Reference: &event.Reference{Type: "url", Name: "n", Value: "v"}, Time: at(0)},
	} {
		if !Has(event.Coalesce([]event.Event{ev})) {
			t.Errorf("Has(%s) = false", ev.Kind)
		}
	}
}

func TestSplitRejectsASecondEnablerInTheBatch(t *testing.T) {
	p := Split(event.Coalesce([]event.Event{
		{Activity: "PO", Instance: "1", Kind: event.EnableContinuation, Token: "t", Time: at(2)},
		{Activity: "PO", Instance: "1", Kind: event.EnableContinuation, Token: "t", Time: at(1)},
		{Activity: "PO", Instance: "2", Kind: event.EnableContinuation, Token: "t", Time: at(0)},
		{Activity: "PO", Instance: "2", Kind: event.Begin, Time: at(0)},
		{Activity: "PO", Instance: "3", Kind: event.EnableContinuation, Token: "t", Time: at(0)},
	}))
	if len(p.Enables) != 1 || p.Enables[0].ParentInstance != "1" || !p.Enables[0].Time.Equal(at(1)) {
		t.Fatalf("enables %+v; want t kept by instance 1 at its earliest enable", p.Enables)
	}
	if p.Rejected() != 2 {
		t.Fatalf("rejected %d, want 2", p.Rejected())
	}
	// Instance 3's only event was refused: no delta left for it.
	ins := p.Instances()
	if len(ins) != 2 || ins[1].Instance != "2" || ins[1].Events != 1 {
		t.Fatalf("instances %+v; want 1 and 2, 2 with its begin only", ins)
	}
	fs := p.Failures(Place{SessionID: store.SessionID{Source: "s", Partition: 3}, Position: store.Position{Minor: 9}})
	if len(fs) != 2 || fs[0].Source != "s" || fs[0].Partition != 3 || fs[0].Position.Minor != 9 {
		t.Fatalf("failures %+v", fs)
	}
	ev, err := event.Decode(fs[0].Payload, time.Time{}, 0)
	if err != nil || ev.Instance != "2" || ev.Token != "t" || !ev.Time.Equal(at(0)) {
		t.Fatalf("payload %s = %+v, %v", fs[0].Payload, ev, err)
	}
	if e := RefusedError(fs[1]); e.Field != "token" || !strings.Contains(e.Reason, `instance "1"`) || !strings.Contains(e.Reason, `instance "3"`) {
		t.Fatalf("RefusedError = %v", e)
	}
}

func TestSplitRelationsAndReferences(t *testing.T) {
	ref := func(v, data string) *event.Reference {
		return &event.Reference{Type: "m", Name: "n", Value: v, Data: data}
	}
	deltas := event.Coalesce([]event.Event{
		{Activity: "A", Instance: "1", Kind: event.Relate, Related: &event.Related{Activity: "B", Instance: "2"}, Time: at(0)},
		{Activity: "B", Instance: "2", Kind: event.Relate, Related: &event.Related{Activity: "A", Instance: "1"}, Time: at(1)},
		{Activity: "A", Instance: "1", Kind: event.AddReference, Reference: ref("v", "first"), Time: at(5)},
	})
	// A second delta of the same instance (as a caller may pass): the
	// later event's data wins; the last on a tie.
	deltas = append(deltas, event.Coalesce([]event.Event{
		{Activity: "A", Instance: "1", Kind: event.AddReference, Reference: ref("v", "second"), Time: at(5)},
		{Activity: "A", Instance: "1", Kind: event.AddReference, Reference: ref("w", "old"), Time: at(1)},
	})...)
	p := Split(deltas)
	if len(p.Relations) != 2 || p.Relations[0].From.Activity != "A" || p.Relations[1].From.Activity != "B" {
		t.Fatalf("relations %+v; want one each way", p.Relations)
	}
	if len(p.References) != 2 || p.References[0].Data != "second" || p.References[1].Value != "w" {
		t.Fatalf("references %+v", p.References)
	}
}

func TestFold(t *testing.T) {
	k := event.Key{Activity: "PO", Instance: "1"}
	ds := Fold([]Pending{
		{Token: "a", Instance: k, Items: event.Items{"X": {Value: []byte("1"), Time: 5}}, Events: 2, First: at(3), Last: at(5)},
		{Token: "b", Instance: k, Items: event.Items{"X": {Value: []byte("2"), Time: 4}}, Events: 1, First: at(1), Last: at(4)},
	})
	if len(ds) != 1 || ds[0].Events != 3 || !ds[0].First.Equal(at(1)) || !ds[0].LastModified.Equal(at(5)) || string(ds[0].Items["X"].Value) != "1" {
		t.Fatalf("Fold = %+v", ds)
	}
}

func TestValidateNamesTheEvent(t *testing.T) {
	good := event.Event{Activity: "PO", Instance: "1", Kind: event.Begin, Time: at(0)}
	err := Validate([]event.Event{good, good, {Activity: "PO", Instance: "1", Kind: event.Relate, Time: at(0)}})
	var e *event.Error
	if !errors.As(err, &e) || e.Field != "events[2].related" {
		t.Fatalf("Validate = %v, want an *event.Error on events[2].related", err)
	}
	if err := Validate([]event.Event{good}); err != nil {
		t.Fatalf("Validate(valid) = %v", err)
	}
}
