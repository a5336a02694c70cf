package event

import (
	"encoding/json"
	"errors"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
)

var now = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

func TestDecodeAcceptsTheStableShape(t *testing.T) {
	raw := `{"activity": "PurchaseOrder", "instance": "PO-1042", "kind": "update", "time": "2026-11-25T10:02:00Z", "data": {"Approved": "2026-11-25T10:02:00Z", "Amount": 1200}}`
	ev, err := Decode([]byte(raw), now, 0)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if ev.Activity != "PurchaseOrder" || ev.Instance != "PO-1042" || ev.Kind != Update || !ev.Time.Equal(now.Add(2*time.Minute)) {
		t.Fatalf("Decode = %+v", ev)
	}
	if string(ev.Data["Amount"]) != "1200" || string(ev.Data["Approved"]) != `"2026-11-25T10:02:00Z"` {
		t.Fatalf("data = %v", ev.Data)
	}
	noTime, err := Decode([]byte(`{"activity":"A","instance":"1","kind":"begin"}`), now, 0)
	if err != nil || !noTime.Time.Equal(now) {
		t.Fatalf("an event without time must get the default: %+v, %v", noTime, err)
	}
}

func TestDecodeNamesTheFieldAtFault(t *testing.T) {
	for _, tc := range []struct{ raw, field, reason string }{
		{`{"activity":`, "", "malformed JSON"},
		// JSON that is no object says what it is, in JSON's words (before:
		// "must be a event.wire, got number"; null read as an empty event).
		{`[1,2]`, "", "the event is an array: each event must be a JSON object"},
		{`42`, "", "the event is a number: each event must be a JSON object"},
		{` null`, "", "the event is null: each event must be a JSON object"},
		{`"PO-1"`, "", "the event is a string"},
		{`true`, "", "the event is a boolean"},
		{`not json`, "", "malformed JSON"},
		{`42 43`, "", "each event must be a JSON object"},
		{`nul`, "", "malformed JSON"},
		{``, "", "empty event"},
		{`{"instance":"1","kind":"begin"}`, "activity", "missing"},
		{`{"activity":"A","kind":"begin"}`, "instance", "missing"},
		{`{"activity":"A","instance":"1"}`, "kind", "missing"},
		{`{"activity":"A","instance":"1","kind":"shipped"}`, "kind", `unknown kind "shipped"`},
		{`{"activity":"A","instance":"","kind":"begin"}`, "instance", "must not be empty"},
		{`{"activity":"9lives","instance":"1","kind":"begin"}`, "activity", "letters, digits and underscores"},
		{`{"activity":"A","instance":"1","kind":"begin","time":"yesterday"}`, "time", "RFC 3339"},
		{`{"activity":"A","instance":"1","kind":"begin","data":{"x":{"y":1}}}`, "data.x", "got an object"},
		{`{"activity":"A","instance":"1","kind":"begin","data":{"x":[1]}}`, "data.x", "got an array"},
		{`{"activity":"A","instance":"1","kind":"begin","data":{"bad name":1}}`, "data.bad name", "letters, digits"},
		{`{"activity":"A","instance":"1","kind":"begin","colour":"red"}`, "colour", "unknown field"},
		{`{"activity":5,"instance":"1","kind":"begin"}`, "activity", "must be a string"},
		{`{"activity":"A","instance":"1","kind":"begin"} {}`, "", "more than one value"},
		{`{"activity":"A","instance":"a\u0001b","kind":"begin"}`, "instance", "control characters"},
		{`{"activity":"A","instance":"1","kind":"begin","data":{"x":"a\u0000b"}}`, "data.x", "NUL"},
		{`{"activity":"A","instance":"1","kind":"begin","data":{"x":"\ud800"}}`, "data.x", "unpaired"},
		{`{"activity":"A","instance":"1","kind":"begin","data":{"x":"\udc00x"}}`, "data.x", "unpaired"},
		{`{"activity":"A","instance":"1","kind":"begin","data":{"x":"\ud83dA"}}`, "data.x", "unpaired"},
	} {
		wantDecodeError(t, tc.raw, tc.field, tc.reason)
	}
}

