package search_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/definition"
	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/search"
	"github.com/bam-dev/bam/internal/store"
	"github.com/bam-dev/bam/internal/store/postgres"
	"github.com/bam-dev/bam/internal/store/sqlite"
	"github.com/bam-dev/bam/internal/testpg"
)

// testStore is a real store the search runs on, written with WriteEvents.
type testStore interface {
	store.Store
	store.Searcher
	WriteEvents(ctx context.Context, events []event.Event) error
}

// onEachStore runs fn on a fresh, migrated SQLite file and PostgreSQL
// database, each in a subtest named after its driver.
func onEachStore(t *testing.T, fn func(t *testing.T, ctx context.Context, s testStore)) {
	open := map[string]func(t *testing.T, ctx context.Context) testStore{
		"sqlite": func(t *testing.T, ctx context.Context) testStore {
			s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "bam.db"))
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
		"postgres": func(t *testing.T, ctx context.Context) testStore {
			s, err := postgres.Open(ctx, testpg.NewDatabase(t))
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
	}
	for _, driver := range []string{"sqlite", "postgres"} {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			s := open[driver](t, ctx)
			t.Cleanup(func() { s.Close() })
			if _, _, err := s.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			fn(t, ctx, s)
		})
	}
}

// deploy deploys a definition file and returns its first activity.
func deploy(t *testing.T, ctx context.Context, s store.Store, src string) definition.Activity {
	t.Helper()
	f, err := definition.Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Deploy(ctx, store.DeployRequest{File: f, Text: src, By: "tester@host"}); err != nil {
		t.Fatal(err)
	}
	return f.Activities[0]
}

// write writes events, failing the test on an error.
func write(t *testing.T, ctx context.Context, s testStore, events ...event.Event) {
	t.Helper()
	if err := s.WriteEvents(ctx, events); err != nil {
		t.Fatal(err)
	}
}

func ev(activity, instance string, kind event.Kind, at time.Time, data map[string]any) event.Event {
	e := event.Event{Activity: activity, Instance: instance, Kind: kind, Time: at}
	if data != nil {
		e.Data = map[string]json.RawMessage{}
		for k, v := range data {
			raw, _ := json.Marshal(v)
			if n, ok := v.(json.Number); ok {
				raw = []byte(n)
			}
			e.Data[k] = raw
		}
	}
	return e
}

// ids runs q to the end, page by page, and returns the instance ids in
// the order the pages gave them.
func ids(t *testing.T, ctx context.Context, s store.Searcher, q *search.Query, pageSize int, now time.Time) []string {
	t.Helper()
	var out []string
	req := search.PageRequest{Limit: pageSize, Now: now}
	for range 10000 {
		page, err := search.Run(ctx, s, q, req)
		if err != nil {
			t.Fatalf("Run(%q order %q): %v", q.Filter.String(), q.Order.String(), err)
		}
		for _, r := range page.Rows {
			out = append(out, r.ID)
		}
		if page.Next == "" {
			return out
		}
		if len(page.Rows) != pageSize {
			t.Fatalf("a page of %d rows of %d has a next cursor", len(page.Rows), pageSize)
		}
		req.Cursor = page.Next
	}
	t.Fatal("10000 pages and no end")
	return nil
}
