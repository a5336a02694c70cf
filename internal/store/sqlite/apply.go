package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/planted"
	"github.com/bam-dev/bam/internal/store"
	"github.com/bam-dev/bam/internal/store/vocabulary"
)

// mergeItemsFunc is the SQL name of mergeItems.
const mergeItemsFunc = "bam_merge_items"

// mergeItems is bam_merge_items(stored, incoming): event.Merge run inside
// SQLite, so that the upsert merges items with exactly the rule PostgreSQL
// and the tests use (per item the latest event time wins, the incoming
// value on a tie) without a read-modify-write round trip. The result is
// written like the incoming items (event.Items.AppendJSON): values keep their text.
func mergeItems(_ *sqlite.FunctionContext, args []driver.Value) (driver.Value, error) {
	var items [2]event.Items
	for i, arg := range args {
		text, err := jsonArg(arg)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", mergeItemsFunc, err)
		}
		if len(text) == 0 {
			continue
		}
		if err := json.Unmarshal(text, &items[i]); err != nil {
			return nil, fmt.Errorf("%s: %w", mergeItemsFunc, err)
		}
	}
	out, err := event.Merge(items[0], items[1]).AppendJSON(nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", mergeItemsFunc, err)
	}
	return string(out), nil
}

// storedTimesFunc is the SQL name of storedTimes.
const storedTimesFunc = "bam_stored_times"

// storedTimes is bam_stored_times(items): the items with every time value
// in its stored form (event.StoredTimes), or NULL when none changes. The
// migration that gave times one form (0010_stored_times.sql) rewrites the
// items written before it with it, by the same rule as new writes.
func storedTimes(_ *sqlite.FunctionContext, args []driver.Value) (driver.Value, error) {
	text, err := jsonArg(args[0])
	if err != nil {
		return nil, fmt.Errorf("%s: %w", storedTimesFunc, err)
	}
	if len(text) == 0 {
		return nil, nil
	}
	var items event.Items
	if err := json.Unmarshal(text, &items); err != nil {
		return nil, fmt.Errorf("%s: %w", storedTimesFunc, err)
	}
	items, changed := event.StoredTimes(items)
	if !changed {
		return nil, nil
	}
	out, err := items.AppendJSON(nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", storedTimesFunc, err)
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
		return nil, fmt.Errorf("want JSON text, got %T", v)
	}
}

// upsertInstance merges one delta into its instance, with the rules of
// package event: earliest begin, latest end, latest last-modified, the
// state derived from the merged begin and end, and per item the value of
// the latest event (the incoming one on a tie). In DO UPDATE,
// bam_instances.* is the row before the update, excluded.* the delta.
//
// Items take a fast path in the usual case, when the delta's earliest event
// (first_event_at) is not older than the instance's last change: every
// stored item's time is at most the stored last_modified, so every incoming
// item wins, ties included, and json_patch (RFC 7396) gives exactly
// event.Merge's result. It replaces each incoming item's {"v","t"} object
// key by key, and a delta never carries a null, which would delete a key.
// SQLite keeps the text of numbers and strings as written. Otherwise,
// bam_merge_items compares item times one by one; so does a delta without
// a first event time (NULL). The test needs nothing else: an instance
// written before version 2 has no first_event_at (NULL, unknown, and it
// stays so: min() of a NULL is NULL) but merges on either path.
//
// One execution per delta, with bound parameters: an INSERT ... SELECT
// FROM json_each(...) of the whole batch spent a third of its time turning
// JSON into columns, and as a multi-row statement it kept a statement
// journal of every page it touched.
const upsertInstance = upsertValues + `
		begin_time = min(coalesce(bam_instances.begin_time, excluded.begin_time),
		                 coalesce(excluded.begin_time, bam_instances.begin_time)),
		end_time = max(coalesce(bam_instances.end_time, excluded.end_time),
		               coalesce(excluded.end_time, bam_instances.end_time)),
		state = CASE WHEN coalesce(bam_instances.begin_time, excluded.begin_time) IS NULL THEN 'pending'
		             WHEN coalesce(bam_instances.end_time, excluded.end_time) IS NULL
		                  OR bam_instances.open_continuations > 0 THEN 'active'
		             ELSE 'completed' END,` + upsertCommon

// upsertUpdate is upsertInstance for a delta without begin or end (most
// deltas: the updates in between). It leaves begin_time, end_time and state
// out of DO UPDATE, where they would keep their values anyway, so that
// SQLite does not rewrite the instance's entry in bam_instances_state.
// (open_continuations, which state also depends on, changes only in the
// statements of the vocabulary, which set state themselves: recountSQL.)
const upsertUpdate = upsertValues + upsertCommon

