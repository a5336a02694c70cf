package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/store"
	"github.com/bam-dev/bam/internal/store/vocabulary"
)

// The statements of the vocabulary, run only for deltas that hold more than
// begin, update and end of instances, in the order package vocabulary
// gives. Times are microseconds, like everywhere in this driver.

// enableSQL writes a token's enable. A token keeps its first enabler: the
// DO UPDATE only runs when the row has none yet (the token's events came
// first) or the same one (the enable sent again, whose earliest time is
// kept). A row comes back when the enable was taken, with the instance the
// token is linked to (NULL while a parent continuation is not linked);
// none when another segment holds the token.
const enableSQL = `
	INSERT INTO bam_continuations (activity, token, parent_instance, parent_token, instance_id, enabled_at, updated_at)
	VALUES (?1, ?2, ?3, ?4, ?3, ?5, ?6)
	ON CONFLICT (activity, token) DO UPDATE SET
		parent_instance = excluded.parent_instance,
		parent_token = excluded.parent_token,
		instance_id = coalesce(bam_continuations.instance_id, excluded.instance_id),
		enabled_at = min(coalesce(bam_continuations.enabled_at, excluded.enabled_at), excluded.enabled_at),
		updated_at = excluded.updated_at
	WHERE bam_continuations.enabled_at IS NULL
	   OR (bam_continuations.parent_instance IS excluded.parent_instance
	       AND bam_continuations.parent_token IS excluded.parent_token)
	RETURNING instance_id`

// continuationSQL keeps a continuation delta's data aside under its token,
// merged with the same rules as an instance's (bam_merge_items for items).
// It returns the instance the token is linked to, if any. A row made by an
// enable has no event times yet (NULL, which SQLite's min and max return
// whenever an argument is NULL: hence the coalesce).
const continuationSQL = `
	INSERT INTO bam_continuations
		(activity, token, ended_at, first_event_at, last_modified, events, pending_events, items, updated_at)
	VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7, ?8)
	ON CONFLICT (activity, token) DO UPDATE SET
		ended_at = max(coalesce(bam_continuations.ended_at, excluded.ended_at),
		               coalesce(excluded.ended_at, bam_continuations.ended_at)),
		first_event_at = min(coalesce(bam_continuations.first_event_at, excluded.first_event_at), excluded.first_event_at),
		last_modified = max(coalesce(bam_continuations.last_modified, excluded.last_modified), excluded.last_modified),
		events = bam_continuations.events + excluded.events,
		pending_events = bam_continuations.pending_events + excluded.pending_events,
		items = ` + mergeItemsFunc + `(bam_continuations.items, excluded.items),
		updated_at = excluded.updated_at
	RETURNING instance_id`

// resolveSQL links the continuations enabled by a continuation whose own
// link is known, one level of nesting per run.
const resolveSQL = `
	UPDATE bam_continuations AS c SET instance_id = p.instance_id, updated_at = ?1
	FROM bam_continuations AS p
	WHERE c.instance_id IS NULL AND c.parent_token IS NOT NULL
	  AND p.activity = c.activity AND p.token = c.parent_token AND p.instance_id IS NOT NULL
	RETURNING activity, instance_id`

// pendingSQL reads the kept-aside data of linked continuations (only those
// linked or fed by this transaction have any); clearPendingSQL clears it
// once read.
const (
	pendingSQL = `
	SELECT activity, token, instance_id, items, pending_events, first_event_at, last_modified
	FROM bam_continuations WHERE instance_id IS NOT NULL AND pending_events > 0`
	clearPendingSQL = `
	UPDATE bam_continuations SET items = '{}', pending_events = 0
	WHERE instance_id IS NOT NULL AND pending_events > 0`
)

// recountSQL sets an instance's count of open continuations and the state
// that follows from it: completed only with begin, end and none open; a
// completed instance goes back to active when a continuation opens.
const recountSQL = `
	UPDATE bam_instances SET (open_continuations, state) = (
		SELECT n, CASE WHEN bam_instances.begin_time IS NULL THEN 'pending'
		               WHEN bam_instances.end_time IS NULL OR n > 0 THEN 'active'
		               ELSE 'completed' END
		FROM (SELECT count(*) AS n FROM bam_continuations AS c
		      WHERE c.activity = ?1 AND c.instance_id = ?2
		        AND c.enabled_at IS NOT NULL AND c.ended_at IS NULL))
	WHERE activity = ?1 AND instance_id = ?2`

const relationSQL = `
	INSERT INTO bam_relations (activity, instance_id, related_activity, related_instance)
	VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING`

// referenceSQL keeps, per key, the data of the latest event time; a tie
// goes to the one applied last.
const referenceSQL = `
	INSERT INTO bam_references (activity, instance_id, type, name, value, data, event_time, updated_at)
	VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
	ON CONFLICT (activity, instance_id, type, name, value) DO UPDATE SET
		data = excluded.data, event_time = excluded.event_time, updated_at = excluded.updated_at
	WHERE excluded.event_time >= bam_references.event_time`

