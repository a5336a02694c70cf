// Package vocabulary plans how a store applies the whole event vocabulary
// (package event: continuations, relations, references) beside the
// begin/update/end deltas of instances. It holds what both drivers decide
// the same way, in Go, so that only their SQL differs: which deltas are
// instances and which are continuations, which enable of a token wins
// within a batch, the rows of relations (both directions) and references
// (one per key), how a conflicting enable becomes a failed event, and how
// the events a store kept aside under a token fold into their instance.
//
// A driver applies a plan in one transaction, in this order, so that every
// Apply takes row locks in the same order (continuations before instances):
//
//  0. where writers run concurrently (PostgreSQL), a lock on every
//     continuation row the plan writes, in the order of Plan.Tokens;
//  1. the enables (a token keeps its first enabler; a later enable from
//     another segment is rejected: Plan.Reject);
//  2. the continuation deltas, kept aside under their token;
//  3. the links of nested continuations, resolved until no row changes;
//  4. the fold of kept-aside data into linked instances (Fold);
//  5. the instance deltas and the folds (the usual upsert);
//  6. relations and references;
//  7. each touched instance's count of open continuations, and its state.
package vocabulary

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/store"
)

// Has reports whether deltas hold anything beyond begin, update and end of
// instances: when it is false a driver runs only its usual statements.
func Has(deltas []event.Delta) bool {
	for _, d := range deltas {
		if d.Continuation || len(d.Enables) > 0 || len(d.Related) > 0 || len(d.References) > 0 {
			return true
		}
	}
	return false
}

// Enable is one token's enable, as a driver writes it.
type Enable struct {
	Activity string
	Token    string
	// The segment that enabled the token: an instance (ParentInstance) or a
	// continuation (ParentToken); exactly one is set.
	ParentInstance string
	ParentToken    string
	Time           time.Time
	// source is the enabling delta's index in the plan's deltas.
	source int
}

// Parent names the enabling segment for messages: "instance PO-1" or
// "continuation ship-1".
func (e Enable) Parent() string { return parentName(e.ParentInstance, e.ParentToken) }

func parentName(instance, token string) string {
	if token != "" {
		return fmt.Sprintf("continuation %q", token)
	}
	return fmt.Sprintf("instance %q", instance)
}

// Relation is one direction of a link between two instances.
type Relation struct {
	From, To event.Key
}

// Reference is a reference of an instance, as a driver writes it.
type Reference struct {
	event.Key
	event.TimedReference
}

// Plan is a batch's deltas sorted out for a driver.
type Plan struct {
	deltas     []event.Delta // copies: Reject changes their counts
	Enables    []Enable      // one per (activity, token), sorted by it
	Relations  []Relation    // both directions, each once, sorted
	References []Reference   // one per (instance, type, name, value), sorted
	rejected   []rejection
}

type rejection struct {
	Enable
	keptInstance, keptToken string
}

// Split sorts deltas out. The first enable of a token in deltas keeps it;
// a later one from another segment is rejected at once.
func Split(deltas []event.Delta) *Plan {
	p := &Plan{deltas: slices.Clone(deltas)}
	byToken := map[event.Key]int{}
	for i, d := range p.deltas {
		for _, en := range d.Enables {
			e := Enable{Activity: d.Activity, Token: en.Token, Time: en.Time, source: i}
			if d.Continuation {
				e.ParentToken = d.Instance
			} else {
				e.ParentInstance = d.Instance
			}
			k := event.Key{Activity: d.Activity, Instance: en.Token}
			j, ok := byToken[k]
			switch {
			case !ok:
				byToken[k] = len(p.Enables)
				p.Enables = append(p.Enables, e)
			case p.Enables[j].ParentInstance == e.ParentInstance && p.Enables[j].ParentToken == e.ParentToken:
				if e.Time.Before(p.Enables[j].Time) {
					p.Enables[j].Time = e.Time
				}
			default:
				p.Reject(e, p.Enables[j].ParentInstance, p.Enables[j].ParentToken)
			}
		}
		if d.Continuation {
			continue
		}
		for _, r := range d.Related {
			to := event.Key(r)
			p.Relations = append(p.Relations, Relation{From: d.Key, To: to}, Relation{From: to, To: d.Key})
		}
		for _, r := range d.References {
			p.References = append(p.References, Reference{Key: d.Key, TimedReference: r})
		}
	}
	slices.SortFunc(p.Enables, func(a, b Enable) int {
		return cmp.Or(strings.Compare(a.Activity, b.Activity), strings.Compare(a.Token, b.Token))
	})
	slices.SortFunc(p.Relations, func(a, b Relation) int {
		return cmp.Or(compareKeys(a.From, b.From), compareKeys(a.To, b.To))
	})
	p.Relations = slices.Compact(p.Relations)
	p.References = latestReferences(p.References)
	return p
}

// latestReferences keeps one reference per key: the later event's, the
// one that comes last on a tie. The result is sorted by key.
func latestReferences(refs []Reference) []Reference {
	compare := func(a, b Reference) int {
		return cmp.Or(compareKeys(a.Key, b.Key), strings.Compare(a.Type, b.Type),
			strings.Compare(a.Name, b.Name), strings.Compare(a.Value, b.Value))
	}
	slices.SortStableFunc(refs, compare)
	out := refs[:0]
	for _, r := range refs {
		if n := len(out); n > 0 && compare(out[n-1], r) == 0 {
			if r.Time >= out[n-1].Time {
				out[n-1] = r
			}
			continue
		}
		out = append(out, r)
	}
	return out
}

func compareKeys(a, b event.Key) int {
	return cmp.Or(strings.Compare(a.Activity, b.Activity), strings.Compare(a.Instance, b.Instance))
}

