package event

import (
	"encoding/json"
	"time"
	"unicode/utf8"
)

// decodeFast is Decode's single pass for the usual event: one JSON object
// whose keys are exactly activity, instance, kind, time and data (each at
// most once, no escapes), whose first four are strings without escapes,
// and whose data is an object of scalar values. It returns ok = false for
// anything else, valid or not (another spelling of a key, an escape in a
// name, null, a nested value, trailing bytes, a time that does not parse,
// a missing field, ...), and Decode then runs encoding/json, which gives
// the same event or the error with its usual wording. For every input it
// accepts, the event is the one encoding/json decodes (FuzzDecodeFast
// checks it), before Validate, which Decode runs on both paths. What a
// store cannot hold is checked there too: every string it cuts (names,
// ids, kind, time) is valid UTF-8 without escapes, and the data values,
// which it keeps raw, Validate reads for bad UTF-8, NUL and numbers beyond
// the stores' range.
//
// encoding/json spent most of Decode's time on reflection and one
// allocation per value; here the strings are cut from one copy of raw, the
// data values from another (an Event never aliases its caller's bytes).
func decodeFast(raw []byte, defaultTime time.Time) (Event, bool) {
	d := fastDecoder{b: raw}
	var (
		ev                 Event
		seen               uint8 // bit per top-level key
		activity, instance span
		kind, at           span
		dataCount          int
		// The data items, up to fastItems; more take the slow path.
		values [fastItems]struct{ name, value span }
	)
	const (
		hasActivity = 1 << iota
		hasInstance
		hasKind
		hasTime
		hasData
	)
	if !d.byte('{') {
		return Event{}, false
	}
	for {
		key, ok := d.plainString()
		if !ok {
			return Event{}, false
		}
		if !d.byte(':') {
			return Event{}, false
		}
		var bit uint8
		var dst *span
		switch string(raw[key.from:key.to]) {
		case "activity":
			bit, dst = hasActivity, &activity
		case "instance":
			bit, dst = hasInstance, &instance
		case "kind":
			bit, dst = hasKind, &kind
		case "time":
			bit, dst = hasTime, &at
		case "data":
			bit = hasData
		default:
			return Event{}, false // unknown, or another spelling: encoding/json decides
		}
		if seen&bit != 0 {
			return Event{}, false // a repeated key: encoding/json's rules decide
		}
		seen |= bit
		if dst != nil {
			if *dst, ok = d.plainString(); !ok {
				return Event{}, false
			}
		} else {
			if !d.byte('{') {
				return Event{}, false // null or not an object
			}
			if !d.peek('}') {
				for {
					if dataCount == len(values) {
						return Event{}, false
					}
					name, ok := d.plainString()
					if !ok || !d.byte(':') {
						return Event{}, false
					}
					value, ok := d.scalar()
					if !ok {
						return Event{}, false
					}
					values[dataCount].name, values[dataCount].value = name, value
					dataCount++
					if d.byte(',') {
						continue
					}
					break
				}
			}
			if !d.byte('}') {
				return Event{}, false
			}
		}
		if d.byte(',') {
			continue
		}
		if !d.byte('}') {
			return Event{}, false
		}
		break
	}
	d.space()
	if d.i != len(raw) || seen&(hasActivity|hasInstance|hasKind) != hasActivity|hasInstance|hasKind {
		return Event{}, false
	}
	text := string(raw) // one copy for every string of the event
	ev.Activity = text[activity.from:activity.to]
	ev.Instance = text[instance.from:instance.to]
	switch k := raw[kind.from:kind.to]; string(k) {
	case string(Begin):
		ev.Kind = Begin
	case string(Update):
		ev.Kind = Update
	case string(End):
		ev.Kind = End
	default:
		ev.Kind = Kind(text[kind.from:kind.to])
	}
	ev.Time = defaultTime
	if seen&hasTime != 0 {
		t, err := time.Parse(time.RFC3339Nano, text[at.from:at.to])
		if err != nil {
			return Event{}, false
		}
		ev.Time = t
	}
	if seen&hasData != 0 {
		ev.Data = make(map[string]json.RawMessage, dataCount)
		if dataCount > 0 {
			// One copy for every value: from the first name to the last value.
			first, last := values[0].name.from, values[dataCount-1].value.to
			vals := make([]byte, last-first)
			copy(vals, raw[first:last])
			for _, v := range values[:dataCount] {
				ev.Data[text[v.name.from:v.name.to]] = json.RawMessage(vals[v.value.from-first : v.value.to-first : v.value.to-first])
			}
		}
	}
	return ev, true
}

