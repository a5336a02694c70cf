package pool

import (
	"context"
	"fmt"

	"github.com/bam-dev/bam/internal/source"
	"github.com/bam-dev/bam/internal/source/buffer"
	"github.com/bam-dev/bam/internal/source/pgoutbox"
	"github.com/bam-dev/bam/internal/store"
)

// openReader opens the reader of a source by its kind.
func openReader(ctx context.Context, st store.Store, src store.Source) (source.Reader, error) {
	switch src.Kind {
	case store.KindBuffer:
		return buffer.New(st, src.Name), nil
	case store.KindPgOutbox:
		r, err := pgoutbox.Open(ctx, src.DSN, src.Table, src.Partitions)
		if err != nil {
			return nil, fmt.Errorf("open pg-outbox source %q: %w", src.Name, err)
		}
		return r, nil
	default:
		return nil, fmt.Errorf("source %q has unknown kind %q", src.Name, src.Kind)
	}
}