// wantDecodeError checks that Decode refuses raw with an *Error on field
// whose reason holds reason.
func wantDecodeError(t *testing.T, raw, field, reason string) {
	t.Helper()
	_, err := Decode([]byte(raw), now, 1<<20)
	var e *Error
	if !errors.As(err, &e) {
		t.Errorf("Decode(%.80q) = %v, want *Error", raw, err)
		return
	}
	if e.Field != field || !strings.Contains(e.Reason, reason) {
		t.Errorf("Decode(%.80q) = field %q reason %q; want field %q, reason containing %q", raw, e.Field, e.Reason, field, reason)
	}
}

func TestDecodeAcceptsEscapedText(t *testing.T) {
	for _, v := range []string{`"\\u0000"`, `"\ud83d\ude00"`, `"tab\there"`, `"\\"`, `"\u00e9"`} {
		raw := `{"activity":"A","instance":"1","kind":"begin","data":{"x":` + v + `}}`
		if _, err := Decode([]byte(raw), now, 0); err != nil {
			t.Errorf("Decode with text %s: %v", v, err)
		}
	}
}

func TestDecodeRefusesOversizedEvents(t *testing.T) {
	raw := `{"activity":"A","instance":"1","kind":"begin","data":{"x":"` + strings.Repeat("a", 100) + `"}}`
	if _, err := Decode([]byte(raw), now, 50); err == nil || !strings.Contains(err.Error(), "over the limit of 50") {
		t.Fatalf("Decode of a 150-byte event with limit 50 = %v", err)
	}
}

func TestEncodeRoundTrips(t *testing.T) {
	ev := Event{Activity: "A", Instance: "I", Kind: End, Time: now.Add(time.Nanosecond), Data: map[string]json.RawMessage{"N": json.RawMessage("1.50")}}
	back, err := Decode(Encode(ev), time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, ev) {
		t.Fatalf("round trip: %+v, want %+v", back, ev)
	}
}

func TestPartitionIsStableAndSpreads(t *testing.T) {
	counts := make([]int, 8)
	for i := 0; i < 8000; i++ {
		id := "PO-" + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + time.Duration(i).String()
		p := Partition(id, 8)
		if p != Partition(id, 8) {
			t.Fatal("Partition is not deterministic")
		}
		counts[p]++
	}
	for p, c := range counts {
		if c < 700 || c > 1300 {
			t.Errorf("partition %d got %d of 8000 instances", p, c)
		}
	}
	if Partition("x", 1) != 0 || Partition("x", 0) != 0 {
		t.Error("one partition must be partition 0")
	}
}

func ev(kind Kind, sec int, data string) Event {
	e := Event{Activity: "A", Instance: "1", Kind: kind, Time: now.Add(time.Duration(sec) * time.Second)}
	if data != "" {
		if err := json.Unmarshal([]byte(data), &e.Data); err != nil {
			panic(err)
		}
	}
	return e
}

func TestCoalesceFoldsPerInstance(t *testing.T) {
	other := ev(Begin, 0, "")
	other.Instance = "2"
	d := Coalesce([]Event{
		ev(Update, 5, `{"Amount":1}`),
		other,
		ev(Begin, 1, ""),
		ev(Update, 3, `{"Amount":2,"Note":null}`),
		ev(End, 9, `{"Note":"done"}`),
	})
	if len(d) != 2 || d[0].Instance != "1" || d[1].Instance != "2" {
		t.Fatalf("Coalesce = %+v", d)
	}
	got := d[0]
	if !got.Begin.Equal(now.Add(time.Second)) || !got.End.Equal(now.Add(9*time.Second)) || !got.LastModified.Equal(now.Add(9*time.Second)) || got.Events != 4 {
		t.Fatalf("delta = %+v", got)
	}
	if string(got.Items["Amount"].Value) != "1" {
		t.Errorf("Amount = %s, want 1 (the value with the later time)", got.Items["Amount"].Value)
	}
	if string(got.Items["Note"].Value) != `"done"` {
		t.Errorf("Note = %s", got.Items["Note"].Value)
	}
}

