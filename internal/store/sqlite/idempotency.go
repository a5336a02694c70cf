package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/bam-dev/bam/internal/store"
)

// AppendBufferIdempotent implements store.Store in one IMMEDIATE
// transaction: writers are serialized, so a concurrent call with the same
// key (in this process or another) finds the first one's record once it
// gets the write lock, and replays it.
func (s *Store) AppendBufferIdempotent(ctx context.Context, source string, key store.IdempotencyKey, events []store.BufferEvent, response store.StoredResponse) (*store.StoredResponse, error) {
	retention := cmp.Or(key.Retention, store.DefaultIdempotencyRetention).Microseconds()
	var replay *store.StoredResponse
	err := s.write(ctx, work, func(tx *sql.Tx) error {
		replay = nil
		partitions, err := bufferPartitions(ctx, tx, source)
		if err != nil {
			return err
		}
		// This key's record when it has expired, and a few other expired
		// ones.
		if _, err := tx.ExecContext(ctx, `
			DELETE FROM bam_idempotency WHERE key = ? AND created_at < `+nowSQL+` - ?`, key.Key, retention); err != nil {
			return fmt.Errorf("purge expired key: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `
			DELETE FROM bam_idempotency WHERE rowid IN (
				SELECT rowid FROM bam_idempotency WHERE created_at < `+nowSQL+` - ?
				ORDER BY created_at LIMIT ?)`, retention, store.IdempotencyPurgeBatch); err != nil {
			return fmt.Errorf("purge expired keys: %w", err)
		}
		// Never NULL: the columns are NOT NULL, and nil binds as NULL.
		hash, body := append([]byte{}, key.BodyHash...), append([]byte{}, response.Body...)
		inserted, err := rowsAffected(tx.ExecContext(ctx, `
			INSERT INTO bam_idempotency (key, source, body_hash, status, response, created_at)
			VALUES (?, ?, ?, ?, ?, `+nowSQL+`)
			ON CONFLICT (key) DO NOTHING`, key.Key, source, hash, response.Status, body))
		if err != nil {
			return fmt.Errorf("record key: %w", err)
		}
		if inserted == 0 {
			// Of any age: the purge above ran on this transaction's
			// clock, and the record the insert met survived it. (SQLite's
			// clock moves between statements: read with the retention,
			// a record at its edge was gone by the next one.)
			replay, err = recordedResponse(ctx, tx, key.Key, 0)
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
		return nil, fmt.Errorf("append %d events to buffer %q with idempotency key %q: %w", len(events), source, key.Key, err)
	}
	if replay != nil {
		return replay, replay.Answers(source, key)
	}
	if len(events) > 0 {
		s.hub.publish(store.Notice{Topic: store.TopicBuffer, Source: source})
	}
	return nil, nil
}

// RecordedResponse implements store.Store.
func (s *Store) RecordedResponse(ctx context.Context, key store.IdempotencyKey) (*store.StoredResponse, error) {
	retention := cmp.Or(key.Retention, store.DefaultIdempotencyRetention).Microseconds()
	r, err := recordedResponse(ctx, s.db, key.Key, retention)
	if err != nil {
		return nil, fmt.Errorf("read the response recorded for idempotency key %q: %w", key.Key, err)
	}
	return r, nil
}

// recordedResponse reads the record of key younger than retention (in
// microseconds; 0: of any age) by the store's clock; nil when there is
// none.
func recordedResponse(ctx context.Context, q interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}, key string, retention int64) (*store.StoredResponse, error) {
	var (
		r       store.StoredResponse
		created int64
	)
	err := q.QueryRowContext(ctx, `
		SELECT source, body_hash, status, response, created_at FROM bam_idempotency
		WHERE key = ?1 AND (?2 = 0 OR created_at >= `+nowSQL+` - ?2)`, key, retention).Scan(&r.Source, &r.BodyHash, &r.Status, &r.Body, &created)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, nil
	case err != nil:
		return nil, err
	}
	r.CreatedAt = micros(created)
	return &r, nil
}
