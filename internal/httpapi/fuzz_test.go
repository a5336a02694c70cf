package httpapi

import (
	"encoding/json"
	"testing"
)

// FuzzSplit checks that any body is either split or refused with an
// offset inside it, never a panic, and that a JSON body is split into as
// many items as its array has elements.
func FuzzSplit(f *testing.F) {
	for _, seed := range []string{
		"[" + okEvent + "," + okEvent2 + "]", okEvent, "[]", "", " ", "[1, {]", "[{\"a\":1}, {", "42", "\"x\"",
		"[" + okEvent + "] []", okEvent + "\r\n\n" + badKind,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		items, berr := split(body, formatJSON)
		if berr != nil {
			if berr.offset < 0 || berr.offset > int64(len(body)) {
				t.Fatalf("offset %d outside a body of %d bytes", berr.offset, len(body))
			}
		} else {
			var arr []json.RawMessage
			if json.Unmarshal(body, &arr) == nil && len(items) != len(arr) {
				t.Fatalf("%d items from an array of %d", len(items), len(arr))
			}
		}
		for _, it := range splitLines(body) {
			if len(it.raw) == 0 || it.line < 1 {
				t.Fatalf("line item %+v", it)
			}
		}
	})
}
