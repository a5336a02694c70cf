package event

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
)

// AppendJSON appends items in their stored form, the one every store keeps
// them in: {"name":{"v":value,"t":micros},...}, names in order, and no item
// whose value is null or missing (null never erases, and SQLite's
// json_patch would read {"v":null} as "delete v"). A value that is not
// valid JSON is an error naming its item. It writes the bytes itself:
// encoding/json on a map sorts the keys by reflection and made the
// PostgreSQL driver's upsert three times as slow (BenchmarkUpsertArgs).
func (items Items) AppendJSON(buf []byte) ([]byte, error) {
	buf = append(buf, '{')
	first := true
	var small [16]string // an instance's items, sorted without allocating
	names := small[:0]
	for name := range items {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		it := items[name]
		v := bytes.TrimSpace(it.Value)
		if len(v) == 0 || string(v) == "null" {
			continue
		}
		if !json.Valid(v) {
			return nil, fmt.Errorf("item %s: value %q is not JSON", name, it.Value)
		}
		if !first {
			buf = append(buf, ',')
		}
		first = false
		buf = appendJSONString(buf, name)
		buf = append(buf, `:{"v":`...)
		buf = append(buf, v...)
		buf = append(buf, `,"t":`...)
		buf = strconv.AppendInt(buf, it.Time, 10)
		buf = append(buf, '}')
	}
	return append(buf, '}'), nil
}

// appendJSONString appends s as a JSON string. Item names are letters,
// digits and underscores (Validate), written as they are; anything else
// goes through encoding/json.
func appendJSONString(buf []byte, s string) []byte {
	for i := range len(s) {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			b, _ := json.Marshal(s) // a string always encodes
			return append(buf, b...)
		}
	}
	buf = append(buf, '"')
	buf = append(buf, s...)
	return append(buf, '"')
}

// StorableText reports whether a JSON value holds no text a store refuses
// (checkText: invalid UTF-8, a NUL character, an unpaired surrogate
// escape). Decode refuses events with such text; a store's last line of
// defence for values that did not come through it uses this to decide
// whether to repair a value before writing it.
func StorableText(v json.RawMessage) bool {
	return len(v) == 0 || v[0] != '"' || checkText("", v) == nil
}
