package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/store"
)

const instanceColumns = `activity, instance_id, state, begin_time, end_time, last_modified, events, items`

func scanInstance(sc interface{ Scan(...any) error }) (store.Instance, error) {
	var (
		in         store.Instance
		state      string
		begin, end sql.NullInt64
		modified   int64
		items      []byte
	)
	if err := sc.Scan(&in.Activity, &in.ID, &state, &begin, &end, &modified, &in.Events, &items); err != nil {
		return store.Instance{}, err
	}
	in.State = store.InstanceState(state)
	in.Begin, in.End = microsPtr(begin), microsPtr(end)
	in.LastModified = micros(modified)
	var it event.Items
	if err := json.Unmarshal(items, &it); err != nil {
		return store.Instance{}, fmt.Errorf("items of %s/%s: %w", in.Activity, in.ID, err)
	}
	in.Data = it.Values()
	return in, nil
}

// Instance implements store.Store.
func (s *Store) Instance(ctx context.Context, k event.Key) (store.Instance, error) {
	in, err := scanInstance(s.db.QueryRowContext(ctx,
		`SELECT `+instanceColumns+` FROM bam_instances WHERE activity = ? AND instance_id = ?`, k.Activity, k.Instance))
	if err != nil {
		return store.Instance{}, fmt.Errorf("instance %s/%s: %w", k.Activity, k.Instance, notFound(err))
	}
	return in, nil
}

// Instances implements store.Store.
func (s *Store) Instances(ctx context.Context, f store.InstanceFilter) ([]store.Instance, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	// Two statements rather than "(?2 = '' OR state = ?2)", so that a
	// state filter uses the (activity, state, instance_id) index.
	query := `SELECT ` + instanceColumns + ` FROM bam_instances
		WHERE activity = ?1 AND instance_id > ?3 ORDER BY instance_id LIMIT ?4`
	if f.State != "" {
		query = `SELECT ` + instanceColumns + ` FROM bam_instances
		WHERE activity = ?1 AND state = ?2 AND instance_id > ?3 ORDER BY instance_id LIMIT ?4`
	}
	rows, err := s.db.QueryContext(ctx, query, f.Activity, string(f.State), f.After, limit)
	if err != nil {
		return nil, fmt.Errorf("list instances of %s: %w", f.Activity, err)
	}
	defer rows.Close()
	var out []store.Instance
	for rows.Next() {
		in, err := scanInstance(rows)
		if err != nil {
			return nil, fmt.Errorf("list instances of %s: %w", f.Activity, err)
		}
		out = append(out, in)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list instances of %s: %w", f.Activity, err)
	}
	return out, nil
}
