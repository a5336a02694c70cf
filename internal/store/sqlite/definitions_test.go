package sqlite

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/definition"
	"github.com/bam-dev/bam/internal/store"
)

const poDefinition = `activities:
  - name: PurchaseOrder
    items:
      - {name: Received, type: milestone, index: true}
      - {name: Customer, type: text, max_length: 100, index: true}
      - {name: Amount, type: decimal, precision: 12, scale: 2}
      - {name: Quantity, type: integer, index: true}
      - {name: Rush, type: boolean}
`

func migrated(t *testing.T) (*Store, context.Context) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	s, err := Open(ctx, filepath.Join(t.TempDir(), "bam.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if _, _, err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return s, ctx
}

func deployText(t *testing.T, ctx context.Context, s *Store, src string) {
	t.Helper()
	f, err := definition.Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Deploy(ctx, store.DeployRequest{File: f, Text: src, By: "t"}); err != nil {
		t.Fatalf("Deploy: %v", err)
	}
}

// TestViewQueriesUseIndexes: "active instances of X with item Y = v" uses
// the item's expression index, "completed between t1 and t2" the
// expression index on the views' end_time text.
func TestViewQueriesUseIndexes(t *testing.T) {
	s, ctx := migrated(t)
	deployText(t, ctx, s, poDefinition)
	if _, err := s.db.ExecContext(ctx, `WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 20000)
		INSERT INTO bam_instances (activity, instance_id, state, begin_time, end_time, last_modified, items, updated_at)
		SELECT CASE WHEN n % 4 = 0 THEN 'Other' ELSE 'PurchaseOrder' END, 'I-' || n,
		       CASE WHEN n % 3 = 0 THEN 'completed' ELSE 'active' END, n * 1000000,
		       CASE WHEN n % 3 = 0 THEN n * 2000000 END, n * 2000000,
		       json_object('Customer', json_object('v', 'C-' || (n % 5000), 't', 0), 'Quantity', json_object('v', n, 't', 0)), 0
		FROM g`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.ExecContext(ctx, `ANALYZE`); err != nil {
		t.Fatal(err)
	}
	plan := func(q string) string {
		t.Helper()
		rows, err := s.db.QueryContext(ctx, `EXPLAIN QUERY PLAN `+q)
		if err != nil {
			t.Fatalf("EXPLAIN QUERY PLAN %s: %v", q, err)
		}
		defer rows.Close()
		var lines []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			lines = append(lines, detail)
		}
		return strings.Join(lines, "\n")
	}
	for q, index := range map[string]string{
		`SELECT * FROM purchaseorder_active WHERE customer = 'C-42'`:                                                       "bam_ix_purchaseorder_customer",
		`SELECT * FROM purchaseorder_all WHERE quantity = 1200`:                                                            "bam_ix_purchaseorder_quantity",
		`SELECT * FROM purchaseorder_all WHERE received > '2026-11-25'`:                                                    "bam_ix_purchaseorder_received",
		`SELECT * FROM purchaseorder_completed WHERE end_time BETWEEN '1970-01-01T01:00:00' AND '1970-01-01T02:00:00'`:     "bam_instances_completed",
		`SELECT count(*) FROM purchaseorder_completed WHERE end_time >= '1970-01-01T01:00:00' AND end_time < '1970-01-02'`: "bam_instances_completed",
	} {
		if p := plan(q); !strings.Contains(p, index) {
			t.Errorf("%s does not use %s:\n%s", q, index, p)
		}
	}
	var n, want int
	if err := s.db.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM purchaseorder_active WHERE customer = 'C-42'),
		(SELECT count(*) FROM bam_instances WHERE activity = 'PurchaseOrder' AND state = 'active'
		 AND items ->> '$.Customer.v' = 'C-42')`).Scan(&n, &want); err != nil || n != want || n == 0 {
		t.Fatalf("active with customer C-42 = %d, %v; want %d", n, err, want)
	}
	// 01:00:00 to 02:00:00 is instances 1800 to 3600 (end = 2n seconds), every third.
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM purchaseorder_completed
		WHERE end_time BETWEEN '1970-01-01T01:00:00' AND '1970-01-01T02:00:00'`).Scan(&n); err != nil || n != 450 {
		t.Fatalf("completed between 01:00 and 02:00 = %d, %v; want 450", n, err)
	}
}

// TestViewsReadInTheSQLiteShell: the views use built-in functions only, so
// the sqlite3 command reads them.
func TestViewsReadInTheSQLiteShell(t *testing.T) {
	shell, err := exec.LookPath("sqlite3")
	if err != nil {
		t.Skip("no sqlite3 command on this machine")
	}
	s, ctx := migrated(t)
	deployText(t, ctx, s, poDefinition)
	if _, err := s.db.ExecContext(ctx, `INSERT INTO bam_instances (activity, instance_id, state, begin_time, last_modified, items, updated_at)
		VALUES ('PurchaseOrder', 'PO-1', 'active', 1764064920000000, 1764064920000000,
		        '{"Customer":{"v":"Contoso","t":0},"Amount":{"v":1200.50,"t":0},"Rush":{"v":true,"t":0},"Quantity":{"v":"3","t":0}}', 0)`); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(shell, s.Path(), `SELECT instance_id, begin_time, customer, amount, quantity, rush FROM purchaseorder_active`).CombinedOutput()
	if err != nil {
		t.Fatalf("sqlite3: %v\n%s", err, out)
	}
	if got, want := strings.TrimSpace(string(out)), "PO-1|2025-11-25T10:02:00.000000Z|Contoso|1200.50||1"; got != want {
		t.Fatalf("sqlite3 read %q, want %q", got, want)
	}
}
