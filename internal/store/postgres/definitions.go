package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/bam-dev/bam/internal/definition"
	"github.com/bam-dev/bam/internal/store"
)

// Deployments run in one transaction under a transaction-level advisory
// lock, so that two deployments serialize (the second reads what the first
// wrote); PostgreSQL's DDL is transactional, so an error anywhere leaves
// nothing behind. store.RunDeploy and its siblings decide; deployTx speaks
// SQL.
//
// CREATE INDEX inside the transaction holds a SHARE lock on bam_instances
// while it builds: batches wait for the build (seconds per million
// instances of the activity). docs/DEFINITIONS.md says so.

// deployLockObj is the second key of the deploy lock, beside the migration
// lock's (migrate.go).
const deployLockObj = 2

// deployLockTimeout bounds each wait of a deployment for a lock once it
// holds the deploy lock: dropping a view waits for the queries reading it,
// and every query of the view would then queue behind the deployment. A
// deployment that cannot have its locks soon fails, changing nothing.
const deployLockTimeout = "10s"

// sqlstateLockNotAvailable is PostgreSQL's lock_not_available.
const sqlstateLockNotAvailable = "55P03"

// deploying runs fn in a deployment transaction (store.DeployCommands).
func (s *Store) deploying(ctx context.Context, what string, fn func(store.DeployTx) (store.Deployment, error)) (store.Deployment, error) {
	var dep store.Deployment
	err := pgx.BeginFunc(ctx, s.work, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, $2)`, int32(migrateLockClass), int32(deployLockObj)); err != nil {
			return fmt.Errorf("take the deploy lock: %w", err)
		}
		if _, err := tx.Exec(ctx, `SET LOCAL lock_timeout = '`+deployLockTimeout+`'`); err != nil {
			return err
		}
		var err error
		dep, err = fn(deployTx{tx})
		return err
	})
	if isSQLState(err, sqlstateLockNotAvailable) {
		err = fmt.Errorf("%w (waited %s for queries of the views or writes of the instances to finish; nothing changed, try again)", err, deployLockTimeout)
	}
	if err != nil {
		return store.Deployment{}, fmt.Errorf("%s in store %s: %w", what, s.where, err)
	}
	return dep, nil
}

// deployTx implements store.DeployTx.
type deployTx struct{ tx pgx.Tx }

var _ store.DeployTx = deployTx{}

func (d deployTx) Definitions(ctx context.Context) ([]store.DeployedActivity, int64, error) {
	return readDefinitions(ctx, d.tx)
}

func (d deployTx) ItemInUse(ctx context.Context, activity, item string) (bool, error) {
	var used bool
	err := d.tx.QueryRow(ctx, `SELECT
		EXISTS (SELECT 1 FROM bam_instances WHERE activity = $1 AND jsonb_exists(items, $2)) OR
		EXISTS (SELECT 1 FROM bam_instances_archive WHERE activity = $1 AND jsonb_exists(items, $2))`,
		activity, item).Scan(&used)
	return used, err
}

func (d deployTx) CountInstances(ctx context.Context, activity string) (online, archived int64, err error) {
	err = d.tx.QueryRow(ctx, `SELECT (SELECT count(*) FROM bam_instances WHERE activity = $1),
		(SELECT count(*) FROM bam_instances_archive WHERE activity = $1)`, activity).Scan(&online, &archived)
	return online, archived, err
}

func (d deployTx) DeleteInstances(ctx context.Context, activity string) error {
	for _, table := range []string{"bam_instances", "bam_instances_archive"} {
		if _, err := d.tx.Exec(ctx, `DELETE FROM `+table+` WHERE activity = $1`, activity); err != nil {
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
	if _, err := d.tx.Exec(ctx, `INSERT INTO bam_definitions (name, definition, version) VALUES ($1, $2, $3)
		ON CONFLICT (name) DO UPDATE SET definition = excluded.definition, version = excluded.version`,
		a.Name, string(def), version); err != nil {
		return fmt.Errorf("write the definition: %w", err)
	}
	var prevActivity *definition.Activity
	if prev != nil {
		prevActivity = &prev.Activity
	}
	grants, err := d.viewGrants(ctx, a.Name)
	if err != nil {
		return fmt.Errorf("read the grants on the views: %w", err)
	}
	if err := d.exec(ctx, append(views.Redeploy(prev, a), aggregations.Redeploy(prevActivity, a, triggers)...)); err != nil {
		return err
	}
	return d.regrant(ctx, grants)
}

// viewGrant is a privilege on one of an activity's views that a role (or
// PUBLIC) was given.
type viewGrant struct {
	view, grantee, privilege string
	grantable                bool
}

// viewGrants reads the privileges others than their owner hold on the
// views of an activity, which a deployment drops and creates again: the
// role docs/QUERY.md gives BI tools would otherwise lose them at every
// deployment that changes the activity. Every view whose name starts with
// the activity's and an underscore: another activity's view read so is
// granted again what it holds.
func (d deployTx) viewGrants(ctx context.Context, activity string) ([]viewGrant, error) {
	rows, err := d.tx.Query(ctx, `
		SELECT c.relname, CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END,
		       a.privilege_type, a.is_grantable
		FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) a
		WHERE c.relkind = 'v' AND c.relnamespace = current_schema()::regnamespace
		  AND left(c.relname, length($1) + 1) = $1 || '_' AND a.grantee <> c.relowner
		ORDER BY 1, 2, 3`, strings.ToLower(activity))
	if err != nil {
		return nil, err
	}
	var out []viewGrant
	for rows.Next() {
		var g viewGrant
		if err := rows.Scan(&g.view, &g.grantee, &g.privilege, &g.grantable); err != nil {
			return nil, err
		}
		out = append(out, g)
	}
	return out, rows.Err()
}

// regrant gives grants again on those of their views that exist.
func (d deployTx) regrant(ctx context.Context, grants []viewGrant) error {
	for _, g := range grants {
		if !slices.Contains(tablePrivileges, g.privilege) {
			continue // none other on a view; never written into SQL unchecked
		}
		var exists bool
		if err := d.tx.QueryRow(ctx, `SELECT to_regclass(quote_ident($1)) IS NOT NULL`, g.view).Scan(&exists); err != nil {
			return err
		}
		if !exists {
			continue // the view went with its aggregation
		}
		q := fmt.Sprintf("GRANT %s ON %s TO %s", g.privilege, store.Ident(g.view), g.grantee)
		if g.grantable {
			q += " WITH GRANT OPTION"
		}
		if _, err := d.tx.Exec(ctx, q); err != nil {
			return fmt.Errorf("grant %s on %s to %s again: %w", g.privilege, g.view, g.grantee, err)
		}
	}
	return nil
}

// tablePrivileges are the privileges a view can be granted.
var tablePrivileges = []string{"SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER"}

func (d deployTx) DropActivity(ctx context.Context, a store.DeployedActivity) error {
	if err := d.exec(ctx, append(aggregations.Remove(a.Activity, triggers), views.Remove(a)...)); err != nil {
		return err
	}
	_, err := d.tx.Exec(ctx, `DELETE FROM bam_definitions WHERE name = $1`, a.Name)
	return err
}

func (d deployTx) WriteWindow(ctx context.Context, a store.DeployedActivity, w store.Window, version int64) error {
	if _, err := d.tx.Exec(ctx, `UPDATE bam_definitions
		SET keep = CASE WHEN $1::bigint > 0 THEN $1::bigint * interval '1 microsecond' END, archive = $2,
		    archive_view = archive_view OR $2, version = $3
		WHERE name = $4`, w.Keep.Microseconds(), w.Archive, version, a.Name); err != nil {
		return err
	}
	if !w.Archive || a.Archived {
		return nil
	}
	return d.exec(ctx, []string{views.CreateArchiveView(a.Activity)})
}

func (d deployTx) Record(ctx context.Context, dep store.Deployment) (store.Deployment, error) {
	err := d.tx.QueryRow(ctx, `INSERT INTO bam_deployments (version, deployed_by, file, changes, forced)
		VALUES ($1, $2, $3, $4, $5) RETURNING deployed_at`,
		dep.Version, dep.By, dep.Text, strings.Join(dep.Changes, "\n"), dep.Forced).Scan(&dep.At)
	if err != nil {
		return store.Deployment{}, fmt.Errorf("record deployment %d: %w", dep.Version, err)
	}
	dep.At = dep.At.UTC()
	return dep, nil
}

// exec runs DDL, naming the statement that failed.
func (d deployTx) exec(ctx context.Context, stmts []string) error {
	for _, q := range stmts {
		if _, err := d.tx.Exec(ctx, q); err != nil {
			return fmt.Errorf("%w, in:\n%s", err, q)
		}
	}
	return nil
}

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// activitiesSQL selects what store.ScanDeployedActivity reads.
const activitiesSQL = `SELECT name, definition, version,
	coalesce((extract(epoch FROM keep) * 1000000)::bigint, 0), archive, archive_view
	FROM bam_definitions ORDER BY lower(name)`

// deploymentsSQL selects at most $1 deployments (0: all), the latest first.
const deploymentsSQL = `SELECT ` + store.DeploymentColumns + `
	FROM bam_deployments ORDER BY version DESC LIMIT nullif($1, 0)`

// readDefinitions reads the deployed activities, by name, and the version.
func readDefinitions(ctx context.Context, q querier) ([]store.DeployedActivity, int64, error) {
	return store.ReadDefinitions(ctx, query(q), activitiesSQL)
}

// purgeBatch bounds the instances one purge transaction locks and moves.
const purgeBatch = 5000

// purgeDelete and purgeArchive take up to $3 completed instances of
// activity $1 that ended before now() - $2 microseconds, skipping those a
// concurrent purge (another node) or batch holds, and delete them or move
// them to bam_instances_archive (replacing an archived instance of the same
// id). The window is read in the same statement.
const (
	purgeDoomed = `WITH doomed AS (
		SELECT activity, instance_id FROM bam_instances
		WHERE activity = $1 AND state = 'completed' AND end_time < now() - $2::bigint * interval '1 microsecond'
		LIMIT $3 FOR UPDATE SKIP LOCKED
	), moved AS (
		DELETE FROM bam_instances i USING doomed d
		WHERE i.activity = d.activity AND i.instance_id = d.instance_id
		RETURNING i.activity, i.instance_id, i.state, i.begin_time, i.end_time, i.last_modified,
		          i.events, i.items, i.updated_at, i.first_event_at
	)`
	purgeDelete  = purgeDoomed + ` SELECT count(*) FROM moved`
	purgeArchive = purgeDoomed + `, archived AS (
		INSERT INTO bam_instances_archive (activity, instance_id, state, begin_time, end_time, last_modified,
		                                   events, items, updated_at, first_event_at)
		SELECT * FROM moved
		ON CONFLICT (activity, instance_id) DO UPDATE SET state = excluded.state, begin_time = excluded.begin_time,
			end_time = excluded.end_time, last_modified = excluded.last_modified, events = excluded.events,
			items = excluded.items, updated_at = excluded.updated_at, first_event_at = excluded.first_event_at,
			archived_at = now()
		RETURNING 1
	) SELECT count(*) FROM archived`
)

// PurgeCompleted implements store.Store. Each batch is its own
// transaction; rows are locked FOR UPDATE SKIP LOCKED, so nodes purging at
// once take disjoint instances, and a purged instance is gone for the next.
func (s *Store) PurgeCompleted(ctx context.Context, activity string) (int64, error) {
	acts, _, err := readDefinitions(ctx, s.work)
	if err != nil {
		return 0, fmt.Errorf("purge completed instances of %s: %w", activity, err)
	}
	a, err := store.FindActivity(acts, activity)
	if err != nil {
		return 0, fmt.Errorf("purge completed instances: %w", err)
	}
	if a.Window.Keep <= 0 {
		return 0, nil
	}
	query := purgeDelete
	if a.Window.Archive {
		query = purgeArchive
	}
	var total int64
	for {
		var n int64
		if err := s.work.QueryRow(ctx, query, a.Name, a.Window.Keep.Microseconds(), purgeBatch).Scan(&n); err != nil {
			return total, fmt.Errorf("purge completed instances of %s in store %s: %w", a.Name, s.where, err)
		}
		total += n
		if n < purgeBatch {
			return total, nil
		}
	}
}

// CountInstances implements store.Store.
func (s *Store) CountInstances(ctx context.Context, activity string) (map[store.InstanceState]int64, error) {
	return store.CountByState(ctx, query(s.work), `SELECT state, count(*) FROM bam_instances WHERE activity = $1 GROUP BY state`, activity)
}

// InstanceActivities implements store.Store.
func (s *Store) InstanceActivities(ctx context.Context) ([]string, error) {
	rows, err := s.work.Query(ctx, store.InstanceActivitiesSQL)
	if err != nil {
		return nil, fmt.Errorf("list the activities of instances: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list the activities of instances: %w", err)
	}
	return names, nil
}