// Reject records that e lost its token to the segment that kept it
// (keptInstance or keptToken) and takes its event out of the enabling
// delta's count: the event is quarantined instead (Failures).
func (p *Plan) Reject(e Enable, keptInstance, keptToken string) {
	p.rejected = append(p.rejected, rejection{Enable: e, keptInstance: keptInstance, keptToken: keptToken})
	p.deltas[e.source].Events--
}

// Tokens returns every continuation the plan writes (the enabled tokens,
// and the tokens of continuation deltas), each once, sorted: the order in
// which a driver that locks rows should lock them.
func (p *Plan) Tokens() []event.Key {
	ks := Keys{}
	for _, e := range p.Enables {
		ks.Add(event.Key{Activity: e.Activity, Instance: e.Token})
	}
	for _, d := range p.deltas {
		if d.Continuation {
			ks.Add(d.Key)
		}
	}
	return ks.Sorted()
}

// Rejected reports how many enables were rejected.
func (p *Plan) Rejected() int { return len(p.rejected) }

// Instances returns the instance deltas to upsert, without those left
// with no event (their only events were rejected enables).
func (p *Plan) Instances() []event.Delta { return p.segments(false) }

// Continuations returns the continuation deltas to keep aside under their
// token (Delta.Instance is the token), without those left with no event.
func (p *Plan) Continuations() []event.Delta { return p.segments(true) }

func (p *Plan) segments(continuation bool) []event.Delta {
	var out []event.Delta
	for _, d := range p.deltas {
		if d.Continuation == continuation && d.Events > 0 {
			out = append(out, d)
		}
	}
	return out
}

// Place says where a quarantined event is filed: the session and
// checkpoint of the batch that carried it.
type Place struct {
	store.SessionID
	Position store.Position
}

// Direct is the place of events written with a driver's WriteEvents,
// outside any session.
var Direct = Place{SessionID: store.SessionID{Source: store.DirectSource}}

// Failures returns the rejected enables as failed events at place, each
// with the JSON form of the refused event and a reason naming the token
// and both segments.
func (p *Plan) Failures(place Place) []store.Failure {
	out := make([]store.Failure, 0, len(p.rejected))
	for _, r := range p.rejected {
		ev := event.Event{Activity: r.Activity, Instance: r.ParentInstance, Continuation: r.ParentToken,
			Kind: event.EnableContinuation, Token: r.Token, Time: r.Time}
		out = append(out, store.Failure{
			SessionID: place.SessionID,
			Position:  place.Position,
			Reason:    (&event.Error{Field: "token", Reason: ConflictReason(r.Enable, r.keptInstance, r.keptToken)}).Error(),
			Payload:   event.Encode(ev),
			WrittenAt: r.Time,
		})
	}
	return out
}

// ConflictReason says why an enable of a token that another segment
// already enabled is refused.
func ConflictReason(e Enable, keptInstance, keptToken string) string {
	return fmt.Sprintf("continuation %q of activity %s is already enabled by %s; this enable from %s is refused (a token names one continuation)",
		e.Token, e.Activity, parentName(keptInstance, keptToken), e.Parent())
}

// RefusedError is a refused enable's failure (Failures) as the
// *event.Error its reason was written from.
func RefusedError(f store.Failure) *event.Error {
	return &event.Error{Field: "token", Reason: strings.TrimPrefix(f.Reason, "token: ")}
}

// Pending is the data a store kept aside under a continuation token, now
// linked to its instance.
type Pending struct {
	Token    string
	Instance event.Key
	Items    event.Items
	Events   int
	First    time.Time // zero: not known
	Last     time.Time
}

// Fold turns kept-aside data into one delta per instance, merged with the
// rules of package event, sorted by instance.
func Fold(pending []Pending) []event.Delta {
	index := map[event.Key]int{}
	var out []event.Delta
	for _, pd := range pending {
		i, ok := index[pd.Instance]
		if !ok {
			i = len(out)
			index[pd.Instance] = i
			out = append(out, event.Delta{Key: pd.Instance, First: pd.First, Items: event.Items{}})
		}
		d := &out[i]
		d.Events += pd.Events
		d.Items = event.Merge(d.Items, pd.Items)
		if pd.Last.After(d.LastModified) {
			d.LastModified = pd.Last
		}
		if pd.First.IsZero() || pd.First.Before(d.First) {
			d.First = pd.First // zero, not known, stays so
		}
	}
	slices.SortFunc(out, func(a, b event.Delta) int { return compareKeys(a.Key, b.Key) })
	return out
}

// Keys collects instance keys, each once, sorted.
type Keys map[event.Key]struct{}

// Add adds a key; an empty instance (a continuation not linked yet) is
// left out.
func (ks Keys) Add(k event.Key) {
	if k.Instance != "" {
		ks[k] = struct{}{}
	}
}

// Sorted returns the keys in order.
func (ks Keys) Sorted() []event.Key {
	out := make([]event.Key, 0, len(ks))
	for k := range ks {
		out = append(out, k)
	}
	slices.SortFunc(out, compareKeys)
	return out
}

// Validate checks events before a direct write: the first invalid one
// refuses the whole call, with an *event.Error whose Field names the event
// by its index ("events[3].data.Amount").
func Validate(events []event.Event) error {
	for i, ev := range events {
		err := ev.Validate()
		if err == nil {
			continue
		}
		field := fmt.Sprintf("events[%d]", i)
		var e *event.Error
		if !errors.As(err, &e) {
			return &event.Error{Field: field, Reason: err.Error()}
		}
		if e.Field != "" {
			field += "." + e.Field
		}
		return &event.Error{Field: field, Reason: e.Reason}
	}
	return nil
}
