package store

import (
	"context"
	"fmt"
)

// SourceTx is what a driver does inside the one transaction of a change
// to a source's life cycle: RemoveSource, RecordOutbox, ResetCheckpoints,
// Repartition, and AddSource's taking over of a tombstone. The flows
// (RunRemoveSource, RunRecordOutbox, RunResetCheckpoints, RunRepartition,
// AdoptOutbox) are written once here so that both drivers decide the same
// way; the drivers only speak SQL. Each flow starts with LockSource, which
// keeps the source and its sessions from changing (PostgreSQL's row locks,
// SQLite's write lock) until the transaction ends.
type SourceTx interface {
	// LockSource reads a source, its sessions' checkpoints by partition
	// and how many of them are owned by live leases, and keeps them as
	// they are until the transaction ends: no claim, append or batch gets
	// in between. An error wrapping ErrNotFound when there is no source.
	LockSource(ctx context.Context, name string) (src Source, checkpoints []Position, live int, err error)
	// CountUnapplied counts a buffer source's events after their
	// partition's checkpoint.
	CountUnapplied(ctx context.Context, name string) (int64, error)
	// WriteTombstone keeps a removed source's checkpoints and floor on its
	// outbox, replacing a tombstone already there.
	WriteTombstone(ctx context.Context, src Source, checkpoints []Position) error
	// DeleteSource deletes a source, its sessions and its buffered events.
	DeleteSource(ctx context.Context, name string) error
	// Tombstoned reports whether a tombstone lies on the outbox of key.
	Tombstoned(ctx context.Context, key string) (bool, error)
	// TakeTombstone deletes the tombstone on the outbox of key and returns
	// it; ok is false when there is none.
	TakeTombstone(ctx context.Context, key string) (t Tombstone, ok bool, err error)
	// DropTombstone deletes the tombstone on the outbox of key, if any.
	DropTombstone(ctx context.Context, key string) error
	// OutboxReader names the source other than name that records the
	// outbox of key, "" when none.
	OutboxReader(ctx context.Context, key, name string) (string, error)
	// WriteOutbox records o as the outbox of source name, or returns an
	// error wrapping ErrOutboxTaken when another source recorded it
	// meanwhile.
	WriteOutbox(ctx context.Context, name string, o OutboxIdentity) error
	// SetCheckpoints sets the checkpoints of the source's sessions, by
	// partition. With fence, each session's epoch is raised too, and the
	// session freed and its last error cleared.
	SetCheckpoints(ctx context.Context, name string, checkpoints []Position, fence bool) error
	// SetFloor writes the source's floor.
	SetFloor(ctx context.Context, name string, floor Floor) error
	// ForgetFloor clears the source's floor and the reason its reader
	// stopped: new checkpoints say what is applied.
	ForgetFloor(ctx context.Context, name string) error
	// RefileBuffer deletes a buffer source's applied events (at or before
	// their partition's checkpoint) and files the others under their
	// partition of the new count (PartitionOf), as writers would.
	RefileBuffer(ctx context.Context, name string, partitions int) (moved, deleted int64, err error)
	// SetPartitions writes the source's partition count and its floor
	// (nil: none).
	SetPartitions(ctx context.Context, name string, partitions int, floor *Floor) error
	// ReplaceSessions replaces the source's sessions with partitions free
	// ones at start, each under an epoch above every old one, so that no
	// batch of the old partitioning can commit.
	ReplaceSessions(ctx context.Context, name string, partitions int, start Position) error
	// SessionsChanged tells the nodes to balance once the transaction
	// commits.
	SessionsChanged(ctx context.Context) error
}

// RunRemoveSource is Store.RemoveSource inside a driver's transaction. It
// locks the source before it decides, so a session cannot be claimed, and
// no event appended or applied, between the check and the delete.
func RunRemoveSource(ctx context.Context, tx SourceTx, name string, opt RemoveOptions) (Removal, error) {
	src, checkpoints, live, err := tx.LockSource(ctx, name)
	if err != nil {
		return Removal{}, err
	}
	out := Removal{Source: src, Checkpoints: checkpoints}
	if src.OutboxStopped != "" {
		// Its checkpoints say nothing reliable: kept as a tombstone they
		// could skip rows of a source added on the table again.
		return Removal{}, fmt.Errorf("%w: its reader stopped (%s); choose where it reads from first: bam source reset-checkpoint %s", ErrOutboxChanged, src.OutboxStopped, name)
	}
	if src.Enabled && live > 0 {
		return Removal{}, fmt.Errorf("%d of its sessions are owned by live leases; disable the source first: %w", live, ErrNotClaimable)
	}
	if src.Kind == KindBuffer {
		// The unapplied events: those after their partition's checkpoint.
		// Rows at or before it were applied.
		if out.Dropped, err = tx.CountUnapplied(ctx, name); err != nil {
			return Removal{}, err
		}
		if out.Dropped > 0 && !opt.DropUnapplied {
			return Removal{}, fmt.Errorf("%w: %s in its buffer not applied yet", ErrUnapplied, CountEvents(out.Dropped))
		}
	}
	if !src.Outbox.IsZero() {
		if err := tx.WriteTombstone(ctx, src, checkpoints); err != nil {
			return Removal{}, err
		}
	}
	if err := tx.DeleteSource(ctx, name); err != nil {
		return Removal{}, err
	}
	return out, tx.SessionsChanged(ctx)
}

