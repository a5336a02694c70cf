package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/store"
)

const instanceColumns = `activity, instance_id, state, begin_time, end_time, last_modified, events, items`

func scanInstance(row pgx.Row) (store.Instance, error) {
	var in store.Instance
	var state string
	var items []byte
	if err := row.Scan(&in.Activity, &in.ID, &state, &in.Begin, &in.End, &in.LastModified, &in.Events, &items); err != nil {
		return store.Instance{}, err
	}
	in.State = store.InstanceState(state)
	in.LastModified = in.LastModified.UTC()
	for _, t := range []**time.Time{&in.Begin, &in.End} {
		if *t != nil {
			u := (*t).UTC()
			*t = &u
		}
	}
	var its event.Items
	if err := json.Unmarshal(items, &its); err != nil {
		return store.Instance{}, fmt.Errorf("items of %s/%s: %w", in.Activity, in.ID, err)
	}
	in.Data = its.Values()
	return in, nil
}

// Instance implements store.Store, with the instance's continuations,
// related instances and references.
func (s *Store) Instance(ctx context.Context, k event.Key) (store.Instance, error) {
	in, err := s.readInstance(ctx, k)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Instance{}, fmt.Errorf("instance %s/%s: %w", k.Activity, k.Instance, store.ErrNotFound)
	}
	if err != nil {
		return store.Instance{}, fmt.Errorf("read instance %s/%s: %w", k.Activity, k.Instance, err)
	}
	return in, nil
}

// readInstance reads an instance with its continuations, related
// instances and references, in one snapshot so that they agree.
func (s *Store) readInstance(ctx context.Context, k event.Key) (store.Instance, error) {
	var in store.Instance
	err := pgx.BeginTxFunc(ctx, s.work, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var err error
		in, err = scanInstance(tx.QueryRow(ctx,
			`SELECT `+instanceColumns+` FROM bam_instances WHERE activity = $1 AND instance_id = $2`, k.Activity, k.Instance))
		if errors.Is(err, pgx.ErrNoRows) {
			// Not online: purged out of its window into the archive?
			in, err = scanInstance(tx.QueryRow(ctx,
				`SELECT `+instanceColumns+` FROM bam_instances_archive WHERE activity = $1 AND instance_id = $2`, k.Activity, k.Instance))
			if err == nil {
				var at time.Time
				err = tx.QueryRow(ctx, `SELECT archived_at FROM bam_instances_archive WHERE activity = $1 AND instance_id = $2`,
					k.Activity, k.Instance).Scan(&at)
				at = at.UTC()
				in.ArchivedAt = &at
			}
		}
		if err != nil {
			return err
		}
		return readVocabulary(ctx, tx, &in)
	})
	return in, err
}

// Instances implements store.Store. The query names only the conditions in
// use, so the planner can pick the state index when a state is given.
func (s *Store) Instances(ctx context.Context, f store.InstanceFilter) ([]store.Instance, error) {
	q := `SELECT ` + instanceColumns + ` FROM bam_instances WHERE activity = $1`
	args := []any{f.Activity}
	if f.State != "" {
		args = append(args, string(f.State))
		q += fmt.Sprintf(` AND state = $%d`, len(args))
	}
	if f.After != "" {
		args = append(args, f.After)
		q += fmt.Sprintf(` AND instance_id > $%d`, len(args))
	}
	q += ` ORDER BY instance_id`
	if f.Limit > 0 {
		args = append(args, f.Limit)
		q += fmt.Sprintf(` LIMIT $%d`, len(args))
	}
	rows, err := s.work.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list instances of %s: %w", f.Activity, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Instance, error) { return scanInstance(row) })
	if err != nil {
		return nil, fmt.Errorf("list instances of %s: %w", f.Activity, err)
	}
	return out, nil
}

// Continuation implements store.Store.
func (s *Store) Continuation(ctx context.Context, activity, token string) (store.Continuation, error) {
	cs, err := queryContinuations(ctx, s.work, `WHERE activity = $1 AND token = $2`, activity, token)
	if err == nil && len(cs) == 0 {
		err = store.ErrNotFound
	}
	if err != nil {
		return store.Continuation{}, fmt.Errorf("continuation %q of %s: %w", token, activity, err)
	}
	return cs[0], nil
}

const continuationColumns = `activity, token, coalesce(instance_id, ''), coalesce(parent_instance, ''), coalesce(parent_token, ''),
	enabled_at, ended_at, last_modified, events, pending_events`

// queryContinuations reads the continuations selected by where.
func queryContinuations(ctx context.Context, tx Tx, where string, args ...any) ([]store.Continuation, error) {
	rows, err := tx.Query(ctx, `SELECT `+continuationColumns+` FROM bam_continuations `+where, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Continuation, error) {
		var c store.Continuation
		err := row.Scan(&c.Activity, &c.Token, &c.Instance, &c.ParentInstance, &c.ParentToken,
			&c.EnabledAt, &c.EndedAt, &c.LastModified, &c.Events, &c.Pending)
		c.EnabledAt, c.EndedAt, c.LastModified = utc(c.EnabledAt), utc(c.EndedAt), utc(c.LastModified)
		return c, err
	})
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// readVocabulary fills an instance's continuations, related instances and
// references.
func readVocabulary(ctx context.Context, tx Tx, in *store.Instance) error {
	var err error
	if in.Continuations, err = queryContinuations(ctx, tx,
		`WHERE activity = $1 AND instance_id = $2 ORDER BY token`, in.Activity, in.ID); err != nil {
		return err
	}
	if in.Related, err = queryKeys(ctx, tx, `
		SELECT related_activity, related_instance FROM bam_relations
		WHERE activity = $1 AND instance_id = $2 ORDER BY related_activity, related_instance`, in.Activity, in.ID); err != nil {
		return err
	}
	rows, err := tx.Query(ctx, `
		SELECT type, name, value, data, event_time FROM bam_references
		WHERE activity = $1 AND instance_id = $2 ORDER BY type, name, value`, in.Activity, in.ID)
	if err != nil {
		return err
	}
	in.References, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Reference, error) {
		var r store.Reference
		err := row.Scan(&r.Type, &r.Name, &r.Value, &r.Data, &r.Time)
		r.Time = r.Time.UTC()
		return r, err
	})
	return err
}
