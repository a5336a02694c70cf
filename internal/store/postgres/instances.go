package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/store"
)

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
		in, err = store.ScanInstance(tx.QueryRow(ctx,
			`SELECT `+store.InstanceColumns+` FROM bam_instances WHERE activity = $1 AND instance_id = $2`, k.Activity, k.Instance))
		if errors.Is(err, pgx.ErrNoRows) {
			// Not online: purged out of its window into the archive?
			in, err = store.ScanInstance(tx.QueryRow(ctx,
				`SELECT `+store.InstanceColumns+` FROM bam_instances_archive WHERE activity = $1 AND instance_id = $2`, k.Activity, k.Instance))
			if err == nil {
				err = tx.QueryRow(ctx, `SELECT archived_at FROM bam_instances_archive WHERE activity = $1 AND instance_id = $2`,
					k.Activity, k.Instance).Scan(store.NullInstant(&in.ArchivedAt))
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
	q := `SELECT ` + store.InstanceColumns + ` FROM bam_instances WHERE activity = $1`
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
	out, err := pgx.CollectRows(rows, rowTo(store.ScanInstance))
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

// queryContinuations reads the continuations selected by where.
func queryContinuations(ctx context.Context, tx Tx, where string, args ...any) ([]store.Continuation, error) {
	rows, err := tx.Query(ctx, `SELECT `+store.ContinuationColumns+` FROM bam_continuations `+where, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, rowTo(store.ScanContinuation))
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
		SELECT `+store.ReferenceColumns+` FROM bam_references
		WHERE activity = $1 AND instance_id = $2 ORDER BY type, name, value`, in.Activity, in.ID)
	if err != nil {
		return err
	}
	in.References, err = pgx.CollectRows(rows, rowTo(store.ScanReference))
	return err
}
