package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/bam-dev/bam/internal/store"
)

// AddSource implements store.Store: the source and one free session per
// partition, in one transaction.
func (s *Store) AddSource(ctx context.Context, src store.Source) error {
	switch {
	case src.Name == "":
		return errors.New("add source: name must not be empty")
	case src.Kind == "":
		return fmt.Errorf("add source %q: kind must not be empty", src.Name)
	case src.Partitions < 1:
		return fmt.Errorf("add source %q: partitions must be at least 1, got %d", src.Name, src.Partitions)
	}
	var seq int64
	err := s.write(ctx, work, func(tx *sql.Tx) error {
		n, err := rowsAffected(tx.ExecContext(ctx, `
			INSERT INTO bam_sources (name, kind, partitions, enabled, paused, dsn, tbl, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, `+nowSQL+`)
			ON CONFLICT (name) DO NOTHING`,
			src.Name, string(src.Kind), src.Partitions, src.Enabled, src.Paused, src.DSN, src.Table))
		if err != nil {
			return err
		}
		if n == 0 {
			return store.ErrExists
		}
		if err := insertSessions(ctx, tx, src.Name, src.Partitions, 0, store.Position{}); err != nil {
			return err
		}
		if !src.Outbox.IsZero() {
			if err := recordOutbox(ctx, tx, src.Name, src.Partitions, src.Outbox); err != nil {
				return err
			}
		}
		seq, err = bumpSessions(ctx, tx)
		return err
	})
	if err != nil {
		return fmt.Errorf("add source %q: %w", src.Name, err)
	}
	s.sessionsChanged(seq)
	return nil
}

// insertSessions inserts a source's sessions, free, under epoch, at
// checkpoint.
func insertSessions(ctx context.Context, tx *sql.Tx, name string, partitions int, epoch int64, checkpoint store.Position) error {
	_, err := tx.ExecContext(ctx, `
		WITH RECURSIVE p(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM p WHERE n + 1 < ?2)
		INSERT INTO bam_sessions (source, partition, epoch, checkpoint_major, checkpoint_minor)
		SELECT ?1, n, ?3, ?4, ?5 FROM p`,
		name, partitions, epoch, checkpoint.Major, checkpoint.Minor)
	return err
}