// fastItems is the most data items decodeFast takes.
const fastItems = 32

// span is raw[from:to].
type span struct{ from, to int }

type fastDecoder struct {
	b []byte
	i int
}

// space skips JSON white space.
func (d *fastDecoder) space() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// byte skips white space and c, if c comes next.
func (d *fastDecoder) byte(c byte) bool {
	d.space()
	if d.i < len(d.b) && d.b[d.i] == c {
		d.i++
		return true
	}
	return false
}

// peek skips white space and reports whether c comes next.
func (d *fastDecoder) peek(c byte) bool {
	d.space()
	return d.i < len(d.b) && d.b[d.i] == c
}

// plainString reads a string that decodes to its own bytes: no escape, no
// control character, valid UTF-8. It returns the span between the quotes.
func (d *fastDecoder) plainString() (span, bool) {
	if !d.byte('"') {
		return span{}, false
	}
	from := d.i
	ascii := true
	for ; d.i < len(d.b); d.i++ {
		switch c := d.b[d.i]; {
		case c == '"':
			s := span{from, d.i}
			d.i++
			if !ascii && !utf8.Valid(d.b[s.from:s.to]) {
				return span{}, false // encoding/json would replace the bad bytes
			}
			return s, true
		case c == '\\' || c < 0x20:
			return span{}, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return span{}, false
}

// scalar reads a JSON string, number, true, false or null and returns its
// span, quotes included. Objects, arrays and anything invalid return false.
func (d *fastDecoder) scalar() (span, bool) {
	d.space()
	if d.i >= len(d.b) {
		return span{}, false
	}
	from := d.i
	switch c := d.b[d.i]; {
	case c == '"':
		d.i++
		for d.i < len(d.b) {
			c := d.b[d.i]
			switch {
			case c == '"':
				d.i++
				return span{from, d.i}, true
			case c < 0x20:
				return span{}, false
			case c == '\\':
				if d.i+1 >= len(d.b) {
					return span{}, false
				}
				switch d.b[d.i+1] {
				case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
					d.i += 2
				case 'u':
					if d.i+6 > len(d.b) {
						return span{}, false
					}
					for _, h := range d.b[d.i+2 : d.i+6] {
						if !isHex(h) {
							return span{}, false
						}
					}
					d.i += 6
				default:
					return span{}, false
				}
			default:
				d.i++
			}
		}
		return span{}, false
	case c == '-' || c >= '0' && c <= '9':
		return d.number()
	case c == 't':
		return d.literal("true")
	case c == 'f':
		return d.literal("false")
	case c == 'n':
		return d.literal("null")
	}
	return span{}, false
}

// number reads a number with JSON's grammar:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (d *fastDecoder) number() (span, bool) {
	from := d.i
	if d.b[d.i] == '-' {
		d.i++
	}
	switch {
	case d.i < len(d.b) && d.b[d.i] == '0':
		d.i++
	case d.i < len(d.b) && d.b[d.i] >= '1' && d.b[d.i] <= '9':
		d.digits()
	default:
		return span{}, false
	}
	if d.i < len(d.b) && d.b[d.i] == '.' {
		d.i++
		if !d.digits() {
			return span{}, false
		}
	}
	if d.i < len(d.b) && (d.b[d.i] == 'e' || d.b[d.i] == 'E') {
		d.i++
		if d.i < len(d.b) && (d.b[d.i] == '+' || d.b[d.i] == '-') {
			d.i++
		}
		if !d.digits() {
			return span{}, false
		}
	}
	return span{from, d.i}, true
}

// digits skips [0-9]* and reports whether it skipped any.
func (d *fastDecoder) digits() bool {
	from := d.i
	for d.i < len(d.b) && d.b[d.i] >= '0' && d.b[d.i] <= '9' {
		d.i++
	}
	return d.i > from
}

func (d *fastDecoder) literal(word string) (span, bool) {
	from := d.i
	if len(d.b)-d.i < len(word) || string(d.b[d.i:d.i+len(word)]) != word {
		return span{}, false
	}
	d.i += len(word)
	return span{from, d.i}, true
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}
