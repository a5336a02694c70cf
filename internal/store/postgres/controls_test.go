package postgres

import (
	"errors"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/ops"
	"github.com/bam-dev/bam/internal/store"
)

// TestMoveSessionWaitsOutABatch: a move whose session row a batch holds
// gives up within the lease pool's lock timeout with ErrLocked (it used to
// fail with the server's raw lock-timeout error, which bam session move
// printed as is); ops.MoveSession tries again and lands once the batch
// commits.
func TestMoveSessionWaitsOutABatch(t *testing.T) {
	t.Parallel()
	b := leaseSetup(t, 1)
	id := store.SessionID{Source: "src", Partition: 0}
	tx, err := b.s.work.Begin(b.ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(b.ctx)
	if _, err := tx.Exec(b.ctx, `UPDATE bam_sessions SET applied_count = applied_count WHERE source = 'src' AND partition = 0`); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := b.s.MoveSession(b.ctx, id, "n2"); !errors.Is(err, store.ErrLocked) {
		t.Fatalf("MoveSession of a row a batch holds = %v, want ErrLocked", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("MoveSession gave up after %v", took)
	}

	// The batch commits 700 ms later: the retried move lands.
	committed := make(chan error, 1)
	go func() {
		time.Sleep(700 * time.Millisecond)
		committed <- tx.Commit(b.ctx)
	}()
	err = ops.MoveSession(b.ctx, b.s, id, "n2", 10*time.Second, 50*time.Millisecond)
	if cerr := <-committed; cerr != nil {
		t.Fatal(cerr)
	}
	if err != nil {
		t.Fatalf("ops.MoveSession: %v", err)
	}
	ss, err := b.s.Sessions(b.ctx)
	if err != nil || len(ss) != 1 || ss[0].MoveTo != "n2" {
		t.Fatalf("sessions after the move = %+v, %v", ss, err)
	}
}