// Whatever the order events of one instance arrive in, and however they are
// cut into batches, the merged state is the same (ties on time excepted,
// which this test avoids by giving every event its own time).
func TestMergeIsIndependentOfArrivalOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 200; round++ {
		var events []Event
		for i := 0; i < 12; i++ {
			kind := []Kind{Begin, Update, Update, End}[rng.IntN(4)]
			data := map[string]json.RawMessage{}
			for _, name := range []string{"A", "B", "C"} {
				switch rng.IntN(3) {
				case 0:
					data[name] = json.RawMessage(`null`)
				case 1:
					data[name] = json.RawMessage(string(rune('0' + rng.IntN(10))))
				}
			}
			events = append(events, Event{Activity: "X", Instance: "1", Kind: kind, Time: now.Add(time.Duration(i) * time.Second), Data: data})
		}
		want := fold(events, 1)
		for trial := 0; trial < 5; trial++ {
			shuffled := append([]Event(nil), events...)
			rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
			got := fold(shuffled, 1+rng.IntN(5))
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("round %d: order changed the state:\n got %+v\nwant %+v", round, got, want)
			}
		}
	}
}

// fold applies events in batches of size n the way a store does: coalesce a
// batch, then merge it into the state.
func fold(events []Event, n int) Delta {
	var st Delta
	st.Items = Items{}
	for i := 0; i < len(events); i += n {
		d := Coalesce(events[i:min(i+n, len(events))])[0]
		if d.Begin != nil && (st.Begin == nil || d.Begin.Before(*st.Begin)) {
			st.Begin = d.Begin
		}
		if d.End != nil && (st.End == nil || d.End.After(*st.End)) {
			st.End = d.End
		}
		if d.LastModified.After(st.LastModified) {
			st.LastModified = d.LastModified
		}
		st.Events += d.Events
		st.Items = Merge(st.Items, d.Items)
	}
	st.Key = Key{"X", "1"}
	return st
}

func TestMergeJSONMatchesMerge(t *testing.T) {
	a := []byte(`{"A":{"v":1,"t":10},"B":{"v":"x","t":20}}`)
	b := []byte(`{"A":{"v":2,"t":5},"B":{"v":"y","t":20},"C":{"v":true,"t":1}}`)
	out, err := MergeJSON(a, b)
	if err != nil {
		t.Fatal(err)
	}
	var got Items
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	if string(got["A"].Value) != "1" || string(got["B"].Value) != `"y"` || string(got["C"].Value) != "true" {
		t.Fatalf("MergeJSON = %s", out)
	}
	if out, err := MergeJSON(nil, nil); err != nil || string(out) != "{}" {
		t.Fatalf("MergeJSON(nil, nil) = %s, %v", out, err)
	}
}