// writeDeltas merges deltas into the store in tx with every rule of package
// event: the usual upsert alone when the deltas hold only begin, update and
// end of instances, else the whole vocabulary (package vocabulary gives the
// order). now is the store's clock for updated_at. It returns the enables
// refused because another segment holds their token, as failed events at
// place, for the caller to quarantine in tx.
func writeDeltas(ctx context.Context, tx *sql.Tx, deltas []event.Delta, now int64, place vocabulary.Place) ([]store.Failure, error) {
	if !vocabulary.Has(deltas) {
		rows, err := upsertRows(deltas)
		if err == nil {
			err = upsert(ctx, tx, rows, now)
		}
		if err != nil {
			return nil, fmt.Errorf("merge %d instances: %w", len(rows), err)
		}
		return nil, nil
	}
	p := vocabulary.Split(deltas)
	touched := vocabulary.Keys{}
	if err := writeEnables(ctx, tx, p, now, touched); err != nil {
		return nil, err
	}
	conts := p.Continuations()
	if err := keepAside(ctx, tx, conts, now, touched); err != nil {
		return nil, err
	}
	if err := resolve(ctx, tx, now, touched); err != nil {
		return nil, err
	}
	folds, err := fold(ctx, tx, touched)
	if err != nil {
		return nil, err
	}
	rows, err := upsertRows(append(p.Instances(), folds...))
	if err == nil {
		err = upsert(ctx, tx, rows, now)
	}
	if err != nil {
		return nil, fmt.Errorf("merge %d instances: %w", len(rows), err)
	}
	if err := execEach(ctx, tx, relationSQL, p.Relations, func(r vocabulary.Relation) []any {
		return []any{r.From.Activity, r.From.Instance, r.To.Activity, r.To.Instance}
	}); err != nil {
		return nil, fmt.Errorf("relate instances: %w", err)
	}
	if err := execEach(ctx, tx, referenceSQL, p.References, func(r vocabulary.Reference) []any {
		return []any{r.Activity, r.Instance, r.Type, r.Name, r.Value, r.Data, r.Time, now}
	}); err != nil {
		return nil, fmt.Errorf("add references: %w", err)
	}
	if err := execEach(ctx, tx, recountSQL, touched.Sorted(), func(k event.Key) []any {
		return []any{k.Activity, k.Instance}
	}); err != nil {
		return nil, fmt.Errorf("count open continuations: %w", err)
	}
	return p.Failures(place), nil
}

// writeEnables writes the plan's enables and rejects those whose token
// another segment holds.
func writeEnables(ctx context.Context, tx *sql.Tx, p *vocabulary.Plan, now int64, touched vocabulary.Keys) error {
	if len(p.Enables) == 0 {
		return nil
	}
	stmt, err := tx.PrepareContext(ctx, enableSQL)
	if err != nil {
		return fmt.Errorf("enable continuations: %w", err)
	}
	defer stmt.Close()
	for _, e := range p.Enables {
		var linked sql.NullString
		err := stmt.QueryRowContext(ctx, e.Activity, e.Token, nullString(e.ParentInstance), nullString(e.ParentToken),
			e.Time.UnixMicro(), now).Scan(&linked)
		if errors.Is(err, sql.ErrNoRows) {
			var keptInstance, keptToken sql.NullString
			err = tx.QueryRowContext(ctx, `SELECT parent_instance, parent_token FROM bam_continuations WHERE activity = ? AND token = ?`,
				e.Activity, e.Token).Scan(&keptInstance, &keptToken)
			if err == nil {
				p.Reject(e, keptInstance.String, keptToken.String)
				continue
			}
		}
		if err != nil {
			return fmt.Errorf("enable continuation %q of %s: %w", e.Token, e.Activity, err)
		}
		touched.Add(event.Key{Activity: e.Activity, Instance: linked.String})
	}
	return nil
}

// keepAside writes continuation deltas under their token.
func keepAside(ctx context.Context, tx *sql.Tx, conts []event.Delta, now int64, touched vocabulary.Keys) error {
	if len(conts) == 0 {
		return nil
	}
	rows, err := upsertRows(conts)
	if err != nil {
		return err
	}
	stmt, err := tx.PrepareContext(ctx, continuationSQL)
	if err != nil {
		return fmt.Errorf("keep continuations aside: %w", err)
	}
	defer stmt.Close()
	for _, r := range rows {
		var linked sql.NullString
		if err := stmt.QueryRowContext(ctx, r.activity, r.instance, r.end, r.first, r.lastModified, r.events, r.items, now).Scan(&linked); err != nil {
			return fmt.Errorf("continuation %q of %s: %w", r.instance, r.activity, err)
		}
		touched.Add(event.Key{Activity: r.activity, Instance: linked.String})
	}
	return nil
}

