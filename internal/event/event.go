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
	Begin              Kind = "begin"
	Update             Kind = "update"
	End                Kind = "end"
	EnableContinuation Kind = "enable-continuation"
	Relate             Kind = "relate"
	AddReference       Kind = "reference"
)

// kindNames lists the kinds for error messages.
const kindNames = "begin, update, end, enable-continuation, relate, reference"

// Limits on names and sizes. They are checked before anything touches a store.
const (
	MaxNameLen     = 128        // bytes in an activity or item name
	MaxInstanceLen = 255        // bytes in an instance id
	MaxItems       = 256        // data items in one event
	DefaultMaxSize = 256 * 1024 // bytes of one event's JSON form

	MaxReferenceType  = 64         // bytes in a reference's type (a name)
	MaxReferenceName  = 128        // bytes in a reference's name
	MaxReferenceValue = 1024       // bytes in a reference's value
	MaxReferenceData  = 128 * 1024 // bytes in a reference's long data
)

// Event is one business event of one activity instance, or of one
// continuation of an instance (Continuation set, Instance empty).
type Event struct {
	Activity string `json:"activity"`
	Instance string `json:"instance,omitempty"`
	// Continuation is the token of the continuation the event belongs to,
	// in place of Instance.
	Continuation string                     `json:"continuation,omitempty"`
	Kind         Kind                       `json:"kind"`
	Time         time.Time                  `json:"time"`
	Data         map[string]json.RawMessage `json:"data,omitempty"`
	// Token is the continuation an enable-continuation event enables.
	Token string `json:"token,omitempty"`
	// Related is the instance a relate event links to.
	Related *Related `json:"related,omitempty"`
	// Reference is what a reference event adds.
	Reference *Reference `json:"reference,omitempty"`
}

// Related names another activity's instance.
type Related struct {
	Activity string `json:"activity"`
	Instance string `json:"instance"`
}

// Reference is a typed link from an instance to something outside bam: a
// message id, a document's URL, another instance; with optional long data.
type Reference struct {
	Type  string `json:"type"`
	Name  string `json:"name"`
	Value string `json:"value"`
	Data  string `json:"data,omitempty"`
}

// Segment is the id the event's partition is chosen by: its instance, or
// the token of its continuation.
func (ev Event) Segment() string {
	if ev.Continuation != "" {
		return ev.Continuation
	}
	return ev.Instance
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
	Activity     *string                    `json:"activity"`
	Instance     *string                    `json:"instance"`
	Continuation *string                    `json:"continuation"`
	Kind         *string                    `json:"kind"`
	Time         *string                    `json:"time"`
	Data         map[string]json.RawMessage `json:"data"`
	Token        *string                    `json:"token"`
	Related      *Related                   `json:"related"`
	Reference    *Reference                 `json:"reference"`
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
	if err := checkObject(raw); err != nil {
		return Event{}, err
	}
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
	case w.Instance == nil && w.Continuation == nil:
		return Event{}, fieldError("instance", "missing (or continuation, for the events of a continuation)")
	case w.Kind == nil:
		return Event{}, fieldError("kind", "missing")
	}
	ev.Activity, ev.Kind = *w.Activity, Kind(*w.Kind)
	if w.Instance != nil {
		ev.Instance = *w.Instance
	}
	if w.Continuation != nil {
		ev.Continuation = *w.Continuation
	}
	if w.Token != nil {
		ev.Token = *w.Token
	}
	ev.Related, ev.Reference = w.Related, w.Reference
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
	// An empty string given is not an absent field, which Validate cannot
	// tell apart: "continuation": "" beside an instance, "token": "" on
	// an update.
	switch {
	case w.Instance != nil && *w.Instance == "":
		return Event{}, fieldError("instance", "must not be empty")
	case w.Continuation != nil && *w.Continuation == "":
		return Event{}, fieldError("continuation", "must not be empty")
	case w.Token != nil && *w.Token == "":
		return Event{}, fieldError("token", "must not be empty")
	}
	// encoding/json replaces bytes that are not UTF-8 in the strings it
	// decodes (ids, tokens, references) with U+FFFD: the event would be
	// stored other than it was sent. (decodeFast takes no such string,
	// and Validate checks the data values, which stay raw.)
	if !utf8.Valid(raw) {
		return Event{}, utf8Error(raw)
	}
	return ev, nil
}

