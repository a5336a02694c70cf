package eventstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"reflect"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/bam-dev/bam/internal/catalog"
	"github.com/bam-dev/bam/internal/event"
)

// Writer is what every stream implements: one method per kind of event. A
// method returns nil once the stream accepted the event; what that
// guarantees depends on the stream (see the package comment).
//
// activity is the activity's name (PurchaseOrder); id is the instance id
// (PO-1042); token is a continuation token, which stands for the instance
// in the events of a continuation.
type Writer interface {
	// BeginActivity begins an instance.
	BeginActivity(ctx context.Context, activity, id string, opts ...EventOption) error
	// UpdateActivity sets milestones and data items of an instance.
	UpdateActivity(ctx context.Context, activity, id string, data Data, opts ...EventOption) error
	// EndActivity ends the instance's own part. The instance is complete
	// once it began, ended, and every continuation it enabled ended.
	EndActivity(ctx context.Context, activity, id string, opts ...EventOption) error

	// EnableContinuation lets another part of the process, which knows
	// only token, continue the instance: its events under token
	// (UpdateContinuation, EndContinuation) merge into the instance. A
	// token names one continuation: make it unique (e.g. "ship-PO-1042").
	EnableContinuation(ctx context.Context, activity, id, token string, opts ...EventOption) error
	// EnableNestedContinuation opens a further continuation, newToken, from
	// the continuation token: a continuation may hand over in turn.
	EnableNestedContinuation(ctx context.Context, activity, token, newToken string, opts ...EventOption) error
	// UpdateContinuation sets milestones and data of the instance that
	// enabled token.
	UpdateContinuation(ctx context.Context, activity, token string, data Data, opts ...EventOption) error
	// EndContinuation ends the continuation token.
	EndContinuation(ctx context.Context, activity, token string, opts ...EventOption) error

	// AddRelatedActivity links the instance to relatedID of
	// relatedActivity; the link is shown from both instances.
	AddRelatedActivity(ctx context.Context, activity, id, relatedActivity, relatedID string, opts ...EventOption) error
	// AddReference adds a reference to the instance. References are a set
	// keyed by (Type, Name, Value).
	AddReference(ctx context.Context, activity, id string, ref Reference, opts ...EventOption) error
}

// Data maps item names to values: milestones (time.Time) and data (text,
// numbers, booleans). See the package comment for the Go types accepted.
type Data map[string]any

// Reference is a typed link from an instance to something outside bam.
// Conventional types: "message" (Value is a message id), "document" or
// "url" (where a document is), "instance" (Value is "Activity/instance-id").
// Data is optional long text (at most 128 KiB).
type Reference struct {
	Type  string // letters, digits and underscores; at most 64 bytes
	Name  string // at most 128 bytes
	Value string // at most 1024 bytes
	Data  string
}

// Kind is what an event does.
type Kind string

// The kinds of event, as an Event given to a validator names them.
const (
	KindBegin              Kind = "begin"
	KindUpdate             Kind = "update"
	KindEnd                Kind = "end"
	KindEnableContinuation Kind = "enable-continuation"
	KindRelate             Kind = "relate"
	KindReference          Kind = "reference"
)

// Event is an event as a stream is about to write it, for a Validator.
type Event struct {
	Kind     Kind
	Activity string
	// Instance is the instance id; empty for the events of a continuation,
	// which name Continuation, the token, instead.
	Instance     string
	Continuation string
	Time         time.Time
	// Data holds the items in their JSON form.
	Data map[string]json.RawMessage
	// Token is the continuation an enable-continuation event enables.
	Token string
	// RelatedActivity and RelatedInstance are what a relate event links to.
	RelatedActivity, RelatedInstance string
	// Reference is what a reference event adds.
	Reference *Reference
}

// Validator checks an event before a stream accepts it; an error refuses
// the event. The stream returns it as an *EventError (Field from the error
// when it is an *EventError itself, else empty) that wraps it.
type Validator func(Event) error

// Errors callers branch on with errors.Is.
var (
	// ErrInvalidEvent is wrapped by every *EventError: the event was
	// refused and nothing was written.
	ErrInvalidEvent = errors.New("invalid event")
	// ErrClosed is returned by the methods of a closed stream.
	ErrClosed = errors.New("event stream is closed")
)

