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

// reader returns the open reader of a source, opening it on first use.
// fresh reads the source's configuration first and replaces a reader
// opened for another one (a source removed and added again,
// repartitioned, or reset onto another outbox): sessions claimed since
// must not read through it.
func (n *Node) reader(ctx context.Context, name string, fresh bool) (source.Reader, error) {
	n.mu.Lock()
	if e, ok := n.readers[name]; ok && !fresh {
		n.mu.Unlock()
		return e.r, nil
	}
	n.mu.Unlock()
	src, err := n.st.Source(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("read source %q: %w", name, err)
	}
	n.mu.Lock()
	if e, ok := n.readers[name]; ok {
		if sameReader(e.src, src) && !stoppedForGood(e.r) {
			n.mu.Unlock()
			return e.r, nil
		}
		n.log.Info("source changed; reopening its reader", "source", name)
		e.cancel()
		_ = e.r.Close()
		delete(n.readers, name)
	}
	n.mu.Unlock()
	r, src, err := n.openSource(ctx, n.st, src, n.log)
	if err != nil {
		return nil, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if e, ok := n.readers[name]; ok && sameReader(e.src, src) && !stoppedForGood(e.r) { // another session opened it meanwhile
		_ = r.Close()
		return e.r, nil
	} else if ok {
		e.cancel()
		_ = e.r.Close()
	}
	wctx, cancel := context.WithCancel(context.Background())
	n.readers[name] = &readerEntry{r: r, src: src, cancel: cancel}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.watchSource(wctx, name, r)
	}()
	return r, nil
}

func (n *Node) closeReaders() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for name, e := range n.readers {
		e.cancel()
		if err := e.r.Close(); err != nil {
			n.log.Warn("close source", "source", name, "err", err)
		}
		delete(n.readers, name)
	}
}

// watchSource wakes the source's sessions on its notifications.
func (n *Node) watchSource(ctx context.Context, name string, r source.Reader) {
	for attempt := 1; ; attempt++ {
		err := r.Watch(ctx, func() { n.wake(name, "") })
		if errors.Is(err, source.ErrNoWatch) || ctx.Err() != nil {
			return
		}
		n.log.Warn("source notifications broke; reading on the poll interval until they are back", "source", name, "err", err)
		if !sleepCtx(ctx, backoff(attempt)) {
			return
		}
	}
}

// watchStore turns store notices into wake-ups.
func (n *Node) watchStore(ctx context.Context, w store.Watcher) {
	broken := 0 // failed watches since the last notice
	for {
		err := w.Watch(ctx, func(nt store.Notice) {
			if broken > 0 {
				n.log.Info("store notifications work again")
				broken = 0
			}
			switch nt.Topic {
			case store.TopicBuffer:
				n.wake(nt.Source, store.KindBuffer)
			case store.TopicSessions:
				select {
				case n.balanceNow <- struct{}{}:
				default:
				}
			case store.TopicSettings:
				select {
				case n.settingsNow <- struct{}{}:
				default:
				}
			}
		})
		if ctx.Err() != nil {
			return
		}
		broken++
		if broken == 1 {
			n.log.Warn("store notifications broke; reading on the poll interval until they are back", "err", err)
		}
		if !sleepCtx(ctx, backoff(broken)) {
			return
		}
	}
}

// wake wakes the sessions of a source; an empty name wakes every session of
// the kind.
func (n *Node) wake(sourceName string, kind store.SourceKind) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for id, r := range n.sessions {
		if id.Source == sourceName || (sourceName == "" && r.kind == kind) {
			r.s.Wake()
		}
	}
}
