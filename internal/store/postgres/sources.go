package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/bam-dev/bam/internal/store"
)

// maxPartitions bounds a source's partitions: each is a session row and a
// unit of work a node owns, and a pool is as large as its sessions.
const maxPartitions = 1 << 16

// AddSource implements store.Store. The source and its sessions are
// inserted in one transaction, which takes over a removed source's
// tombstone on the same outbox, and the nodes are told to balance.
func (s *Store) AddSource(ctx context.Context, src store.Source) error {
	switch {
	case src.Name == "":
		return errors.New("add source: name must not be empty")
	case src.Kind != store.KindBuffer && src.Kind != store.KindPgOutbox && src.Kind != store.KindAlerts:
		return fmt.Errorf("add source %q: unknown kind %q (known: %s, %s, %s)", src.Name, src.Kind, store.KindBuffer, store.KindPgOutbox, store.KindAlerts)
	case src.Partitions < 1 || src.Partitions > maxPartitions:
		return fmt.Errorf("add source %q: partitions must be between 1 and %d, got %d", src.Name, maxPartitions, src.Partitions)
	case src.Kind == store.KindPgOutbox && (src.DSN == "" || src.Table == ""):
		return fmt.Errorf("add source %q: a %s source needs a DSN and a table", src.Name, store.KindPgOutbox)
	}
	err := pgx.BeginFunc(ctx, s.work, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `
			WITH src AS (
				INSERT INTO bam_sources (name, kind, partitions, enabled, paused, dsn, tbl)
				VALUES ($1, $2, $3, $4, $7, $5, $6)
				RETURNING name, partitions
			)
			INSERT INTO bam_sessions (source, partition)
			SELECT src.name, p FROM src, generate_series(0, src.partitions - 1) AS p`,
			src.Name, string(src.Kind), src.Partitions, src.Enabled, src.DSN, src.Table, src.Paused)
		if isSQLState(err, sqlstateUniqueViolation) {
			return store.ErrExists
		}
		if err != nil {
			return err
		}
		if !src.Outbox.IsZero() {
			if err := store.AdoptOutbox(ctx, sourceTx{tx}, src.Name, src.Partitions, src.Outbox); err != nil {
				return err
			}
		}
		_, err = tx.Exec(ctx, `SELECT pg_notify('bam_sessions', '')`)
		return err
	})
	if err != nil {
		return fmt.Errorf("add source %q: %w", src.Name, err)
	}
	return nil
}

func positionArrays(ps []store.Position) (majors, minors []int64) {
	majors, minors = make([]int64, len(ps)), make([]int64, len(ps))
	for i, p := range ps {
		majors[i], minors[i] = p.Major, p.Minor
	}
	return majors, minors
}