// recordOutbox writes a source's outbox identity and takes over a
// tombstone on it. The write lock makes the check for a second reader of
// the table exact (the unique index backs it).
func recordOutbox(ctx context.Context, tx *sql.Tx, name string, partitions int, o store.OutboxIdentity) error {
	var other string
	err := tx.QueryRowContext(ctx, `SELECT name FROM bam_sources WHERE outbox_key = ? AND name <> ?`, o.Key(), name).Scan(&other)
	if err == nil {
		return fmt.Errorf("%w: source %q reads %s", store.ErrOutboxTaken, other, o)
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	if _, err := tx.ExecContext(ctx, `
		UPDATE bam_sources SET outbox_system_id = ?, outbox_database_oid = ?, outbox_database = ?,
			outbox_table = ?, outbox_key = ?
		WHERE name = ?`, o.SystemID, o.DatabaseOID, o.Database, o.Table, o.Key(), name); err != nil {
		return err
	}
	var (
		was                   string
		parts, floorParts     int
		checkpoints, floorCPs string
	)
	err = tx.QueryRowContext(ctx, `
		DELETE FROM bam_outbox_tombstones WHERE outbox_key = ?
		RETURNING source, partitions, checkpoints, floor_partitions, floor_checkpoints`, o.Key()).
		Scan(&was, &parts, &checkpoints, &floorParts, &floorCPs)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	t, err := store.ParseTombstone(was, parts, checkpoints, floorParts, floorCPs)
	if err != nil {
		return err
	}
	if err := t.Fits(partitions); err != nil {
		return err
	}
	if err := setCheckpoints(ctx, tx, name, t.Checkpoints, false); err != nil {
		return err
	}
	if t.Floor != nil {
		_, err = tx.ExecContext(ctx, `UPDATE bam_sources SET floor_partitions = ?, floor_checkpoints = ? WHERE name = ?`,
			t.Floor.Partitions, store.EncodePositions(t.Floor.Checkpoints), name)
	}
	return err
}

// setCheckpoints sets each session's checkpoint; fence also raises its
// epoch and frees it.
func setCheckpoints(ctx context.Context, tx *sql.Tx, name string, cps []store.Position, fence bool) error {
	q := `UPDATE bam_sessions SET checkpoint_major = ?, checkpoint_minor = ? WHERE source = ? AND partition = ?`
	if fence {
		q = `UPDATE bam_sessions SET checkpoint_major = ?, checkpoint_minor = ?,
			epoch = epoch + 1, owner = NULL, lease_expires_at = NULL, last_error = NULL, last_error_at = NULL
			WHERE source = ? AND partition = ?`
	}
	for p, c := range cps {
		if _, err := tx.ExecContext(ctx, q, c.Major, c.Minor, name, p); err != nil {
			return err
		}
	}
	return nil
}

// lockSource reads a source and its checkpoints by partition, and how many
// sessions are owned by live leases, in a write transaction (which holds
// the database's write lock: nothing else changes them meanwhile).
func lockSource(ctx context.Context, tx *sql.Tx, name string) (src store.Source, checkpoints []store.Position, live int, err error) {
	src, err = store.ScanSource(tx.QueryRowContext(ctx, `SELECT `+store.SourceColumns+` FROM bam_sources WHERE name = ?`, name))
	if err != nil {
		return src, nil, 0, notFound(err)
	}
	rows, err := tx.QueryContext(ctx, `
		SELECT checkpoint_major, checkpoint_minor, owner IS NOT NULL AND lease_expires_at > `+nowSQL+`
		FROM bam_sessions WHERE source = ? ORDER BY partition`, name)
	if err != nil {
		return src, nil, 0, err
	}
	defer rows.Close()
	for rows.Next() {
		var p store.Position
		var owned bool
		if err := rows.Scan(&p.Major, &p.Minor, &owned); err != nil {
			return src, nil, 0, err
		}
		checkpoints = append(checkpoints, p)
		if owned {
			live++
		}
	}
	return src, checkpoints, live, rows.Err()
}

// Sources implements store.Store, ordered by name.
func (s *Store) Sources(ctx context.Context) ([]store.Source, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+store.SourceColumns+` FROM bam_sources ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list sources: %w", err)
	}
	defer rows.Close()
	out, err := store.CollectRows(rows, store.ScanSource)
	if err != nil {
		return nil, fmt.Errorf("list sources: %w", err)
	}
	return out, nil
}

// Source implements store.Store.
func (s *Store) Source(ctx context.Context, name string) (store.Source, error) {
	src, err := store.ScanSource(s.db.QueryRowContext(ctx, `SELECT `+store.SourceColumns+` FROM bam_sources WHERE name = ?`, name))
	if err != nil {
		return store.Source{}, fmt.Errorf("source %q: %w", name, notFound(err))
	}
	return src, nil
}

// SetSourceEnabled implements store.Store.
func (s *Store) SetSourceEnabled(ctx context.Context, name string, enabled bool) error {
	return s.setSourceFlag(ctx, name, "enabled", enabled)
}

// SetSourcePaused implements store.Store.
func (s *Store) SetSourcePaused(ctx context.Context, name string, paused bool) error {
	return s.setSourceFlag(ctx, name, "paused", paused)
}

// setSourceFlag sets a boolean column of a source (one of this file's
// names, never the caller's text) and tells the nodes to balance.
func (s *Store) setSourceFlag(ctx context.Context, name, column string, value bool) error {
	var seq int64
	err := s.write(ctx, work, func(tx *sql.Tx) error {
		n, err := rowsAffected(tx.ExecContext(ctx, `UPDATE bam_sources SET `+column+` = ? WHERE name = ?`, value, name))
		if err != nil {
			return err
		}
		if n == 0 {
			return store.ErrNotFound
		}
		seq, err = bumpSessions(ctx, tx)
		return err
	})
	if err != nil {
		return fmt.Errorf("set source %q %s=%t: %w", name, column, value, err)
	}
	s.sessionsChanged(seq)
	return nil
}

// RemoveSource implements store.Store. Its sessions and buffered events go
// with it (ON DELETE CASCADE); its failed events stay for the operator. A
// node still applying a batch of the source finds its session gone and is
// fenced.
func (s *Store) RemoveSource(ctx context.Context, name string, opt store.RemoveOptions) (store.Removal, error) {
	var (
		seq int64
		out store.Removal
	)
	err := s.write(ctx, work, func(tx *sql.Tx) error {
		src, checkpoints, live, err := lockSource(ctx, tx, name)
		if err != nil {
			return err
		}
		out = store.Removal{Source: src, Checkpoints: checkpoints}
		if src.OutboxStopped != "" {
			// Its checkpoints say nothing reliable: kept as a tombstone
			// they could skip rows of a source added on the table again.
			return fmt.Errorf("%w: its reader stopped (%s); choose where it reads from first: bam source reset-checkpoint %s", store.ErrOutboxChanged, src.OutboxStopped, name)
		}
		if src.Enabled && live > 0 {
			return fmt.Errorf("%d sessions are owned, disable the source first: %w", live, store.ErrNotClaimable)
		}
		if src.Kind == store.KindBuffer {
			// Buffer positions are (0, id): the unapplied events are
			// those after their partition's checkpoint.
			if err := tx.QueryRowContext(ctx, `
				SELECT count(*) FROM bam_buffer AS b JOIN bam_sessions AS s
				  ON s.source = b.source AND s.partition = b.partition
				WHERE b.source = ? AND b.id > s.checkpoint_minor`, name).Scan(&out.Dropped); err != nil {
				return err
			}
			if out.Dropped > 0 && !opt.DropUnapplied {
				return fmt.Errorf("%w: %s in its buffer not applied yet", store.ErrUnapplied, store.CountEvents(out.Dropped))
			}
		}
		if !src.Outbox.IsZero() {
			var floorParts int
			var floorCPs string
			if src.Floor != nil {
				floorParts, floorCPs = src.Floor.Partitions, store.EncodePositions(src.Floor.Checkpoints)
			}
			if _, err := tx.ExecContext(ctx, `
				INSERT INTO bam_outbox_tombstones (outbox_key, source, partitions, checkpoints, floor_partitions, floor_checkpoints, removed_at)
				VALUES (?, ?, ?, ?, ?, ?, `+nowSQL+`)
				ON CONFLICT (outbox_key) DO UPDATE SET source = excluded.source, partitions = excluded.partitions,
					checkpoints = excluded.checkpoints, floor_partitions = excluded.floor_partitions,
					floor_checkpoints = excluded.floor_checkpoints, removed_at = excluded.removed_at`,
				src.Outbox.Key(), name, src.Partitions, store.EncodePositions(checkpoints), floorParts, floorCPs); err != nil {
				return err
			}
		}
		if _, err = tx.ExecContext(ctx, `DELETE FROM bam_sources WHERE name = ?`, name); err != nil {
			return err
		}
		seq, err = bumpSessions(ctx, tx)
		return err
	})
	if err != nil {
		return store.Removal{}, fmt.Errorf("remove source %q: %w", name, err)
	}
	s.sessionsChanged(seq)
	if !opt.DropUnapplied {
		out.Dropped = 0
	}
	return out, nil
}

// RecordOutbox implements store.Store.
func (s *Store) RecordOutbox(ctx context.Context, name string, o store.OutboxIdentity) error {
	if o.IsZero() {
		return fmt.Errorf("record the outbox of source %q: no identity given", name)
	}
	err := s.write(ctx, work, func(tx *sql.Tx) error {
		src, checkpoints, _, err := lockSource(ctx, tx, name)
		if err != nil {
			return err
		}
		var tombstoned bool
		if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM bam_outbox_tombstones WHERE outbox_key = ?)`, o.Key()).Scan(&tombstoned); err != nil {
			return err
		}
		if record, err := store.PlanRecordOutbox(src, checkpoints, o, tombstoned); !record || err != nil {
			return err
		}
		return recordOutbox(ctx, tx, name, src.Partitions, o)
	})
	if err != nil {
		return fmt.Errorf("record the outbox of source %q: %w", name, err)
	}
	return nil
}

