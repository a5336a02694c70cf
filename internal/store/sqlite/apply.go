package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"modernc.org/sqlite"

	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/store"
)

// mergeItemsFunc is the SQL name of mergeItems.
const mergeItemsFunc = "bam_merge_items"

// mergeItems is bam_merge_items(stored, incoming): event.MergeJSON run
// inside SQLite, so that the upsert merges items with exactly the rule
// PostgreSQL and the tests use (per item the latest event time wins, the
// incoming value on a tie) without a read-modify-write round trip.
func mergeItems(_ *sqlite.FunctionContext, args []driver.Value) (driver.Value, error) {
	a, err := jsonArg(args[0])
	if err != nil {
		return nil, err
	}
	b, err := jsonArg(args[1])
	if err != nil {
		return nil, err
	}
	out, err := event.MergeJSON(a, b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", mergeItemsFunc, err)
	}
	return string(out), nil
}

func jsonArg(v driver.Value) ([]byte, error) {
	switch v := v.(type) {
	case nil:
		return nil, nil
	case string:
		return []byte(v), nil
	case []byte:
		return v, nil
	default:
		return nil, fmt.Errorf("%s: want JSON text, got %T", mergeItemsFunc, v)
	}
}

// upsertInstances merges the deltas in ?1 (a JSON array of deltaRow) into
// their instances in one statement, with the rules of package event:
// earliest begin, latest end, latest last-modified, items by
// bam_merge_items, the state derived from the merged begin and end. In DO
// UPDATE, bam_instances.* is the row before the update, excluded.* the
// delta. "WHERE true" resolves SQLite's parse ambiguity between an upsert's
// ON and a join's ON after INSERT ... SELECT.
const upsertInstances = `
	INSERT INTO bam_instances
		(activity, instance_id, state, begin_time, end_time, last_modified, items, events, updated_at)
	SELECT d.value ->> 'a', d.value ->> 'i',
	       CASE WHEN d.value ->> 'b' IS NULL THEN 'pending'
	            WHEN d.value ->> 'e' IS NULL THEN 'active'
	            ELSE 'completed' END,
	       d.value ->> 'b', d.value ->> 'e', d.value ->> 'm', d.value -> 'items', d.value ->> 'n',
	       ` + nowSQL + `
	FROM json_each(?1) AS d
	WHERE true
	ON CONFLICT (activity, instance_id) DO UPDATE SET
		begin_time = min(coalesce(bam_instances.begin_time, excluded.begin_time),
		                 coalesce(excluded.begin_time, bam_instances.begin_time)),
		end_time = max(coalesce(bam_instances.end_time, excluded.end_time),
		               coalesce(excluded.end_time, bam_instances.end_time)),
		state = CASE WHEN coalesce(bam_instances.begin_time, excluded.begin_time) IS NULL THEN 'pending'
		             WHEN coalesce(bam_instances.end_time, excluded.end_time) IS NULL THEN 'active'
		             ELSE 'completed' END,
		last_modified = max(bam_instances.last_modified, excluded.last_modified),
		items = ` + mergeItemsFunc + `(bam_instances.items, excluded.items),
		events = bam_instances.events + excluded.events,
		updated_at = excluded.updated_at`

// deltaRow is one event.Delta as upsertInstances reads it, times in
// microseconds.
type deltaRow struct {
	Activity     string      `json:"a"`
	Instance     string      `json:"i"`
	Begin        *int64      `json:"b"`
	End          *int64      `json:"e"`
	LastModified int64       `json:"m"`
	Events       int         `json:"n"`
	Items        event.Items `json:"items"`
}

func deltasJSON(deltas []event.Delta) ([]byte, error) {
	rows := make([]deltaRow, len(deltas))
	for i, d := range deltas {
		r := deltaRow{
			Activity:     d.Activity,
			Instance:     d.Instance,
			LastModified: d.LastModified.UnixMicro(),
			Events:       d.Events,
			Items:        d.Items,
		}
		if d.Begin != nil {
			us := d.Begin.UnixMicro()
			r.Begin = &us
		}
		if d.End != nil {
			us := d.End.UnixMicro()
			r.End = &us
		}
		if r.Items == nil {
			r.Items = event.Items{}
		}
		rows[i] = r
	}
	return json.Marshal(rows)
}

// insertFailures quarantines the failures in ?1 (a JSON array of
// failureRow; payloads in hex, as JSON cannot carry bytes) in one statement.
const insertFailures = `
	INSERT INTO bam_failed (source, partition, pos_major, pos_minor, reason, payload, failed_at)
	SELECT f.value ->> 's', f.value ->> 'p', f.value ->> 'ma', f.value ->> 'mi', f.value ->> 'r',
	       coalesce(unhex(f.value ->> 'x'), X''), ` + nowSQL + `
	FROM json_each(?1) AS f`

type failureRow struct {
	Source    string `json:"s"`
	Partition int    `json:"p"`
	Major     int64  `json:"ma"`
	Minor     int64  `json:"mi"`
	Reason    string `json:"r"`
	Payload   string `json:"x"`
}

func failuresJSON(failures []store.Failure) ([]byte, error) {
	rows := make([]failureRow, len(failures))
	for i, f := range failures {
		rows[i] = failureRow{
			Source: f.Source, Partition: f.Partition,
			Major: f.Position.Major, Minor: f.Position.Minor,
			Reason: f.Reason, Payload: hex.EncodeToString(f.Payload),
		}
	}
	return json.Marshal(rows)
}

