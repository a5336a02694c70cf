package event

import (
	"bytes"
	"encoding/json"
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

// Delta is the net effect of some events on one instance: what a store
// merges into the instance's row with the rules in the package comment.
type Delta struct {
	Key
	Begin        *time.Time // earliest begin among the events, if any
	End          *time.Time // latest end among the events, if any
	First        time.Time  // earliest event time
	LastModified time.Time  // latest event time
	Events       int        // how many events the delta folds
	Items        Items
}

// Coalesce folds events into one Delta per instance, in the order each
// instance first appears, so that a store writes each instance once per batch.
func Coalesce(events []Event) []Delta {
	index := make(map[Key]int, len(events))
	var out []Delta
	for _, ev := range events {
		k := Key{ev.Activity, ev.Instance}
		i, ok := index[k]
		if !ok {
			i = len(out)
			index[k] = i
			out = append(out, Delta{Key: k, Items: Items{}})
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
	for name, v := range ev.Data {
		if isNull(v) {
			continue // null never erases
		}
		d.Items.set(name, Item{Value: compact(v), Time: micros})
	}
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
