package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/bam-dev/bam/internal/definition"
	"github.com/bam-dev/bam/internal/store"
)

// Deployments run in one IMMEDIATE transaction: it holds the database's
// write lock from its start, so deployments of this and other processes
// serialize, and SQLite's DDL is transactional, so an error anywhere leaves
// nothing behind. store.RunDeploy and its siblings decide; deployTx speaks
// SQL.

// deploying runs fn in a deployment transaction (store.DeployCommands).
func (s *Store) deploying(ctx context.Context, what string, fn func(store.DeployTx) (store.Deployment, error)) (store.Deployment, error) {
	var dep store.Deployment
	err := s.write(ctx, work, func(tx *sql.Tx) error {
		var err error
		dep, err = fn(deployTx{tx})
		return err
	})
	if err != nil {
		return store.Deployment{}, fmt.Errorf("%s in %s: %w", what, s.path, err)
	}
	return dep, nil
}

// deployTx implements store.DeployTx.
type deployTx struct{ tx *sql.Tx }

var _ store.DeployTx = deployTx{}

func (d deployTx) Definitions(ctx context.Context) ([]store.DeployedActivity, int64, error) {
	return readDefinitions(ctx, d.tx)
}

func (d deployTx) ItemInUse(ctx context.Context, activity, item string) (bool, error) {
	var used bool
	err := d.tx.QueryRowContext(ctx, `SELECT
		EXISTS (SELECT 1 FROM bam_instances WHERE activity = ?1 AND json_type(items, ?2) IS NOT NULL) OR
		EXISTS (SELECT 1 FROM bam_instances_archive WHERE activity = ?1 AND json_type(items, ?2) IS NOT NULL)`,
		activity, `$."`+item+`"`).Scan(&used)
	return used, err
}

func (d deployTx) CountInstances(ctx context.Context, activity string) (online, archived int64, err error) {
	err = d.tx.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM bam_instances WHERE activity = ?1),
		(SELECT count(*) FROM bam_instances_archive WHERE activity = ?1)`, activity).Scan(&online, &archived)
	return online, archived, err
}

func (d deployTx) DeleteInstances(ctx context.Context, activity string) error {
	for _, table := range []string{"bam_instances", "bam_instances_archive"} {
		if _, err := d.tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE activity = ?`, activity); err != nil {
			return err
		}
	}
	return nil
}

func (d deployTx) WriteActivity(ctx context.Context, prev *store.DeployedActivity, a definition.Activity, version int64) error {
	def, err := json.Marshal(a)
	if err != nil {
		return err
	}
	if _, err := d.tx.ExecContext(ctx, `INSERT INTO bam_definitions (name, definition, version) VALUES (?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET definition = excluded.definition, version = excluded.version`,
		a.Name, string(def), version); err != nil {
		return fmt.Errorf("write the definition: %w", err)
	}
	var prevActivity *definition.Activity
	if prev != nil {
		prevActivity = &prev.Activity
	}
	return d.exec(ctx, append(views.Redeploy(prev, a), aggregations.Redeploy(prevActivity, a, triggers)...))
}

func (d deployTx) DropActivity(ctx context.Context, a store.DeployedActivity) error {
	if err := d.exec(ctx, append(aggregations.Remove(a.Activity, triggers), views.Remove(a)...)); err != nil {
		return err
	}
	_, err := d.tx.ExecContext(ctx, `DELETE FROM bam_definitions WHERE name = ?`, a.Name)
	return err
}

func (d deployTx) WriteWindow(ctx context.Context, a store.DeployedActivity, w store.Window, version int64) error {
	if _, err := d.tx.ExecContext(ctx, `UPDATE bam_definitions
		SET keep_us = ?1, archive = ?2, archive_view = max(archive_view, ?2), version = ?3 WHERE name = ?4`,
		w.Keep.Microseconds(), w.Archive, version, a.Name); err != nil {
		return err
	}
	if !w.Archive || a.Archived {
		return nil
	}
	return d.exec(ctx, []string{views.CreateArchiveView(a.Activity)})
}

func (d deployTx) Record(ctx context.Context, dep store.Deployment) (store.Deployment, error) {
	var at int64
	err := d.tx.QueryRowContext(ctx, `INSERT INTO bam_deployments (version, deployed_at, deployed_by, file, changes, forced)
		VALUES (?, `+nowSQL+`, ?, ?, ?, ?) RETURNING deployed_at`,
		dep.Version, dep.By, dep.Text, strings.Join(dep.Changes, "\n"), dep.Forced).Scan(&at)
	if err != nil {
		return store.Deployment{}, fmt.Errorf("record deployment %d: %w", dep.Version, err)
	}
	dep.At = micros(at)
	return dep, nil
}

