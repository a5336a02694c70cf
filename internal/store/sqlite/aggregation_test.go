package sqlite

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/store"
)

// ownedSession adds a buffer source of one partition, src, and returns
// the lease node "a" claims its session under.
func ownedSession(t *testing.T, ctx context.Context, s *Store) store.Lease {
	t.Helper()
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
	return l
}

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
	l := ownedSession(t, ctx, s)
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

// byCustomer is an activity with an aggregation of a sum and a max.
const byCustomer = `activities:
  - name: PO
    items:
      - {name: Customer, type: text, max_length: 100}
      - {name: Amount, type: decimal, precision: 12, scale: 2}
    aggregations:
      - name: ByCustomer
        dimensions: [{item: Customer}]
        measures: [{name: total, function: sum, item: Amount}, {name: largest, function: max, item: Amount}]
`

// beginTen applies a batch that begins PO-0 to PO-9 in s.
func beginTen(t *testing.T, ctx context.Context, s *Store) {
	t.Helper()
	l := ownedSession(t, ctx, s)
	var evs []event.Event
	for i := range 10 {
		evs = append(evs, event.Event{Activity: "PO", Instance: fmt.Sprintf("PO-%d", i), Kind: event.Begin,
			Time: time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC),
			Data: map[string]json.RawMessage{"Customer": json.RawMessage(fmt.Sprintf(`"C%d"`, i%3)), "Amount": json.RawMessage(fmt.Sprint(i))}})
	}
	if err := s.Apply(ctx, store.Batch{Lease: l, Node: "a", Checkpoint: store.Position{Minor: 10}, Deltas: event.Coalesce(evs), Applied: 10}); err != nil {
		t.Fatal(err)
	}
}