const upsertValues = `
	INSERT INTO bam_instances
		(activity, instance_id, state, begin_time, end_time, first_event_at, last_modified, items, events, updated_at)
	VALUES (?1, ?2,
	        CASE WHEN ?3 IS NULL THEN 'pending' WHEN ?4 IS NULL THEN 'active' ELSE 'completed' END,
	        ?3, ?4, ?5, ?6, ?7, ?8, ?9)
	ON CONFLICT (activity, instance_id) DO UPDATE SET`

const upsertCommon = `
		first_event_at = min(bam_instances.first_event_at, excluded.first_event_at),
		last_modified = max(bam_instances.last_modified, excluded.last_modified),
		items = CASE WHEN bam_instances.last_modified <= excluded.first_event_at
		             THEN json_patch(bam_instances.items, excluded.items)
		             ELSE ` + mergeItemsFunc + `(bam_instances.items, excluded.items) END,
		events = bam_instances.events + excluded.events,
		updated_at = excluded.updated_at`

// upsertRow is one event.Delta as upsertInstance binds it: times in
// microseconds (nil for none), items as JSON text. Text, not []byte: SQLite
// reads a BLOB given to a JSON function as its binary JSONB form.
type upsertRow struct {
	activity, instance string
	begin, end, first  any // int64 or nil
	lastModified       int64
	items              string
	data               event.Items // the delta's items, as upsertRows found them
	events             int
}

// upsertRows turns deltas into rows, outside any transaction, ordered by
// instance key so that the upserts walk the table's B-tree in order (a
// stable sort: two deltas of one instance keep their order).
func upsertRows(deltas []event.Delta) ([]upsertRow, error) {
	rows := make([]upsertRow, len(deltas))
	var buf []byte
	for i, d := range deltas {
		var err error
		if buf, err = d.Items.AppendJSON(buf[:0]); err != nil {
			return nil, fmt.Errorf("instance %s/%s: %w", d.Activity, d.Instance, err)
		}
		rows[i] = upsertRow{
			activity: d.Activity, instance: d.Instance,
			begin: microsArg(d.Begin), end: microsArg(d.End),
			lastModified: d.LastModified.UnixMicro(),
			items:        string(buf),
			data:         d.Items,
			events:       d.Events,
		}
		if !d.First.IsZero() {
			rows[i].first = d.First.UnixMicro()
		}
	}
	slices.SortStableFunc(rows, func(a, b upsertRow) int {
		return cmp.Or(strings.Compare(a.activity, b.activity), strings.Compare(a.instance, b.instance))
	})
	return rows, nil
}

func microsArg(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UnixMicro()
}

// upsertStmts are upsertInstance and upsertUpdate prepared once for the
// store: preparing them compiles the triggers on bam_instances into them
// (an aggregation's are long), which each batch would pay again. SQLite
// prepares them again by itself after a deployment changes the schema.
type upsertStmts struct {
	mu           sync.Mutex
	full, update *sql.Stmt
}

// get returns the prepared statements, preparing them on first use.
func (u *upsertStmts) get(ctx context.Context, db *sql.DB) (full, update *sql.Stmt, err error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.full == nil {
		if u.full, err = db.PrepareContext(ctx, upsertInstance); err != nil {
			return nil, nil, err
		}
	}
	if u.update == nil {
		if u.update, err = db.PrepareContext(ctx, upsertUpdate); err != nil {
			return nil, nil, err
		}
	}
	return u.full, u.update, nil
}

// close closes the prepared statements.
func (u *upsertStmts) close() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	var errs []error
	for _, stmt := range []*sql.Stmt{u.full, u.update} {
		if stmt != nil {
			errs = append(errs, stmt.Close())
		}
	}
	u.full, u.update = nil, nil
	return errors.Join(errs...)
}

// upsert runs upsertUpdate or upsertInstance for each row, in tx; now is
// the store's clock for updated_at. Apply's batches use the store's
// prepared statements (upsertPrepared); the other writers, rarer, prepare
// their own.
func upsert(ctx context.Context, tx *sql.Tx, rows []upsertRow, now int64) error {
	full, err := tx.PrepareContext(ctx, upsertInstance)
	if err != nil {
		return err
	}
	defer full.Close()
	update, err := tx.PrepareContext(ctx, upsertUpdate)
	if err != nil {
		return err
	}
	defer update.Close()
	return upsertWith(ctx, full, update, rows, now)
}

