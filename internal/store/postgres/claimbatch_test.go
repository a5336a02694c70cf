package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/store"
)

// ClaimBatch skips a session whose row another transaction holds locked (a
// batch being committed, or a request whose end never arrives) and claims
// the others without waiting for it.
func TestClaimBatchSkipsLockedRows(t *testing.T) {
	b := setup(t)
	if err := b.s.AddSource(b.ctx, store.Source{Name: "src", Kind: store.KindBuffer, Partitions: 2, Enabled: true}); err != nil {
		t.Fatal(err)
	}
	locker := connect(t, b.url)
	tx, err := locker.Begin(b.ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	if _, err := tx.Exec(b.ctx, `SELECT 1 FROM bam_sessions WHERE source = 'src' AND partition = 0 FOR UPDATE`); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	start := time.Now()
	got, err := b.s.ClaimBatch(ctx, []store.ClaimRequest{
		{ID: store.SessionID{Source: "src", Partition: 0}},
		{ID: store.SessionID{Source: "src", Partition: 1}},
	}, "a", 30*time.Second)
	took := time.Since(start)
	if err != nil || len(got) != 1 || got[0].Partition != 1 {
		t.Fatalf("ClaimBatch with partition 0 locked = %+v, %v (after %v); want partition 1 only", got, err, took)
	}
	if took > 5*time.Second {
		t.Errorf("ClaimBatch took %v: it waited for the locked row", took)
	}
}
