package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bam-dev/bam/internal/store"
)

// maxPartitions bounds a source's partitions: each is a session row and a
// unit of work a node owns, and a pool is as large as its sessions.
const maxPartitions = 1 << 16

// AddSource implements store.Store. The source and its sessions are
// inserted by one statement, and the nodes are told to balance.
func (s *Store) AddSource(ctx context.Context, src store.Source) error {
	switch {
	case src.Name == "":
		return errors.New("add source: name must not be empty")
	case src.Kind != store.KindBuffer && src.Kind != store.KindPgOutbox:
		return fmt.Errorf("add source %q: unknown kind %q (known: %s, %s)", src.Name, src.Kind, store.KindBuffer, store.KindPgOutbox)
	case src.Partitions < 1 || src.Partitions > maxPartitions:
		return fmt.Errorf("add source %q: partitions must be between 1 and %d, got %d", src.Name, maxPartitions, src.Partitions)
	case src.Kind == store.KindPgOutbox && (src.DSN == "" || src.Table == ""):
		return fmt.Errorf("add source %q: a %s source needs a DSN and a table", src.Name, store.KindPgOutbox)
	}
	_, err := s.work.Exec(ctx, `
		WITH src AS (
			INSERT INTO bam_sources (name, kind, partitions, enabled, dsn, tbl)
			VALUES ($1, $2, $3, $4, $5, $6)
			RETURNING name, partitions
		), sessions AS (
			INSERT INTO bam_sessions (source, partition)
			SELECT src.name, p FROM src, generate_series(0, src.partitions - 1) AS p
		)
		SELECT pg_notify('bam_sessions', '')`,
		src.Name, string(src.Kind), src.Partitions, src.Enabled, src.DSN, src.Table)
	if isSQLState(err, sqlstateUniqueViolation) {
		return fmt.Errorf("add source %q: %w", src.Name, store.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("add source %q: %w", src.Name, err)
	}
	return nil
}

const sourceColumns = `name, kind, partitions, enabled, dsn, tbl, created_at`

func scanSource(row pgx.Row) (store.Source, error) {
	var src store.Source
	var kind string
	if err := row.Scan(&src.Name, &kind, &src.Partitions, &src.Enabled, &src.DSN, &src.Table, &src.CreatedAt); err != nil {
		return store.Source{}, err
	}
	src.Kind = store.SourceKind(kind)
	src.CreatedAt = src.CreatedAt.UTC()
	return src, nil
}

// Sources implements store.Store, ordered by name.
func (s *Store) Sources(ctx context.Context) ([]store.Source, error) {
	rows, err := s.work.Query(ctx, `SELECT `+sourceColumns+` FROM bam_sources ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list sources: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Source, error) { return scanSource(row) })
	if err != nil {
		return nil, fmt.Errorf("list sources: %w", err)
	}
	return out, nil
}

// Source implements store.Store.
func (s *Store) Source(ctx context.Context, name string) (store.Source, error) {
	src, err := scanSource(s.work.QueryRow(ctx, `SELECT `+sourceColumns+` FROM bam_sources WHERE name = $1`, name))
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
	tag, err := s.work.Exec(ctx, `
		UPDATE bam_sources SET enabled = $2 WHERE name = $1
		RETURNING pg_notify('bam_sessions', '')`, name, enabled)
	if err != nil {
		return fmt.Errorf("set source %q enabled=%v: %w", name, enabled, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("source %q: %w", name, store.ErrNotFound)
	}
	return nil
}

// RemoveSource implements store.Store. It locks the source row (which
// waits for appends in flight, see AppendBuffer) and its session rows (which
// waits for batches in flight and keeps claims out) before it decides, so a
// session cannot be claimed between the check and the delete.
func (s *Store) RemoveSource(ctx context.Context, name string) error {
	err := pgx.BeginFunc(ctx, s.work, func(tx pgx.Tx) error {
		var enabled bool
		err := tx.QueryRow(ctx, `SELECT enabled FROM bam_sources WHERE name = $1 FOR UPDATE`, name).Scan(&enabled)
		if errors.Is(err, pgx.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		var live int
		if err := tx.QueryRow(ctx, `
			SELECT count(*) FILTER (WHERE owner IS NOT NULL AND lease_expires_at > now())
			FROM (SELECT owner, lease_expires_at FROM bam_sessions WHERE source = $1 FOR UPDATE) AS s`,
			name).Scan(&live); err != nil {
			return err
		}
		if enabled && live > 0 {
			return fmt.Errorf("%d of its sessions are owned by live leases; disable the source first: %w", live, store.ErrNotClaimable)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM bam_buffer WHERE source = $1`, name); err != nil {
			return err
		}
		// The sessions go with the source (ON DELETE CASCADE).
		if _, err := tx.Exec(ctx, `DELETE FROM bam_sources WHERE name = $1`, name); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `SELECT pg_notify('bam_sessions', '')`)
		return err
	})
	if err != nil {
		return fmt.Errorf("remove source %q: %w", name, err)
	}
	return nil
}

// Sessions implements store.Store, ordered by source and partition. The
// lease's remaining time is computed with the store's clock. It runs on the
// lease pool: balancing and failover decisions read it.
func (s *Store) Sessions(ctx context.Context) ([]store.Session, error) {
	rows, err := s.lease.Query(ctx, `
		SELECT s.source, s.partition, src.kind, src.enabled, coalesce(s.owner, ''), s.epoch,
		       coalesce((extract(epoch FROM s.lease_expires_at - now()) * 1000000)::bigint, 0),
		       s.checkpoint_major, s.checkpoint_minor, s.applied_count, s.failed_count,
		       coalesce(s.last_error, ''), s.last_error_at,
		       CASE WHEN s.given_up_at > now() - $1 * interval '1 microsecond' THEN coalesce(s.given_up_by, '') ELSE '' END
		FROM bam_sessions AS s JOIN bam_sources AS src ON src.name = s.source
		ORDER BY s.source, s.partition`, micros(store.GiveUpMemory))
	if err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Session, error) {
		var se store.Session
		var kind string
		var remaining int64
		err := row.Scan(&se.Source, &se.Partition, &kind, &se.SourceEnabled, &se.Owner, &se.Epoch,
			&remaining, &se.Checkpoint.Major, &se.Checkpoint.Minor, &se.Applied, &se.Failed,
			&se.LastError, &se.LastErrorAt, &se.GivenUpBy)
		se.Kind = store.SourceKind(kind)
		se.LeaseRemaining = time.Duration(remaining) * time.Microsecond
		if se.LastErrorAt != nil {
			t := se.LastErrorAt.UTC()
			se.LastErrorAt = &t
		}
		return se, err
	})
	if err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	return out, nil
}

// RecordError implements store.Store, fenced on owner and epoch in the
// same statement.
func (s *Store) RecordError(ctx context.Context, l store.Lease, node, msg string) error {
	msg = cleanText(msg)
	tag, err := s.work.Exec(ctx, `
		UPDATE bam_sessions
		SET last_error = nullif($3, ''), last_error_at = CASE WHEN $3 = '' THEN NULL ELSE now() END
		WHERE source = $1 AND partition = $2 AND owner = $4 AND epoch = $5`, l.Source, l.Partition, msg, node, l.Epoch)
	if err != nil {
		return fmt.Errorf("record error of session %s/%d: %w", l.Source, l.Partition, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("record error of session %s/%d (node %s, epoch %d): %w", l.Source, l.Partition, node, l.Epoch, store.ErrFenced)
	}
	return nil
}