// Apply implements store.Store (DESIGN.md, promises 1 and 2). The fence
// comes first, inside the transaction: one UPDATE that moves the checkpoint
// only if the node still owns the session under the batch's epoch and the
// checkpoint is still where the batch starts. If it touched no row nothing
// else runs. Then one upsert for all deltas and one insert for all
// failures. BEGIN IMMEDIATE holds the write lock from the fence to the
// commit, so no claim can slip in between.
func (s *Store) Apply(ctx context.Context, b store.Batch) error {
	var deltas, failures []byte
	var err error
	if len(b.Deltas) > 0 {
		if deltas, err = deltasJSON(b.Deltas); err != nil {
			return fmt.Errorf("apply batch to session %s/%d: %w", b.Source, b.Partition, err)
		}
	}
	if len(b.Failures) > 0 {
		if failures, err = failuresJSON(b.Failures); err != nil {
			return fmt.Errorf("apply batch to session %s/%d: %w", b.Source, b.Partition, err)
		}
	}
	err = s.write(ctx, work, func(tx *sql.Tx) error {
		n, err := rowsAffected(tx.ExecContext(ctx, `
			UPDATE bam_sessions
			SET checkpoint_major = ?1, checkpoint_minor = ?2,
			    applied_count = applied_count + ?3, failed_count = failed_count + ?4,
			    last_error = NULL, last_error_at = NULL
			WHERE source = ?5 AND partition = ?6 AND owner = ?7 AND epoch = ?8
			  AND checkpoint_major = ?9 AND checkpoint_minor = ?10`,
			b.Checkpoint.Major, b.Checkpoint.Minor, b.Applied, len(b.Failures),
			b.Source, b.Partition, b.Node, b.Epoch, b.From.Major, b.From.Minor))
		if err != nil {
			return fmt.Errorf("fence: %w", err)
		}
		if n == 0 {
			return store.ErrFenced
		}
		if deltas != nil {
			if _, err := tx.ExecContext(ctx, upsertInstances, deltas); err != nil {
				return fmt.Errorf("merge %d instances: %w", len(b.Deltas), err)
			}
		}
		if failures != nil {
			if _, err := tx.ExecContext(ctx, insertFailures, failures); err != nil {
				return fmt.Errorf("quarantine %d events: %w", len(b.Failures), err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("apply batch to session %s/%d (node %s, epoch %d): %w",
			b.Source, b.Partition, b.Node, b.Epoch, err)
	}
	return nil
}

const failedColumns = `id, source, partition, pos_major, pos_minor, reason, payload, failed_at`

func scanFailed(sc interface{ Scan(...any) error }) (store.FailedEvent, error) {
	var (
		f  store.FailedEvent
		at int64
	)
	err := sc.Scan(&f.ID, &f.Source, &f.Partition, &f.Position.Major, &f.Position.Minor, &f.Reason, &f.Payload, &at)
	if err != nil {
		return store.FailedEvent{}, err
	}
	f.FailedAt = micros(at)
	return f, nil
}

// FailedEvents implements store.Store: oldest first; source "" lists every
// source's, limit 0 means no limit.
func (s *Store) FailedEvents(ctx context.Context, source string, limit int) ([]store.FailedEvent, error) {
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	rows, err := s.db.QueryContext(ctx, `
		SELECT `+failedColumns+` FROM bam_failed
		WHERE ?1 = '' OR source = ?1
		ORDER BY id LIMIT ?2`, source, limit)
	if err != nil {
		return nil, fmt.Errorf("list failed events: %w", err)
	}
	defer rows.Close()
	var out []store.FailedEvent
	for rows.Next() {
		f, err := scanFailed(rows)
		if err != nil {
			return nil, fmt.Errorf("list failed events: %w", err)
		}
		out = append(out, f)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list failed events: %w", err)
	}
	return out, nil
}

// FailedEvent implements store.Store.
func (s *Store) FailedEvent(ctx context.Context, id int64) (store.FailedEvent, error) {
	f, err := scanFailed(s.db.QueryRowContext(ctx, `SELECT `+failedColumns+` FROM bam_failed WHERE id = ?`, id))
	if err != nil {
		return store.FailedEvent{}, fmt.Errorf("failed event %d: %w", id, notFound(err))
	}
	return f, nil
}

// RetryFailed implements store.Store. An event without a time gets the time
// it was quarantined. When a replacement payload is still invalid, it is
// kept in place of the old one so that the stored reason describes the
// stored bytes.
func (s *Store) RetryFailed(ctx context.Context, id int64, payload []byte) error {
	var invalid error
	err := s.write(ctx, work, func(tx *sql.Tx) error {
		var (
			raw []byte
			at  int64
		)
		err := tx.QueryRowContext(ctx, `SELECT payload, failed_at FROM bam_failed WHERE id = ?`, id).Scan(&raw, &at)
		if err != nil {
			return notFound(err)
		}
		if payload != nil {
			raw = payload
		}
		ev, err := event.Decode(raw, micros(at), 0)
		if err != nil {
			invalid = err
			_, err = tx.ExecContext(ctx, `UPDATE bam_failed SET reason = ?, payload = ? WHERE id = ?`, invalid.Error(), raw, id)
			return err
		}
		deltas, err := deltasJSON(event.Coalesce([]event.Event{ev}))
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, upsertInstances, deltas); err != nil {
			return fmt.Errorf("merge instance: %w", err)
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM bam_failed WHERE id = ?`, id)
		return err
	})
	if err == nil {
		err = invalid
	}
	if err != nil {
		return fmt.Errorf("retry failed event %d: %w", id, err)
	}
	return nil
}

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
