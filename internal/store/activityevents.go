package store

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/bam-dev/bam/internal/event"
)

// The events each session applied, by activity (bam_sessions'
// applied_by_activity): Apply adds a batch's counts in its fence statement,
// on the session's own row, and ActivityEvents sums them. The portal shows
// their change over time as each activity's events per second.

// EventsByActivity is the JSON object of a batch's events by activity, as
// Apply adds it to its session's counts: {"PurchaseOrder": 12}. A
// continuation's events count for the activity of its token.
func EventsByActivity(deltas []event.Delta) string {
	if len(deltas) == 0 {
		return "{}"
	}
	counts := map[string]int64{}
	for _, d := range deltas {
		counts[d.Activity] += int64(d.Events)
	}
	names := make([]string, 0, len(counts))
	for n := range counts {
		names = append(names, n)
	}
	sort.Strings(names) // the same batch, the same text
	out := make(map[string]int64, len(counts))
	for _, n := range names {
		if counts[n] > 0 {
			out[n] = counts[n]
		}
	}
	b, _ := json.Marshal(out)
	return string(b)
}

// RefusedByActivity is the correction of a batch's EventsByActivity for
// the events it counted and then refused (an enable of a token another
// segment holds): the failures' events by activity, negative. "{}" when
// none.
func RefusedByActivity(refused []Failure) string {
	counts := map[string]int64{}
	for _, f := range refused {
		var ev struct {
			Activity string `json:"activity"`
		}
		if json.Unmarshal(f.Payload, &ev) == nil && ev.Activity != "" {
			counts[ev.Activity]--
		}
	}
	b, _ := json.Marshal(counts)
	return string(b)
}

// ActivityEventCounter is an optional extra of a driver: the events the
// sessions applied, by activity. Both SQL drivers have it
// (ActivityEventsReader).
type ActivityEventCounter interface {
	ActivityEvents(ctx context.Context) (map[string]int64, error)
}

// ActivityEventsReader sums the sessions' counts; both drivers embed it.
type ActivityEventsReader struct {
	Query Query
}

// ActivityEvents returns, per activity, the events the sessions have
// applied to its instances: a running total that only grows while the
// sessions live (a repartition or a removed source starts its sessions'
// counts again).
func (r ActivityEventsReader) ActivityEvents(ctx context.Context) (map[string]int64, error) {
	out := map[string]int64{}
	err := r.Query(ctx, func(rows Rows) error {
		for rows.Next() {
			var raw []byte
			if err := rows.Scan(&raw); err != nil {
				return err
			}
			var counts map[string]int64
			if err := json.Unmarshal(raw, &counts); err != nil {
				return fmt.Errorf("a session's events by activity: %w", err)
			}
			for a, n := range counts {
				out[a] += n
			}
		}
		return rows.Err()
	}, `SELECT applied_by_activity FROM bam_sessions WHERE applied_by_activity <> '{}'`)
	if err != nil {
		return nil, fmt.Errorf("read the events applied by activity: %w", err)
	}
	return out, nil
}
