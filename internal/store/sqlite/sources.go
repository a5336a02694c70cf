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
			if err := store.AdoptOutbox(ctx, &sourceTx{tx: tx}, src.Name, src.Partitions, src.Outbox); err != nil {
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

// RemoveSource implements store.Store (store.RunRemoveSource). Its
// sessions and buffered events go with it (ON DELETE CASCADE); its failed
// events stay for the operator. A node still applying a batch of the
// source finds its session gone and is fenced.
func (s *Store) RemoveSource(ctx context.Context, name string, opt store.RemoveOptions) (store.Removal, error) {
	var out store.Removal
	err := s.changeSource(ctx, func(tx *sourceTx) (err error) {
		out, err = store.RunRemoveSource(ctx, tx, name, opt)
		return err
	})
	if err != nil {
		return store.Removal{}, fmt.Errorf("remove source %q: %w", name, err)
	}
	return out, nil
}

// RecordOutbox implements store.Store (store.RunRecordOutbox).
func (s *Store) RecordOutbox(ctx context.Context, name string, o store.OutboxIdentity) error {
	if o.IsZero() {
		return fmt.Errorf("record the outbox of source %q: no identity given", name)
	}
	err := s.changeSource(ctx, func(tx *sourceTx) error {
		return store.RunRecordOutbox(ctx, tx, name, o)
	})
	if err != nil {
		return fmt.Errorf("record the outbox of source %q: %w", name, err)
	}
	return nil
}

// ResetCheckpoints implements store.Store (store.RunResetCheckpoints).
func (s *Store) ResetCheckpoints(ctx context.Context, name string, r store.CheckpointReset) ([]store.Position, error) {
	var old []store.Position
	err := s.changeSource(ctx, func(tx *sourceTx) (err error) {
		old, err = store.RunResetCheckpoints(ctx, tx, name, r)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("reset the checkpoints of source %q: %w", name, err)
	}
	return old, nil
}

// Repartition implements store.Store (store.RunRepartition).
func (s *Store) Repartition(ctx context.Context, name string, partitions int) (store.Repartitioned, error) {
	if partitions < 1 {
		return store.Repartitioned{}, fmt.Errorf("repartition source %q: partitions must be at least 1, got %d", name, partitions)
	}
	var out store.Repartitioned
	err := s.changeSource(ctx, func(tx *sourceTx) (err error) {
		out, err = store.RunRepartition(ctx, tx, name, partitions)
		return err
	})
	if err != nil {
		return store.Repartitioned{}, fmt.Errorf("repartition source %q: %w", name, err)
	}
	return out, nil
}

// changeSource runs fn in one write transaction, which holds the
// database's write lock: nothing else changes the source meanwhile. When
// fn changed the sessions, this process's watchers are told once it
// commits.
func (s *Store) changeSource(ctx context.Context, fn func(*sourceTx) error) error {
	t := &sourceTx{}
	err := s.write(ctx, work, func(tx *sql.Tx) error {
		t.tx = tx
		return fn(t)
	})
	if err == nil && t.changed {
		s.sessionsChanged(t.seq)
	}
	return err
}

// sourceTx implements store.SourceTx.
type sourceTx struct {
	tx *sql.Tx
	// changed is set by SessionsChanged, seq to the 'sessions' notice
	// counter it set.
	changed bool
	seq     int64
}

var _ store.SourceTx = (*sourceTx)(nil)

func (t *sourceTx) LockSource(ctx context.Context, name string) (src store.Source, checkpoints []store.Position, live int, err error) {
	src, err = store.ScanSource(t.tx.QueryRowContext(ctx, `SELECT `+store.SourceColumns+` FROM bam_sources WHERE name = ?`, name))
	if err != nil {
		return src, nil, 0, notFound(err)
	}
	rows, err := t.tx.QueryContext(ctx, `
		SELECT checkpoint_major, checkpoint_minor, owner IS NOT NULL AND lease_expires_at > `+nowSQL+`
		FROM bam_sessions WHERE source = ? ORDER BY partition`, name)
	if err != nil {
		return src, nil, 0, err
	}
	defer rows.Close()
	checkpoints, live, err = store.CollectCheckpoints(rows)
	return src, checkpoints, live, err
}

// CountUnapplied counts the events after their partition's checkpoint:
// buffer positions are (0, id).
func (t *sourceTx) CountUnapplied(ctx context.Context, name string) (int64, error) {
	var n int64
	err := t.tx.QueryRowContext(ctx, `
		SELECT count(*) FROM bam_buffer AS b JOIN bam_sessions AS s
		  ON s.source = b.source AND s.partition = b.partition
		WHERE b.source = ? AND b.id > s.checkpoint_minor`, name).Scan(&n)
	return n, err
}

func (t *sourceTx) WriteTombstone(ctx context.Context, src store.Source, checkpoints []store.Position) error {
	floorParts, floorCPs := store.FloorColumns(src.Floor)
	_, err := t.tx.ExecContext(ctx, `
		INSERT INTO bam_outbox_tombstones (outbox_key, source, partitions, checkpoints, floor_partitions, floor_checkpoints, removed_at)
		VALUES (?, ?, ?, ?, ?, ?, `+nowSQL+`)
		ON CONFLICT (outbox_key) DO UPDATE SET source = excluded.source, partitions = excluded.partitions,
			checkpoints = excluded.checkpoints, floor_partitions = excluded.floor_partitions,
			floor_checkpoints = excluded.floor_checkpoints, removed_at = excluded.removed_at`,
		src.Outbox.Key(), src.Name, src.Partitions, store.EncodePositions(checkpoints), floorParts, floorCPs)
	return err
}

// DeleteSource deletes the source; its sessions and buffered events go
// with it (ON DELETE CASCADE).
func (t *sourceTx) DeleteSource(ctx context.Context, name string) error {
	_, err := t.tx.ExecContext(ctx, `DELETE FROM bam_sources WHERE name = ?`, name)
	return err
}

func (t *sourceTx) Tombstoned(ctx context.Context, key string) (bool, error) {
	var found bool
	err := t.tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM bam_outbox_tombstones WHERE outbox_key = ?)`, key).Scan(&found)
	return found, err
}

func (t *sourceTx) TakeTombstone(ctx context.Context, key string) (store.Tombstone, bool, error) {
	ts, err := store.ScanTombstone(t.tx.QueryRowContext(ctx, `
		DELETE FROM bam_outbox_tombstones WHERE outbox_key = ?
		RETURNING `+store.TombstoneColumns, key))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Tombstone{}, false, nil
	}
	return ts, err == nil, err
}

func (t *sourceTx) DropTombstone(ctx context.Context, key string) error {
	_, err := t.tx.ExecContext(ctx, `DELETE FROM bam_outbox_tombstones WHERE outbox_key = ?`, key)
	return err
}

// OutboxReader is exact: the write lock keeps other writers out (the
// unique index backs it).
func (t *sourceTx) OutboxReader(ctx context.Context, key, name string) (string, error) {
	var other string
	err := t.tx.QueryRowContext(ctx, `SELECT name FROM bam_sources WHERE outbox_key = ? AND name <> ?`, key, name).Scan(&other)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return other, err
}

func (t *sourceTx) WriteOutbox(ctx context.Context, name string, o store.OutboxIdentity) error {
	_, err := t.tx.ExecContext(ctx, `
		UPDATE bam_sources SET outbox_system_id = ?, outbox_database_oid = ?, outbox_database = ?,
			outbox_table = ?, outbox_key = ?
		WHERE name = ?`, o.SystemID, o.DatabaseOID, o.Database, o.Table, o.Key(), name)
	return err
}

func (t *sourceTx) SetCheckpoints(ctx context.Context, name string, checkpoints []store.Position, fence bool) error {
	q := `UPDATE bam_sessions SET checkpoint_major = ?, checkpoint_minor = ? WHERE source = ? AND partition = ?`
	if fence {
		q = `UPDATE bam_sessions SET checkpoint_major = ?, checkpoint_minor = ?,
			epoch = epoch + 1, owner = NULL, lease_expires_at = NULL, last_error = NULL, last_error_at = NULL
			WHERE source = ? AND partition = ?`
	}
	for p, c := range checkpoints {
		if _, err := t.tx.ExecContext(ctx, q, c.Major, c.Minor, name, p); err != nil {
			return err
		}
	}
	return nil
}

func (t *sourceTx) SetFloor(ctx context.Context, name string, floor store.Floor) error {
	parts, cps := store.FloorColumns(&floor)
	_, err := t.tx.ExecContext(ctx, `UPDATE bam_sources SET floor_partitions = ?, floor_checkpoints = ? WHERE name = ?`, parts, cps, name)
	return err
}

func (t *sourceTx) ForgetFloor(ctx context.Context, name string) error {
	_, err := t.tx.ExecContext(ctx, `UPDATE bam_sources SET floor_partitions = 0, floor_checkpoints = '', outbox_stopped = '' WHERE name = ?`, name)
	return err
}

func (t *sourceTx) RefileBuffer(ctx context.Context, name string, partitions int) (moved, deleted int64, err error) {
	deleted, err = rowsAffected(t.tx.ExecContext(ctx, `
		DELETE FROM bam_buffer AS b
		WHERE b.source = ?1 AND b.id <= (
			SELECT s.checkpoint_minor FROM bam_sessions AS s WHERE s.source = ?1 AND s.partition = b.partition)`, name))
	if err != nil {
		return 0, 0, err
	}
	rows, err := t.tx.QueryContext(ctx, `SELECT id, partition, payload FROM bam_buffer WHERE source = ?`, name)
	if err != nil {
		return 0, 0, err
	}
	type move struct{ id, p int64 }
	var moves []move
	for rows.Next() {
		var id, p int64
		var payload []byte
		if err := rows.Scan(&id, &p, &payload); err != nil {
			rows.Close()
			return 0, 0, err
		}
		if np := int64(store.PartitionOf(payload, partitions)); np != p {
			moves = append(moves, move{id, np})
		}
		moved++
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, 0, err
	}
	for _, m := range moves {
		if _, err := t.tx.ExecContext(ctx, `UPDATE bam_buffer SET partition = ? WHERE id = ?`, m.p, m.id); err != nil {
			return 0, 0, err
		}
	}
	return moved, deleted, nil
}

func (t *sourceTx) SetPartitions(ctx context.Context, name string, partitions int, floor *store.Floor) error {
	floorParts, floorCPs := store.FloorColumns(floor)
	_, err := t.tx.ExecContext(ctx, `UPDATE bam_sources SET partitions = ?, floor_partitions = ?, floor_checkpoints = ? WHERE name = ?`,
		partitions, floorParts, floorCPs, name)
	return err
}

func (t *sourceTx) ReplaceSessions(ctx context.Context, name string, partitions int, start store.Position) error {
	var epoch int64
	if err := t.tx.QueryRowContext(ctx, `SELECT coalesce(max(epoch), 0) + 1 FROM bam_sessions WHERE source = ?`, name).Scan(&epoch); err != nil {
		return err
	}
	if _, err := t.tx.ExecContext(ctx, `DELETE FROM bam_sessions WHERE source = ?`, name); err != nil {
		return err
	}
	return insertSessions(ctx, t.tx, name, partitions, epoch, start)
}

func (t *sourceTx) SessionsChanged(ctx context.Context) error {
	seq, err := bumpSessions(ctx, t.tx)
	t.changed, t.seq = err == nil, seq
	return err
}
