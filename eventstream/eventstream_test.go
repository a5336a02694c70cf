package eventstream

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/event"
)

// recorder is a sink that keeps what it is given.
type recorder struct {
	events   []event.Event
	payloads [][]byte
}

func (r *recorder) put(_ context.Context, ev event.Event, payload []byte) error {
	r.events = append(r.events, ev)
	r.payloads = append(r.payloads, payload)
	return nil
}

// recording returns a Writer whose events land in a recorder, with a fixed
// clock.
func recording(t *testing.T, v Validator) (emitter, *recorder, time.Time) {
	t.Helper()
	w, r := recordingWith(t, 0, v)
	now := time.Date(2026, 11, 25, 10, 2, 0, 0, time.UTC)
	w.checks.now = func() time.Time { return now }
	return w, r, now
}

// recordingWith is recording with an event size limit and the real clock.
func recordingWith(t *testing.T, maxSize int, v Validator) (emitter, *recorder) {
	t.Helper()
	c, err := newChecks(maxSize, v)
	if err != nil {
		t.Fatal(err)
	}
	r := &recorder{}
	return emitter{sink: r, checks: c}, r
}

// TestEveryMethodWritesItsEvent checks each method's JSON form, which the
// nodes decode: what a method writes must decode to the event it means.
func TestEveryMethodWritesItsEvent(t *testing.T) {
	w, rec, now := recording(t, nil)
	ctx := context.Background()
	at := now.Add(-time.Hour)
	steps := []struct {
		write func() error
		want  string
	}{
		{func() error { return w.BeginActivity(ctx, "PurchaseOrder", "PO-1") },
			`{"activity":"PurchaseOrder","instance":"PO-1","kind":"begin","time":"2026-11-25T10:02:00Z"}`},
		{func() error {
			return w.UpdateActivity(ctx, "PurchaseOrder", "PO-1", Data{"Amount": "1200.50", "Received": at}, At(at))
		}, `{"activity":"PurchaseOrder","instance":"PO-1","kind":"update","time":"2026-11-25T09:02:00Z","data":{"Amount":"1200.50","Received":"2026-11-25T09:02:00Z"}}`},
		{func() error { return w.EndActivity(ctx, "PurchaseOrder", "PO-1") },
			`{"activity":"PurchaseOrder","instance":"PO-1","kind":"end","time":"2026-11-25T10:02:00Z"}`},
		{func() error { return w.EnableContinuation(ctx, "PurchaseOrder", "PO-1", "ship-PO-1") },
			`{"activity":"PurchaseOrder","instance":"PO-1","kind":"enable-continuation","time":"2026-11-25T10:02:00Z","token":"ship-PO-1"}`},
		{func() error { return w.EnableNestedContinuation(ctx, "PurchaseOrder", "ship-PO-1", "deliver-PO-1") },
			`{"activity":"PurchaseOrder","continuation":"ship-PO-1","kind":"enable-continuation","time":"2026-11-25T10:02:00Z","token":"deliver-PO-1"}`},
		{func() error { return w.UpdateContinuation(ctx, "PurchaseOrder", "ship-PO-1", Data{"Shipped": now}) },
			`{"activity":"PurchaseOrder","continuation":"ship-PO-1","kind":"update","time":"2026-11-25T10:02:00Z","data":{"Shipped":"2026-11-25T10:02:00Z"}}`},
		{func() error { return w.EndContinuation(ctx, "PurchaseOrder", "ship-PO-1") },
			`{"activity":"PurchaseOrder","continuation":"ship-PO-1","kind":"end","time":"2026-11-25T10:02:00Z"}`},
		{func() error { return w.AddRelatedActivity(ctx, "PurchaseOrder", "PO-1", "Shipment", "SHP-7") },
			`{"activity":"PurchaseOrder","instance":"PO-1","kind":"relate","time":"2026-11-25T10:02:00Z","related":{"activity":"Shipment","instance":"SHP-7"}}`},
		{func() error {
			return w.AddReference(ctx, "PurchaseOrder", "PO-1", Reference{Type: "url", Name: "order", Value: "https://erp.example/po/1"})
		}, `{"activity":"PurchaseOrder","instance":"PO-1","kind":"reference","time":"2026-11-25T10:02:00Z","reference":{"type":"url","name":"order","value":"https://erp.example/po/1"}}`},
	}
	for i, s := range steps {
		if err := s.write(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		got := string(rec.payloads[i])
		if got != s.want {
			t.Errorf("step %d wrote\n%s\nwant\n%s", i, got, s.want)
		}
		// What the nodes will read back.
		ev, err := event.Decode(rec.payloads[i], time.Time{}, 0)
		if err != nil {
			t.Errorf("step %d: the node would refuse the event: %v", i, err)
		} else if ev.Segment() != rec.events[i].Segment() {
			t.Errorf("step %d: segment %q, want %q", i, ev.Segment(), rec.events[i].Segment())
		}
	}
}

type status string

func TestDataValues(t *testing.T) {
	ms := time.Date(2026, 11, 25, 11, 2, 0, 500, time.FixedZone("CET", 3600))
	s := "text"
	var nilInt *int
	cases := map[string]struct {
		v    any
		want string
	}{
		"string":      {"Contoso", `"Contoso"`},
		"int":         {1200, `1200`},
		"int8":        {int8(-3), `-3`},
		"uint64":      {uint64(math.MaxUint64), `18446744073709551615`},
		"float64":     {12.5, `12.5`},
		"float32":     {float32(0.1), `0.1`},
		"bool":        {true, `true`},
		"time":        {ms, `"2026-11-25T10:02:00.0000005Z"`},
		"time ptr":    {&ms, `"2026-11-25T10:02:00.0000005Z"`},
		"number":      {json.Number("1200.50"), `1200.50`},
		"nil":         {nil, `null`},
		"nil pointer": {nilInt, `null`},
		"string ptr":  {&s, `"text"`},
		"named":       {status("approved"), `"approved"`},
	}
	for name, c := range cases {
		raw, reason := encodeValue(c.v)
		if reason != "" || string(raw) != c.want {
			t.Errorf("%s: got %s (%s), want %s", name, raw, reason, c.want)
		}
	}
}

func TestRefusedDataValuesNameTheItem(t *testing.T) {
	w, rec, _ := recording(t, nil)
	ctx := context.Background()
	for _, v := range []any{
		[]string{"a"}, map[string]any{}, struct{}{}, complex(1, 2), math.NaN(), math.Inf(1), float32(math.Inf(-1)),
		json.Number("12,5"), json.Number(""), json.Number("NaN"), time.Time{}, "bad \xff utf-8", json.RawMessage(`1`),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		// Beyond what every store holds (PostgreSQL's numeric, a float).
		json.Number("1e200000"), json.Number("-1e309"), json.Number("1e-20000"),
	} {
		err := w.UpdateActivity(ctx, "PurchaseOrder", "PO-1", Data{"Amount": v, "Customer": "Contoso"})
		var evErr *EventError
		if !errors.As(err, &evErr) || evErr.Field != "data.Amount" || !errors.Is(err, ErrInvalidEvent) {
			t.Errorf("value %#v: error %v, want an *EventError on data.Amount", v, err)
			continue
		}
		if !strings.Contains(err.Error(), `update event of PurchaseOrder "PO-1": data.Amount: `) {
			t.Errorf("value %#v: message %q does not say which event and item", v, err)
		}
	}
	if len(rec.events) != 0 {
		t.Errorf("%d refused events were written", len(rec.events))
	}
}

// TestEventChecksNameTheField checks that the event package's rules apply
// before anything is written, and that the error names the field.
func TestEventChecksNameTheField(t *testing.T) {
	w, rec, _ := recording(t, nil)
	ctx := context.Background()
	cases := []struct {
		field string
		write func() error
	}{
		{"activity", func() error { return w.BeginActivity(ctx, "Purchase Order", "PO-1") }},
		{"activity", func() error { return w.BeginActivity(ctx, "", "PO-1") }},
		{"instance", func() error { return w.BeginActivity(ctx, "PurchaseOrder", "") }},
		{"instance", func() error { return w.EndActivity(ctx, "PurchaseOrder", "PO\n1") }},
		{"data.2nd", func() error { return w.UpdateActivity(ctx, "PurchaseOrder", "PO-1", Data{"2nd": 1}) }},
		{"data.Note", func() error { return w.UpdateActivity(ctx, "PurchaseOrder", "PO-1", Data{"Note": "a\x00b"}) }},
		{"time", func() error { return w.EndActivity(ctx, "PurchaseOrder", "PO-1", At(time.Time{})) }},
		{"token", func() error { return w.EnableContinuation(ctx, "PurchaseOrder", "PO-1", "") }},
		{"token", func() error { return w.EnableContinuation(ctx, "PurchaseOrder", "PO-1", "PO-1") }},
		{"continuation", func() error { return w.UpdateContinuation(ctx, "PurchaseOrder", "", nil) }},
		{"related.activity", func() error { return w.AddRelatedActivity(ctx, "PurchaseOrder", "PO-1", "", "SHP-1") }},
		{"related.instance", func() error { return w.AddRelatedActivity(ctx, "PurchaseOrder", "PO-1", "Shipment", "") }},
		{"related", func() error { return w.AddRelatedActivity(ctx, "PurchaseOrder", "PO-1", "PurchaseOrder", "PO-1") }},
		{"reference.type", func() error {
			return w.AddReference(ctx, "PurchaseOrder", "PO-1", Reference{Type: "a url", Name: "order", Value: "x"})
		}},
		{"reference.value", func() error {
			return w.AddReference(ctx, "PurchaseOrder", "PO-1", Reference{Type: "url", Name: "order"})
		}},
		{"reference.data", func() error {
			return w.AddReference(ctx, "PurchaseOrder", "PO-1", Reference{Type: "url", Name: "order", Value: "x",
				Data: strings.Repeat("x", event.MaxReferenceData+1)})
		}},
	}
	for i, c := range cases {
		err := c.write()
		var evErr *EventError
		if !errors.As(err, &evErr) || evErr.Field != c.field || !errors.Is(err, ErrInvalidEvent) {
			t.Errorf("case %d: error %v, want an *EventError on %s", i, err, c.field)
		}
	}
	if len(rec.events) != 0 {
		t.Errorf("%d refused events were written", len(rec.events))
	}
}

func TestValidatorRefusesEvents(t *testing.T) {
	errNoCustomer := errors.New("a purchase order needs its customer")
	var seen []Event
	w, rec, now := recording(t, func(ev Event) error {
		seen = append(seen, ev)
		if ev.Kind == KindUpdate && ev.Data["Customer"] == nil {
			return errNoCustomer
		}
		if ev.Kind == KindReference && ev.Reference.Type != "url" {
			return &EventError{Field: "reference.type", Reason: "only url references here"}
		}
		for k := range ev.Data {
			delete(ev.Data, k) // must not change what is written
		}
		return nil
	})
	ctx := context.Background()
	err := w.UpdateActivity(ctx, "PurchaseOrder", "PO-1", Data{"Amount": 3})
	if !errors.Is(err, errNoCustomer) || !errors.Is(err, ErrInvalidEvent) {
		t.Fatalf("error %v, want the validator's error, wrapped as an invalid event", err)
	}
	err = w.AddReference(ctx, "PurchaseOrder", "PO-1", Reference{Type: "message", Name: "order", Value: "m-1"})
	var evErr *EventError
	if !errors.As(err, &evErr) || evErr.Field != "reference.type" {
		t.Fatalf("error %v, want the validator's field", err)
	}
	if err := w.UpdateActivity(ctx, "PurchaseOrder", "PO-1", Data{"Customer": "Contoso"}); err != nil {
		t.Fatal(err)
	}
	if len(rec.events) != 1 || string(rec.events[0].Data["Customer"]) != `"Contoso"` {
		t.Fatalf("written: %+v, want the one valid update with its data", rec.events)
	}
	if last := seen[len(seen)-1]; last.Activity != "PurchaseOrder" || last.Instance != "PO-1" || !last.Time.Equal(now) {
		t.Errorf("the validator saw %+v", last)
	}
	// An event the event package refuses never reaches the validator.
	n := len(seen)
	_ = w.BeginActivity(ctx, "PurchaseOrder", "")
	if len(seen) != n {
		t.Errorf("the validator saw an event the event package refused")
	}
}

func TestMaxEventSize(t *testing.T) {
	w, _ := recordingWith(t, 200, nil)
	err := w.UpdateActivity(context.Background(), "PurchaseOrder", "PO-1", Data{"Note": strings.Repeat("x", 200)})
	var evErr *EventError
	if !errors.As(err, &evErr) || !strings.Contains(evErr.Reason, "over the limit of 200") {
		t.Fatalf("error %v, want the size limit", err)
	}
	if _, err := newChecks(-1, nil); err == nil {
		t.Error("a negative MaxEventSize was accepted")
	}
}

func TestCancelledContextWritesNothing(t *testing.T) {
	w, rec, _ := recording(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := w.BeginActivity(ctx, "PurchaseOrder", "PO-1"); !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
	if len(rec.events) != 0 {
		t.Fatal("an event was written under a cancelled context")
	}
}

func TestDefaultTimeIsNow(t *testing.T) {
	w, r := recordingWith(t, 0, nil)
	before := time.Now()
	if err := w.BeginActivity(context.Background(), "PurchaseOrder", "PO-1"); err != nil {
		t.Fatal(err)
	}
	if got := r.events[0].Time; got.Before(before) || got.After(time.Now()) {
		t.Errorf("event time %v is not the time of the call", got)
	}
}

func TestZeroValueStreamsSaySo(t *testing.T) {
	for _, w := range []Writer{&Buffered{}, &OutboxWriter{}} {
		if err := w.BeginActivity(context.Background(), "PurchaseOrder", "PO-1"); err == nil || !strings.Contains(err.Error(), "OpenBuffered") {
			t.Errorf("%T zero value: %v", w, err)
		}
	}
}

func TestTheFirstBadItemByNameIsNamed(t *testing.T) {
	w, _, _ := recording(t, nil)
	for range 20 { // map order varies from run to run
		err := w.UpdateActivity(context.Background(), "PurchaseOrder", "PO-1",
			Data{"Zeta": []int{}, "Alpha": struct{}{}, "Mid": 1, "Beta": complex(1, 1)})
		var evErr *EventError
		if !errors.As(err, &evErr) || evErr.Field != "data.Alpha" {
			t.Fatalf("error %v, want data.Alpha", err)
		}
	}
}

func TestKindsAreTheEventPackages(t *testing.T) {
	for public, internal := range map[Kind]event.Kind{
		KindBegin: event.Begin, KindUpdate: event.Update, KindEnd: event.End,
		KindEnableContinuation: event.EnableContinuation, KindRelate: event.Relate, KindReference: event.AddReference,
	} {
		if string(public) != string(internal) {
			t.Errorf("kind %q is %q in the event package", public, internal)
		}
	}
}