// checkObject refuses an event that is JSON but no object: encoding/json
// takes null for an empty object, and names its Go type for the others.
func checkObject(raw []byte) error {
	trimmed := bytes.TrimLeft(raw, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] == '{' || !json.Valid(trimmed) {
		return nil // decodeError says it is empty, or where it is malformed
	}
	var what string
	switch c := trimmed[0]; {
	case c == 'n':
		what = "null"
	case c == '[':
		what = "an array"
	case c == '"':
		what = "a string"
	case c == 't' || c == 'f':
		what = "a boolean"
	default: // valid JSON left: a number
		what = "a number"
	}
	return &Error{Reason: "the event is " + what + ": each event must be a JSON object"}
}

func decodeError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return &Error{Reason: fmt.Sprintf("malformed JSON at byte %d: %v", syn.Offset, syn)}
	case errors.As(err, &typ) && typ.Field == "":
		// The first of several values (checkObject takes one alone).
		return &Error{Reason: "the event is a " + typ.Value + ": each event must be a JSON object"}
	case errors.As(err, &typ):
		field := typ.Field
		return fieldError(field, "must be a %s, got %s", jsonTypeName(typ.Type.String()), typ.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		// encoding/json has no typed error for unknown fields.
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return fieldError(name, "unknown field (known: activity, instance, continuation, kind, time, data, token, related, reference)")
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
	switch {
	case ev.Instance != "" && ev.Continuation != "":
		return fieldError("continuation", "an event names its instance or, under a continuation, its token: not both")
	case ev.Continuation != "":
		if err := checkID("continuation", ev.Continuation); err != nil {
			return err
		}
	default:
		if err := checkID("instance", ev.Instance); err != nil {
			return err
		}
	}
	switch ev.Kind {
	case Begin, Update, End:
	case EnableContinuation, Relate, AddReference:
		if len(ev.Data) > 0 {
			return fieldError("data", "belongs to begin, update and end events, not to %s", ev.Kind)
		}
	default:
		return fieldError("kind", "unknown kind %q (known: %s)", string(ev.Kind), kindNames)
	}
	if ev.Continuation != "" && ev.Kind != Update && ev.Kind != End && ev.Kind != EnableContinuation {
		return fieldError("kind", "%s is not allowed under a continuation (allowed: update, end, enable-continuation; the instance itself begins, relates and references)", ev.Kind)
	}
	if err := ev.checkKindFields(); err != nil {
		return err
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

// checkKindFields checks token, related and reference: present with their
// kind, absent otherwise.
func (ev Event) checkKindFields() error {
	switch {
	case ev.Kind == EnableContinuation:
		if ev.Token == "" {
			return fieldError("token", "missing: enable-continuation names the token its continuation will use")
		}
		if err := checkID("token", ev.Token); err != nil {
			return err
		}
		if ev.Token == ev.Segment() {
			return fieldError("token", "%q is the id of the event's own segment: a continuation needs a token of its own", ev.Token)
		}
	case ev.Token != "":
		return fieldError("token", "belongs to enable-continuation events, not to %s", ev.Kind)
	}
	switch {
	case ev.Kind == Relate:
		if ev.Related == nil {
			return fieldError("related", `missing: relate names the related instance, {"activity": ..., "instance": ...}`)
		}
		if err := checkName("related.activity", ev.Related.Activity); err != nil {
			return err
		}
		if err := checkID("related.instance", ev.Related.Instance); err != nil {
			return err
		}
		if ev.Related.Activity == ev.Activity && ev.Related.Instance == ev.Instance {
			return fieldError("related", "an instance cannot be related to itself")
		}
	case ev.Related != nil:
		return fieldError("related", "belongs to relate events, not to %s", ev.Kind)
	}
	switch {
	case ev.Kind == AddReference:
		if ev.Reference == nil {
			return fieldError("reference", `missing: reference gives {"type": ..., "name": ..., "value": ..., "data": ...}`)
		}
		return ev.Reference.check()
	case ev.Reference != nil:
		return fieldError("reference", "belongs to reference events, not to %s", ev.Kind)
	}
	return nil
}

func (r *Reference) check() error {
	if err := checkName("reference.type", r.Type); err != nil {
		return err
	}
	if len(r.Type) > MaxReferenceType {
		return fieldError("reference.type", "is %d bytes, over the limit of %d", len(r.Type), MaxReferenceType)
	}
	if err := checkString("reference.name", r.Name, MaxReferenceName, false); err != nil {
		return err
	}
	if err := checkString("reference.value", r.Value, MaxReferenceValue, false); err != nil {
		return err
	}
	if r.Data != "" {
		return checkString("reference.data", r.Data, MaxReferenceData, true)
	}
	return nil
}

// checkID checks an instance id or a token: not empty, at most
// MaxInstanceLen bytes of UTF-8 text without control characters.
func checkID(field, id string) error {
	if id == "" {
		return fieldError(field, "must not be empty")
	}
	return checkString(field, id, MaxInstanceLen, false)
}

// checkString checks a non-empty UTF-8 string of at most max bytes, without
// control characters unless multiline (then tab, line feed and carriage
// return pass). NUL never passes: PostgreSQL text cannot hold it.
func checkString(field, s string, max int, multiline bool) error {
	if s == "" {
		return fieldError(field, "must not be empty")
	}
	if len(s) > max {
		return fieldError(field, "is %d bytes, over the limit of %d", len(s), max)
	}
	if !utf8.ValidString(s) {
		return fieldError(field, "must be UTF-8 text")
	}
	bad := func(r rune) bool {
		return unicode.IsControl(r) && (!multiline || r == 0 || (r != '\t' && r != '\n' && r != '\r'))
	}
	if strings.IndexFunc(s, bad) >= 0 {
		if multiline {
			return fieldError(field, "must be text without control characters other than tab and line breaks")
		}
		return fieldError(field, "must be UTF-8 text without control characters")
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

// scalarOK reports whether checkScalar surely accepts v: a short number
// without an exponent, a literal, or an ASCII string without a backslash;
// anything else is left to checkScalar.
func scalarOK(v json.RawMessage) bool {
	if len(v) == 0 {
		return false
	}
	switch c := v[0]; {
	case c == '"':
		for _, c := range v {
			if c == '\\' || c >= utf8.RuneSelf {
				return false
			}
		}
		return true
	case c == '-' || isDigit(c):
		// Fewer than 300 characters without an exponent: far within
		// every limit of numberProblem.
		if len(v) >= 300 {
			return false
		}
		for _, c := range v {
			if c == 'e' || c == 'E' {
				return false
			}
		}
		return true
	case c == '{', c == '[', c == ' ', c == '\t', c == '\n', c == '\r':
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
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		if problem := numberProblem(t); problem != "" {
			return fieldError(field, "%s", problem)
		}
	}
	return nil
}

// checkText refuses what is valid JSON but not storable text in every
// store: bytes that are not UTF-8, a NUL character (\u0000) and a UTF-16
// surrogate escape without its pair. PostgreSQL's jsonb refuses all three,
// so an event carrying one would fail its batch on every retry.
func checkText(field string, s []byte) error {
	if !utf8.Valid(s) {
		return fieldError(field, "%s", utf8Reason(s))
	}
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
// the events of segment id (Event.Segment: an instance id, or a
// continuation's token). All events of one segment land in one partition,
// which keeps their order.
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
		Activity     string                     `json:"activity"`
		Instance     string                     `json:"instance,omitempty"`
		Continuation string                     `json:"continuation,omitempty"`
		Kind         Kind                       `json:"kind"`
		Time         string                     `json:"time"`
		Data         map[string]json.RawMessage `json:"data,omitempty"`
		Token        string                     `json:"token,omitempty"`
		Related      *Related                   `json:"related,omitempty"`
		Reference    *Reference                 `json:"reference,omitempty"`
	}{ev.Activity, ev.Instance, ev.Continuation, ev.Kind, ev.Time.UTC().Format(time.RFC3339Nano), ev.Data,
		ev.Token, ev.Related, ev.Reference}
	b, err := json.Marshal(w)
	if err != nil {
		// Only a RawMessage that is not JSON can fail here, and Validate
		// refuses those before any event is encoded.
		panic(fmt.Sprintf("encode event: %v", err))
	}
	return b
}
