package ops

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/bam-dev/bam/internal/catalog"
	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/store"
)

// FailedJSON is a failed event in JSON (`bam failed list --json`, the
// HTTP API). Payload is the original bytes when they are UTF-8, else
// PayloadBase64 holds them; both are absent from lists.
type FailedJSON struct {
	ID        int64          `json:"id"`
	Source    string         `json:"source"`
	Partition int            `json:"partition"`
	Position  store.Position `json:"position"`
	Reason    string         `json:"reason"`
	FailedAt  *string        `json:"failed_at"`
	// Activity, Instance and Continuation are what the payload names, when
	// it is readable JSON.
	Activity      string  `json:"activity,omitempty"`
	Instance      string  `json:"instance,omitempty"`
	Continuation  string  `json:"continuation,omitempty"`
	Size          int     `json:"size"`
	Payload       *string `json:"payload,omitempty"`
	PayloadBase64 *string `json:"payload_base64,omitempty"`
}

// ToFailedJSON returns f's JSON form, with its payload or without.
func ToFailedJSON(f store.FailedEvent, withPayload bool) FailedJSON {
	k := PayloadKey(f.Payload)
	j := FailedJSON{ID: f.ID, Source: f.Source, Partition: f.Partition, Position: f.Position,
		Reason: f.Reason, FailedAt: rfc3339(&f.FailedAt), Size: len(f.Payload),
		Activity: k.Activity, Instance: k.Instance, Continuation: k.Continuation}
	if withPayload {
		if utf8.Valid(f.Payload) {
			s := string(f.Payload)
			j.Payload = &s
		} else {
			s := base64.StdEncoding.EncodeToString(f.Payload)
			j.PayloadBase64 = &s
		}
	}
	return j
}

// FailedKey is what a failed event's payload says of its instance, when it
// is readable JSON.
type FailedKey struct {
	Activity     string `json:"activity"`
	Instance     string `json:"instance"`
	Continuation string `json:"continuation"`
}

// PayloadKey reads a payload's FailedKey; zero when it is not JSON.
func PayloadKey(payload []byte) FailedKey {
	var k FailedKey
	_ = json.Unmarshal(payload, &k)
	return k
}

// Segment shows the instance, or the token of a continuation as ~token.
func (k FailedKey) Segment() string {
	if k.Continuation != "" {
		return "~" + k.Continuation
	}
	return k.Instance
}

// NoFailedEventError is the error for a failed-event id the store does not
// know; errors.Is(err, store.ErrNotFound) holds.
type NoFailedEventError int64

func (e NoFailedEventError) Error() string {
	return fmt.Sprintf("no failed event %d", int64(e))
}

func (e NoFailedEventError) Is(target error) bool { return target == store.ErrNotFound }

// StillFailedError is a retry's error for an event that is still refused:
// it stays among the failed events, with its reason.
type StillFailedError struct{ error }

func (e *StillFailedError) Unwrap() error { return e.error }

// RetryOptions are the checks a retry makes, as a node with these settings
// makes them (bam serve --max-event-size, --require-definitions).
type RetryOptions struct {
	MaxEventSize       int // bytes; 0: event.DefaultMaxSize
	RequireDefinitions bool
}

// Retry applies failed event id again, its payload replaced by payload
// when not nil, and removes it from the failed events. An event still
// refused (not valid, too large, refused by its activity's deployed
// definition) stays, with its new reason, and Retry returns a
// *StillFailedError; an id the store does not know, a
// NoFailedEventError.
func Retry(ctx context.Context, st store.Store, id int64, payload []byte, opt RetryOptions) error {
	if err := checkRetry(ctx, st, id, payload, opt); err != nil {
		return err
	}
	err := st.RetryFailed(ctx, id, payload, opt.MaxEventSize)
	var evErr *event.Error
	switch {
	case errors.Is(err, store.ErrNotFound):
		return NoFailedEventError(id)
	case errors.As(err, &evErr) && payload != nil:
		return &StillFailedError{fmt.Errorf("the replacement for failed event %d is invalid too: %v; the failed event is kept unchanged (its original bytes and reason)", id, evErr)}
	case errors.As(err, &evErr):
		return &StillFailedError{fmt.Errorf("failed event %d is still invalid, kept: %v", id, evErr)}
	case err != nil:
		return fmt.Errorf("retry failed event %d: %w", id, err)
	}
	return nil
}

