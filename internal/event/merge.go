package event

import (
	"bytes"
	"encoding/json"
	"slices"
	"time"
)

// Key identifies an activity instance.
type Key struct {
	Activity string
	Instance string
}

// Item is a data item's value with the time of the event that set it, in
// microseconds since the Unix epoch. Stores keep items in this form
// ({"Amount": {"v": 1200, "t": 1795606920000000}}), so that a merge in SQL can
// pick the latest value per item without knowing arrival order.
type Item struct {
	Value json.RawMessage `json:"v"`
	Time  int64           `json:"t"`
}

// Items maps item names to their values.
type Items map[string]Item

// Delta is the net effect of some events on one segment, an instance or
// one of its continuations: what a store merges into the instance with the
// rules in the package comment.
type Delta struct {
	// Key names the instance or, when Continuation, the continuation: its
	// Instance is then the token.
	Key
	Continuation bool
	Begin        *time.Time // earliest begin among the events, if any
	End          *time.Time // latest end among the events, if any
	First        time.Time  // earliest event time
	LastModified time.Time  // latest event time
	Events       int        // how many events the delta folds
	Items        Items
	// Enables lists the continuations the events enabled, each token once.
	Enables []Enable
	// Related lists the instances the events related this one to, once each.
	Related []Related
	// References lists the references the events added, once per
	// (type, name, value): of two, the later event's.
	References []TimedReference
}

// Enable is a continuation enabled from a segment.
type Enable struct {
	Token string
	Time  time.Time
}

// TimedReference is a reference with the time of the event that added it,
// in microseconds since the Unix epoch like Item.Time.
type TimedReference struct {
	Reference
	Time int64
}

// segmentKey tells an instance from a continuation token of the same name.
type segmentKey struct {
	Key
	continuation bool
}

// Coalesce folds events into one Delta per segment, in the order each
// segment first appears, so that a store writes each instance once per
// batch.
func Coalesce(events []Event) []Delta {
	index := make(map[segmentKey]int, len(events))
	var out []Delta
	for _, ev := range events {
		k := segmentKey{Key{ev.Activity, ev.Segment()}, ev.Continuation != ""}
		i, ok := index[k]
		if !ok {
			i = len(out)
			index[k] = i
			out = append(out, Delta{Key: k.Key, Continuation: k.continuation, Items: Items{}})
		}
		out[i].add(ev)
	}
	return out
}

func (d *Delta) add(ev Event) {
	t := ev.Time.UTC()
	d.Events++
	switch ev.Kind {
	case Begin:
		if d.Begin == nil || t.Before(*d.Begin) {
			d.Begin = &t
		}
	case End:
		if d.End == nil || t.After(*d.End) {
			d.End = &t
		}
	}
	if t.After(d.LastModified) {
		d.LastModified = t
	}
	if d.First.IsZero() || t.Before(d.First) {
		d.First = t
	}
	micros := t.UnixMicro()
	switch ev.Kind {
	case EnableContinuation:
		d.addEnable(Enable{Token: ev.Token, Time: t})
	case Relate:
		if !slices.Contains(d.Related, *ev.Related) {
			d.Related = append(d.Related, *ev.Related)
		}
	case AddReference:
		d.addReference(TimedReference{Reference: *ev.Reference, Time: micros})
	}
	for name, v := range ev.Data {
		if isNull(v) {
			continue // null never erases
		}
		d.Items.set(name, Item{Value: StoredTime(compact(v)), Time: micros})
	}
}

// addEnable keeps the earliest enable of each token.
func (d *Delta) addEnable(e Enable) {
	for i, old := range d.Enables {
		if old.Token == e.Token {
			if e.Time.Before(old.Time) {
				d.Enables[i] = e
			}
			return
		}
	}
	d.Enables = append(d.Enables, e)
}

// addReference keeps one reference per (type, name, value): the later
// event's, the one added last on a tie.
func (d *Delta) addReference(r TimedReference) {
	for i, old := range d.References {
		if old.Type == r.Type && old.Name == r.Name && old.Value == r.Value {
			if r.Time >= old.Time {
				d.References[i] = r
			}
			return
		}
	}
	d.References = append(d.References, r)
}

// set keeps it unless the item already holds a value from a later event.
func (items Items) set(name string, it Item) {
	if old, ok := items[name]; ok && old.Time > it.Time {
		return
	}
	items[name] = it
}

// Merge returns a with b merged into it, b applied after a. It is the rule
// both stores apply to an instance's stored items.
func Merge(a, b Items) Items {
	out := make(Items, len(a)+len(b))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out.set(k, v)
	}
	return out
}

// MergeJSON is Merge on the stored JSON form; a nil or empty side is an
// empty set of items.
func MergeJSON(a, b []byte) ([]byte, error) {
	var ia, ib Items
	if len(a) > 0 {
		if err := json.Unmarshal(a, &ia); err != nil {
			return nil, err
		}
	}
	if len(b) > 0 {
		if err := json.Unmarshal(b, &ib); err != nil {
			return nil, err
		}
	}
	return json.Marshal(Merge(ia, ib))
}

// Values returns the items' values without their times.
func (items Items) Values() map[string]json.RawMessage {
	out := make(map[string]json.RawMessage, len(items))
	for k, v := range items {
		out[k] = v.Value
	}
	return out
}

func isNull(v json.RawMessage) bool {
	return bytes.Equal(bytes.TrimSpace(v), []byte("null"))
}

func compact(v json.RawMessage) json.RawMessage {
	// A scalar has no white space to remove but around it, and Decode
	// keeps values without it: such a value is already compact.
	if n := len(v); n > 0 && !isSpace(v[0]) && !isSpace(v[n-1]) && v[0] != '{' && v[0] != '[' {
		return v
	}
	var b bytes.Buffer
	if err := json.Compact(&b, v); err != nil {
		return v
	}
	return b.Bytes()
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