// EventError says why an event was refused. Nothing was written.
type EventError struct {
	Kind     Kind
	Activity string
	// ID is the instance id, or the continuation's token.
	ID string
	// Field is the offending field as in the event's JSON form:
	// "activity", "instance", "continuation", "token", "time",
	// "data.<item>", "related.instance", "reference.type", ... Empty when
	// the event as a whole is refused (by a Validator, or its size).
	Field  string
	Reason string
	// Err is the Validator's error, when a Validator refused the event.
	Err error
}

func (e *EventError) Error() string {
	what := fmt.Sprintf("eventstream: %s event of %s %q", e.Kind, e.Activity, e.ID)
	if e.Field == "" {
		return what + ": " + e.Reason
	}
	return what + ": " + e.Field + ": " + e.Reason
}

// Unwrap returns ErrInvalidEvent and the Validator's error, if any.
func (e *EventError) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrInvalidEvent, e.Err}
	}
	return []error{ErrInvalidEvent}
}

// EventOption sets something of one event.
type EventOption func(*eventOptions)

type eventOptions struct {
	at    time.Time
	atSet bool
}

// At gives the event's time: when it happened. Without it, the time is when
// the method is called. The time decides which of two values of an item
// wins (the later one), whatever order the events reach the store in.
func At(t time.Time) EventOption {
	return func(o *eventOptions) { o.at, o.atSet = t, true }
}

// checks is what every stream checks an event against before accepting it.
type checks struct {
	// maxSize bounds an event's JSON form, in bytes.
	maxSize int
	// validate are the extra checks, in order: the caller's Validator, and
	// any the stream adds (activity definitions, when a store offers them).
	validate []func(event.Event) error
	// defs, when set, checks events against the activity definitions
	// deployed in the store, as nodes will.
	defs *catalog.Catalog
	// now is the clock of events without At.
	now func() time.Time
}

func newChecks(maxSize int, v Validator) (checks, error) {
	if maxSize < 0 {
		return checks{}, fmt.Errorf("eventstream: MaxEventSize must be 0 (the default, %d bytes) or more, got %d", event.DefaultMaxSize, maxSize)
	}
	if maxSize == 0 {
		maxSize = event.DefaultMaxSize
	}
	c := checks{maxSize: maxSize, now: time.Now}
	if v != nil {
		c.validate = append(c.validate, func(ev event.Event) error {
			pub := publicEvent(ev)
			pub.Data = maps.Clone(pub.Data) // the validator cannot change what is written
			return v(pub)
		})
	}
	return c, nil
}

// sink takes a checked event and its JSON form: the part of a stream that
// differs from stream to stream. A stream is a type that embeds an emitter
// whose sink is the stream itself, which gives it the methods of Writer and
// every check; a new stream (the direct one) only writes in put.
type sink interface {
	put(ctx context.Context, ev event.Event, payload []byte) error
}

// closable is a sink that can be closed. emit asks it first, so that a
// closed stream returns ErrClosed rather than what its closed store
// answers the checks; put checks again.
type closable interface {
	isClosed() bool
}

// errNoStream is what the methods of a stream's zero value return.
var errNoStream = errors.New("eventstream: not a stream: use OpenBuffered, OpenDirect, Outbox.SQL or a driver package's (pgstream.OutboxTx, pgstream.DirectTx)")

// emitter builds, checks and encodes events, and hands them to a sink. It
// gives every stream the methods of Writer.
type emitter struct {
	sink   sink
	checks checks
}

// BeginActivity begins an instance (Writer.BeginActivity).
func (e emitter) BeginActivity(ctx context.Context, activity, id string, opts ...EventOption) error {
	return e.emit(ctx, event.Event{Kind: event.Begin, Activity: activity, Instance: id}, nil, opts)
}

// UpdateActivity sets milestones and data items of an instance.
func (e emitter) UpdateActivity(ctx context.Context, activity, id string, data Data, opts ...EventOption) error {
	return e.emit(ctx, event.Event{Kind: event.Update, Activity: activity, Instance: id}, data, opts)
}

// EndActivity ends the instance's own part.
func (e emitter) EndActivity(ctx context.Context, activity, id string, opts ...EventOption) error {
	return e.emit(ctx, event.Event{Kind: event.End, Activity: activity, Instance: id}, nil, opts)
}

// EnableContinuation lets another part of the process continue the
// instance under token.
func (e emitter) EnableContinuation(ctx context.Context, activity, id, token string, opts ...EventOption) error {
	return e.emit(ctx, event.Event{Kind: event.EnableContinuation, Activity: activity, Instance: id, Token: token}, nil, opts)
}

