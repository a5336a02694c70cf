package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/bam-dev/bam/internal/store"
)

// The ingest buffer. A record's position is {Major: 0, Minor: row id}.
// Writers hold SQLite's one write lock from the moment an id is assigned to
// their commit, so ids become visible in increasing order and a reader never
// finds a gap that a later commit fills in behind it (DESIGN.md, promise 4):
// ReadBuffer never holds anything back. AUTOINCREMENT keeps an id from being
// handed out again after the rows above it were trimmed. Apply deletes the
// records its batch covers, in its transaction.

// AppendBuffer implements store.Store: all events in one transaction,
// durable when it returns (synchronous=FULL), then a notice to this
// process's watchers; other processes see the sequence move.
func (s *Store) AppendBuffer(ctx context.Context, source string, events []store.BufferEvent) error {
	if len(events) == 0 {
		return nil
	}
	err := s.write(ctx, work, func(tx *sql.Tx) error {
		partitions, err := bufferPartitions(ctx, tx, source)
		if err != nil {
			return err
		}
		return appendBuffer(ctx, tx, source, partitions, events)
	})
	if err != nil {
		return fmt.Errorf("append %d events to buffer %q: %w", len(events), source, err)
	}
	s.hub.publish(store.Notice{Topic: store.TopicBuffer, Source: source})
	return nil
}

// bufferPartitions returns the partitions of a buffer source: ErrNotFound
// when there is no such source, an error when it is of another kind.
func bufferPartitions(ctx context.Context, tx *sql.Tx, source string) (int, error) {
	var (
		kind       string
		partitions int
	)
	err := tx.QueryRowContext(ctx, `SELECT kind, partitions FROM bam_sources WHERE name = ?`, source).Scan(&kind, &partitions)
	if err != nil {
		return 0, notFound(err)
	}
	if store.SourceKind(kind) != store.KindBuffer {
		return 0, fmt.Errorf("source is of kind %s, not %s", kind, store.KindBuffer)
	}
	return partitions, nil
}

// appendBuffer inserts events into a buffer source of that many
// partitions, in tx.
func appendBuffer(ctx context.Context, tx *sql.Tx, source string, partitions int, events []store.BufferEvent) error {
	if len(events) == 0 {
		return nil
	}
	stmt, err := tx.PrepareContext(ctx, `
		INSERT INTO bam_buffer (source, partition, payload, written_at) VALUES (?, ?, ?, `+nowSQL+`)`)
	if err != nil {
		return err
	}
	defer stmt.Close()
	for i, ev := range events {
		if ev.Partition < 0 || ev.Partition >= partitions {
			return &store.PartitionsChangedError{Source: source, Partitions: partitions, Partition: ev.Partition}
		}
		payload := ev.Payload
		if payload == nil {
			payload = []byte{}
		}
		if _, err := stmt.ExecContext(ctx, source, ev.Partition, payload); err != nil {
			return fmt.Errorf("event %d: %w", i, err)
		}
	}
	return nil
}

// ReadBuffer implements store.Store; held is always false (see above).
// limit 0 means no limit.
func (s *Store) ReadBuffer(ctx context.Context, id store.SessionID, after store.Position, limit int) ([]store.Record, bool, error) {
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	rows, err := s.db.QueryContext(ctx, `
		SELECT id, payload, written_at FROM bam_buffer
		WHERE source = ? AND partition = ? AND id > ?
		ORDER BY id LIMIT ?`, id.Source, id.Partition, after.Minor, limit)
	if err != nil {
		return nil, false, fmt.Errorf("read buffer %s/%d after %d: %w", id.Source, id.Partition, after.Minor, err)
	}
	defer rows.Close()
	var recs []store.Record
	for rows.Next() {
		var (
			r       store.Record
			written int64
		)
		if err := rows.Scan(&r.Position.Minor, &r.Payload, &written); err != nil {
			return nil, false, fmt.Errorf("read buffer %s/%d: %w", id.Source, id.Partition, err)
		}
		r.WrittenAt = micros(written)
		recs = append(recs, r)
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("read buffer %s/%d: %w", id.Source, id.Partition, err)
	}
	return recs, false, nil
}

// trimBuffer deletes a partition's records up to an id. Apply runs it for
// the records its batch covers, in the batch's transaction.
const trimBuffer = `DELETE FROM bam_buffer WHERE source = ? AND partition = ? AND id <= ?`

// TrimBuffer implements store.Store. Apply has already deleted the records
// of every batch it committed, so this usually finds nothing to delete: it
// looks first, with a read that takes no lock, and begins a write
// transaction only when there is something left (records applied by an
// older bam, or a trim past the checkpoint).
func (s *Store) TrimBuffer(ctx context.Context, id store.SessionID, upTo store.Position) error {
	var left bool
	err := s.db.QueryRowContext(ctx, `
		SELECT EXISTS (SELECT 1 FROM bam_buffer WHERE source = ? AND partition = ? AND id <= ?)`,
		id.Source, id.Partition, upTo.Minor).Scan(&left)
	if err == nil && left {
		err = s.write(ctx, work, func(tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, trimBuffer, id.Source, id.Partition, upTo.Minor)
			return err
		})
	}
	if err != nil {
		return fmt.Errorf("trim buffer %s/%d up to %d: %w", id.Source, id.Partition, upTo.Minor, err)
	}
	return nil
}

// BufferBacklog implements store.Store.
func (s *Store) BufferBacklog(ctx context.Context, id store.SessionID, after store.Position) (int64, error) {
	var n int64
	err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM bam_buffer WHERE source = ? AND partition = ? AND id > ?`,
		id.Source, id.Partition, after.Minor).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count buffer %s/%d after %d: %w", id.Source, id.Partition, after.Minor, err)
	}
	return n, nil
}