// resolve links nested continuations until no row changes; chains are
// short, and a cycle of tokens without an instance changes nothing.
func resolve(ctx context.Context, tx *sql.Tx, now int64, touched vocabulary.Keys) error {
	for {
		keys, err := queryKeys(ctx, tx, resolveSQL, now)
		if err != nil {
			return fmt.Errorf("link nested continuations: %w", err)
		}
		if len(keys) == 0 {
			return nil
		}
		for _, k := range keys {
			touched.Add(k)
		}
	}
}

func queryKeys(ctx context.Context, q querier, query string, args ...any) ([]event.Key, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return store.CollectRows(rows, store.ScanKey)
}

// fold takes the kept-aside data of linked continuations out of them and
// returns it as deltas of their instances.
func fold(ctx context.Context, tx *sql.Tx, touched vocabulary.Keys) ([]event.Delta, error) {
	rows, err := tx.QueryContext(ctx, pendingSQL)
	if err != nil {
		return nil, fmt.Errorf("read kept-aside continuation events: %w", err)
	}
	var pending []vocabulary.Pending
	for rows.Next() {
		var (
			pd          vocabulary.Pending
			items       []byte
			first, last sql.NullInt64
		)
		if err := rows.Scan(&pd.Instance.Activity, &pd.Token, &pd.Instance.Instance, &items, &pd.Events, &first, &last); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read kept-aside continuation events: %w", err)
		}
		if err := json.Unmarshal(items, &pd.Items); err != nil {
			rows.Close()
			return nil, fmt.Errorf("items of continuation %q of %s: %w", pd.Token, pd.Instance.Activity, err)
		}
		if first.Valid {
			pd.First = micros(first.Int64)
		}
		if last.Valid {
			pd.Last = micros(last.Int64)
		}
		pending = append(pending, pd)
		touched.Add(pd.Instance)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, fmt.Errorf("read kept-aside continuation events: %w", err)
	}
	if len(pending) == 0 {
		return nil, nil
	}
	if _, err := tx.ExecContext(ctx, clearPendingSQL); err != nil {
		return nil, fmt.Errorf("clear folded continuation events: %w", err)
	}
	return vocabulary.Fold(pending), nil
}

// execEach runs one prepared statement per item, with args from it.
func execEach[T any](ctx context.Context, tx *sql.Tx, query string, items []T, args func(T) []any) error {
	if len(items) == 0 {
		return nil
	}
	stmt, err := tx.PrepareContext(ctx, query)
	if err != nil {
		return err
	}
	defer stmt.Close()
	for _, it := range items {
		if _, err := stmt.ExecContext(ctx, args(it)...); err != nil {
			return err
		}
	}
	return nil
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// WriteEvents applies events inside the caller's transaction, without
// fence or checkpoint: the direct write of an application that holds the
// store's file (SQLite has one writer: begin tx IMMEDIATE, as this
// driver's connections do). The events are checked first; the first
// invalid one refuses the whole call with an *event.Error whose Field names
// it ("events[3].data.Amount"), and nothing is written. Otherwise they
// merge with exactly Apply's code and rules. An enable-continuation whose
// token another segment holds is quarantined in bam_failed in tx, under
// source store.DirectSource, and the rest is applied.
//
// tx must come from a database on a store at this binary's schema
// version, opened with this driver's settings (WAL, busy timeout, foreign
// keys). The merge of items calls bam_merge_items, a Go function that Open
// registers with the SQLite driver for the connections opened after it: open
// the store with Open before opening the database tx comes from.
func WriteEvents(ctx context.Context, tx *sql.Tx, events []event.Event) error {
	if err := vocabulary.Validate(events); err != nil {
		return err
	}
	if len(events) == 0 {
		return nil
	}
	if err := registerFunctions(); err != nil {
		return fmt.Errorf("write events: %w", err)
	}
	var now int64
	if err := tx.QueryRowContext(ctx, `SELECT `+nowSQL).Scan(&now); err != nil {
		return fmt.Errorf("write events: %w", err)
	}
	failures, err := writeDeltas(ctx, tx, event.Coalesce(events), now, vocabulary.Direct)
	if err == nil {
		err = quarantine(ctx, tx, failures)
	}
	if err != nil {
		return fmt.Errorf("write %d events: %w", len(events), err)
	}
	return nil
}

// quarantine inserts failures in tx.
func quarantine(ctx context.Context, tx *sql.Tx, failures []store.Failure) error {
	if len(failures) == 0 {
		return nil
	}
	js, err := failuresJSON(failures)
	if err == nil {
		_, err = tx.ExecContext(ctx, insertFailures, js)
	}
	if err != nil {
		return fmt.Errorf("quarantine %d events: %w", len(failures), err)
	}
	return nil
}