// upsertPrepared is upsert with the store's prepared statements
// (upsertStmts.get, called before tx began: preparing takes a connection
// of the batch pool, whose one connection tx holds).
func upsertPrepared(ctx context.Context, tx *sql.Tx, full, update *sql.Stmt, rows []upsertRow, now int64) error {
	full, update = tx.StmtContext(ctx, full), tx.StmtContext(ctx, update)
	defer full.Close()
	defer update.Close()
	return upsertWith(ctx, full, update, rows, now)
}

// upsertWith runs update for each row without begin and end, full for
// the others.
func upsertWith(ctx context.Context, full, update *sql.Stmt, rows []upsertRow, now int64) error {
	for _, r := range rows {
		stmt := full
		if r.begin == nil && r.end == nil {
			stmt = update
		}
		_, err := stmt.ExecContext(ctx, r.activity, r.instance, r.begin, r.end, r.first, r.lastModified, r.items, r.events, now)
		if err != nil {
			return fmt.Errorf("instance %s/%s: %w", r.activity, r.instance, err)
		}
	}
	return nil
}

// insertFailures quarantines the failures in ?1 (a JSON array of
// failureRow; payloads in hex, as JSON cannot carry bytes) in one statement.
const insertFailures = `
	INSERT INTO bam_failed (source, partition, pos_major, pos_minor, reason, payload, failed_at, written_at)
	SELECT f.value ->> 's', f.value ->> 'p', f.value ->> 'ma', f.value ->> 'mi', f.value ->> 'r',
	       coalesce(unhex(f.value ->> 'x'), X''), ` + nowSQL + `, f.value ->> 'w'
	FROM json_each(?1) AS f`

type failureRow struct {
	Source    string `json:"s"`
	Partition int    `json:"p"`
	Major     int64  `json:"ma"`
	Minor     int64  `json:"mi"`
	Reason    string `json:"r"`
	Payload   string `json:"x"`
	Written   *int64 `json:"w"` // microseconds; nil when not known
}

func failuresJSON(failures []store.Failure) ([]byte, error) {
	rows := make([]failureRow, len(failures))
	for i, f := range failures {
		rows[i] = failureRow{
			Source: f.Source, Partition: f.Partition,
			Major: f.Position.Major, Minor: f.Position.Minor,
			Reason: f.Reason, Payload: hex.EncodeToString(f.Payload),
		}
		if !f.WrittenAt.IsZero() {
			us := f.WrittenAt.UnixMicro()
			rows[i].Written = &us
		}
	}
	return json.Marshal(rows)
}

// fenceGuard is the heart of the fence; a build with the planted bug
// (package planted) keeps only references to the parameters.
var fenceGuard = func() string {
	if planted.SkipFence {
		return `?7 IS NOT NULL AND ?8 IS NOT NULL AND ?9 IS NOT NULL AND ?10 IS NOT NULL`
	}
	return `owner = ?7 AND epoch = ?8 AND checkpoint_major = ?9 AND checkpoint_minor = ?10`
}()

