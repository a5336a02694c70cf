package event

import (
	"encoding/json"
	"maps"
	"time"
)

// StoredTimeLayout is the one form in which stores keep a data value that
// is a time: UTC, with exactly six fractional digits, so that every stored
// time has the same width and text order is time order. Writers send times
// in any RFC 3339 form (the Go SDK trims trailing zeros: …43.5131Z), and as
// text …43Z sorts after …43.5Z, and 10:00+02:00 after 09:00Z: without one
// form, a view or a query that orders milestones as text (SQLite has no
// time type) would put them out of order within a second, or across zones.
const StoredTimeLayout = "2006-01-02T15:04:05.000000Z"

// StoredTime returns the stored form of a JSON data value: a string holding
// an RFC 3339 time (YYYY-MM-DDTHH:MM:SS, optional fraction of 1-9 digits,
// Z or ±HH:MM below 24:00; the form a milestone item takes) becomes that time in
// StoredTimeLayout, its fraction truncated to the microsecond as stores
// keep event times; every other value is returned as it is. The offset a
// writer used is not kept: the instant is.
//
// Every path into the stores goes through it (Coalesce), and the stores'
// migrations rewrite items written before it with the same rule.
func StoredTime(v json.RawMessage) json.RawMessage {
	t, ok := timeValue(v)
	if !ok {
		return v
	}
	out := make([]byte, 0, len(StoredTimeLayout)+2)
	out = append(out, '"')
	out = t.UTC().AppendFormat(out, StoredTimeLayout)
	return append(out, '"')
}

// timeValue parses v when it is a JSON string in the shape StoredTime
// takes, cheaply refusing every other value first: it runs on every data
// value an event carries.
func timeValue(v json.RawMessage) (time.Time, bool) {
	const shortest, longest = len(`"2006-01-02T15:04:05Z"`), len(`"2006-01-02T15:04:05.123456789+00:00"`)
	n := len(v)
	if n < shortest || n > longest || v[0] != '"' || v[n-1] != '"' {
		return time.Time{}, false
	}
	s := v[1 : n-1]
	if s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' {
		return time.Time{}, false
	}
	for _, i := range [...]int{0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18} {
		if !isDigit(s[i]) {
			return time.Time{}, false
		}
	}
	// The rest: an optional fraction, then the zone.
	rest := s[19:]
	if rest[0] == '.' {
		i := 1
		for i < len(rest) && isDigit(rest[i]) {
			i++
		}
		if i == 1 || i > 10 {
			return time.Time{}, false
		}
		rest = rest[i:]
	}
	switch {
	case len(rest) == 1 && rest[0] == 'Z':
	case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && isDigit(rest[1]) && isDigit(rest[2]) &&
		rest[3] == ':' && isDigit(rest[4]) && isDigit(rest[5]) && string(rest[1:3]) <= "23" && rest[4] <= '5':
	default:
		return time.Time{}, false
	}
	// The shape is right (an offset below 24 hours); the parser checks the
	// other ranges (month 13, 30 February, hour 24, second 60).
	t, err := time.Parse(time.RFC3339Nano, string(s))
	return t, err == nil
}

// StoredTimes returns items with every value in its stored form
// (StoredTime), and whether any changed: what a store's migration applies
// to the items written before times had one form.
func StoredTimes(items Items) (Items, bool) {
	var out Items
	for name, it := range items {
		v := StoredTime(it.Value)
		if string(v) == string(it.Value) {
			continue
		}
		if out == nil {
			out = maps.Clone(items)
		}
		out[name] = Item{Value: v, Time: it.Time}
	}
	if out == nil {
		return items, false
	}
	return out, true
}