// Sources implements store.Store, ordered by name.
func (s *Store) Sources(ctx context.Context) ([]store.Source, error) {
	rows, err := s.work.Query(ctx, `SELECT `+store.SourceColumns+` FROM bam_sources ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list sources: %w", err)
	}
	out, err := pgx.CollectRows(rows, rowTo(store.ScanSource))
	if err != nil {
		return nil, fmt.Errorf("list sources: %w", err)
	}
	return out, nil
}

// Source implements store.Store.
func (s *Store) Source(ctx context.Context, name string) (store.Source, error) {
	src, err := store.ScanSource(s.work.QueryRow(ctx, `SELECT `+store.SourceColumns+` FROM bam_sources WHERE name = $1`, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Source{}, fmt.Errorf("source %q: %w", name, store.ErrNotFound)
	}
	if err != nil {
		return store.Source{}, fmt.Errorf("read source %q: %w", name, err)
	}
	return src, nil
}

// SetSourceEnabled implements store.Store; the nodes are told to balance.
func (s *Store) SetSourceEnabled(ctx context.Context, name string, enabled bool) error {
	return s.setSourceFlag(ctx, name, "enabled", enabled)
}

// SetSourcePaused implements store.Store; the nodes are told to balance.
// An append holds the source's row FOR KEY SHARE, which this UPDATE of a
// column outside the key does not wait for: writers are never held up.
func (s *Store) SetSourcePaused(ctx context.Context, name string, paused bool) error {
	return s.setSourceFlag(ctx, name, "paused", paused)
}

// setSourceFlag sets a boolean column of a source (one of this file's
// names, never the caller's text) and tells the nodes to balance.
func (s *Store) setSourceFlag(ctx context.Context, name, column string, value bool) error {
	tag, err := s.work.Exec(ctx, `
		UPDATE bam_sources SET `+column+` = $2 WHERE name = $1
		RETURNING pg_notify('bam_sessions', '')`, name, value)
	if err != nil {
		return fmt.Errorf("set source %q %s=%v: %w", name, column, value, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("source %q: %w", name, store.ErrNotFound)
	}
	return nil
}

// StoreID implements store.Store.
func (s *Store) StoreID(ctx context.Context) (string, error) {
	var id string
	if err := s.work.QueryRow(ctx, `SELECT id FROM bam_store_identity`).Scan(&id); err != nil {
		return "", fmt.Errorf("read the store's identity: %w", err)
	}
	return id, nil
}

// StopOutbox implements store.Store.
func (s *Store) StopOutbox(ctx context.Context, at store.SessionID, checkpoint store.Position, reason string) error {
	name := at.Source
	tag, err := s.work.Exec(ctx, `
		UPDATE bam_sources SET outbox_stopped = $2
		WHERE name = $1 AND kind = 'pg-outbox' AND outbox_stopped = ''
		  AND EXISTS (SELECT 1 FROM bam_sessions
		              WHERE source = $1 AND partition = $3 AND checkpoint_major = $4 AND checkpoint_minor = $5)`,
		name, cleanText(reason), at.Partition, checkpoint.Major, checkpoint.Minor)
	if err != nil {
		return fmt.Errorf("stop source %q: %w", name, err)
	}
	if tag.RowsAffected() == 0 {
		if _, err := s.Source(ctx, name); err != nil {
			return err
		}
	}
	return nil
}

// RemoveSource implements store.Store (store.RunRemoveSource). Its
// sessions go with it, its buffered events too; its failed events stay for
// the operator.
func (s *Store) RemoveSource(ctx context.Context, name string, opt store.RemoveOptions) (store.Removal, error) {
	var out store.Removal
	err := pgx.BeginFunc(ctx, s.work, func(tx pgx.Tx) (err error) {
		out, err = store.RunRemoveSource(ctx, sourceTx{tx}, name, opt)
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
	err := pgx.BeginFunc(ctx, s.work, func(tx pgx.Tx) error {
		return store.RunRecordOutbox(ctx, sourceTx{tx}, name, o)
	})
	if err != nil {
		return fmt.Errorf("record the outbox of source %q: %w", name, err)
	}
	return nil
}

// ResetCheckpoints implements store.Store (store.RunResetCheckpoints).
func (s *Store) ResetCheckpoints(ctx context.Context, name string, r store.CheckpointReset) ([]store.Position, error) {
	var old []store.Position
	err := pgx.BeginFunc(ctx, s.work, func(tx pgx.Tx) (err error) {
		old, err = store.RunResetCheckpoints(ctx, sourceTx{tx}, name, r)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("reset the checkpoints of source %q: %w", name, err)
	}
	return old, nil
}

// Repartition implements store.Store (store.RunRepartition).
func (s *Store) Repartition(ctx context.Context, name string, partitions int) (store.Repartitioned, error) {
	if partitions < 1 || partitions > maxPartitions {
		return store.Repartitioned{}, fmt.Errorf("repartition source %q: partitions must be between 1 and %d, got %d", name, maxPartitions, partitions)
	}
	var out store.Repartitioned
	err := pgx.BeginFunc(ctx, s.work, func(tx pgx.Tx) (err error) {
		out, err = store.RunRepartition(ctx, sourceTx{tx}, name, partitions)
		return err
	})
	if err != nil {
		return store.Repartitioned{}, fmt.Errorf("repartition source %q: %w", name, err)
	}
	return out, nil
}

// sourceTx implements store.SourceTx.
type sourceTx struct{ tx pgx.Tx }

var _ store.SourceTx = sourceTx{}

// LockSource locks the source's row and its sessions' rows FOR UPDATE,
// which waits for appends and batches in flight and keeps claims out until
// the transaction ends.
func (t sourceTx) LockSource(ctx context.Context, name string) (src store.Source, checkpoints []store.Position, live int, err error) {
	src, err = store.ScanSource(t.tx.QueryRow(ctx, `SELECT `+store.SourceColumns+` FROM bam_sources WHERE name = $1 FOR UPDATE`, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return src, nil, 0, store.ErrNotFound
	}
	if err != nil {
		return src, nil, 0, err
	}
	rows, err := t.tx.Query(ctx, `
		SELECT checkpoint_major, checkpoint_minor, owner IS NOT NULL AND lease_expires_at > now()
		FROM bam_sessions WHERE source = $1 ORDER BY partition FOR UPDATE`, name)
	if err != nil {
		return src, nil, 0, err
	}
	defer rows.Close()
	checkpoints, live, err = store.CollectCheckpoints(rows)
	return src, checkpoints, live, err
}

func (t sourceTx) CountUnapplied(ctx context.Context, name string) (int64, error) {
	var n int64
	err := t.tx.QueryRow(ctx, `
		SELECT count(*) FROM bam_buffer AS b JOIN bam_sessions AS s
		  ON s.source = b.source AND s.partition = b.partition
		WHERE b.source = $1
		  AND (b.xid, b.id) > (s.checkpoint_major::text::xid8, s.checkpoint_minor)`, name).Scan(&n)
	return n, err
}

func (t sourceTx) WriteTombstone(ctx context.Context, src store.Source, checkpoints []store.Position) error {
	floorParts, floorCPs := store.FloorColumns(src.Floor)
	_, err := t.tx.Exec(ctx, `
		INSERT INTO bam_outbox_tombstones (outbox_key, source, partitions, checkpoints, floor_partitions, floor_checkpoints)
		VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (outbox_key) DO UPDATE SET source = EXCLUDED.source, partitions = EXCLUDED.partitions,
			checkpoints = EXCLUDED.checkpoints, floor_partitions = EXCLUDED.floor_partitions,
			floor_checkpoints = EXCLUDED.floor_checkpoints, removed_at = now()`,
		src.Outbox.Key(), src.Name, src.Partitions, store.EncodePositions(checkpoints), floorParts, floorCPs)
	return err
}

func (t sourceTx) DeleteSource(ctx context.Context, name string) error {
	if _, err := t.tx.Exec(ctx, `DELETE FROM bam_buffer WHERE source = $1`, name); err != nil {
		return err
	}
	// The sessions go with the source (ON DELETE CASCADE).
	_, err := t.tx.Exec(ctx, `DELETE FROM bam_sources WHERE name = $1`, name)
	return err
}

func (t sourceTx) Tombstoned(ctx context.Context, key string) (bool, error) {
	var found bool
	err := t.tx.QueryRow(ctx, `SELECT EXISTS (SELECT FROM bam_outbox_tombstones WHERE outbox_key = $1)`, key).Scan(&found)
	return found, err
}

func (t sourceTx) TakeTombstone(ctx context.Context, key string) (store.Tombstone, bool, error) {
	ts, err := store.ScanTombstone(t.tx.QueryRow(ctx, `
		DELETE FROM bam_outbox_tombstones WHERE outbox_key = $1
		RETURNING `+store.TombstoneColumns, key))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Tombstone{}, false, nil
	}
	return ts, err == nil, err
}

func (t sourceTx) DropTombstone(ctx context.Context, key string) error {
	_, err := t.tx.Exec(ctx, `DELETE FROM bam_outbox_tombstones WHERE outbox_key = $1`, key)
	return err
}

func (t sourceTx) OutboxReader(ctx context.Context, key, name string) (string, error) {
	var other string
	err := t.tx.QueryRow(ctx, `SELECT name FROM bam_sources WHERE outbox_key = $1 AND name <> $2`, key, name).Scan(&other)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	return other, err
}

func (t sourceTx) WriteOutbox(ctx context.Context, name string, o store.OutboxIdentity) error {
	_, err := t.tx.Exec(ctx, `
		UPDATE bam_sources SET outbox_system_id = $2, outbox_database_oid = $3, outbox_database = $4,
			outbox_table = $5, outbox_key = $6
		WHERE name = $1`, name, o.SystemID, o.DatabaseOID, o.Database, o.Table, o.Key())
	if isSQLState(err, sqlstateUniqueViolation) {
		return fmt.Errorf("%w: another source recorded %s at the same time", store.ErrOutboxTaken, o)
	}
	return err
}

func (t sourceTx) SetCheckpoints(ctx context.Context, name string, checkpoints []store.Position, fence bool) error {
	set := `checkpoint_major = c.major, checkpoint_minor = c.minor`
	if fence {
		set += `, epoch = s.epoch + 1, owner = NULL, lease_expires_at = NULL, last_error = NULL, last_error_at = NULL`
	}
	majors, minors := positionArrays(checkpoints)
	_, err := t.tx.Exec(ctx, `
		UPDATE bam_sessions AS s SET `+set+`
		FROM unnest($2::bigint[], $3::bigint[]) WITH ORDINALITY AS c (major, minor, n)
		WHERE s.source = $1 AND s.partition = c.n - 1`, name, majors, minors)
	return err
}

func (t sourceTx) SetFloor(ctx context.Context, name string, floor store.Floor) error {
	parts, cps := store.FloorColumns(&floor)
	_, err := t.tx.Exec(ctx, `UPDATE bam_sources SET floor_partitions = $2, floor_checkpoints = $3 WHERE name = $1`, name, parts, cps)
	return err
}

func (t sourceTx) ForgetFloor(ctx context.Context, name string) error {
	_, err := t.tx.Exec(ctx, `UPDATE bam_sources SET floor_partitions = 0, floor_checkpoints = '', outbox_stopped = '' WHERE name = $1`, name)
	return err
}

func (t sourceTx) RefileBuffer(ctx context.Context, name string, partitions int) (moved, deleted int64, err error) {
	tag, err := t.tx.Exec(ctx, `
		DELETE FROM bam_buffer AS b USING bam_sessions AS s
		WHERE b.source = $1 AND s.source = b.source AND s.partition = b.partition
		  AND (b.xid, b.id) <= (s.checkpoint_major::text::xid8, s.checkpoint_minor)`, name)
	if err != nil {
		return 0, 0, err
	}
	deleted = tag.RowsAffected()
	rows, err := t.tx.Query(ctx, `SELECT id, partition, payload FROM bam_buffer WHERE source = $1`, name)
	if err != nil {
		return 0, 0, err
	}
	var ids []int64
	var parts []int32
	for rows.Next() {
		var id int64
		var p int32
		var payload []byte
		if err := rows.Scan(&id, &p, &payload); err != nil {
			rows.Close()
			return 0, 0, err
		}
		if np := int32(store.PartitionOf(payload, partitions)); np != p {
			ids, parts = append(ids, id), append(parts, np)
		}
		moved++
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, 0, err
	}
	if len(ids) > 0 {
		_, err = t.tx.Exec(ctx, `
			UPDATE bam_buffer AS b SET partition = m.p
			FROM unnest($1::bigint[], $2::integer[]) AS m (id, p) WHERE b.id = m.id`, ids, parts)
	}
	return moved, deleted, err
}

func (t sourceTx) SetPartitions(ctx context.Context, name string, partitions int, floor *store.Floor) error {
	floorParts, floorCPs := store.FloorColumns(floor)
	_, err := t.tx.Exec(ctx, `UPDATE bam_sources SET partitions = $2, floor_partitions = $3, floor_checkpoints = $4 WHERE name = $1`,
		name, partitions, floorParts, floorCPs)
	return err
}

func (t sourceTx) ReplaceSessions(ctx context.Context, name string, partitions int, start store.Position) error {
	var epoch int64
	if err := t.tx.QueryRow(ctx, `
		WITH old AS (DELETE FROM bam_sessions WHERE source = $1 RETURNING epoch)
		SELECT coalesce(max(epoch), 0) + 1 FROM old`, name).Scan(&epoch); err != nil {
		return err
	}
	_, err := t.tx.Exec(ctx, `
		INSERT INTO bam_sessions (source, partition, epoch, checkpoint_major, checkpoint_minor)
		SELECT $1, p, $3, $4, $5 FROM generate_series(0, $2 - 1) AS p`,
		name, partitions, epoch, start.Major, start.Minor)
	return err
}

func (t sourceTx) SessionsChanged(ctx context.Context) error {
	_, err := t.tx.Exec(ctx, `SELECT pg_notify('bam_sessions', '')`)
	return err
}