// checkRetry checks the event a retry would apply against its activity's
// deployed definition, as a node with these settings would, so that an
// event a definition still refuses stays among the failed events. (An
// event that is not valid JSON, or too large, is left to RetryFailed,
// which records the new reason.)
func checkRetry(ctx context.Context, st store.Store, id int64, payload []byte, opt RetryOptions) error {
	f, err := st.FailedEvent(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return NoFailedEventError(id)
	} else if err != nil {
		return fmt.Errorf("read failed event %d: %w", id, err)
	}
	replaced := payload != nil
	if !replaced {
		payload = f.Payload
	}
	ev, err := event.Decode(payload, f.EventTime(), opt.MaxEventSize)
	if err != nil {
		return nil
	}
	err = catalog.New(st, catalog.Options{Strict: opt.RequireDefinitions}).Validate(ctx, ev)
	var evErr *event.Error
	switch {
	case errors.As(err, &evErr) && evErr.Field == "activity":
		// Its activity is not deployed, and definitions are required: the
		// reason says what to do.
		return &StillFailedError{fmt.Errorf("failed event %d is still refused, kept: %v", id, evErr)}
	case errors.As(err, &evErr) && replaced:
		return &StillFailedError{fmt.Errorf("the replacement for failed event %d is refused by the deployed definition of %s: %v; the failed event is kept unchanged", id, ev.Activity, evErr)}
	case errors.As(err, &evErr):
		return &StillFailedError{fmt.Errorf("failed event %d is still refused by the deployed definition of %s, kept: %v (deploy a definition that accepts it, or retry with a fixed payload)", id, ev.Activity, evErr)}
	case err != nil:
		return fmt.Errorf("retry failed event %d: %w", id, err)
	}
	return nil
}

// Discard deletes failed event id for good; a NoFailedEventError when the
// store does not know it.
func Discard(ctx context.Context, st store.Store, id int64) error {
	err := st.DiscardFailed(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return NoFailedEventError(id)
	case err != nil:
		return fmt.Errorf("discard failed event %d: %w", id, err)
	}
	return nil
}

// FailedFilter selects failed events for a list or for a retry or discard
// in bulk: the store's query, and the activity the payload names (read
// from each payload, not by the store).
type FailedFilter struct {
	store.FailedQuery
	Activity string
}

// Matches reports whether f passes the filter's activity (the store's
// query selected it already).
func (ff FailedFilter) Matches(f store.FailedEvent) bool {
	return ff.Activity == "" || PayloadKey(f.Payload).Activity == ff.Activity
}

// CheckFailedSource returns a *NoSourceError when source is neither a
// source of the store, nor store.DirectSource, nor one that failed events
// are still filed under (a source removed since): a misspelt name must
// not read as "no failed events". hint is the NoSourceError's.
func CheckFailedSource(ctx context.Context, st store.Store, source, hint string) error {
	if source == "" || source == store.DirectSource {
		return nil
	}
	names := SourceNames(ctx, st)
	for _, n := range names {
		if n == source {
			return nil
		}
	}
	if list, err := st.FailedEventsWhere(ctx, store.FailedQuery{Source: source, Limit: 1}); err == nil && len(list) > 0 {
		return nil
	}
	return NoSource(source, hint, append(names, store.DirectSource)...)
}

// SelectFailed returns the failed events ff selects, oldest first, at
// most limit of them (0: all) after ff.AfterID, reading at most scan rows
// of the store (0: no bound; the activity is read from each payload, so a
// filter on it may read many rows to find few). next is the AfterID to go
// on from, 0 when nothing more matches.
func SelectFailed(ctx context.Context, st store.Store, ff FailedFilter, limit, scan int) (list []store.FailedEvent, next int64, err error) {
	q := ff.FailedQuery
	read := 0
	for {
		q.Limit = selectPage
		if scan > 0 {
			q.Limit = min(selectPage, scan-read)
		}
		page, err := st.FailedEventsWhere(ctx, q)
		if err != nil {
			return nil, 0, fmt.Errorf("list failed events: %w", err)
		}
		for _, f := range page {
			if !ff.Matches(f) {
				continue
			}
			if limit > 0 && len(list) == limit {
				return list, list[len(list)-1].ID, nil
			}
			list = append(list, f)
		}
		read += len(page)
		if len(page) < q.Limit {
			return list, 0, nil
		}
		q.AfterID = page[len(page)-1].ID
		if scan > 0 && read >= scan {
			// Out of rows to read: is there anything after them?
			q.Limit = 1
			rest, err := st.FailedEventsWhere(ctx, q)
			if err != nil {
				return nil, 0, fmt.Errorf("list failed events: %w", err)
			}
			if len(rest) == 0 {
				return list, 0, nil
			}
			return list, q.AfterID, nil
		}
	}
}

