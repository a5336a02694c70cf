package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/bam-dev/bam/internal/store"
)

// The ingest buffer. A record's position is (xid, id): the xid8 of the
// transaction that wrote it, then its row id. Ids are handed out in
// insertion order, not commit order, so reading by id alone would skip a
// row whose transaction commits after a later one's (DESIGN.md, promise 4).
//
// ReadBuffer returns rows only below a horizon under which no row can appear
// any more. The plain horizon is pg_snapshot_xmin, the oldest transaction
// still running; but that is the server's, across all its databases, so a
// long write transaction in an application's database on the same server
// (a pg-outbox source, say) would hold this buffer back. bufferHorizon
// narrows it to the transactions that can write here:
//
//   - a transaction that is running can write to bam_buffer only if it is
//     connected to this database, and one connected to another database
//     never can: the horizon is the oldest xid of the snapshot's running
//     list (pg_snapshot_xip) that is not seen in pg_stat_activity as the
//     xid of a backend of another database, else the snapshot's xmax;
//   - an xid that cannot be placed (it ended after the snapshot was taken,
//     it is a prepared transaction, its backend is hidden) is kept, which
//     only delays;
//   - a (backend_xid, datid) pair read from pg_stat_activity is always
//     true: a backend never changes database, and an xid that was running
//     at the snapshot and is still read in a backend's slot has been that
//     backend's all along;
//   - a transaction that gets its xid after the snapshot gets one at or
//     above xmax, so at or above the horizon.
//
// Every row below the horizon was therefore written by a transaction that
// had ended when the snapshot was taken (those still running below it are
// in other databases and wrote none), and the rows and the horizon come
// from that one snapshot: what ReadBuffer returns is final, and every row
// that can still appear lands after it.
const bufferHorizon = `(
	SELECT coalesce(
		(SELECT min(x) FROM pg_snapshot_xip(pg_current_snapshot()) AS x
		 WHERE x::xid NOT IN (
			SELECT a.backend_xid FROM pg_stat_activity AS a
			WHERE a.backend_xid IS NOT NULL
			  AND a.datid <> (SELECT oid FROM pg_database WHERE datname = current_database()))),
		pg_snapshot_xmax(pg_current_snapshot())))`

// AppendBuffer implements store.Store: the events are inserted in one
// set-based statement, and the nodes are woken by a notice that is sent
// when, and only when, the transaction commits. The source row is locked
// FOR KEY SHARE, which lets appends run side by side but makes RemoveSource
// wait for them, so no event is left behind a removed source.
func (s *Store) AppendBuffer(ctx context.Context, source string, events []store.BufferEvent) error {
	if len(events) == 0 {
		return nil
	}
	err := pgx.BeginFunc(ctx, s.work, func(tx pgx.Tx) error {
		partitions, err := bufferPartitions(ctx, tx, source)
		if err != nil {
			return err
		}
		return appendBuffer(ctx, tx, source, partitions, events)
	})
	if err != nil {
		return fmt.Errorf("append %d events to buffer %q: %w", len(events), source, err)
	}
	return nil
}

// bufferPartitions returns the partitions of a buffer source, locking its
// row FOR KEY SHARE until the transaction ends: ErrNotFound when there is
// no such source, an error when it is of another kind.
func bufferPartitions(ctx context.Context, tx pgx.Tx, source string) (int, error) {
	var kind string
	var partitions int
	err := tx.QueryRow(ctx, `SELECT kind, partitions FROM bam_sources WHERE name = $1 FOR KEY SHARE`, source).Scan(&kind, &partitions)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, store.ErrNotFound
	}
	if err != nil {
		return 0, err
	}
	if store.SourceKind(kind) != store.KindBuffer {
		return 0, fmt.Errorf("source is of kind %s, not %s", kind, store.KindBuffer)
	}
	return partitions, nil
}

