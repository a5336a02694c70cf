package pool

import (
	"context"
	"fmt"
	"slices"

	"github.com/bam-dev/bam/internal/source"
	"github.com/bam-dev/bam/internal/source/buffer"
	"github.com/bam-dev/bam/internal/source/pgoutbox"
	"github.com/bam-dev/bam/internal/store"
)

// openReader opens the reader of a source by its kind, and returns the
// source as the reader was opened for. A pg-outbox source whose outbox is
// not recorded yet has it recorded now, before anything is read: from then
// on its checkpoints are positions in that outbox, and a reader that finds
// another one stops (pgoutbox.OpenSource).
func openReader(ctx context.Context, st store.Store, src store.Source) (source.Reader, store.Source, error) {
	switch src.Kind {
	case store.KindBuffer:
		return buffer.New(st, src.Name), src, nil
	case store.KindPgOutbox:
		r, err := pgoutbox.OpenSource(ctx, src)
		if err != nil {
			return nil, src, fmt.Errorf("open pg-outbox source %q: %w", src.Name, err)
		}
		if src.Outbox.IsZero() {
			if err := st.RecordOutbox(ctx, src.Name, r.Identity()); err != nil {
				_ = r.Close()
				return nil, src, fmt.Errorf("open pg-outbox source %q: %w", src.Name, err)
			}
			src.Outbox = r.Identity()
		}
		return r, src, nil
	default:
		return nil, src, fmt.Errorf("source %q has unknown kind %q", src.Name, src.Kind)
	}
}

// sameReader reports whether a reader opened for source a still reads
// source b as it is configured now: not when it was removed and added
// again, repartitioned, or its checkpoints were reset onto another outbox.
func sameReader(a, b store.Source) bool {
	floorsEqual := (a.Floor == nil) == (b.Floor == nil) &&
		(a.Floor == nil || a.Floor.Partitions == b.Floor.Partitions && slices.Equal(a.Floor.Checkpoints, b.Floor.Checkpoints))
	return a.Kind == b.Kind && a.DSN == b.DSN && a.Table == b.Table && a.Partitions == b.Partitions &&
		a.Outbox == b.Outbox && a.CreatedAt.Equal(b.CreatedAt) && floorsEqual
}
