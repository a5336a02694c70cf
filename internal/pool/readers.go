package pool

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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
// another one stops (pgoutbox.OpenSource). The outbox table is claimed for
// this store in the application's database, so that a pool of another
// store reading it is refused (pgoutbox.Reader.Claim); an outbox installed
// without the readers table is read with a warning.
func openReader(ctx context.Context, st Store, src store.Source, log *slog.Logger) (source.Reader, store.Source, error) {
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
		storeID, err := st.StoreID(ctx)
		if err == nil {
			err = r.Claim(ctx, storeID, src.Name)
		}
		if errors.Is(err, pgoutbox.ErrNoClaims) {
			log.Warn("cannot tell whether another bam store reads this outbox", "source", src.Name, "err", err)
		} else if err != nil {
			_ = r.Close()
			return nil, src, fmt.Errorf("open pg-outbox source %q: %w", src.Name, err)
		}
		return &outboxReader{Reader: r, st: st, name: src.Name}, src, nil
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

// outboxReader records in the store that its source stopped when the
// reader finds the server's transaction ids behind a checkpoint
// (pgoutbox.ErrRewound): every reader opened later, on any node, stays
// stopped until an operator resets the checkpoints, even once the ids have
// run past them again.
type outboxReader struct {
	*pgoutbox.Reader
	st   Store
	name string
}

func (o *outboxReader) Read(ctx context.Context, partition int, after store.Position, limit int) ([]store.Record, bool, error) {
	recs, held, err := o.Reader.Read(ctx, partition, after, limit)
	o.recordStop(ctx, partition, after, err)
	return recs, held, err
}

func (o *outboxReader) Trim(ctx context.Context, partition int, upTo store.Position) error {
	err := o.Reader.Trim(ctx, partition, upTo)
	o.recordStop(ctx, partition, upTo, err)
	return err
}

// recordStop is best effort: the reader stays stopped in this process
// anyway, and the session's next read records it again. The store records
// it only while the partition's checkpoint is still the one found ahead of
// the server (a session reads after its checkpoint, and trims up to it):
// an operator's reset in between makes the stop stale.
func (o *outboxReader) recordStop(ctx context.Context, partition int, checkpoint store.Position, err error) {
	if errors.Is(err, pgoutbox.ErrRewound) {
		_ = o.st.StopOutbox(ctx, store.SessionID{Source: o.name, Partition: partition}, checkpoint, err.Error())
	}
}

// stoppedForGood reports whether a reader stopped for good (pgoutbox.Reader.Stopped):
// a session that starts after the operator's reset needs a new one.
func stoppedForGood(r source.Reader) bool {
	s, ok := r.(interface{ Stopped() bool })
	return ok && s.Stopped()
}
