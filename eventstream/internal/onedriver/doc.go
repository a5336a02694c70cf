// Package onedriver holds two small programs that write events with one
// store driver each: pgonly with pgstream, sqliteonly with sqlitestream.
// TestOneDriverLinksOneDatabase (eventstream/drivers_test.go) holds each to
// linking only its own database client, and docs/BENCHMARKS.md measures
// their binaries. Each does what such an application does: a buffered
// stream, a direct stream and a write inside its own transaction (and, on
// PostgreSQL, an outbox row), against the store in BAM_STORE, which must be
// migrated and have a buffer source "orders" (and, on PostgreSQL, an outbox
// table, bam source install-outbox).
package onedriver

import (
	"context"

	"github.com/bam-dev/bam/eventstream"
)

// Open writes an event of PO-1 through a buffered stream into the source
// "orders" of the store at storeURL, opened with drv, and returns a direct
// stream into the same store: the part of the programs that does not
// depend on the driver.
func Open(ctx context.Context, drv eventstream.Driver, storeURL string) (*eventstream.Direct, error) {
	buffered, err := eventstream.OpenBuffered(ctx, drv, storeURL, "orders", eventstream.BufferedOptions{})
	if err != nil {
		return nil, err
	}
	if err := buffered.BeginActivity(ctx, "PurchaseOrder", "PO-1"); err != nil {
		return nil, err
	}
	if err := buffered.Flush(ctx); err != nil {
		return nil, err
	}
	if err := buffered.Close(ctx); err != nil {
		return nil, err
	}
	return eventstream.OpenDirect(ctx, drv, storeURL, eventstream.DirectOptions{})
}
