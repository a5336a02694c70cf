package event

import (
	"errors"
	"reflect"
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
		`{"activity":"A","instance":"1","kind":"enable-continuation","token":"t-1"}`,
		`{"activity":"A","continuation":"t-1","kind":"end","data":{"Shipped":"2026-11-25T10:02:00Z"}}`,
		`{"activity":"A","instance":"1","kind":"relate","related":{"activity":"B","instance":"2"}}`,
		`{"activity":"A","instance":"1","kind":"reference","reference":{"type":"message","name":"order","value":"m-1","data":"line 1\nline 2"}}`,
		`{"activity":"A","instance":"1","continuation":"t","kind":"update"}`,
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
		if !back.Time.Equal(ev.Time) || back.Activity != ev.Activity || back.Instance != ev.Instance || back.Kind != ev.Kind || len(back.Data) != len(ev.Data) ||
			back.Continuation != ev.Continuation || back.Token != ev.Token ||
			!reflect.DeepEqual(back.Related, ev.Related) || !reflect.DeepEqual(back.Reference, ev.Reference) {
			t.Fatalf("round trip changed the event: %+v → %+v", ev, back)
		}
	})
}

// FuzzDecodeFast checks decodeFast against encoding/json: whatever it
// accepts decodes to the same event on the slow path, and validates or is
// refused alike; and on the seeds, that it takes the usual events and
// leaves the odd ones (another spelling of a key, a repeated key, an
// escape in a name, null, a nested value, trailing bytes) to the slow path.
func FuzzDecodeFast(f *testing.F) {
	fast := []string{
		`{"activity":"PurchaseOrder","instance":"PO-000123","kind":"update","time":"2026-11-25T10:02:00Z","data":{"Approved":"2026-11-25T10:02:00Z","Amount":1200,"Customer":"Contoso"}}`,
		" {\n\t\"activity\" : \"A\" ,\r\"instance\":\"é\",\"kind\":\"begin\" , \"data\" : { } } \n",
		`{"data":{"a":-0,"b":1.5e-3,"c":true,"d":false,"e":null,"f":"\u00e9\n\"\\\/"},"kind":"end","instance":"1","activity":"A"}`,
		`{"activity":"A","instance":"1","kind":"shipped"}`,
		`{"activity":"9","instance":"","kind":"begin","data":{"x":1,"x":2}}`,
		`{"activity":"A","instance":"1","kind":"begin","data":{"x":"\u0000","y":"\ud800"}}`,
		`{"activity":"A","instance":"1","kind":"begin","data":{"x":1e200000}}`,
		`{"activity":"A","instance":"1","kind":"begin","data":{"x":0.0e-20000,"y":"` + "\xff" + `"}}`,
	}
	slow := []string{
		`{"Activity":"A","instance":"1","kind":"begin"}`,
		`{"activity":"A","activity":"B","instance":"1","kind":"begin"}`,
		`{"activity":"A\u0042","instance":"1","kind":"begin"}`,
		`{"activity":"A","instance":"1","kind":"begin","data":null}`,
		`{"activity":"A","instance":"1","kind":"begin","data":{"x":{"y":1}}}`,
		`{"activity":"A","instance":"1","kind":"begin","data":{"x\u0041":1}}`,
		`{"activity":"A","instance":"1","kind":"begin"} }`,
		`{"activity":"A","instance":"1","kind":"begin"}{}`,
		`{"activity":"A","instance":"1","kind":"begin","time":"yesterday"}`,
		`{"activity":"A","instance":"1"}`,
		`{"activity":"A","instance":"1","kind":"begin","data":{"x":01}}`,
		`{"activity":"A","instance":"1","kind":"begin","data":{"x":1.}}`,
		`{"activity":"A","instance":"1","kind":"begin","data":{"x":tru}}`,
		`{"activity":"A","instance":"1","kind":"begin","data":{"x":"a` + "\x01" + `"}}`,
		`{"activity":"A","instance":"` + "\xff" + `","kind":"begin"}`,
		`{"activity":"A","instance":"1","kind":"begin","data":{"x":"\x"}}`,
		`{"activity":null,"instance":"1","kind":"begin"}`,
		`{}`, `null`, `[]`, ``, `{"activity":"A",}`,
	}
	for _, s := range fast {
		if _, ok := decodeFast([]byte(s), time.Unix(0, 0)); !ok {
			f.Errorf("decodeFast(%s) left a usual event to the slow path", s)
		}
		f.Add([]byte(s))
	}
	for _, s := range slow {
		if _, ok := decodeFast([]byte(s), time.Unix(0, 0)); ok {
			f.Errorf("decodeFast(%s) took an event it must leave to encoding/json", s)
		}
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		at := time.Unix(0, 0)
		ev, ok := decodeFast(raw, at)
		if !ok {
			return
		}
		fastErr := ev.Validate()
		want, slowErr := decodeSlow(raw, at)
		switch {
		case (fastErr == nil) != (slowErr == nil):
			t.Fatalf("%q: fast path says %v, encoding/json says %v", raw, fastErr, slowErr)
		case fastErr == nil && !reflect.DeepEqual(ev, want):
			t.Fatalf("%q: fast path decodes %#v, encoding/json %#v", raw, ev, want)
		case fastErr != nil && len(ev.Data) <= 1 && fastErr.Error() != slowErr.Error():
			// With several bad items, either may be named first.
			t.Fatalf("%q: fast path refuses with %q, encoding/json with %q", raw, fastErr, slowErr)
		}
	})
}