// ResetCheckpoints implements store.Store.
func (s *Store) ResetCheckpoints(ctx context.Context, name string, r store.CheckpointReset) ([]store.Position, error) {
	var (
		seq int64
		old []store.Position
	)
	err := s.write(ctx, work, func(tx *sql.Tx) error {
		src, checkpoints, _, err := lockSource(ctx, tx, name)
		if err != nil {
			return err
		}
		old = checkpoints
		if err := r.CheckExpected(checkpoints); err != nil {
			return err
		}
		if len(r.To) != len(checkpoints) {
			return fmt.Errorf("%d checkpoints given for %d partitions", len(r.To), len(checkpoints))
		}
		if err := setCheckpoints(ctx, tx, name, r.To, true); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE bam_sources SET floor_partitions = 0, floor_checkpoints = '', outbox_stopped = '' WHERE name = ?`, name); err != nil {
			return err
		}
		if !r.Outbox.IsZero() && r.Outbox.Key() != src.Outbox.Key() {
			if _, err := tx.ExecContext(ctx, `DELETE FROM bam_outbox_tombstones WHERE outbox_key = ?`, r.Outbox.Key()); err != nil {
				return err
			}
			if err := recordOutbox(ctx, tx, name, src.Partitions, r.Outbox); err != nil {
				return err
			}
		}
		seq, err = bumpSessions(ctx, tx)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("reset the checkpoints of source %q: %w", name, err)
	}
	s.sessionsChanged(seq)
	return old, nil
}

// Repartition implements store.Store.
func (s *Store) Repartition(ctx context.Context, name string, partitions int) (store.Repartitioned, error) {
	var (
		seq int64
		out store.Repartitioned
	)
	if partitions < 1 {
		return out, fmt.Errorf("repartition source %q: partitions must be at least 1, got %d", name, partitions)
	}
	err := s.write(ctx, work, func(tx *sql.Tx) error {
		src, checkpoints, _, err := lockSource(ctx, tx, name)
		if err != nil {
			return err
		}
		out.From, out.To = src.Partitions, partitions
		plan, err := store.PlanRepartition(src, checkpoints, partitions)
		if err != nil {
			return err
		}
		out.Floor = plan.Floor
		if src.Kind == store.KindBuffer {
			if err := refileBuffer(ctx, tx, name, partitions, &out); err != nil {
				return err
			}
		}
		var floorParts int
		var floorCPs string
		if plan.Floor != nil {
			floorParts, floorCPs = plan.Floor.Partitions, store.EncodePositions(plan.Floor.Checkpoints)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE bam_sources SET partitions = ?, floor_partitions = ?, floor_checkpoints = ? WHERE name = ?`,
			partitions, floorParts, floorCPs, name); err != nil {
			return err
		}
		// New session rows, each under an epoch above every old one, so
		// that no batch of the old partitioning can commit.
		var epoch int64
		if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(epoch), 0) + 1 FROM bam_sessions WHERE source = ?`, name).Scan(&epoch); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM bam_sessions WHERE source = ?`, name); err != nil {
			return err
		}
		if err := insertSessions(ctx, tx, name, partitions, epoch, plan.Start); err != nil {
			return err
		}
		seq, err = bumpSessions(ctx, tx)
		return err
	})
	if err != nil {
		return store.Repartitioned{}, fmt.Errorf("repartition source %q: %w", name, err)
	}
	s.sessionsChanged(seq)
	return out, nil
}

