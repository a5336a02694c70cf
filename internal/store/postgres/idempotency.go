package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bam-dev/bam/internal/store"
)

// AppendBufferIdempotent implements store.Store in one transaction. The
// key's primary key settles concurrent calls: a second INSERT of the key
// waits for the first transaction; when that commits, the INSERT does
// nothing and the SELECT that follows (a new statement, so a new snapshot
// under READ COMMITTED) reads the committed record to replay; when it rolls
// back, the second call proceeds as the first.
//
// The purge of other expired records skips rows another call has locked,
// so that two purges never wait for each other.
func (s *Store) AppendBufferIdempotent(ctx context.Context, source string, key store.IdempotencyKey, events []store.BufferEvent, response store.StoredResponse) (*store.StoredResponse, error) {
	retention := cmp.Or(key.Retention, store.DefaultIdempotencyRetention)
	var replay *store.StoredResponse
	err := pgx.BeginFunc(ctx, s.work, func(tx pgx.Tx) error {
		replay = nil
		partitions, err := bufferPartitions(ctx, tx, source)
		if err != nil {
			return err
		}
		b := &pgx.Batch{}
		b.Queue(`DELETE FROM bam_idempotency WHERE key = $1 AND created_at < now() - $2::interval`, key.Key, retention)
		b.Queue(`DELETE FROM bam_idempotency WHERE key IN (
			SELECT key FROM bam_idempotency WHERE created_at < now() - $1::interval
			ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED)`, retention, store.IdempotencyPurgeBatch)
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return fmt.Errorf("purge expired keys: %w", err)
		}
		// Never NULL: the columns are NOT NULL, and nil binds as NULL.
		hash, body := append([]byte{}, key.BodyHash...), append([]byte{}, response.Body...)
		tag, err := tx.Exec(ctx, `
			INSERT INTO bam_idempotency (key, source, body_hash, status, response)
			VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (key) DO NOTHING`, key.Key, source, hash, response.Status, body)
		if err != nil {
			return fmt.Errorf("record key: %w", err)
		}
		if tag.RowsAffected() == 0 {
			replay, err = recordedResponse(ctx, tx, key.Key, retention)
			if err == nil && replay == nil {
				err = errors.New("the record that refused the key is gone")
			}
			if err != nil {
				return fmt.Errorf("read the recorded response: %w", err)
			}
			return nil
		}
		return appendBuffer(ctx, tx, source, partitions, events)
	})
	if err != nil {
		return nil, fmt.Errorf("append %d events to buffer %q with idempotency key %q: %w", len(events), source, key.Key, s.scrub(err))
	}
	if replay != nil {
		return replay, replay.Answers(source, key)
	}
	return nil, nil
}

// RecordedResponse implements store.Store.
func (s *Store) RecordedResponse(ctx context.Context, key store.IdempotencyKey) (*store.StoredResponse, error) {
	r, err := recordedResponse(ctx, s.work, key.Key, cmp.Or(key.Retention, store.DefaultIdempotencyRetention))
	if err != nil {
		return nil, fmt.Errorf("read the response recorded for idempotency key %q: %w", key.Key, s.scrub(err))
	}
	return r, nil
}

// recordedResponse reads the record of key younger than retention by the
// store's clock; nil when there is none.
func recordedResponse(ctx context.Context, q querier, key string, retention time.Duration) (*store.StoredResponse, error) {
	var r store.StoredResponse
	err := q.QueryRow(ctx, `
		SELECT source, body_hash, status, response, created_at FROM bam_idempotency
		WHERE key = $1 AND created_at >= now() - $2::interval`, key, retention).Scan(&r.Source, &r.BodyHash, &r.Status, &r.Body, &r.CreatedAt)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, nil
	case err != nil:
		return nil, err
	}
	r.CreatedAt = r.CreatedAt.UTC()
	return &r, nil
}
