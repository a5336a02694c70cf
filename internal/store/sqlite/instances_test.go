package sqlite

import (
	"strings"
	"testing"

	"github.com/bam-dev/bam/internal/store"
)

// TestInstanceReadsItsContinuationsByIndex: reading an instance finds its
// continuations by bam_continuations_instance, not by walking every
// continuation of its activity (a chaos run's check of 113,000 instances
// and 34,000 continuations read each of them for each instance).
func TestInstanceReadsItsContinuationsByIndex(t *testing.T) {
	s, ctx := migrated(t)
	rows, err := s.db.QueryContext(ctx, `EXPLAIN QUERY PLAN SELECT `+store.ContinuationColumns+` FROM bam_continuations `+continuationsOfInstance, "PO", "PO-1")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(plan, "\n"), "USING INDEX bam_continuations_instance (activity=? AND instance_id=?)") {
		t.Errorf("plan:\n%s", strings.Join(plan, "\n"))
	}
}