// refileBuffer deletes a buffer source's applied events (at or before
// their partition's checkpoint) and files the others under their
// partition of the new count, by their segment, as writers would.
func refileBuffer(ctx context.Context, tx *sql.Tx, name string, partitions int, out *store.Repartitioned) error {
	n, err := rowsAffected(tx.ExecContext(ctx, `
		DELETE FROM bam_buffer AS b
		WHERE b.source = ?1 AND b.id <= (
			SELECT s.checkpoint_minor FROM bam_sessions AS s WHERE s.source = ?1 AND s.partition = b.partition)`, name))
	if err != nil {
		return err
	}
	out.Deleted = n
	rows, err := tx.QueryContext(ctx, `SELECT id, partition, payload FROM bam_buffer WHERE source = ?`, name)
	if err != nil {
		return err
	}
	type move struct{ id, p int64 }
	var moves []move
	for rows.Next() {
		var id, p int64
		var payload []byte
		if err := rows.Scan(&id, &p, &payload); err != nil {
			rows.Close()
			return err
		}
		if np := int64(store.PartitionOf(payload, partitions)); np != p {
			moves = append(moves, move{id, np})
		}
		out.Moved++
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, m := range moves {
		if _, err := tx.ExecContext(ctx, `UPDATE bam_buffer SET partition = ? WHERE id = ?`, m.p, m.id); err != nil {
			return err
		}
	}
	return nil
}

// StoreID implements store.Store.
func (s *Store) StoreID(ctx context.Context) (string, error) {
	var id string
	if err := s.db.QueryRowContext(ctx, `SELECT id FROM bam_store_identity`).Scan(&id); err != nil {
		return "", fmt.Errorf("read the store's identity: %w", err)
	}
	return id, nil
}

// StopOutbox implements store.Store.
func (s *Store) StopOutbox(ctx context.Context, at store.SessionID, checkpoint store.Position, reason string) error {
	name := at.Source
	var found bool
	err := s.write(ctx, work, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM bam_sources WHERE name = ?)`, name).Scan(&found); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `
			UPDATE bam_sources SET outbox_stopped = ?1
			WHERE name = ?2 AND kind = 'pg-outbox' AND outbox_stopped = ''
			  AND EXISTS (SELECT 1 FROM bam_sessions
			              WHERE source = ?2 AND partition = ?3 AND checkpoint_major = ?4 AND checkpoint_minor = ?5)`,
			reason, name, at.Partition, checkpoint.Major, checkpoint.Minor)
		return err
	})
	if err != nil {
		return fmt.Errorf("stop source %q: %w", name, err)
	}
	if !found {
		return fmt.Errorf("source %q: %w", name, store.ErrNotFound)
	}
	return nil
}