// Apply implements store.Store (DESIGN.md, promises 1 and 2). The fence
// comes first, inside the transaction: one UPDATE that moves the checkpoint
// only if the node still owns the session under the batch's epoch and the
// checkpoint is still where the batch starts. If it touched no row nothing
// else runs. Then the buffer records the batch covers are deleted (see
// TrimBuffer), one upsert runs per delta (its aggregations kept in one fold
// around them: startFold) and one insert for all failures.
// BEGIN IMMEDIATE holds the write lock from the fence to the commit, so no
// claim can slip in between; everything that can be done before (encoding,
// sorting) is done before, to hold it briefly.
func (s *Store) Apply(ctx context.Context, b store.Batch) error {
	var (
		rows     []upsertRow
		failures []byte
		err      error
	)
	// A batch with the vocabulary beyond begin/update/end runs more
	// statements (writeDeltas), which read as they go; the usual batch is
	// prepared here, outside the write lock.
	vocab := vocabulary.Has(b.Deltas)
	var full, update *sql.Stmt
	if !vocab {
		if rows, err = upsertRows(b.Deltas); err != nil {
			return fmt.Errorf("apply batch to session %s/%d: %w", b.Source, b.Partition, err)
		}
		if full, update, err = s.upserts.get(ctx, s.batch); err != nil {
			return fmt.Errorf("apply batch to session %s/%d: %w", b.Source, b.Partition, err)
		}
	}
	if len(b.Failures) > 0 {
		if failures, err = failuresJSON(b.Failures); err != nil {
			return fmt.Errorf("apply batch to session %s/%d: %w", b.Source, b.Partition, err)
		}
	}
	err = s.writeOn(ctx, s.batch, work, func(tx *sql.Tx) error {
		// RETURNING the store's clock: one reading for the batch's
		// updated_at, and no row at all when fenced.
		var now int64
		err := tx.QueryRowContext(ctx, `
			UPDATE bam_sessions
			SET checkpoint_major = ?1, checkpoint_minor = ?2,
			    applied_count = applied_count + ?3, failed_count = failed_count + ?4,
			    last_error = NULL, last_error_at = NULL,
			    applied_by_activity = CASE WHEN ?11 = '{}' THEN applied_by_activity ELSE (
			        SELECT json_group_object(key, n) FROM (
			            SELECT key, sum(value) AS n
			            FROM (SELECT key, value FROM json_each(bam_sessions.applied_by_activity) UNION ALL SELECT key, value FROM json_each(?11))
			            GROUP BY key)) END
			WHERE source = ?5 AND partition = ?6 AND `+fenceGuard+`
			RETURNING `+nowSQL,
			b.Checkpoint.Major, b.Checkpoint.Minor, b.Applied, len(b.Failures),
			b.Source, b.Partition, b.Node, b.Epoch, b.From.Major, b.From.Minor, store.EventsByActivity(b.Deltas)).Scan(&now)
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrFenced
		}
		if err != nil {
			return fmt.Errorf("fence: %w", err)
		}
		// The buffer records the batch covers are consumed: delete them
		// here rather than in TrimBuffer's own transaction, which cost a
		// second commit (and fsync) per batch. Other kinds of source have
		// no rows in bam_buffer.
		if _, err := tx.ExecContext(ctx, trimBuffer, b.Source, b.Partition, b.Checkpoint.Minor); err != nil {
			return fmt.Errorf("trim buffer: %w", err)
		}
		if !vocab {
			// The batch keeps its aggregations in one fold around its
			// upserts, not instance by instance (batchfold.go).
			fold, err := s.startFold(ctx, tx, rows)
			if err != nil {
				return err
			}
			if err := upsertPrepared(ctx, tx, full, update, rows, now); err != nil {
				return fmt.Errorf("merge %d instances: %w", len(rows), err)
			}
			if fold != nil {
				if err := fold.finish(ctx, tx); err != nil {
					return err
				}
			}
		} else if err := applyVocabulary(ctx, tx, b, now); err != nil {
			return err
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
			b.Source, b.Partition, b.Node, b.Epoch, classify(err))
	}
	return nil
}

// classify wraps SQLite's refusals of a value in a
// *store.DataRefusedError: SQLITE_TOOBIG (a text or blob over the length
// limit) and SQLITE_MISMATCH (a value of the wrong type where SQLite
// insists on one). SQLite has no other data errors: it stores JSON text
// and numbers as given, so what PostgreSQL refuses as data (SQLSTATE
// class 22) it takes, and event.Validate refuses it for both stores
// before. Every other error passes unchanged; SQLITE_BUSY and I/O errors
// may not happen again.
func classify(err error) error {
	var sqliteErr *sqlite.Error
	if !errors.As(err, &sqliteErr) {
		return err
	}
	switch code := sqliteErr.Code(); code & 0xff {
	case sqlite3.SQLITE_TOOBIG, sqlite3.SQLITE_MISMATCH:
		return &store.DataRefusedError{Reason: fmt.Sprintf("%s (SQLite result code %d)", sqliteErr.Error(), code), Err: err}
	}
	return err
}

// applyVocabulary merges a batch's deltas that hold more than begin, update
// and end (writeDeltas) and quarantines the enables refused for a token
// another segment holds, at the batch's checkpoint; the session counts them
// as failed, not applied.
func applyVocabulary(ctx context.Context, tx *sql.Tx, b store.Batch, now int64) error {
	refused, err := writeDeltas(ctx, tx, b.Deltas, now, vocabulary.Place{SessionID: b.SessionID, Position: b.Checkpoint})
	if err != nil || len(refused) == 0 {
		return err
	}
	if err := quarantine(ctx, tx, refused); err != nil {
		return err
	}
	// The fence counted them as applied, in all and by activity.
	_, err = tx.ExecContext(ctx, `
		UPDATE bam_sessions SET applied_count = applied_count - ?1, failed_count = failed_count + ?1,
		    applied_by_activity = (
		        SELECT json_group_object(key, n) FROM (
		            SELECT key, sum(value) AS n
		            FROM (SELECT key, value FROM json_each(bam_sessions.applied_by_activity) UNION ALL SELECT key, value FROM json_each(?4))
		            GROUP BY key HAVING sum(value) <> 0))
		WHERE source = ?2 AND partition = ?3`, len(refused), b.Source, b.Partition, store.RefusedByActivity(refused))
	if err != nil {
		return fmt.Errorf("count refused enables: %w", err)
	}
	return nil
}
