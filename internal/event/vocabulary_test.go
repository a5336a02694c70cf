package event

import (
	"errors"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

func TestDecodeTheVocabulary(t *testing.T) {
	cases := []struct {
		raw  string
		want func(Event) bool
	}{
		{`{"activity":"PO","instance":"PO-1","kind":"enable-continuation","token":"ship-1"}`,
			func(e Event) bool {
				return e.Kind == EnableContinuation && e.Token == "ship-1" && e.Segment() == "PO-1"
			}},
		{`{"activity":"PO","continuation":"ship-1","kind":"update","data":{"Shipped":"2026-11-25T10:00:00Z"}}`,
			func(e Event) bool { return e.Instance == "" && e.Continuation == "ship-1" && e.Segment() == "ship-1" }},
		{`{"activity":"PO","continuation":"ship-1","kind":"enable-continuation","token":"bill-1"}`,
			func(e Event) bool { return e.Token == "bill-1" && e.Segment() == "ship-1" }},
		{`{"activity":"PO","instance":"PO-1","kind":"relate","related":{"activity":"Invoice","instance":"INV-7"}}`,
			func(e Event) bool { return e.Related != nil && *e.Related == Related{"Invoice", "INV-7"} }},
		{`{"activity":"PO","instance":"PO-1","kind":"reference","reference":{"type":"url","name":"scan","value":"https://x/1","data":"a\nb"}}`,
			func(e Event) bool {
				return e.Reference != nil && e.Reference.Data == "a\nb" && e.Reference.Type == "url"
			}},
	}
	for _, c := range cases {
		ev, err := Decode([]byte(c.raw), t0, 0)
		if err != nil {
			t.Errorf("Decode(%s): %v", c.raw, err)
			continue
		}
		if !c.want(ev) {
			t.Errorf("Decode(%s) = %+v", c.raw, ev)
		}
		back, err := Decode(Encode(ev), time.Time{}, 0)
		if err != nil || back.Token != ev.Token || back.Continuation != ev.Continuation || back.Instance != ev.Instance {
			t.Errorf("round trip of %s: %+v, %v", c.raw, back, err)
		}
	}
}

func TestVocabularyErrorsNameTheField(t *testing.T) {
	long := strings.Repeat("x", MaxReferenceData+1)
	cases := []struct{ raw, field, reason string }{
		{`{"activity":"PO","instance":"1","continuation":"t","kind":"update"}`, "continuation", "not both"},
		{`{"activity":"PO","kind":"update"}`, "instance", "missing"},
		{`{"activity":"PO","continuation":"","kind":"update"}`, "instance", "must not be empty"},
		{`{"activity":"PO","instance":"1","continuation":"","kind":"update"}`, "continuation", "must not be empty"},
		{`{"activity":"PO","continuation":"t","kind":"begin"}`, "kind", "not allowed under a continuation"},
		{`{"activity":"PO","continuation":"t","kind":"relate","related":{"activity":"B","instance":"2"}}`, "kind", "not allowed under a continuation"},
		{`{"activity":"PO","instance":"1","kind":"enable-continuation"}`, "token", "missing"},
		{`{"activity":"PO","instance":"1","kind":"enable-continuation","token":"1"}`, "token", "own segment"},
		{`{"activity":"PO","instance":"1","kind":"update","token":"t"}`, "token", "belongs to enable-continuation"},
		{`{"activity":"PO","instance":"1","kind":"update","token":""}`, "token", "must not be empty"},
		{`{"activity":"PO","instance":"1","kind":"enable-continuation","token":"t","data":{"a":1}}`, "data", "not to enable-continuation"},
		{`{"activity":"PO","instance":"1","kind":"relate"}`, "related", "missing"},
		{`{"activity":"PO","instance":"1","kind":"relate","related":{"activity":"9x","instance":"2"}}`, "related.activity", "letters"},
		{`{"activity":"PO","instance":"1","kind":"relate","related":{"activity":"B","instance":""}}`, "related.instance", "empty"},
		{`{"activity":"PO","instance":"1","kind":"relate","related":{"activity":"PO","instance":"1"}}`, "related", "itself"},
		{`{"activity":"PO","instance":"1","kind":"update","related":{"activity":"B","instance":"2"}}`, "related", "belongs to relate"},
		{`{"activity":"PO","instance":"1","kind":"reference"}`, "reference", "missing"},
		{`{"activity":"PO","instance":"1","kind":"reference","reference":{"type":"a b","name":"n","value":"v"}}`, "reference.type", "letters"},
		{`{"activity":"PO","instance":"1","kind":"reference","reference":{"type":"url","name":"","value":"v"}}`, "reference.name", "empty"},
		{`{"activity":"PO","instance":"1","kind":"reference","reference":{"type":"url","name":"n","value":"a\nb"}}`, "reference.value", "control"},
		{`{"activity":"PO","instance":"1","kind":"reference","reference":{"type":"url","name":"n","value":"v","data":"` + long + `"}}`, "reference.data", "over the limit"},
		{`{"activity":"PO","instance":"1","kind":"reference","reference":{"type":"url","name":"n","value":"v","data":"a\u0000"}}`, "reference.data", "control"},
		{`{"activity":"PO","instance":"1","kind":"update","reference":{"type":"url","name":"n","value":"v"}}`, "reference", "belongs to reference"},
		{`{"activity":"PO","instance":"1","kind":"shipped"}`, "kind", "enable-continuation, relate, reference"},
	}
	for _, c := range cases {
		_, err := Decode([]byte(c.raw), t0, 1<<20)
		var e *Error
		if !errors.As(err, &e) {
			t.Errorf("Decode(%.120s) = %v, want an *Error", c.raw, err)
			continue
		}
		if e.Field != c.field || !strings.Contains(e.Reason, c.reason) {
			t.Errorf("Decode(%.120s) = %q, want field %q and a reason with %q", c.raw, err, c.field, c.reason)
		}
	}
}

func TestCoalesceKeepsContinuationsApart(t *testing.T) {
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	ref := func(v, data string) *Reference { return &Reference{Type: "message", Name: "in", Value: v, Data: data} }
	evs := []Event{
		{Activity: "PO", Instance: "1", Kind: Begin, Time: at(0)},
		{Activity: "PO", Instance: "1", Kind: EnableContinuation, Token: "ship-1", Time: at(2)},
		{Activity: "PO", Instance: "1", Kind: EnableContinuation, Token: "ship-1", Time: at(1)},
		{Activity: "PO", Continuation: "1", Kind: Update, Time: at(3)}, // a token spelt like the instance: another segment
		{Activity: "PO", Instance: "1", Kind: Relate, Related: &Related{"Invoice", "7"}, Time: at(4)},
		{Activity: "PO", Instance: "1", Kind: Relate, Related: &Related{"Invoice", "7"}, Time: at(5)},
		{Activity: "PO", Instance: "1", Kind: AddReference, Reference: ref("m1", "late"), Time: at(7)},
		{Activity: "PO", Instance: "1", Kind: AddReference, Reference: ref("m1", "early"), Time: at(6)},
		{Activity: "PO", Instance: "1", Kind: AddReference, Reference: ref("m2", ""), Time: at(6)},
	}
	ds := Coalesce(evs)
	if len(ds) != 2 || ds[0].Continuation || !ds[1].Continuation || ds[1].Instance != "1" {
		t.Fatalf("Coalesce = %+v, want the instance and a continuation apart", ds)
	}
	d := ds[0]
	if d.Events != 8 || len(d.Enables) != 1 || !d.Enables[0].Time.Equal(at(1)) {
		t.Errorf("events %d, enables %+v: want 8 events and ship-1 enabled at its earliest", d.Events, d.Enables)
	}
	if len(d.Related) != 1 || len(d.References) != 2 || d.References[0].Data != "late" {
		t.Errorf("related %+v, references %+v: want one link, and m1 with the later event's data", d.Related, d.References)
	}
}