// EnableNestedContinuation opens the continuation newToken from the
// continuation token.
func (e emitter) EnableNestedContinuation(ctx context.Context, activity, token, newToken string, opts ...EventOption) error {
	return e.emitUnder(ctx, token, event.Event{Kind: event.EnableContinuation, Activity: activity, Continuation: token, Token: newToken}, nil, opts)
}

// UpdateContinuation sets milestones and data of the instance that enabled
// token.
func (e emitter) UpdateContinuation(ctx context.Context, activity, token string, data Data, opts ...EventOption) error {
	return e.emitUnder(ctx, token, event.Event{Kind: event.Update, Activity: activity, Continuation: token}, data, opts)
}

// EndContinuation ends the continuation token.
func (e emitter) EndContinuation(ctx context.Context, activity, token string, opts ...EventOption) error {
	return e.emitUnder(ctx, token, event.Event{Kind: event.End, Activity: activity, Continuation: token}, nil, opts)
}

// AddRelatedActivity links the instance to relatedID of relatedActivity.
func (e emitter) AddRelatedActivity(ctx context.Context, activity, id, relatedActivity, relatedID string, opts ...EventOption) error {
	ev := event.Event{Kind: event.Relate, Activity: activity, Instance: id,
		Related: &event.Related{Activity: relatedActivity, Instance: relatedID}}
	return e.emit(ctx, ev, nil, opts)
}

// AddReference adds a reference to the instance.
func (e emitter) AddReference(ctx context.Context, activity, id string, ref Reference, opts ...EventOption) error {
	ev := event.Event{Kind: event.AddReference, Activity: activity, Instance: id,
		Reference: &event.Reference{Type: ref.Type, Name: ref.Name, Value: ref.Value, Data: ref.Data}}
	return e.emit(ctx, ev, nil, opts)
}

// emitUnder is emit for the events of a continuation, whose token the event
// package could only report as a missing instance when it is empty.
func (e emitter) emitUnder(ctx context.Context, token string, ev event.Event, data Data, opts []EventOption) error {
	if token == "" {
		return &EventError{Kind: Kind(ev.Kind), Activity: ev.Activity, Field: "continuation", Reason: "must not be empty: the token names the continuation"}
	}
	return e.emit(ctx, ev, data, opts)
}