// RunRecordOutbox is Store.RecordOutbox inside a driver's transaction.
func RunRecordOutbox(ctx context.Context, tx SourceTx, name string, o OutboxIdentity) error {
	src, checkpoints, _, err := tx.LockSource(ctx, name)
	if err != nil {
		return err
	}
	tombstoned, err := tx.Tombstoned(ctx, o.Key())
	if err != nil {
		return err
	}
	if record, err := PlanRecordOutbox(src, checkpoints, o, tombstoned); !record || err != nil {
		return err
	}
	return AdoptOutbox(ctx, tx, name, src.Partitions, o)
}

// RunResetCheckpoints is Store.ResetCheckpoints inside a driver's
// transaction. It returns the checkpoints before the reset.
func RunResetCheckpoints(ctx context.Context, tx SourceTx, name string, r CheckpointReset) ([]Position, error) {
	src, checkpoints, _, err := tx.LockSource(ctx, name)
	if err != nil {
		return nil, err
	}
	if err := r.CheckExpected(checkpoints); err != nil {
		return nil, err
	}
	if len(r.To) != len(checkpoints) {
		return nil, fmt.Errorf("%d checkpoints given for %d partitions", len(r.To), len(checkpoints))
	}
	if err := tx.SetCheckpoints(ctx, name, r.To, true); err != nil {
		return nil, err
	}
	// The new checkpoints say what is applied; a floor would skip rows
	// the operator chose to read again.
	if err := tx.ForgetFloor(ctx, name); err != nil {
		return nil, err
	}
	if !r.Outbox.IsZero() && r.Outbox.Key() != src.Outbox.Key() {
		if err := tx.DropTombstone(ctx, r.Outbox.Key()); err != nil {
			return nil, err
		}
		if err := AdoptOutbox(ctx, tx, name, src.Partitions, r.Outbox); err != nil {
			return nil, err
		}
	}
	return checkpoints, tx.SessionsChanged(ctx)
}

// RunRepartition is Store.Repartition inside a driver's transaction, once
// the driver has checked the count.
func RunRepartition(ctx context.Context, tx SourceTx, name string, partitions int) (Repartitioned, error) {
	src, checkpoints, _, err := tx.LockSource(ctx, name)
	if err != nil {
		return Repartitioned{}, err
	}
	if src.Kind == KindAlerts {
		// One session, so that one node evaluates the alerts.
		return Repartitioned{}, fmt.Errorf("source %s is built in: its one session evaluates the alerts, and it keeps one partition", name)
	}
	out := Repartitioned{From: src.Partitions, To: partitions}
	plan, err := PlanRepartition(src, checkpoints, partitions)
	if err != nil {
		return Repartitioned{}, err
	}
	out.Floor = plan.Floor
	if src.Kind == KindBuffer {
		if out.Moved, out.Deleted, err = tx.RefileBuffer(ctx, name, partitions); err != nil {
			return Repartitioned{}, err
		}
	}
	if err := tx.SetPartitions(ctx, name, partitions, plan.Floor); err != nil {
		return Repartitioned{}, err
	}
	if err := tx.ReplaceSessions(ctx, name, partitions, plan.Start); err != nil {
		return Repartitioned{}, err
	}
	return out, tx.SessionsChanged(ctx)
}

// AdoptOutbox records o as the outbox of a source of that many partitions
// and takes over a tombstone a removed source left on it: its checkpoints
// become the sessions' and its floor the source's. The check names another
// source that reads the table; the unique index on the key decides when
// two transactions record it at once.
func AdoptOutbox(ctx context.Context, tx SourceTx, name string, partitions int, o OutboxIdentity) error {
	other, err := tx.OutboxReader(ctx, o.Key(), name)
	if err != nil {
		return err
	}
	if other != "" {
		return fmt.Errorf("%w: source %q reads %s", ErrOutboxTaken, other, o)
	}
	if err := tx.WriteOutbox(ctx, name, o); err != nil {
		return err
	}
	t, ok, err := tx.TakeTombstone(ctx, o.Key())
	if !ok || err != nil {
		return err
	}
	if err := t.Fits(partitions); err != nil {
		return err
	}
	if err := tx.SetCheckpoints(ctx, name, t.Checkpoints, false); err != nil {
		return err
	}
	if t.Floor != nil {
		return tx.SetFloor(ctx, name, *t.Floor)
	}
	return nil
}

// FloorColumns are a floor as a driver stores it: its partition count (0:
// none) and its checkpoints (EncodePositions).
func FloorColumns(f *Floor) (partitions int, checkpoints string) {
	if f == nil {
		return 0, ""
	}
	return f.Partitions, EncodePositions(f.Checkpoints)
}
