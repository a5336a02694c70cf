package main

import (
	"context"
	"database/sql"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bam-dev/bam/internal/testpg"
	"github.com/bam-dev/bam/internal/testwait"
)

// TestReadyz: a node's /readyz turns not-ready within seconds of its store
// refusing writes, says which check failed, and turns ready again once the
// store takes them; /livez stays 200 all along. On SQLite another
// connection holds the write lock; on PostgreSQL another connection locks
// the table the probe and the heartbeats write.
func TestReadyz(t *testing.T) {
	for _, c := range []struct {
		name string
		url  func(t *testing.T, b *bench) string
		// block stops the store's writes; its result lets them go again.
		block func(t *testing.T, url string) (release func())
	}{
		{"sqlite", func(t *testing.T, b *bench) string { return b.url }, holdSQLiteWriteLock},
		{"postgres", func(t *testing.T, b *bench) string { return testpg.NewDatabase(t) }, lockNodesTable},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := newBench(t)
			b.url = c.url(t, b)
			b.ok("migrate")
			b.ok("source", "add", "orders", "--kind", "buffer", "--partitions", "2")
			node := serveHTTP(t, b)
			waitReady(t, node.base, http.StatusOK, "the node to be ready", "[+]store-write ok", "[+]liveness-lock ok", "[+]heartbeat ok", "[+]sessions ok")

			release := c.block(t, b.url)
			start := time.Now()
			body := waitReady(t, node.base, http.StatusServiceUnavailable, "the node not to be ready while writes are blocked", "[-]store-write failed: the store took no write within")
			t.Logf("not ready %v after writes were blocked:\n%s", time.Since(start).Round(time.Millisecond), body)
			if live := get(t, node.base+"/livez"); live.status != http.StatusOK || live.body != "ok" {
				t.Errorf("livez while writes are blocked: %d %s", live.status, live.body)
			}
			release()
			start = time.Now()
			waitReady(t, node.base, http.StatusOK, "the node to be ready again", "[+]store-write ok", "[+]heartbeat ok")
			t.Logf("ready %v after writes were let go", time.Since(start).Round(time.Millisecond))
			if h := get(t, node.base+"/healthz"); h.status != http.StatusOK || !strings.Contains(h.body, `"status":"ok"`) {
				t.Errorf("healthz once ready: %d %s", h.status, h.body)
			}
		})
	}
}

// waitReady waits for /readyz?verbose to answer status with every want in
// its body, and returns the body.
func waitReady(t *testing.T, base string, status int, what string, want ...string) string {
	t.Helper()
	var last httpResult
	testwait.Until(t, 15*time.Second, what, func() bool {
		last = get(t, base+"/readyz?verbose")
		if last.status != status {
			return false
		}
		for _, w := range want {
			if !strings.Contains(last.body, w) {
				return false
			}
		}
		return true
	})
	return last.body
}

func get(t *testing.T, url string) httpResult {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return httpDo(t, req)
}

// holdSQLiteWriteLock takes the write lock of the SQLite store at url on a
// connection of its own, as another process's long write would.
func holdSQLiteWriteLock(t *testing.T, url string) func() {
	t.Helper()
	path := strings.TrimPrefix(url, "sqlite:")
	db, err := sql.Open("sqlite", "file:"+filepath.Clean(path))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(context.Background(), "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	return func() {
		if _, err := conn.ExecContext(context.Background(), "ROLLBACK"); err != nil {
			t.Fatal(err)
		}
		conn.Close()
	}
}

// lockNodesTable locks bam_nodes against writes (reads go on) on a
// connection of its own, in a transaction left open.
func lockNodesTable(t *testing.T, url string) func() {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(ctx) })
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "LOCK TABLE bam_nodes IN EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	return func() {
		if err := tx.Rollback(ctx); err != nil {
			t.Fatal(err)
		}
	}
}
