package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/bam-dev/bam/internal/event"
)

// Rows into the store's types, written once for both drivers.
//
// A driver selects the columns in the order a scanner's doc gives (the
// fixed lists are the *Columns constants) and hands the row over as a
// RowScanner: pgx.Row, pgx.Rows, *sql.Row and *sql.Rows all are one. What
// the dialects store differently is adapted per column: an instant is a
// timestamptz in PostgreSQL and INTEGER microseconds since the Unix epoch
// in SQLite (Instant, NullInstant); a duration is computed by the query,
// in microseconds, in both; JSON arrives as bytes from jsonb and from TEXT.

// RowScanner is one row of a query's result.
type RowScanner interface {
	Scan(dest ...any) error
}

// Rows is a query's result, as pgx.Rows and *sql.Rows are.
type Rows interface {
	RowScanner
	Next() bool
	Err() error
}

// CollectRows scans every row with scan, in order. The caller closes rows.
func CollectRows[T any](rows Rows, scan func(RowScanner) (T, error)) ([]T, error) {
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// Query runs sql with args through a driver and hands its rows to fn,
// closing them after. Each driver makes one of a pool or a transaction
// (pgx or database/sql), so that a read written once here runs on either.
type Query func(ctx context.Context, fn func(Rows) error, sql string, args ...any) error

// Collect runs a query through q and scans every row with scan.
func Collect[T any](ctx context.Context, q Query, scan func(RowScanner) (T, error), sql string, args ...any) ([]T, error) {
	var out []T
	err := q(ctx, func(rows Rows) (err error) {
		out, err = CollectRows(rows, scan)
		return err
	}, sql, args...)
	return out, err
}

// Instant is a Scan destination for a stored instant, in either form a
// driver hands it over: a time.Time (PostgreSQL's timestamptz) or
// microseconds since the Unix epoch (SQLite). It sets *t in UTC; NULL is an
// error.
func Instant(t *time.Time) sql.Scanner { return instant{t: t} }

// NullInstant is Instant for a nullable column: NULL sets *t to nil.
func NullInstant(t **time.Time) sql.Scanner { return instant{null: t} }

type instant struct {
	t    *time.Time
	null **time.Time
}

func (d instant) Scan(v any) error {
	var t time.Time
	switch v := v.(type) {
	case time.Time:
		t = v.UTC()
	case int64:
		t = time.UnixMicro(v).UTC()
	case nil:
		if d.null == nil {
			return errors.New("stored time is NULL")
		}
		*d.null = nil
		return nil
	default:
		return fmt.Errorf("stored time: cannot read a %T", v)
	}
	if d.null != nil {
		*d.null = &t
	} else {
		*d.t = t
	}
	return nil
}

// micros is a Scan destination for a duration the query computes in
// microseconds.
type micros struct{ d *time.Duration }

func (m micros) Scan(v any) error {
	us, ok := v.(int64)
	if !ok {
		return fmt.Errorf("duration in microseconds: cannot read a %T", v)
	}
	*m.d = time.Duration(us) * time.Microsecond
	return nil
}

// SourceColumns are the columns ScanSource reads, from bam_sources.
const SourceColumns = `name, kind, partitions, enabled, paused, dsn, tbl, created_at,
	outbox_system_id, outbox_database_oid, outbox_database, outbox_table, outbox_stopped, floor_partitions, floor_checkpoints, outbox_key`

// ScanSource reads a source's SourceColumns.
func ScanSource(r RowScanner) (Source, error) {
	var (
		src        Source
		kind       string
		floorParts int
		floorCPs   string
		outboxKey  string
	)
	if err := r.Scan(&src.Name, &kind, &src.Partitions, &src.Enabled, &src.Paused, &src.DSN, &src.Table, Instant(&src.CreatedAt),
		&src.Outbox.SystemID, &src.Outbox.DatabaseOID, &src.Outbox.Database, &src.Outbox.Table, &src.OutboxStopped, &floorParts, &floorCPs, &outboxKey); err != nil {
		return Source{}, err
	}
	src.Kind = SourceKind(kind)
	src.Outbox = src.Outbox.WithRecordedKey(outboxKey)
	floor, err := ParseFloor(floorParts, floorCPs)
	src.Floor = floor
	return src, err
}

// ScanSession reads a session's row joined with its source's: source,
// partition, the source's kind, enabled and paused, owner (empty when
// none), epoch, the lease's remaining time in microseconds (0 when none),
// checkpoint major and minor, applied and failed counts, last error (empty
// when none), its time (NULL when none), the node that gave the
// session up lately (empty when none), whether the pool is paused, and the
// node the session is moved to (empty when none).
func ScanSession(r RowScanner) (SessionRow, error) {
	var (
		se   SessionRow
		kind string
	)
	err := r.Scan(&se.Source, &se.Partition, &kind, &se.SourceEnabled, &se.SourcePaused, &se.Owner, &se.Epoch,
		micros{&se.LeaseRemaining}, &se.Checkpoint.Major, &se.Checkpoint.Minor, &se.Applied, &se.Failed,
		&se.LastError, NullInstant(&se.LastErrorAt), &se.GivenUpBy, &se.PoolPaused, &se.MoveTo)
	se.Kind = SourceKind(kind)
	return se, err
}

// ScanNode reads a node's row: id, name, host, pid, started_at,
// heartbeat_at, the heartbeat's age in microseconds, state, lock_key,
// draining.
func ScanNode(r RowScanner) (NodeRow, error) {
	var (
		n     NodeRow
		state string
	)
	err := r.Scan(&n.ID, &n.Name, &n.Host, &n.PID, Instant(&n.StartedAt), Instant(&n.HeartbeatAt), micros{&n.HeartbeatAge},
		&state, &n.LockKey, &n.Draining)
	n.State = NodeState(state)
	return n, err
}

// ScanDepartedNode reads a departed node's row: id, name, host, pid,
// started_at, heartbeat_at, the heartbeat's age in microseconds,
// departed_at, the departure's age in microseconds, found_dead_by, why.
func ScanDepartedNode(r RowScanner) (DepartedNode, error) {
	var d DepartedNode
	err := r.Scan(&d.ID, &d.Name, &d.Host, &d.PID, Instant(&d.StartedAt), Instant(&d.HeartbeatAt), micros{&d.HeartbeatAge},
		Instant(&d.DepartedAt), micros{&d.DepartedAge}, &d.FoundDeadBy, &d.Why)
	return d, err
}

// FailedColumns are the columns ScanFailedEvent reads, from bam_failed.
const FailedColumns = `id, source, partition, pos_major, pos_minor, reason, payload, failed_at, written_at`

// ScanFailedEvent reads a failed event's FailedColumns.
func ScanFailedEvent(r RowScanner) (FailedEvent, error) {
	var (
		f       FailedEvent
		written *time.Time
	)
	err := r.Scan(&f.ID, &f.Source, &f.Partition, &f.Position.Major, &f.Position.Minor, &f.Reason, &f.Payload,
		Instant(&f.FailedAt), NullInstant(&written))
	if err != nil {
		return FailedEvent{}, err
	}
	if written != nil {
		f.WrittenAt = *written
	}
	return f, nil
}

// InstanceColumns are the columns ScanInstance reads, from bam_instances
// or bam_instances_archive.
const InstanceColumns = `activity, instance_id, state, begin_time, end_time, last_modified, events, items`

// ScanInstance reads an instance's InstanceColumns, its items decoded.
func ScanInstance(r RowScanner) (Instance, error) {
	var (
		in    Instance
		state string
		items []byte
	)
	if err := r.Scan(&in.Activity, &in.ID, &state, NullInstant(&in.Begin), NullInstant(&in.End), Instant(&in.LastModified),
		&in.Events, &items); err != nil {
		return Instance{}, err
	}
	in.State = InstanceState(state)
	var its event.Items
	if err := json.Unmarshal(items, &its); err != nil {
		return Instance{}, fmt.Errorf("items of %s/%s: %w", in.Activity, in.ID, err)
	}
	in.Data = its.Values()
	return in, nil
}

// ContinuationColumns are the columns ScanContinuation reads, from
// bam_continuations.
const ContinuationColumns = `activity, token, coalesce(instance_id, ''), coalesce(parent_instance, ''), coalesce(parent_token, ''),
	enabled_at, ended_at, last_modified, events, pending_events`

// ScanContinuation reads a continuation's ContinuationColumns.
func ScanContinuation(r RowScanner) (Continuation, error) {
	var c Continuation
	err := r.Scan(&c.Activity, &c.Token, &c.Instance, &c.ParentInstance, &c.ParentToken,
		NullInstant(&c.EnabledAt), NullInstant(&c.EndedAt), NullInstant(&c.LastModified), &c.Events, &c.Pending)
	return c, err
}

// ReferenceColumns are the columns ScanReference reads, from
// bam_references.
const ReferenceColumns = `type, name, value, data, event_time`

// ScanReference reads a reference's ReferenceColumns.
func ScanReference(r RowScanner) (Reference, error) {
	var ref Reference
	err := r.Scan(&ref.Type, &ref.Name, &ref.Value, &ref.Data, Instant(&ref.Time))
	return ref, err
}

// ScanKey reads an instance's key: activity, instance id.
func ScanKey(r RowScanner) (event.Key, error) {
	var k event.Key
	err := r.Scan(&k.Activity, &k.Instance)
	return k, err
}

// ScanDeployedActivity reads a deployed activity's row of bam_definitions:
// name, definition (JSON), version, the window's keep in microseconds (0:
// for ever), archive, archive_view.
func ScanDeployedActivity(r RowScanner) (DeployedActivity, error) {
	var (
		a   DeployedActivity
		def []byte
	)
	if err := r.Scan(&a.Name, &def, &a.Version, micros{&a.Window.Keep}, &a.Window.Archive, &a.Archived); err != nil {
		return DeployedActivity{}, err
	}
	if err := json.Unmarshal(def, &a.Activity); err != nil {
		return DeployedActivity{}, fmt.Errorf("definition of %s: %w", a.Name, err)
	}
	return a, nil
}

// DeploymentColumns are the columns ScanDeployment reads, from
// bam_deployments.
const DeploymentColumns = `version, deployed_at, deployed_by, file, changes, forced`

// ScanDeployment reads a deployment's DeploymentColumns.
func ScanDeployment(r RowScanner) (Deployment, error) {
	var (
		d       Deployment
		changes string
	)
	if err := r.Scan(&d.Version, Instant(&d.At), &d.By, &d.Text, &changes, &d.Forced); err != nil {
		return Deployment{}, err
	}
	d.Changes = SplitChanges(changes)
	return d, nil
}

// TombstoneColumns are the columns ScanTombstone reads, from
// bam_outbox_tombstones.
const TombstoneColumns = `source, partitions, checkpoints, floor_partitions, floor_checkpoints`

// ScanTombstone reads a tombstone's TombstoneColumns.
func ScanTombstone(r RowScanner) (Tombstone, error) {
	var (
		source                string
		parts, floorParts     int
		checkpoints, floorCPs string
	)
	if err := r.Scan(&source, &parts, &checkpoints, &floorParts, &floorCPs); err != nil {
		return Tombstone{}, err
	}
	return ParseTombstone(source, parts, checkpoints, floorParts, floorCPs)
}

// CollectCheckpoints reads a source's sessions, by partition: each row is
// checkpoint_major, checkpoint_minor, and whether a live lease owns the
// session. It returns the checkpoints and how many sessions are owned.
// The caller closes rows.
func CollectCheckpoints(rows Rows) (checkpoints []Position, live int, err error) {
	for rows.Next() {
		var (
			p     Position
			owned bool
		)
		if err := rows.Scan(&p.Major, &p.Minor, &owned); err != nil {
			return nil, 0, err
		}
		checkpoints = append(checkpoints, p)
		if owned {
			live++
		}
	}
	return checkpoints, live, rows.Err()
}
