package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/store"
)

// Instance implements store.Store: the instance with its continuations,
// related instances and references, read in one transaction so that they
// agree with each other.
func (s *Store) Instance(ctx context.Context, k event.Key) (store.Instance, error) {
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return store.Instance{}, fmt.Errorf("instance %s/%s: %w", k.Activity, k.Instance, err)
	}
	defer tx.Rollback() //nolint:errcheck // read only
	in, err := store.ScanInstance(tx.QueryRowContext(ctx,
		`SELECT `+store.InstanceColumns+` FROM bam_instances WHERE activity = ? AND instance_id = ?`, k.Activity, k.Instance))
	if errors.Is(err, sql.ErrNoRows) {
		// Not online: purged out of its window into the archive?
		in, err = store.ScanInstance(tx.QueryRowContext(ctx,
			`SELECT `+store.InstanceColumns+` FROM bam_instances_archive WHERE activity = ? AND instance_id = ?`, k.Activity, k.Instance))
		if err == nil {
			err = tx.QueryRowContext(ctx, `SELECT archived_at FROM bam_instances_archive WHERE activity = ? AND instance_id = ?`,
				k.Activity, k.Instance).Scan(store.NullInstant(&in.ArchivedAt))
		}
	}
	if err == nil {
		in.Continuations, err = queryContinuations(ctx, tx, continuationsOfInstance, k.Activity, k.Instance)
	}
	if err == nil {
		in.Related, err = queryKeys(ctx, tx, `
			SELECT related_activity, related_instance FROM bam_relations
			WHERE activity = ? AND instance_id = ? ORDER BY related_activity, related_instance`, k.Activity, k.Instance)
	}
	if err == nil {
		in.References, err = queryReferences(ctx, tx, k)
	}
	if err != nil {
		return store.Instance{}, fmt.Errorf("instance %s/%s: %w", k.Activity, k.Instance, notFound(err))
	}
	return in, nil
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// queryContinuations reads continuations selected by where.
// continuationsOfInstance selects an instance's continuations by
// bam_continuations_instance. ORDER BY +token, not token: ordered by the
// primary key (activity, token), the planner walked every continuation of
// the activity for each instance read, sparing itself a sort of a few rows.
const continuationsOfInstance = `WHERE activity = ? AND instance_id = ? ORDER BY +token`

func queryContinuations(ctx context.Context, q querier, where string, args ...any) ([]store.Continuation, error) {
	rows, err := q.QueryContext(ctx, `SELECT `+store.ContinuationColumns+` FROM bam_continuations `+where, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return store.CollectRows(rows, store.ScanContinuation)
}

func queryReferences(ctx context.Context, tx *sql.Tx, k event.Key) ([]store.Reference, error) {
	rows, err := tx.QueryContext(ctx, `
		SELECT `+store.ReferenceColumns+` FROM bam_references
		WHERE activity = ? AND instance_id = ? ORDER BY type, name, value`, k.Activity, k.Instance)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return store.CollectRows(rows, store.ScanReference)
}

// Continuation implements store.Store.
func (s *Store) Continuation(ctx context.Context, activity, token string) (store.Continuation, error) {
	cs, err := queryContinuations(ctx, s.db, `WHERE activity = ? AND token = ?`, activity, token)
	if err == nil && len(cs) == 0 {
		err = store.ErrNotFound
	}
	if err != nil {
		return store.Continuation{}, fmt.Errorf("continuation %q of %s: %w", token, activity, err)
	}
	return cs[0], nil
}

// Instances implements store.Store.
func (s *Store) Instances(ctx context.Context, f store.InstanceFilter) ([]store.Instance, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	// Two statements rather than "(?2 = '' OR state = ?2)", so that a
	// state filter uses the (activity, state, instance_id) index.
	query := `SELECT ` + store.InstanceColumns + ` FROM bam_instances
		WHERE activity = ?1 AND instance_id > ?3 ORDER BY instance_id LIMIT ?4`
	if f.State != "" {
		query = `SELECT ` + store.InstanceColumns + ` FROM bam_instances
		WHERE activity = ?1 AND state = ?2 AND instance_id > ?3 ORDER BY instance_id LIMIT ?4`
	}
	rows, err := s.db.QueryContext(ctx, query, f.Activity, string(f.State), f.After, limit)
	if err != nil {
		return nil, fmt.Errorf("list instances of %s: %w", f.Activity, err)
	}
	defer rows.Close()
	out, err := store.CollectRows(rows, store.ScanInstance)
	if err != nil {
		return nil, fmt.Errorf("list instances of %s: %w", f.Activity, err)
	}
	return out, nil
}