// selectPage is how many failed events SelectFailed reads at a time.
const selectPage = 1000

// Outcome is what a retry or a discard of many failed events did.
type Outcome struct {
	// Done counts the events retried (applied and removed) or discarded.
	Done int `json:"done"`
	// Refused are the events that stayed failed, each with why.
	Refused []Refusal `json:"refused"`
	// Gone counts the events retried or discarded by someone else
	// meanwhile (or that never were, for a list of ids).
	Gone int `json:"gone"`
}

// Refusal is one failed event a retry left failed, and why.
type Refusal struct {
	ID     int64  `json:"id"`
	Reason string `json:"reason"`
}

// RetryAll retries each event of ids as Retry does. It stops at the
// first error that is not about the event itself (the store failed):
// out says what was done before it.
func RetryAll(ctx context.Context, st store.Store, ids []int64, opt RetryOptions) (out Outcome, err error) {
	out.Refused = []Refusal{}
	for _, id := range ids {
		err := Retry(ctx, st, id, nil, opt)
		var still *StillFailedError
		switch {
		case err == nil:
			out.Done++
		case errors.As(err, &still):
			out.Refused = append(out.Refused, Refusal{ID: id, Reason: still.Error()})
		case errors.Is(err, store.ErrNotFound):
			out.Gone++
		default:
			return out, err
		}
	}
	return out, nil
}

// DiscardAll discards each event of ids, as Discard does, stopping at the
// first error of the store.
func DiscardAll(ctx context.Context, st store.Store, ids []int64) (out Outcome, err error) {
	out.Refused = []Refusal{}
	for _, id := range ids {
		err := Discard(ctx, st, id)
		switch {
		case err == nil:
			out.Done++
		case errors.Is(err, store.ErrNotFound):
			out.Gone++
		default:
			return out, err
		}
	}
	return out, nil
}

// IDs returns the ids of list.
func IDs(list []store.FailedEvent) []int64 {
	ids := make([]int64, len(list))
	for i, f := range list {
		ids[i] = f.ID
	}
	return ids
}

// Describe says which events a filter selects, for people: `--source
// "orders" --reason "has no item"`, as flags name them.
func (ff FailedFilter) Describe() string {
	var parts []string
	for _, p := range [][2]string{{"--source", ff.Source}, {"--activity", ff.Activity}, {"--reason", ff.Reason}} {
		if p[1] != "" {
			parts = append(parts, fmt.Sprintf("%s %q", p[0], p[1]))
		}
	}
	if len(parts) == 0 {
		return "--all"
	}
	return strings.Join(parts, " ")
}

// Unfiled is a count of failed events kept under no current session: a
// partition its source no longer has (after bam source repartition), a
// source removed since, or events written directly to the store
// (store.DirectSource). A view by session misses them.
type Unfiled struct {
	store.SessionID
	Count int64
	// Where says which of the three it is, in words.
	Where string
}

// UnfiledFailed returns the counts of outstanding (store.Store's
// FailedOutstanding) that belong to none of sessions, sorted by source
// and partition.
func UnfiledFailed(sessions []store.SessionRow, outstanding map[store.SessionID]int64) []Unfiled {
	current := map[store.SessionID]bool{}
	sources := map[string]bool{}
	for _, se := range sessions {
		current[se.SessionID] = true
		sources[se.Source] = true
	}
	var out []Unfiled
	for id, n := range outstanding {
		if current[id] || n == 0 {
			continue
		}
		u := Unfiled{SessionID: id, Count: n}
		switch {
		case id.Source == store.DirectSource:
			u.Where = "written directly to the store, through no source"
		case sources[id.Source]:
			u.Where = fmt.Sprintf("of partition %d, which source %s no longer has (repartitioned)", id.Partition, id.Source)
		default:
			u.Where = fmt.Sprintf("of source %s, which no longer exists", id.Source)
		}
		out = append(out, u)
	}
	slices.SortFunc(out, func(a, b Unfiled) int {
		if c := strings.Compare(a.Source, b.Source); c != 0 {
			return c
		}
		return a.Partition - b.Partition
	})
	return out
}
