package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"

	"github.com/bam-dev/bam/internal/event"
)

// WriteEvents is the package's WriteEvents in a transaction of its own:
// one IMMEDIATE transaction, queued behind this process's other writers
// like Apply's. It returns once the transaction committed; on an error
// nothing was written.
func (s *Store) WriteEvents(ctx context.Context, events []event.Event) error {
	return s.write(ctx, work, func(tx *sql.Tx) error { return WriteEvents(ctx, tx, events) })
}

// DataSourceName returns what an application passes to
// sql.Open("sqlite", ...) to open the store file at path and write events
// in its own transactions with WriteEvents: the settings of this driver's
// connections (busy timeout, WAL, synchronous FULL, foreign keys) and
// IMMEDIATE transactions. It registers bam_merge_items first, so that
// every connection of a database opened with it can run WriteEvents.
func DataSourceName(path string) (string, error) {
	if err := registerFunctions(); err != nil {
		return "", fmt.Errorf("sqlite data source name: %w", err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("sqlite data source name of %s: %w", path, err)
	}
	return dataSourceName(abs), nil
}