// TestDecodeRefusesWhatAStoreRefuses: values that are valid JSON but that
// PostgreSQL refuses (a number beyond numeric, bytes that are not UTF-8)
// or that SQLite and float readers turn into ±Inf are refused at the door,
// naming the field, whichever decoder path reads the event. Before, each
// of them was decoded, and PostgreSQL then refused its batch forever.
func TestDecodeRefusesWhatAStoreRefuses(t *testing.T) {
	for _, tc := range []struct{ raw, field, reason string }{
		{`{"activity":"A","instance":"1","kind":"begin","data":{"Amount":1e200000}}`, "data.Amount", "number 1e200000 is beyond ±1.7976931348623157e+308"},
		{`{"activity":"A","instance":"1","kind":"begin","data":{"Amount":-1e200000}}`, "data.Amount", "beyond"},
		{`{"activity":"A","instance":"1","kind":"begin","data":{"Amount":1e309}}`, "data.Amount", "beyond"},
		{`{"activity":"A","instance":"1","kind":"begin","data":{"Amount":1.8e308}}`, "data.Amount", "beyond"},
		{`{"activity":"A","instance":"1","kind":"begin","data":{"Amount":0.0e-20000}}`, "data.Amount", "20001 digits after the decimal point, over the limit of 16383"},
		{`{"activity":"A","instance":"1","kind":"begin","data":{"Amount":1e-16384}}`, "data.Amount", "16384 digits after"},
		{`{"activity":"A","instance":"1","kind":"begin","data":{"Amount":1e-99999999999999999999}}`, "data.Amount", "more than a trillion digits after"},
		{`{"activity":"A","instance":"1","kind":"begin","data":{"Amount":` + strings.Repeat("9", 400) + `}}`, "data.Amount", "number 999999999999999999999999… (400 characters) is beyond"},
		{`{"activity":"A","instance":"1","kind":"begin","data":{"Amount":0.` + strings.Repeat("1", 16384) + `}}`, "data.Amount", "16384 digits after"},
		{`{"activity":"A","instance":"1","kind":"begin","data":{"Customer":"Cont` + "\xff" + `so"}}`, "data.Customer", "byte 0xff at offset 5 of the value is not"},
		{`{"activity":"A","instance":"1","kind":"begin","data":{"Customer":"` + "\xc3" + `"}}`, "data.Customer", "valid UTF-8"},
		{`{"activity":"A","instance":"1","kind":"begin","data":{"Customer":"\u00e9` + "\xed\xa0\x80" + `"}}`, "data.Customer", "valid UTF-8"},
		{`{"activity":"A","instance":"PO-` + "\xff" + `","kind":"begin"}`, "instance", "byte 0xff at byte 31 of the event"},
		{`{"activity":"A","continuation":"t-` + "\xff" + `","kind":"end"}`, "continuation", "valid UTF-8"},
		{`{"activity":"A","instance":"1","kind":"enable-continuation","token":"t` + "\xfe" + `"}`, "token", "byte 0xfe"},
		{`{"activity":"A","instance":"1","kind":"relate","related":{"activity":"B","instance":"` + "\xff" + `"}}`, "related.instance", "valid UTF-8"},
		{`{"activity":"A","instance":"1","kind":"reference","reference":{"type":"message","name":"n","value":"v` + "\xff" + `"}}`, "reference.value", "valid UTF-8"},
		{`{"activity":"A","instance":"1","kind":"reference","reference":{"type":"message","name":"n` + "\xff" + `","value":"v"}}`, "reference.name", "valid UTF-8"},
		{`{"activity":"A","instance":"1","kind":"reference","reference":{"type":"message","name":"n","value":"v","data":"` + "\xff" + `"}}`, "reference.data", "valid UTF-8"},
		{`{"activity":"A` + "\xff" + `","instance":"1","kind":"begin"}`, "activity", "letters, digits and underscores"},
		{`{"activity":"A","instance":"1","kind":"begin","data":{"Cust` + "\xff" + `":1}}`, "data.Cust\uFFFD", "letters, digits and underscores"},
		{`{"activity":"A","instance":"1","kind":"begin","data":{"S\u0000":1}}`, "data.S\x00", "letters, digits and underscores"},
		{`{"activity":"A","instance":"x\u0000","kind":"begin"}`, "instance", "control characters"},
		{`{"activity":"A","instance":"1","kind":"reference","reference":{"type":"message","name":"n","value":"v\u0000"}}`, "reference.value", "control characters"},
		{`{"activity":"A","instance":"1","kind":"reference","reference":{"type":"message","name":"n","value":"v","data":"d\u0000"}}`, "reference.data", "control characters"},
	} {
		wantDecodeError(t, tc.raw, tc.field, tc.reason)
	}
}

// TestDecodeAcceptsEveryStorableNumber: numbers up to the limits pass,
// whatever their spelling; so do zeros with any exponent, which are 0 in
// every store.
func TestDecodeAcceptsEveryStorableNumber(t *testing.T) {
	for _, n := range []string{
		"0", "-0", "1200", "-12.50", "1.5e-3", "1E+3", "1.7976931348623157e308", "-1.7976931348623157e308",
		"0.17976931348623157e309", "179769313486231570000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
		"1e-16383", "0.1e-16382", "0e200000", "0.000e-16380", "1e-400", "123456789012345678901234567890.123456789",
		"0.000000000000000000000000000000000000001e308",
	} {
		raw := `{"activity":"A","instance":"1","kind":"begin","data":{"x":` + n + `}}`
		if _, err := Decode([]byte(raw), now, 0); err != nil {
			t.Errorf("Decode with number %s: %v", n, err)
		}
	}
}

// TestValidateRefusesWhatAStoreRefuses: events built in Go (the SDK) meet
// the same limits as decoded ones.
func TestValidateRefusesWhatAStoreRefuses(t *testing.T) {
	for name, v := range map[string]string{
		"beyond float":     `1e200000`,
		"beyond the scale": `1e-20000`,
		"not UTF-8":        "\"\xff\"",
		"not a number":     `1e`,
	} {
		e := Event{Activity: "A", Instance: "1", Kind: Begin, Time: now, Data: map[string]json.RawMessage{"x": json.RawMessage(v)}}
		var evErr *Error
		if err := e.Validate(); !errors.As(err, &evErr) || evErr.Field != "data.x" {
			t.Errorf("%s: Validate = %v, want an *Error on data.x", name, err)
		}
	}
}
