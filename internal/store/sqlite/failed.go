package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/store"
	"github.com/bam-dev/bam/internal/store/vocabulary"
)

// FailedEvents implements store.Store: oldest first; source "" lists every
// source's, limit 0 means no limit.
func (s *Store) FailedEvents(ctx context.Context, source string, limit int) ([]store.FailedEvent, error) {
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	rows, err := s.db.QueryContext(ctx, `
		SELECT `+store.FailedColumns+` FROM bam_failed
		WHERE ?1 = '' OR source = ?1
		ORDER BY id LIMIT ?2`, source, limit)
	if err != nil {
		return nil, fmt.Errorf("list failed events: %w", err)
	}
	defer rows.Close()
	out, err := store.CollectRows(rows, store.ScanFailedEvent)
	if err != nil {
		return nil, fmt.Errorf("list failed events: %w", err)
	}
	return out, nil
}

// FailedEvent implements store.Store.
func (s *Store) FailedEvent(ctx context.Context, id int64) (store.FailedEvent, error) {
	f, err := store.ScanFailedEvent(s.db.QueryRowContext(ctx, `SELECT `+store.FailedColumns+` FROM bam_failed WHERE id = ?`, id))
	if err != nil {
		return store.FailedEvent{}, fmt.Errorf("failed event %d: %w", id, notFound(err))
	}
	return f, nil
}

// RetryFailed implements store.Store. An event without a time gets the time
// it was written to its source (or, failed before bam kept that, the time
// it was quarantined). A retry as is that is still refused records the new
// reason; a replacement payload that is refused is not stored, nor its
// reason: the failed event keeps its original bytes, and the reason that
// describes them.
func (s *Store) RetryFailed(ctx context.Context, id int64, payload []byte, maxEventSize int) error {
	var invalid error
	err := s.write(ctx, work, func(tx *sql.Tx) error {
		var (
			raw     []byte
			at, now int64
		)
		err := tx.QueryRowContext(ctx, `SELECT payload, coalesce(written_at, failed_at), `+nowSQL+` FROM bam_failed WHERE id = ?`, id).Scan(&raw, &at, &now)
		if err != nil {
			return notFound(err)
		}
		replaced := payload != nil
		if replaced {
			raw = payload
		}
		// still records why the event is refused, unless it is a
		// replacement's reason: then nothing changes.
		still := func(reason string) error {
			if replaced {
				return nil
			}
			_, err := tx.ExecContext(ctx, `UPDATE bam_failed SET reason = ? WHERE id = ?`, reason, id)
			return err
		}
		ev, err := event.Decode(raw, micros(at), maxEventSize)
		if err != nil {
			invalid = err
			return still(invalid.Error())
		}
		refused, err := writeDeltas(ctx, tx, event.Coalesce([]event.Event{ev}), now, vocabulary.Direct)
		if err != nil {
			return err
		}
		if len(refused) > 0 {
			// An enable whose token another segment holds: still refused.
			invalid = vocabulary.RefusedError(refused[0])
			if replaced {
				// Nothing of the replacement stays: roll back what
				// writeDeltas wrote before the refusal.
				return errRefusedReplacement
			}
			return still(refused[0].Reason)
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM bam_failed WHERE id = ?`, id)
		return err
	})
	if err == nil || errors.Is(err, errRefusedReplacement) {
		err = invalid
	}
	if err != nil {
		return fmt.Errorf("retry failed event %d: %w", id, err)
	}
	return nil
}

// errRefusedReplacement rolls back a retry whose replacement payload was
// refused midway (store.Store's RetryFailed).
var errRefusedReplacement = errors.New("the replacement payload was refused")

// DiscardFailed implements store.Store.
func (s *Store) DiscardFailed(ctx context.Context, id int64) error {
	err := s.write(ctx, work, func(tx *sql.Tx) error {
		n, err := rowsAffected(tx.ExecContext(ctx, `DELETE FROM bam_failed WHERE id = ?`, id))
		if err == nil && n == 0 {
			err = store.ErrNotFound
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("discard failed event %d: %w", id, err)
	}
	return nil
}

// FailedOutstanding implements store.Store.
func (s *Store) FailedOutstanding(ctx context.Context) (map[store.SessionID]int64, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT source, partition, count(*) FROM bam_failed GROUP BY source, partition`)
	if err != nil {
		return nil, fmt.Errorf("count failed events: %w", err)
	}
	defer rows.Close()
	out := map[store.SessionID]int64{}
	for rows.Next() {
		var (
			id store.SessionID
			n  int64
		)
		if err := rows.Scan(&id.Source, &id.Partition, &n); err != nil {
			return nil, fmt.Errorf("count failed events: %w", err)
		}
		out[id] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count failed events: %w", err)
	}
	return out, nil
}
