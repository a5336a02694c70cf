package sqlite

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/bam-dev/bam/internal/store"
	"github.com/bam-dev/bam/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := Open(context.Background(), filepath.Join(t.TempDir(), "bam.db"))
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		return s
	})
}
