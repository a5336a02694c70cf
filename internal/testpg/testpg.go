// Package testpg gives tests a PostgreSQL database of their own on the
// server the machine runs (BAM_TEST_PG, default
// postgres://postgres@127.0.0.1:5432/postgres). Each call creates a fresh
// database and drops it when the test ends, so tests never share state or
// assume they own the server.
//
// When the server cannot be reached the test is skipped with a message that
// says so, except under CI=true, where it fails: CI must not pass by skipping.
package testpg

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bam-dev/bam/internal/pgserver"
)

// AdminURL is the server's maintenance database, from BAM_TEST_PG.
func AdminURL() string {
	if u := os.Getenv("BAM_TEST_PG"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// NewDatabase creates an empty database and returns its URL. It is dropped
// (with any connections still open to it) when the test ends.
func NewDatabase(t testing.TB) string {
	t.Helper()
	return NewDatabaseWith(t, "")
}

// NewDatabaseWith is NewDatabase with options of CREATE DATABASE, such as
// "TEMPLATE template0 LOCALE 'C'": a test of what depends on the
// database's collation names the one it needs.
func NewDatabaseWith(t testing.TB, options string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, AdminURL())
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("PostgreSQL is unreachable at %s and CI=true: %v", redact(AdminURL()), err)
		}
		t.Skipf("SKIPPED: PostgreSQL is unreachable at %s (set BAM_TEST_PG to point at a server): %v", redact(AdminURL()), err)
	}
	defer admin.Close(context.Background())
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "bam_test_" + hex.EncodeToString(b)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name+" "+options); err != nil {
		t.Fatalf("create test database %s: %v", options, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, AdminURL())
		if err != nil {
			t.Logf("drop test database %s: %v", name, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Logf("drop test database %s: %v", name, err)
		}
	})
	u, err := url.Parse(AdminURL())
	if err != nil {
		t.Fatalf("parse BAM_TEST_PG: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}

func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// NewServer starts a PostgreSQL server of the test's own (package
// pgserver), for a test that restarts or stops it, creates the database
// bam in it and returns the server and that database's URL. The server is
// stopped and its files removed when the test ends. Without PostgreSQL's
// initdb the test is skipped, except under CI=true, where it fails.
func NewServer(t testing.TB) (*pgserver.Server, string) {
	t.Helper()
	bin := pgserver.DefaultBin()
	if !pgserver.Available(bin) {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true and PostgreSQL's initdb is missing from %s", bin)
		}
		t.Skipf("SKIPPED: PostgreSQL's initdb not found in %s: cannot start a server of the test's own", bin)
	}
	// Not t.TempDir: run as root, the server runs as the user postgres,
	// which must reach its directory.
	dir, err := os.MkdirTemp("", "bam-test-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := pgserver.Start(ctx, bin, dir)
	if err != nil {
		t.Fatalf("start a PostgreSQL server: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Logf("stop the PostgreSQL server: %v", err)
		}
	})
	admin, err := pgx.Connect(ctx, pgserver.URL(s.Addr(), "postgres"))
	if err != nil {
		t.Fatalf("connect to the PostgreSQL server: %v", err)
	}
	defer admin.Close(context.Background())
	if _, err := admin.Exec(ctx, "CREATE DATABASE bam"); err != nil {
		t.Fatalf("create database bam: %v", err)
	}
	return s, pgserver.URL(s.Addr(), "bam")
}
