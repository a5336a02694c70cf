package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Kind is what an event does to its instance.
type Kind string

// The kinds of this version. Later versions add kinds; an older node
// quarantines an event of a kind it does not know, to be retried after an
// upgrade.
const (
	Begin  Kind = "begin"
	Update Kind = "update"
	End    Kind = "end"
)

// Limits on names and sizes. They are checked before anything touches a store.
const (
	MaxNameLen     = 128        // bytes in an activity or item name
	MaxInstanceLen = 255        // bytes in an instance id
	MaxItems       = 256        // data items in one event
	DefaultMaxSize = 256 * 1024 // bytes of one event's JSON form
)

// Event is one business event of one activity instance.
type Event struct {
	Activity string                     `json:"activity"`
	Instance string                     `json:"instance"`
	Kind     Kind                       `json:"kind"`
	Time     time.Time                  `json:"time"`
	Data     map[string]json.RawMessage `json:"data,omitempty"`
}

// Error says what is wrong with an event. Field names the offending JSON
// field ("kind", "data.Amount"), empty when the whole event is unreadable.
type Error struct {
	Field  string
	Reason string
}

func (e *Error) Error() string {
	if e.Field == "" {
		return e.Reason
	}
	return e.Field + ": " + e.Reason
}

func fieldError(field, format string, args ...any) *Error {
	return &Error{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// wire is the JSON form with time still a string, so a missing time can be
// told apart from a malformed one.
type wire struct {
	Activity *string                    `json:"activity"`
	Instance *string                    `json:"instance"`
	Kind     *string                    `json:"kind"`
	Time     *string                    `json:"time"`
	Data     map[string]json.RawMessage `json:"data"`
}

// Decode parses and checks one event in its JSON form. An event without a
// time gets defaultTime. maxSize bounds len(raw); 0 means DefaultMaxSize.
// Every error is an *Error naming the field at fault.
func Decode(raw []byte, defaultTime time.Time, maxSize int) (Event, error) {
	if maxSize <= 0 {
		maxSize = DefaultMaxSize
	}
	if len(raw) > maxSize {
		return Event{}, &Error{Reason: fmt.Sprintf("event is %d bytes, over the limit of %d", len(raw), maxSize)}
	}
	if ev, ok := decodeFast(raw, defaultTime); ok {
		if err := ev.Validate(); err != nil {
			return Event{}, err
		}
		return ev, nil
	}
	return decodeSlow(raw, defaultTime)
}

// decodeSlow is Decode with encoding/json: every input decodeFast leaves,
// and every error.
func decodeSlow(raw []byte, defaultTime time.Time) (Event, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	var w wire
	if err := dec.Decode(&w); err != nil {
		return Event{}, decodeError(err)
	}
	if dec.More() {
		return Event{}, &Error{Reason: "malformed JSON: more than one value"}
	}
	var ev Event
	switch {
	case w.Activity == nil:
		return Event{}, fieldError("activity", "missing")
	case w.Instance == nil:
		return Event{}, fieldError("instance", "missing")
	case w.Kind == nil:
		return Event{}, fieldError("kind", "missing")
	}
	ev.Activity, ev.Instance, ev.Kind = *w.Activity, *w.Instance, Kind(*w.Kind)
	ev.Time = defaultTime
	if w.Time != nil {
		t, err := time.Parse(time.RFC3339Nano, *w.Time)
		if err != nil {
			return Event{}, fieldError("time", "%q is not an RFC 3339 time such as 2026-11-25T10:02:00Z", *w.Time)
		}
		ev.Time = t
	}
	ev.Data = w.Data
	if err := ev.Validate(); err != nil {
		return Event{}, err
	}
	return ev, nil
}

func decodeError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return &Error{Reason: fmt.Sprintf("malformed JSON at byte %d: %v", syn.Offset, syn)}
	case errors.As(err, &typ):
		field := typ.Field
		return fieldError(field, "must be a %s, got %s", jsonTypeName(typ.Type.String()), typ.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		// encoding/json has no typed error for unknown fields.
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return fieldError(name, "unknown field (known: activity, instance, kind, time, data)")
	case errors.Is(err, io.EOF):
		return &Error{Reason: "empty event"}
	default:
		return &Error{Reason: "malformed JSON: " + err.Error()}
	}
}

func jsonTypeName(goType string) string {
	switch {
	case strings.Contains(goType, "map"):
		return "object"
	case strings.Contains(goType, "string"):
		return "string"
	default:
		return goType
	}
}

// Validate checks an event's fields against the rules of this version.
func (ev Event) Validate() error {
	if err := checkName("activity", ev.Activity); err != nil {
		return err
	}
	if ev.Instance == "" {
		return fieldError("instance", "must not be empty")
	}
	if len(ev.Instance) > MaxInstanceLen {
		return fieldError("instance", "is %d bytes, over the limit of %d", len(ev.Instance), MaxInstanceLen)
	}
	if !utf8.ValidString(ev.Instance) || strings.IndexFunc(ev.Instance, unicode.IsControl) >= 0 {
		return fieldError("instance", "must be UTF-8 text without control characters")
	}
	switch ev.Kind {
	case Begin, Update, End:
	default:
		return fieldError("kind", "unknown kind %q (known: begin, update, end)", string(ev.Kind))
	}
	if ev.Time.IsZero() {
		return fieldError("time", "missing")
	}
	if len(ev.Data) > MaxItems {
		return fieldError("data", "has %d items, over the limit of %d", len(ev.Data), MaxItems)
	}
	for name, v := range ev.Data {
		if nameOK(name) && scalarOK(v) {
			continue // the usual case, checked without building the field's name
		}
		field := "data." + name
		if err := checkName(field, name); err != nil {
			return err
		}
		if err := checkScalar(field, v); err != nil {
			return err
		}
	}
	return nil
}

// nameOK reports whether checkName accepts name.
func nameOK(name string) bool {
	if name == "" || len(name) > MaxNameLen {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// scalarOK reports whether checkScalar surely accepts v: a number, a
// literal, or a string without a backslash; anything else is left to
// checkScalar.
func scalarOK(v json.RawMessage) bool {
	if len(v) == 0 {
		return false
	}
	switch v[0] {
	case '"':
		return bytes.IndexByte(v, '\\') < 0
	case '{', '[', ' ', '\t', '\n', '\r':
		return false
	}
	return true
}

func checkName(field, name string) error {
	if name == "" {
		return fieldError(field, "name must not be empty")
	}
	if len(name) > MaxNameLen {
		return fieldError(field, "name is %d bytes, over the limit of %d", len(name), MaxNameLen)
	}
	for i, r := range name {
		ok := r == '_' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (i > 0 && r >= '0' && r <= '9')
		if !ok {
			return fieldError(field, "name %q may hold only letters, digits and underscores, and must not start with a digit", name)
		}
	}
	return nil
}

func checkScalar(field string, v json.RawMessage) error {
	t := bytes.TrimSpace(v)
	if len(t) == 0 {
		return fieldError(field, "missing value")
	}
	switch t[0] {
	case '{':
		return fieldError(field, "value must be a string, number, boolean or null, got an object")
	case '[':
		return fieldError(field, "value must be a string, number, boolean or null, got an array")
	case '"':
		return checkText(field, t)
	}
	return nil
}

// checkText refuses what is valid JSON but not storable text in every
// store: a NUL character (\u0000) and a UTF-16 surrogate escape without
// its pair. PostgreSQL's jsonb refuses both, so an event carrying one would
// fail its batch on every retry.
func checkText(field string, s []byte) error {
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			continue
		}
		i++ // the escaped character
		if i >= len(s) || s[i] != 'u' || i+4 >= len(s) {
			continue
		}
		r, ok := hex4(s[i+1 : i+5])
		if !ok {
			continue
		}
		switch {
		case r == 0:
			return fieldError(field, "text must not contain a NUL character (\\u0000)")
		case r >= 0xD800 && r <= 0xDBFF:
			// A high surrogate must be followed by a low one.
			j := i + 5
			if j+5 < len(s) && s[j] == '\\' && s[j+1] == 'u' {
				if lo, ok := hex4(s[j+2 : j+6]); ok && lo >= 0xDC00 && lo <= 0xDFFF {
					i = j + 5
					continue
				}
			}
			return fieldError(field, "text holds an unpaired UTF-16 surrogate (\\u%04x)", r)
		case r >= 0xDC00 && r <= 0xDFFF:
			return fieldError(field, "text holds an unpaired UTF-16 surrogate (\\u%04x)", r)
		}
		i += 4
	}
	return nil
}

func hex4(b []byte) (rune, bool) {
	var r rune
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// Partition returns the partition of a source with n partitions that holds
// the events of instance id. All events of one instance land in one
// partition, which keeps their order.
func Partition(instance string, n int) int {
	if n <= 1 {
		return 0
	}
	h := fnv.New32a()
	h.Write([]byte(instance))
	return int(h.Sum32() % uint32(n))
}

// Encode returns the JSON form of an event, with its time in UTC.
func Encode(ev Event) []byte {
	w := struct {
		Activity string                     `json:"activity"`
		Instance string                     `json:"instance"`
		Kind     Kind                       `json:"kind"`
		Time     string                     `json:"time"`
		Data     map[string]json.RawMessage `json:"data,omitempty"`
	}{ev.Activity, ev.Instance, ev.Kind, ev.Time.UTC().Format(time.RFC3339Nano), ev.Data}
	b, err := json.Marshal(w)
	if err != nil {
		// Only a RawMessage that is not JSON can fail here, and Validate
		// refuses those before any event is encoded.
		panic(fmt.Sprintf("encode event: %v", err))
	}
	return b
}
