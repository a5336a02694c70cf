package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/bam-dev/bam/internal/store"
)

// RunSchema holds the rules of the schema's versions: Migrate brings an
// empty store to the newest version this bam knows, once, and a store
// that a newer bam migrated is refused. open returns a fresh store with
// no schema.
func RunSchema(t *testing.T, open func(t *testing.T) store.Store) {
	t.Run("MigrateOnce", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		defer s.Close()
		ctx := context.Background()
		if err := s.CheckSchema(ctx); !errors.Is(err, store.ErrSchemaMissing) {
			t.Fatalf("CheckSchema on an empty store = %v, want ErrSchemaMissing", err)
		}
		from, to, err := s.Migrate(ctx)
		if err != nil || from != 0 || to < 1 {
			t.Fatalf("first Migrate = %d, %d, %v; want 0, >=1, nil", from, to, err)
		}
		if err := s.CheckSchema(ctx); err != nil {
			t.Fatalf("CheckSchema after Migrate: %v", err)
		}
		from2, to2, err := s.Migrate(ctx)
		if err != nil || from2 != to || to2 != to {
			t.Fatalf("second Migrate = %d, %d, %v; want %d, %d, nil", from2, to2, err, to, to)
		}
	})

	// A store at a version this bam does not know (a newer bam migrated
	// it) is neither used nor migrated.
	t.Run("NewerRefused", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		defer s.Close()
		ctx := context.Background()
		_, known, err := s.Migrate(ctx)
		if err != nil {
			t.Fatal(err)
		}
		future := `INSERT INTO bam_schema (version, applied_at) VALUES (999, 0)`
		if s.Driver() == "postgres" {
			future = `INSERT INTO bam_schema (version, name) VALUES (999, 'from the future')`
		}
		query(t, ctx, s, future)
		err = s.CheckSchema(ctx)
		if want := fmt.Sprintf("store has version 999, this bam knows %d", known); !errors.Is(err, store.ErrSchemaNewer) || !strings.Contains(err.Error(), want) {
			t.Fatalf("CheckSchema = %v, want ErrSchemaNewer with %q", err, want)
		}
		if _, _, err := s.Migrate(ctx); !errors.Is(err, store.ErrSchemaNewer) {
			t.Fatalf("Migrate = %v, want ErrSchemaNewer", err)
		}
	})
}
