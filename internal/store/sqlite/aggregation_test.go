package sqlite

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/store"
)

// TestBatchesFollowAnotherProcessDeployments: a batch folds its
// aggregations by what is deployed when it applies, though another
// process (here another Store on the same file) changed the aggregations
// since this one's last batch, or removed them with their activity.
func TestBatchesFollowAnotherProcessDeployments(t *testing.T) {
	s, ctx := migrated(t)
	other, err := Open(ctx, filepath.Join(filepath.Dir(s.path), "bam.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = other.Close() })
	const items = `activities:
  - name: PO
    items:
      - {name: Customer, type: text, max_length: 100}
      - {name: Status, type: text, max_length: 20}
      - {name: Amount, type: decimal, precision: 12, scale: 2}
`
	byCustomer := `    aggregations:
      - name: ByCustomer
        dimensions: [{item: Customer}]
        measures: [{name: total, function: sum, item: Amount}, {name: largest, function: max, item: Amount}]
`
	byStatus := `    aggregations:
      - name: ByStatus
        dimensions: [{item: Status}]
        measures: [{name: smallest, function: min, item: Amount}]
`
	deployText(t, ctx, s, items+byCustomer)
	if err := s.AddSource(ctx, store.Source{Name: "src", Kind: store.KindBuffer, Partitions: 1, Enabled: true}); err != nil {
		t.Fatal(err)
	}
	if err := s.Join(ctx, store.NodeRow{ID: "a", Name: "a"}); err != nil {
		t.Fatal(err)
	}
	l, err := s.Claim(ctx, store.SessionID{Source: "src"}, "a", "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	var pos store.Position
	base := time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC)
	apply := func(round int, kind event.Kind) {
		t.Helper()
		var evs []event.Event
		for i := range 20 {
			evs = append(evs, event.Event{Activity: "PO", Instance: fmt.Sprintf("PO-%d", i), Kind: kind,
				Time: base.Add(time.Duration(round) * time.Second),
				Data: map[string]json.RawMessage{
					"Customer": json.RawMessage(fmt.Sprintf(`"C%d"`, i%3)),
					"Status":   json.RawMessage(fmt.Sprintf(`"S%d"`, (i+round)%4)),
					"Amount":   json.RawMessage(fmt.Sprint(i*10 + round)),
				}})
		}
		next := store.Position{Minor: pos.Minor + int64(len(evs))}
		if err := s.Apply(ctx, store.Batch{Lease: l, Node: "a", From: pos, Checkpoint: next, Deltas: event.Coalesce(evs), Applied: len(evs)}); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		pos = next
		if err := s.VerifyAggregations(ctx); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
	}
	apply(0, event.Begin)
	apply(1, event.Update)
	deployText(t, ctx, other, items+byStatus) // ByCustomer gone, ByStatus new
	apply(2, event.Update)
	deployText(t, ctx, other, items+byCustomer+"      - name: ByStatus\n        dimensions: [{item: Status}]\n        measures: [{name: smallest, function: min, item: Amount}]\n")
	apply(3, event.Update)
	if _, err := other.RemoveActivity(ctx, "PO", "t", true); err != nil {
		t.Fatal(err)
	}
	apply(4, event.End) // no aggregation left to keep: nothing to fold
	deployText(t, ctx, other, items+byStatus)
	apply(5, event.Update)
	res, err := s.Aggregation(ctx, "PO", "ByStatus", store.AggregationQuery{State: "all"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rows) == 0 {
		t.Fatal("ByStatus has no cells")
	}
}
