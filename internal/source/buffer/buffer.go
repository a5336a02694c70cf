// Package buffer is the source kind "buffer": the store's own ingest buffer,
// written by `bam emit` (and later the HTTP API and SDK). It reads through
// the store driver, which keeps positions in commit order (see
// store.Store.ReadBuffer); new events wake nodes through the store's Watcher.
package buffer

import (
	"context"

	"github.com/bam-dev/bam/internal/source"
	"github.com/bam-dev/bam/internal/store"
)

// Store is what a Reader needs of the store.
type Store interface {
	ReadBuffer(ctx context.Context, id store.SessionID, after store.Position, limit int) (recs []store.Record, held bool, err error)
	TrimBuffer(ctx context.Context, id store.SessionID, upTo store.Position) error
	BufferBacklog(ctx context.Context, id store.SessionID, after store.Position) (int64, error)
}

// Reader reads one buffer source.
type Reader struct {
	st     Store
	source string
}

var _ source.Reader = (*Reader)(nil)

// New returns a Reader of the named buffer source in st.
func New(st Store, sourceName string) *Reader {
	return &Reader{st: st, source: sourceName}
}

func (r *Reader) id(partition int) store.SessionID {
	return store.SessionID{Source: r.source, Partition: partition}
}

// Read implements source.Reader.
func (r *Reader) Read(ctx context.Context, partition int, after store.Position, limit int) ([]store.Record, bool, error) {
	return r.st.ReadBuffer(ctx, r.id(partition), after, limit)
}

// Trim implements source.Reader.
func (r *Reader) Trim(ctx context.Context, partition int, upTo store.Position) error {
	return r.st.TrimBuffer(ctx, r.id(partition), upTo)
}

// Backlog implements source.Reader.
func (r *Reader) Backlog(ctx context.Context, partition int, after store.Position) (int64, error) {
	return r.st.BufferBacklog(ctx, r.id(partition), after)
}

// Watch returns source.ErrNoWatch: buffer notices come through the store's
// Watcher, which the node runs once for all buffer sources.
func (r *Reader) Watch(ctx context.Context, wake func()) error { return source.ErrNoWatch }

// Close implements source.Reader; the store is not the reader's to close.
func (r *Reader) Close() error { return nil }
