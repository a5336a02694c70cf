package health

import (
	"context"
	"database/sql"
	neturl "net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	_ "modernc.org/sqlite"

	"github.com/bam-dev/bam/internal/bus"
	"github.com/bam-dev/bam/internal/pool"
	"github.com/bam-dev/bam/internal/store"
	"github.com/bam-dev/bam/internal/store/postgres"
	"github.com/bam-dev/bam/internal/store/sqlite"
	"github.com/bam-dev/bam/internal/testpg"
)

// TestNodeFacts: each node check fails exactly past its bound, saying why.
func TestNodeFacts(t *testing.T) {
	now := time.Now()
	fine := pool.Health{Joined: true, Liveness: pool.LivenessHeld, LastHeartbeat: now.Add(-time.Second)}
	if err := livenessLock(fine); err != nil {
		t.Errorf("liveness held: %v", err)
	}
	if err := livenessLock(pool.Health{Liveness: pool.LivenessNone}); err != nil {
		t.Errorf("a store without liveness locks: %v", err)
	}
	if err := livenessLock(pool.Health{Liveness: pool.LivenessLost}); err == nil || !strings.Contains(err.Error(), "does not hold its liveness lock") {
		t.Errorf("liveness lost: %v", err)
	}

	bound := 2500 * time.Millisecond
	if err := heartbeat(fine, bound, now); err != nil {
		t.Errorf("heartbeat 1s old: %v", err)
	}
	old := fine
	old.LastHeartbeat = now.Add(-bound)
	if err := heartbeat(old, bound, now); err == nil || !strings.Contains(err.Error(), "2.5s ago (bound 2.5s)") {
		t.Errorf("heartbeat at the bound: %v", err)
	}
	if err := heartbeat(pool.Health{}, bound, now); err == nil || !strings.Contains(err.Error(), "not joined") {
		t.Errorf("not joined: %v", err)
	}
	if err := heartbeat(pool.Health{Stopping: true, LastHeartbeat: now}, bound, now); err == nil || !strings.Contains(err.Error(), "stopping") {
		t.Errorf("stopping: %v", err)
	}

	stuck := 30 * time.Second
	session := func(partition int, p bus.Progress, has bool) pool.SessionHealth {
		return pool.SessionHealth{SessionID: store.SessionID{Source: "orders", Partition: partition}, Progress: p, HasProgress: has}
	}
	h := fine
	h.Sessions = []pool.SessionHealth{
		session(0, bus.Progress{LastSuccess: now}, true),
		session(1, bus.Progress{FailingSince: now.Add(-stuck + time.Millisecond), Failures: 9, LastError: "database is locked"}, true),
		session(2, bus.Progress{}, false), // the alerts evaluator says nothing
	}
	if err := stuckSessions(h, stuck, now); err != nil {
		t.Errorf("a session failing for less than the bound is stuck: %v", err)
	}
	h.Sessions[1].Progress.FailingSince = now.Add(-stuck)
	err := stuckSessions(h, stuck, now)
	if err == nil || err.Error() != "1 stuck: orders/1: every batch failed for 30s (9 failures; bound 30s), last: database is locked" {
		t.Errorf("a session failing for the bound: %v", err)
	}
}

// probeUntil runs the store-write check with a short timeout until it
// fails or passes as wanted, and returns its last error.
func probeUntil(t *testing.T, check Check, wantFail bool) error {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		start := time.Now()
		err := check.Run(ctx)
		took := time.Since(start)
		cancel()
		if took > time.Second {
			t.Fatalf("the probe took %v with a 500ms deadline", took)
		}
		if (err != nil) == wantFail {
			return err
		}
		if time.Now().After(deadline) {
			t.Fatalf("the probe's error is still %v; want failing: %v", err, wantFail)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// joinedCheck migrates st, joins node n1 and returns the store-write
// check of n1, once it passes. st is closed when the test ends.
func joinedCheck(t *testing.T, st store.Store) Check {
	t.Helper()
	ctx := context.Background()
	t.Cleanup(func() { st.Close() })
	if _, _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := st.Join(ctx, store.NodeRow{ID: "n1", Name: "n1", StartedAt: time.Now(), State: store.NodeRunning}); err != nil {
		t.Fatal(err)
	}
	check := StoreWriteCheck(st, "n1")
	probeUntil(t, check, false)
	return check
}

// TestStoreWriteSQLite: the probe fails within its deadline while another
// connection holds SQLite's write lock, and passes once it lets go.
func TestStoreWriteSQLite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bam.db")
	ctx := context.Background()
	st, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	check := joinedCheck(t, st)

	other, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(0)")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	conn, err := other.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	err = probeUntil(t, check, true)
	if !strings.Contains(err.Error(), "took no write within") {
		t.Errorf("while the write lock is held: %v", err)
	}
	if _, err := conn.ExecContext(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	probeUntil(t, check, false)
}

// TestStoreWritePostgres: the probe fails within its deadline while
// another connection locks the table it writes, fails at once on a
// database that refuses writes (read-only by default), and passes after
// each.
func TestStoreWritePostgres(t *testing.T) {
	url := testpg.NewDatabase(t)
	ctx := context.Background()
	st, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	check := joinedCheck(t, st)

	locker, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer locker.Close(ctx)
	tx, err := locker.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "LOCK TABLE bam_nodes IN EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	err = probeUntil(t, check, true)
	if !strings.Contains(err.Error(), "took no write within") || !strings.Contains(err.Error(), "lock timeout") {
		t.Errorf("while bam_nodes is locked: %v", err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	probeUntil(t, check, false)

	// A store whose connections only begin read-only transactions: a
	// server that refuses writes (a standby, a guard against a full disk).
	u, err := neturl.Parse(url)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("options", "-c default_transaction_read_only=on")
	u.RawQuery = strings.ReplaceAll(q.Encode(), "+", "%20") // pgx reads no "+" as a space
	readOnly, err := postgres.Open(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer readOnly.Close()
	err = probeUntil(t, StoreWriteCheck(readOnly, "n1"), true)
	if !strings.Contains(err.Error(), "refused a write") || !strings.Contains(err.Error(), "read-only transaction") {
		t.Errorf("on a read-only connection: %v", err)
	}
}