// TestMigrationRewritesAggregationTriggers: a store whose aggregations
// were deployed before batches folded them (schema version 11) has row
// triggers that do not step aside for a fold; migrating writes them again,
// so that a batch counts its instances once.
func TestMigrationRewritesAggregationTriggers(t *testing.T) {
	s, ctx := migrated(t)
	deployText(t, ctx, s, byCustomer)
	// Back to version 11: its triggers, without the deferral's condition.
	var olds []string
	rows, err := s.db.QueryContext(ctx, `SELECT name, sql FROM sqlite_schema WHERE type = 'trigger' AND name LIKE 'bam_agg_%'`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var name, text string
		if err := rows.Scan(&name, &text); err != nil {
			t.Fatal(err)
		}
		olds = append(olds, "DROP TRIGGER "+name, strings.Replace(text, " AND NOT EXISTS (SELECT 1 FROM bam_agg_deferred)", "", 1))
	}
	if err := rows.Err(); err != nil || len(olds) != 10 { // three gates, a change and a mover
		t.Fatalf("%d statements, %v", len(olds), err)
	}
	olds = append(olds, "DROP TABLE bam_agg_deferred", "DROP TABLE bam_alert_deliveries", "DROP TABLE bam_alert_firings", // versions 13 and 14, made again
		"ALTER TABLE bam_sessions DROP COLUMN applied_by_activity",
		"DROP TABLE bam_pool", "DROP TABLE bam_audit", "ALTER TABLE bam_nodes DROP COLUMN draining", "ALTER TABLE bam_sessions DROP COLUMN move_to", // version 15
		"DROP TABLE bam_pool_settings", "DELETE FROM bam_notices WHERE topic = 'settings'", // version 16, made again
		"DELETE FROM bam_schema WHERE version >= 12")
	for _, q := range olds {
		if _, err := s.db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if from, to, err := s.Migrate(ctx); err != nil || from != 11 || to != s.latest() {
		t.Fatalf("Migrate = %d, %d, %v", from, to, err)
	}
	beginTen(t, ctx, s)
	if err := s.VerifyAggregations(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestMigrationWritesAggregationGates: a store whose aggregations were
// deployed before version 17 has row triggers that hold the whole move of
// a contribution; migrating writes gates, changes and movers instead, and
// a write outside a batch still moves the cells.
func TestMigrationWritesAggregationGates(t *testing.T) {
	s, ctx := migrated(t)
	deployText(t, ctx, s, byCustomer)
	table, base := store.AggregationTable("PO", "ByCustomer"), activityTriggers("PO")
	for _, q := range []string{"DROP TABLE " + table + "_moves", "DROP TABLE " + base + "_changes", "DROP TRIGGER " + base + "_ins",
		"DROP TRIGGER " + base + "_upd", "DROP TRIGGER " + base + "_del", "DELETE FROM bam_schema WHERE version >= 17"} {
		if _, err := s.db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if from, to, err := s.Migrate(ctx); err != nil || from != 16 || to != s.latest() {
		t.Fatalf("Migrate = %d, %d, %v", from, to, err)
	}
	var n int
	for _, name := range []string{table + "_moves", table + "_move", table + "_change", base + "_changes", base + "_ins", base + "_upd", base + "_del"} {
		if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_schema WHERE name = ?`, name).Scan(&n); err != nil || n != 1 {
			t.Fatalf("%s: %d, %v", name, n, err)
		}
	}
	beginTen(t, ctx, s)
	// A write outside a batch: the gates hand it to the mover.
	for _, q := range []string{`UPDATE bam_instances SET items = json_set(items, '$.Amount.v', 99) WHERE instance_id IN ('PO-1', 'PO-4')`,
		`DELETE FROM bam_instances WHERE instance_id = 'PO-2'`} {
		if _, err := s.db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := s.VerifyAggregations(ctx); err != nil {
		t.Fatal(err)
	}
	for _, handed := range []string{table + "_moves", base + "_changes"} {
		if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM `+handed).Scan(&n); err != nil || n != 0 {
			t.Fatalf("%d rows left in %s, %v", n, handed, err)
		}
	}
}

// TestFoldMergesAsTheUpsert applies batches of begins, updates and ends
// in any order, an instance begun and ended more than once, some with
// open continuations: the fold's merge of each instance (verifyMerges,
// set by TestMain) must give what the upsert wrote, and the cells a
// recomputation.
func TestFoldMergesAsTheUpsert(t *testing.T) {
	s, ctx := migrated(t)
	deployText(t, ctx, s, `activities:
  - name: PO
    items:
      - {name: Customer, type: text, max_length: 100}
      - {name: Amount, type: decimal, precision: 12, scale: 2}
      - {name: Shipped, type: milestone}
    aggregations:
      - name: ByCustomer
        dimensions: [{item: Customer}, {item: begin_time, bucket: hour}, {item: end_time, bucket: week}]
        measures: [{name: total, function: sum, item: Amount}, {name: to_ship, function: max, from: begin_time, to: Shipped}]
`)
	l := ownedSession(t, ctx, s)
	rng := rand.New(rand.NewPCG(21, 22))
	base := time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC)
	var pos store.Position
	for batch := range 40 {
		var evs []event.Event
		for range 1 + rng.IntN(30) {
			kind := []event.Kind{event.Begin, event.Update, event.Update, event.End}[rng.IntN(4)]
			data := map[string]json.RawMessage{}
			if rng.IntN(2) == 0 {
				data["Customer"] = json.RawMessage(fmt.Sprintf(`"C%d"`, rng.IntN(3)))
			}
			if rng.IntN(2) == 0 {
				data["Amount"] = json.RawMessage(fmt.Sprint(rng.IntN(100)))
			}
			if rng.IntN(4) == 0 {
				data["Shipped"] = json.RawMessage(`"` + base.Add(time.Duration(rng.IntN(7200))*time.Second).Format(time.RFC3339) + `"`)
			}
			evs = append(evs, event.Event{Activity: "PO", Instance: fmt.Sprintf("PO-%d", rng.IntN(15)), Kind: kind,
				Time: base.Add(time.Duration(rng.IntN(86400*10)) * time.Second), Data: data})
		}
		next := store.Position{Minor: pos.Minor + int64(len(evs))}
		if err := s.Apply(ctx, store.Batch{Lease: l, Node: "a", From: pos, Checkpoint: next, Deltas: event.Coalesce(evs), Applied: len(evs)}); err != nil {
			t.Fatalf("batch %d: %v", batch, err)
		}
		pos = next
		if batch%5 == 0 { // a continuation opened, as the vocabulary's statements count them
			if _, err := s.db.ExecContext(ctx, `UPDATE bam_instances SET open_continuations = open_continuations + 1,
				state = CASE WHEN state = 'completed' THEN 'active' ELSE state END WHERE instance_id = ?`, fmt.Sprintf("PO-%d", rng.IntN(15))); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.VerifyAggregations(ctx); err != nil {
			t.Fatalf("batch %d: %v", batch, err)
		}
	}
}
