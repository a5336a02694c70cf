package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/bam-dev/bam/internal/definition"
)

// DeployTx is what a driver does inside the one transaction of a
// deployment, a removal or a window change, once it holds the deploy lock.
// The flows (RunDeploy, RunRemove, RunSetWindow) are written once here so
// that both drivers decide the same way; the drivers only speak SQL.
type DeployTx interface {
	// Definitions reads the deployed activities and the version.
	Definitions(ctx context.Context) ([]DeployedActivity, int64, error)
	// ItemInUse reports whether an instance of the activity, online or
	// archived, holds the item (names as deployed).
	ItemInUse(ctx context.Context, activity, item string) (bool, error)
	// CountInstances counts an activity's instances online and archived.
	CountInstances(ctx context.Context, activity string) (online, archived int64, err error)
	// DeleteInstances deletes them all, online and archived.
	DeleteInstances(ctx context.Context, activity string) error
	// WriteActivity writes an activity's definition under version and runs
	// the driver's ViewSQL.Redeploy statements. prev is nil for a new one.
	WriteActivity(ctx context.Context, prev *DeployedActivity, a definition.Activity, version int64) error
	// DropActivity drops an activity's views and indexes and its row.
	DropActivity(ctx context.Context, a DeployedActivity) error
	// WriteWindow writes an activity's window under version, and creates
	// its <name>_archive view when w.Archive.
	WriteWindow(ctx context.Context, a DeployedActivity, w Window, version int64) error
	// Record writes a deployment and returns it with its time (the
	// store's clock).
	Record(ctx context.Context, d Deployment) (Deployment, error)
}

// RunDeploy is Store.Deploy inside a driver's transaction. A refusal or
// any error is returned for the driver to roll back; a dry run writes
// nothing.
func RunDeploy(ctx context.Context, tx DeployTx, req DeployRequest) (Deployment, error) {
	deployed, version, err := tx.Definitions(ctx)
	if err != nil {
		return Deployment{}, err
	}
	if req.Expect > 0 && version != req.Expect {
		return Deployment{}, fmt.Errorf("%w: version %d was expected, the store is at version %d", ErrDefinitionsMoved, req.Expect, version)
	}
	plan, err := PlanDeployment(deployed, req.File)
	if err != nil {
		return Deployment{}, err
	}
	dep := Deployment{Version: version, By: req.By, Changes: ChangeLines(plan), Plan: plan, Text: req.Text, DryRun: req.DryRun}
	if len(plan) == 0 {
		return dep, nil
	}
	blocking, err := Blocking(ctx, deployed, plan, tx.ItemInUse)
	if err != nil {
		return Deployment{}, err
	}
	if len(blocking) > 0 && !req.Force {
		return Deployment{}, &DeployRefusedError{Plan: plan, Blocking: blocking}
	}
	dep.Version, dep.Forced = version+1, len(blocking) > 0
	if req.DryRun {
		return dep, nil
	}
	for _, a := range Changed(req.File, plan) {
		var prev *DeployedActivity
		for i := range deployed {
			if deployed[i].Name == a.Name {
				prev = &deployed[i]
			}
		}
		if err := tx.WriteActivity(ctx, prev, a, dep.Version); err != nil {
			return Deployment{}, fmt.Errorf("activity %s: %w", a.Name, err)
		}
	}
	return tx.Record(ctx, dep)
}

// RunRemove is Store.RemoveActivity inside a driver's transaction.
func RunRemove(ctx context.Context, tx DeployTx, name, by string, dropData bool) (Deployment, error) {
	deployed, version, err := tx.Definitions(ctx)
	if err != nil {
		return Deployment{}, err
	}
	a, err := FindActivity(deployed, name)
	if err != nil {
		return Deployment{}, err
	}
	online, archived, err := tx.CountInstances(ctx, a.Name)
	if err != nil {
		return Deployment{}, fmt.Errorf("count the instances of %s: %w", a.Name, err)
	}
	dep := Deployment{Version: version + 1, By: by, Changes: []string{"remove activity " + a.Name}}
	if online+archived > 0 {
		if !dropData {
			return Deployment{}, fmt.Errorf("%w: %d online, %d archived",
				ErrInstancesExist, online, archived)
		}
		if err := tx.DeleteInstances(ctx, a.Name); err != nil {
			return Deployment{}, fmt.Errorf("delete the instances of %s: %w", a.Name, err)
		}
		dep.Changes = append(dep.Changes, fmt.Sprintf("delete %d instances of %s (%d of them archived)", online+archived, a.Name, archived))
	}
	if err := tx.DropActivity(ctx, a); err != nil {
		return Deployment{}, fmt.Errorf("drop activity %s: %w", a.Name, err)
	}
	return tx.Record(ctx, dep)
}

// RunSetWindow is Store.SetWindow inside a driver's transaction.
func RunSetWindow(ctx context.Context, tx DeployTx, activity string, w Window, by string) (Deployment, error) {
	if w.Keep < 0 {
		return Deployment{}, fmt.Errorf("window of %s: keep %s is negative", activity, w.Keep)
	}
	deployed, version, err := tx.Definitions(ctx)
	if err != nil {
		return Deployment{}, err
	}
	a, err := FindActivity(deployed, activity)
	if err != nil {
		return Deployment{}, err
	}
	dep := Deployment{Version: version + 1, By: by, Changes: []string{fmt.Sprintf("set window %s: %s", a.Name, w)}}
	if err := tx.WriteWindow(ctx, a, w, dep.Version); err != nil {
		return Deployment{}, fmt.Errorf("window of %s: %w", a.Name, err)
	}
	return tx.Record(ctx, dep)
}