// emit completes ev with its time and data, checks it, and hands it to the
// sink.
func (e emitter) emit(ctx context.Context, ev event.Event, data Data, opts []EventOption) error {
	if e.sink == nil {
		return errNoStream
	}
	if c, ok := e.sink.(closable); ok && c.isClosed() {
		return ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	var o eventOptions
	for _, opt := range opts {
		opt(&o)
	}
	ev.Time = o.at
	if !o.atSet {
		ev.Time = e.checks.now()
	}
	refuse := func(field, reason string, err error) error {
		return &EventError{Kind: Kind(ev.Kind), Activity: ev.Activity, ID: ev.Segment(), Field: field, Reason: reason, Err: err}
	}
	if len(data) > 0 {
		ev.Data = make(map[string]json.RawMessage, len(data))
		for name, v := range data {
			raw, reason := encodeValue(v)
			if reason != "" {
				// Of several bad items, name the first by name: the same
				// data, the same error.
				for _, name := range slices.Sorted(maps.Keys(data)) {
					if _, reason := encodeValue(data[name]); reason != "" {
						return refuse("data."+name, reason, nil)
					}
				}
			}
			ev.Data[name] = raw
		}
	}
	if err := ev.Validate(); err != nil {
		var evErr *event.Error
		if errors.As(err, &evErr) {
			return refuse(evErr.Field, evErr.Reason, nil)
		}
		return refuse("", err.Error(), nil)
	}
	for _, check := range e.checks.validate {
		if err := check(ev); err != nil {
			var evErr *EventError
			if errors.As(err, &evErr) {
				return refuse(evErr.Field, evErr.Reason, err)
			}
			var inner *event.Error
			if errors.As(err, &inner) {
				return refuse(inner.Field, inner.Reason, nil)
			}
			return refuse("", err.Error(), err)
		}
	}
	if e.checks.defs != nil {
		if err := e.checks.defs.Validate(ctx, ev); err != nil {
			var inner *event.Error
			if errors.As(err, &inner) {
				return refuse(inner.Field, inner.Reason, nil)
			}
			// Not the event's fault: the store could not be asked.
			return fmt.Errorf("eventstream: check the event against the deployed definitions: %w", err)
		}
	}
	payload := event.Encode(ev)
	if len(payload) > e.checks.maxSize {
		return refuse("", fmt.Sprintf("event is %d bytes, over the limit of %d", len(payload), e.checks.maxSize), nil)
	}
	return e.sink.put(ctx, ev, payload)
}

var (
	timeType   = reflect.TypeFor[time.Time]()
	numberType = reflect.TypeFor[json.Number]()
)

// encodeValue returns a data value's JSON form, or why it cannot be one.
func encodeValue(v any) (json.RawMessage, string) {
	switch x := v.(type) {
	case nil:
		return json.RawMessage("null"), ""
	case string:
		return encodeString(x)
	case time.Time:
		return encodeTime(x)
	case json.Number:
		return encodeNumber(x)
	case bool:
		return strconvJSON(x), ""
	case int:
		return strconvJSON(x), ""
	case int64:
		return strconvJSON(x), ""
	case float64:
		return encodeFloat(x)
	}
	// Named types (type Status string), other sizes, pointers.
	rv := reflect.ValueOf(v)
	for rv.Kind() == reflect.Pointer {
		if rv.IsNil() {
			return json.RawMessage("null"), ""
		}
		rv = rv.Elem()
	}
	switch {
	case rv.Type() == timeType:
		return encodeTime(rv.Interface().(time.Time))
	case rv.Type() == numberType:
		return encodeNumber(rv.Interface().(json.Number))
	}
	switch rv.Kind() {
	case reflect.String:
		return encodeString(rv.String())
	case reflect.Bool:
		return strconvJSON(rv.Bool()), ""
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconvJSON(rv.Int()), ""
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return strconvJSON(rv.Uint()), ""
	case reflect.Float32:
		f := rv.Float()
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return encodeFloat(f) // the reason
		}
		// Its shortest decimal form as a float32, so that float32(0.1) is
		// 0.1 and not 0.10000000149011612.
		return json.RawMessage(strconv.FormatFloat(f, 'g', -1, 32)), ""
	case reflect.Float64:
		return encodeFloat(rv.Float())
	}
	return nil, fmt.Sprintf("a %T cannot be a data value (use a string, integer, float, bool, time.Time for a milestone, json.Number or a string for a decimal, or nil)", v)
}

func strconvJSON(v any) json.RawMessage {
	b, _ := json.Marshal(v) // bools and integers always marshal
	return b
}

func encodeString(s string) (json.RawMessage, string) {
	if !utf8.ValidString(s) {
		return nil, "text must be valid UTF-8"
	}
	b, _ := json.Marshal(s) // valid UTF-8 always marshals
	return b, ""
}

func encodeTime(t time.Time) (json.RawMessage, string) {
	if t.IsZero() {
		return nil, "the zero time.Time is not a milestone (use nil to set nothing)"
	}
	if y := t.UTC().Year(); y < 0 || y > 9999 {
		return nil, fmt.Sprintf("year %d is outside RFC 3339's 0000..9999", y)
	}
	return encodeString(t.UTC().Format(time.RFC3339Nano))
}

func encodeFloat(f float64) (json.RawMessage, string) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, fmt.Sprintf("%v is not a number JSON can hold", f)
	}
	b, _ := json.Marshal(f)
	return b, ""
}

func encodeNumber(n json.Number) (json.RawMessage, string) {
	s := string(n)
	if s == "" || !(s[0] == '-' || s[0] >= '0' && s[0] <= '9') || !json.Valid([]byte(s)) {
		return nil, fmt.Sprintf("json.Number %q is not a JSON number", s)
	}
	return json.RawMessage(s), ""
}

// publicEvent is ev as a Validator sees it.
func publicEvent(ev event.Event) Event {
	out := Event{
		Kind: Kind(ev.Kind), Activity: ev.Activity, Instance: ev.Instance, Continuation: ev.Continuation,
		Time: ev.Time, Data: ev.Data, Token: ev.Token,
	}
	if ev.Related != nil {
		out.RelatedActivity, out.RelatedInstance = ev.Related.Activity, ev.Related.Instance
	}
	if ev.Reference != nil {
		out.Reference = &Reference{Type: ev.Reference.Type, Name: ev.Reference.Name, Value: ev.Reference.Value, Data: ev.Reference.Data}
	}
	return out
}
