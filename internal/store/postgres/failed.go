package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/store"
	"github.com/bam-dev/bam/internal/store/vocabulary"
)

// FailedEvents implements store.Store: oldest first; source "" lists every
// source, limit 0 has no limit.
func (s *Store) FailedEvents(ctx context.Context, source string, limit int) ([]store.FailedEvent, error) {
	q := `SELECT ` + store.FailedColumns + ` FROM bam_failed`
	var args []any
	if source != "" {
		args = append(args, source)
		q += ` WHERE source = $1`
	}
	q += ` ORDER BY id`
	if limit > 0 {
		args = append(args, limit)
		q += fmt.Sprintf(` LIMIT $%d`, len(args))
	}
	rows, err := s.work.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list failed events: %w", err)
	}
	out, err := pgx.CollectRows(rows, rowTo(store.ScanFailedEvent))
	if err != nil {
		return nil, fmt.Errorf("list failed events: %w", err)
	}
	return out, nil
}

// FailedEvent implements store.Store.
func (s *Store) FailedEvent(ctx context.Context, id int64) (store.FailedEvent, error) {
	fe, err := store.ScanFailedEvent(s.work.QueryRow(ctx, `SELECT `+store.FailedColumns+` FROM bam_failed WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.FailedEvent{}, fmt.Errorf("failed event %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.FailedEvent{}, fmt.Errorf("read failed event %d: %w", id, err)
	}
	return fe, nil
}

// RetryFailed implements store.Store. The failed row is locked while the
// event is applied, so two retries of one event cannot both apply it. An
// event without a time gets the time it was written to its source (or,
// failed before bam kept that, the time it was quarantined). A retry as is
// that is still refused records the new reason; a replacement payload that
// is refused is not stored, nor its reason: the failed event keeps its
// original bytes, and the reason that describes them.
func (s *Store) RetryFailed(ctx context.Context, id int64, payload []byte, maxEventSize int) error {
	var evErr error
	err := pgx.BeginFunc(ctx, s.work, func(tx pgx.Tx) error {
		var stored []byte
		var at time.Time
		err := tx.QueryRow(ctx, `SELECT payload, coalesce(written_at, failed_at) FROM bam_failed WHERE id = $1 FOR UPDATE`, id).Scan(&stored, &at)
		if errors.Is(err, pgx.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		replaced := payload != nil
		if !replaced {
			payload = stored
		}
		// still records why the event is refused, unless it is a
		// replacement's reason: then nothing changes.
		still := func(reason string) error {
			if replaced {
				return nil
			}
			_, err := tx.Exec(ctx, `UPDATE bam_failed SET reason = $2 WHERE id = $1`, id, cleanText(reason))
			return err
		}
		ev, err := event.Decode(payload, at.UTC(), maxEventSize)
		if err != nil {
			evErr = err
			return still(err.Error())
		}
		refused, err := writeDeltas(ctx, tx, event.Coalesce([]event.Event{ev}), vocabulary.Direct)
		if err != nil {
			return err
		}
		if len(refused) > 0 {
			// An enable whose token another segment holds: still refused.
			evErr = vocabulary.RefusedError(refused[0])
			if replaced {
				// Nothing of the replacement stays: roll back what
				// writeDeltas wrote before the refusal.
				return errRefusedReplacement
			}
			return still(refused[0].Reason)
		}
		_, err = tx.Exec(ctx, `DELETE FROM bam_failed WHERE id = $1`, id)
		return err
	})
	if err != nil && !errors.Is(err, errRefusedReplacement) {
		return fmt.Errorf("retry failed event %d: %w", id, err)
	}
	return evErr
}

// errRefusedReplacement rolls back a retry whose replacement payload was
// refused midway (store.Store's RetryFailed).
var errRefusedReplacement = errors.New("the replacement payload was refused")

// DiscardFailed implements store.Store.
func (s *Store) DiscardFailed(ctx context.Context, id int64) error {
	tag, err := s.work.Exec(ctx, `DELETE FROM bam_failed WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("discard failed event %d: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("failed event %d: %w", id, store.ErrNotFound)
	}
	return nil
}

// FailedOutstanding implements store.Store.
func (s *Store) FailedOutstanding(ctx context.Context) (map[store.SessionID]int64, error) {
	rows, err := s.work.Query(ctx, `SELECT source, partition, count(*) FROM bam_failed GROUP BY source, partition`)
	if err != nil {
		return nil, fmt.Errorf("count failed events: %w", err)
	}
	out := map[store.SessionID]int64{}
	var (
		id store.SessionID
		n  int64
	)
	_, err = pgx.ForEachRow(rows, []any{&id.Source, &id.Partition, &n}, func() error {
		out[id] = n
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("count failed events: %w", err)
	}
	return out, nil
}