// exec runs DDL, naming the statement that failed.
func (d deployTx) exec(ctx context.Context, stmts []string) error {
	for _, q := range stmts {
		if _, err := d.tx.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("%w, in:\n%s", err, q)
		}
	}
	return nil
}

// activitiesSQL selects what store.ScanDeployedActivity reads.
const activitiesSQL = `SELECT name, definition, version, keep_us, archive, archive_view
	FROM bam_definitions ORDER BY lower(name)`

// deploymentsSQL selects at most ?1 deployments (0: all; a negative LIMIT
// is none in SQLite), the latest first.
const deploymentsSQL = `SELECT ` + store.DeploymentColumns + `
	FROM bam_deployments ORDER BY version DESC LIMIT coalesce(nullif(?1, 0), -1)`

// readDefinitions reads the deployed activities, by name, and the version.
func readDefinitions(ctx context.Context, q querier) ([]store.DeployedActivity, int64, error) {
	return store.ReadDefinitions(ctx, query(q), activitiesSQL)
}

// purgeBatch bounds the instances one purge transaction moves, so that a
// session's batch waits for the write lock for milliseconds only.
const purgeBatch = 2000

// PurgeCompleted implements store.Store. Each batch is one IMMEDIATE
// transaction that reads the window and the store's clock, picks the
// instances past the window through bam_instances_completed, copies them to
// the archive if asked and deletes them: a node purging at the same time
// waits for the write lock and finds them gone.
func (s *Store) PurgeCompleted(ctx context.Context, activity string) (int64, error) {
	var total int64
	for {
		var n int64
		err := s.write(ctx, work, func(tx *sql.Tx) error {
			deployed, _, err := readDefinitions(ctx, tx)
			if err != nil {
				return err
			}
			a, err := store.FindActivity(deployed, activity)
			if err != nil || a.Window.Keep <= 0 {
				return err
			}
			n, err = purgeOnce(ctx, tx, a)
			return err
		})
		total += n
		if err != nil {
			return total, fmt.Errorf("purge completed instances of %s in %s: %w", activity, s.path, err)
		}
		if n < purgeBatch {
			return total, nil
		}
	}
}

func purgeOnce(ctx context.Context, tx *sql.Tx, a store.DeployedActivity) (int64, error) {
	var ids string
	err := tx.QueryRowContext(ctx, `SELECT json_group_array(instance_id) FROM (
		SELECT instance_id FROM bam_instances
		WHERE activity = ?1 AND state = 'completed' AND `+isoTime("end_time")+` < `+isoTime("("+nowSQL+" - ?2)")+`
		LIMIT ?3)`, a.Name, a.Window.Keep.Microseconds(), purgeBatch).Scan(&ids)
	if err != nil {
		return 0, fmt.Errorf("find the instances past the window: %w", err)
	}
	const cols = `activity, instance_id, state, begin_time, end_time, last_modified, items, events, updated_at, first_event_at`
	if a.Window.Archive {
		if _, err := tx.ExecContext(ctx, `INSERT INTO bam_instances_archive (`+cols+`, archived_at)
			SELECT `+cols+`, `+nowSQL+` FROM bam_instances
			WHERE activity = ?1 AND instance_id IN (SELECT value FROM json_each(?2))
			ON CONFLICT (activity, instance_id) DO UPDATE SET state = excluded.state, begin_time = excluded.begin_time,
				end_time = excluded.end_time, last_modified = excluded.last_modified, items = excluded.items,
				events = excluded.events, updated_at = excluded.updated_at, first_event_at = excluded.first_event_at,
				archived_at = excluded.archived_at`, a.Name, ids); err != nil {
			return 0, fmt.Errorf("archive: %w", err)
		}
	}
	return rowsAffected(tx.ExecContext(ctx, `DELETE FROM bam_instances
		WHERE activity = ?1 AND instance_id IN (SELECT value FROM json_each(?2))`, a.Name, ids))
}

// CountInstances implements store.Store.
func (s *Store) CountInstances(ctx context.Context, activity string) (map[store.InstanceState]int64, error) {
	return store.CountByState(ctx, query(s.db), `SELECT state, count(*) FROM bam_instances WHERE activity = ? GROUP BY state`, activity)
}

// InstanceActivities implements store.Store.
func (s *Store) InstanceActivities(ctx context.Context) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, store.InstanceActivitiesSQL)
	if err != nil {
		return nil, fmt.Errorf("list the activities of instances: %w", err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, fmt.Errorf("list the activities of instances: %w", err)
		}
		names = append(names, n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list the activities of instances: %w", err)
	}
	return names, nil
}