// FindActivity returns the deployed activity named name in any case, or
// an error wrapping ErrNotFound.
func FindActivity(deployed []DeployedActivity, name string) (DeployedActivity, error) {
	for _, a := range deployed {
		if strings.EqualFold(a.Name, name) {
			return a, nil
		}
	}
	return DeployedActivity{}, fmt.Errorf("activity %s: %w (deploy a definition of it first)", name, ErrNotFound)
}

// ReadDefinitions reads the deployed activities, by name, and the version
// (ReadDefinitionsVersion) through q. activitiesSQL selects the columns
// ScanDeployedActivity reads from bam_definitions, ordered by lower(name),
// in the driver's dialect.
func ReadDefinitions(ctx context.Context, q Query, activitiesSQL string) ([]DeployedActivity, int64, error) {
	version, err := ReadDefinitionsVersion(ctx, q)
	if err != nil {
		return nil, 0, fmt.Errorf("read the definitions version: %w", err)
	}
	acts, err := Collect(ctx, q, ScanDeployedActivity, activitiesSQL)
	if err != nil {
		return nil, 0, fmt.Errorf("read the definitions: %w", err)
	}
	return acts, version, nil
}

// ReadDefinitionsVersion reads the version of the deployed definitions
// through q: that of the latest deployment, 0 before the first.
func ReadDefinitionsVersion(ctx context.Context, q Query) (int64, error) {
	var v int64
	err := q(ctx, func(rows Rows) error {
		if !rows.Next() {
			return cmp.Or(rows.Err(), errors.New("no row"))
		}
		return rows.Scan(&v)
	}, `SELECT coalesce(max(version), 0) FROM bam_deployments`)
	return v, err
}

// CountByState counts an activity's instances by state through q.
// countSQL selects state and count from bam_instances of the activity
// (its one argument), grouped by state, in the driver's dialect.
func CountByState(ctx context.Context, q Query, countSQL, activity string) (map[InstanceState]int64, error) {
	out := map[InstanceState]int64{}
	err := q(ctx, func(rows Rows) error {
		for rows.Next() {
			var (
				state string
				n     int64
			)
			if err := rows.Scan(&state, &n); err != nil {
				return err
			}
			out[InstanceState(state)] = n
		}
		return rows.Err()
	}, countSQL, activity)
	if err != nil {
		return nil, fmt.Errorf("count instances of %s: %w", activity, err)
	}
	return out, nil
}

// DefinitionReads answers the definition reads of Store (Definitions,
// DefinitionsVersion, Deployments) through a driver's Query. Each driver
// embeds one, filled when it opens, so that the reads and their errors are
// written once; the driver gives only its dialect's SQL.
type DefinitionReads struct {
	Query Query
	// Where names the store in errors ("store host:5432/db", a file's path).
	Where string
	// ActivitiesSQL is ReadDefinitions' activitiesSQL.
	ActivitiesSQL string
	// DeploymentsSQL selects DeploymentColumns from bam_deployments, the
	// latest first, at most $1 of them (0: all).
	DeploymentsSQL string
}

// Definitions implements Store.
func (r DefinitionReads) Definitions(ctx context.Context) ([]DeployedActivity, int64, error) {
	acts, v, err := ReadDefinitions(ctx, r.Query, r.ActivitiesSQL)
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", r.Where, err)
	}
	return acts, v, nil
}

// DefinitionsVersion implements Store.
func (r DefinitionReads) DefinitionsVersion(ctx context.Context) (int64, error) {
	v, err := ReadDefinitionsVersion(ctx, r.Query)
	if err != nil {
		return 0, fmt.Errorf("read the definitions version of %s: %w", r.Where, err)
	}
	return v, nil
}

// Deployments implements Store.
func (r DefinitionReads) Deployments(ctx context.Context, limit int) ([]Deployment, error) {
	out, err := Collect(ctx, r.Query, ScanDeployment, r.DeploymentsSQL, max(limit, 0))
	if err != nil {
		return nil, fmt.Errorf("list deployments of %s: %w", r.Where, err)
	}
	return out, nil
}

// DeployCommands runs the deployment commands of Store (Deploy,
// RemoveActivity, SetWindow) in a driver's deployment transaction. Each
// driver embeds one, filled when it opens, so that which rules a command
// runs is written once; the driver gives the transaction.
type DeployCommands struct {
	// InTx runs fn in one deployment transaction, serialized with every
	// other deployment of the store, committed if fn returns no error;
	// what names the command in errors.
	InTx func(ctx context.Context, what string, fn func(DeployTx) (Deployment, error)) (Deployment, error)
}

// Deploy implements Store.
func (c DeployCommands) Deploy(ctx context.Context, req DeployRequest) (Deployment, error) {
	return c.InTx(ctx, "deploy", func(tx DeployTx) (Deployment, error) { return RunDeploy(ctx, tx, req) })
}

// RemoveActivity implements Store.
func (c DeployCommands) RemoveActivity(ctx context.Context, name, by string, dropData bool) (Deployment, error) {
	return c.InTx(ctx, "remove activity "+name, func(tx DeployTx) (Deployment, error) { return RunRemove(ctx, tx, name, by, dropData) })
}

// SetWindow implements Store.
func (c DeployCommands) SetWindow(ctx context.Context, activity string, w Window, by string) (Deployment, error) {
	return c.InTx(ctx, "set the window of "+activity, func(tx DeployTx) (Deployment, error) { return RunSetWindow(ctx, tx, activity, w, by) })
}
