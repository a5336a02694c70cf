package event

import (
	"errors"
	"testing"
	"time"
)

// FuzzDecode checks that any input either decodes to an event that
// validates and survives an Encode/Decode round trip, or is refused with an
// *Error — never a panic, never another kind of error.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"activity": "PurchaseOrder", "instance": "PO-1042", "kind": "update", "time": "2026-11-25T10:02:00Z", "data": {"Approved": "2026-11-25T10:02:00Z", "Amount": 1200}}`,
		`{"activity":"A","instance":"1","kind":"begin"}`,
		`{"activity":"A","instance":"1","kind":"end","data":{"x":null,"y":"\ud83d\ude00"}}`,
		`{"activity":`, `[]`, `null`, `{"activity":"A","instance":"1","kind":"begin","data":{"x":"\u0000"}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		ev, err := Decode(raw, time.Unix(0, 0), 4096)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Decode(%q) = %v, not an *Error", raw, err)
			}
			return
		}
		if err := ev.Validate(); err != nil {
			t.Fatalf("a decoded event does not validate: %v", err)
		}
		back, err := Decode(Encode(ev), time.Time{}, 0)
		if err != nil {
			t.Fatalf("re-decode of %s: %v", Encode(ev), err)
		}
		if !back.Time.Equal(ev.Time) || back.Activity != ev.Activity || back.Instance != ev.Instance || back.Kind != ev.Kind || len(back.Data) != len(ev.Data) {
			t.Fatalf("round trip changed the event: %+v → %+v", ev, back)
		}
	})
}