// appendBuffer inserts events into a buffer source of that many partitions
// in one statement, and queues the notice sent when tx commits.
func appendBuffer(ctx context.Context, tx pgx.Tx, source string, partitions int, events []store.BufferEvent) error {
	if len(events) == 0 {
		return nil
	}
	parts := make([]int32, len(events))
	payloads := make([][]byte, len(events))
	for i, e := range events {
		if e.Partition < 0 || e.Partition >= partitions {
			return &store.PartitionsChangedError{Source: source, Partitions: partitions, Partition: e.Partition}
		}
		parts[i], payloads[i] = int32(e.Partition), e.Payload
		if payloads[i] == nil {
			payloads[i] = []byte{}
		}
	}
	b := &pgx.Batch{}
	b.Queue(`INSERT INTO bam_buffer (source, partition, payload)
		SELECT $1, p, payload FROM unnest($2::integer[], $3::bytea[]) AS e (p, payload)`, source, parts, payloads)
	b.Queue(`SELECT pg_notify('bam_buffer', $1)`, source)
	return tx.SendBatch(ctx, b).Close()
}

// ReadBuffer implements store.Store in one query. It reads the rows after
// `after` in (xid, id) order, each with a flag telling whether its
// transaction is at or above the horizon (see bufferHorizon), and cuts at
// the first flagged row: that row and all after it are held. The horizon
// and the rows come from one snapshot. One row past limit is read, so held
// also reports a held row just after a full batch.
func (s *Store) ReadBuffer(ctx context.Context, id store.SessionID, after store.Position, limit int) ([]store.Record, bool, error) {
	if limit <= 0 {
		return nil, false, nil
	}
	rows, err := s.work.Query(ctx, `
		SELECT b.id, b.xid::text::bigint, b.payload, b.written_at,
		       b.xid >= `+bufferHorizon+` AS held
		FROM bam_buffer AS b
		WHERE b.source = $1 AND b.partition = $2
		  AND (b.xid, b.id) > ($3::bigint::text::xid8, $4::bigint)
		ORDER BY b.xid, b.id
		LIMIT $5`, id.Source, id.Partition, after.Major, after.Minor, limit+1)
	if err != nil {
		return nil, false, fmt.Errorf("read buffer %s/%d: %w", id.Source, id.Partition, err)
	}
	defer rows.Close()
	recs := make([]store.Record, 0, min(limit, 1024))
	held := false
	for rows.Next() {
		var r store.Record
		var h bool
		if err := rows.Scan(&r.Position.Minor, &r.Position.Major, &r.Payload, &r.WrittenAt, &h); err != nil {
			return nil, false, fmt.Errorf("read buffer %s/%d: %w", id.Source, id.Partition, err)
		}
		if h {
			held = true
			break
		}
		if len(recs) == limit {
			break // the extra row only tells whether a held row follows
		}
		r.WrittenAt = r.WrittenAt.UTC()
		recs = append(recs, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("read buffer %s/%d: %w", id.Source, id.Partition, err)
	}
	return recs, held, nil
}

// TrimBuffer implements store.Store; deleting what is already gone is a
// no-op, so it is idempotent.
func (s *Store) TrimBuffer(ctx context.Context, id store.SessionID, upTo store.Position) error {
	_, err := s.work.Exec(ctx, `
		DELETE FROM bam_buffer
		WHERE source = $1 AND partition = $2
		  AND (xid, id) <= ($3::bigint::text::xid8, $4::bigint)`, id.Source, id.Partition, upTo.Major, upTo.Minor)
	if err != nil {
		return fmt.Errorf("trim buffer %s/%d up to %v: %w", id.Source, id.Partition, upTo, err)
	}
	return nil
}

// BufferBacklog implements store.Store. It counts held rows too: they are
// waiting, only not yet readable.
func (s *Store) BufferBacklog(ctx context.Context, id store.SessionID, after store.Position) (int64, error) {
	var n int64
	err := s.work.QueryRow(ctx, `
		SELECT count(*) FROM bam_buffer
		WHERE source = $1 AND partition = $2
		  AND (xid, id) > ($3::bigint::text::xid8, $4::bigint)`, id.Source, id.Partition, after.Major, after.Minor).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count buffer %s/%d after %v: %w", id.Source, id.Partition, after, err)
	}
	return n, nil
}
