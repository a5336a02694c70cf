package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/store"
	"github.com/bam-dev/bam/internal/store/vocabulary"
)

// Tx is what WriteEvents needs of the caller's transaction: pgx.Tx has it,
// and so do a pgx.Conn or a pool when the caller runs its own BEGIN.
type Tx interface {
	Exec(ctx context.Context, sql string, arguments ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

var _ Tx = pgx.Tx(nil)

// The statements of the vocabulary, run only for deltas that hold more than
// begin, update and end of instances, in the order package vocabulary
// gives. Each takes every row of the batch at once (unnest of arrays, one
// row per key, sorted so that concurrent batches lock rows in one order).

// lockSQL locks the rows of every continuation a batch writes, in one
// order (sorted), making those that do not exist yet. Without it, two
// batches that each enable a token whose events the other carries lock the
// two rows in opposite orders (enables, then continuation deltas) and
// deadlock; the server then aborts one, and its session waits out a retry.
const lockSQL = `
	INSERT INTO bam_continuations AS c (activity, token)
	SELECT * FROM unnest($1::text[], $2::text[])
	ON CONFLICT (activity, token) DO UPDATE SET updated_at = now()`

// unlockEmptySQL deletes the rows lockSQL made that nothing was written to.
const unlockEmptySQL = `
	DELETE FROM bam_continuations AS c
	USING unnest($1::text[], $2::text[]) AS k (activity, token)
	WHERE c.activity = k.activity AND c.token = k.token
	  AND c.enabled_at IS NULL AND c.events = 0 AND c.pending_events = 0`

// enableSQL writes enables. A token keeps its first enabler: the DO
// UPDATE only runs when the row has none yet (the token's events came
// first) or the same one (the enable sent again, whose earliest time is
// kept). A row comes back for each enable taken, with the instance the
// token is linked to (NULL while a parent continuation is not linked); none
// for a token another segment holds.
const enableSQL = `
	INSERT INTO bam_continuations AS c (activity, token, parent_instance, parent_token, instance_id, enabled_at)
	SELECT e.activity, e.token, e.parent_instance, e.parent_token, e.parent_instance, e.enabled_at
	FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[])
	     AS e (activity, token, parent_instance, parent_token, enabled_at)
	ON CONFLICT (activity, token) DO UPDATE SET
		parent_instance = EXCLUDED.parent_instance,
		parent_token = EXCLUDED.parent_token,
		instance_id = coalesce(c.instance_id, EXCLUDED.instance_id),
		enabled_at = LEAST(c.enabled_at, EXCLUDED.enabled_at),
		updated_at = now()
	WHERE c.enabled_at IS NULL
	   OR (c.parent_instance IS NOT DISTINCT FROM EXCLUDED.parent_instance
	       AND c.parent_token IS NOT DISTINCT FROM EXCLUDED.parent_token)
	RETURNING c.activity, c.token, coalesce(c.instance_id, '')`

// enablersSQL reads who holds the tokens whose enable was refused.
const enablersSQL = `
	SELECT c.activity, c.token, coalesce(c.parent_instance, ''), coalesce(c.parent_token, '')
	FROM bam_continuations AS c
	JOIN unnest($1::text[], $2::text[]) AS k (activity, token) USING (activity, token)`

// continuationSQL keeps continuation deltas aside under their token,
// merged with the same rules as an instance's. It returns the instance
// each token is linked to, if any.
const continuationSQL = `
	INSERT INTO bam_continuations AS c
		(activity, token, ended_at, first_event_at, last_modified, events, pending_events, items)
	SELECT d.activity, d.token, d.ended_at, d.first_event_at, d.last_modified, d.events, d.events, d.items
	FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::timestamptz[], $5::timestamptz[], $6::bigint[], $7::jsonb[])
	     AS d (activity, token, ended_at, first_event_at, last_modified, events, items)
	ON CONFLICT (activity, token) DO UPDATE SET
		ended_at = GREATEST(c.ended_at, EXCLUDED.ended_at),
		first_event_at = LEAST(c.first_event_at, EXCLUDED.first_event_at),
		last_modified = GREATEST(c.last_modified, EXCLUDED.last_modified),
		events = c.events + EXCLUDED.events,
		pending_events = c.pending_events + EXCLUDED.pending_events,
		items = bam_merge_items(c.items, EXCLUDED.items),
		updated_at = now()
	RETURNING c.activity, coalesce(c.instance_id, '')`

// resolveSQL links the continuations enabled by a continuation whose own
// link is known, one level of nesting per run.
const resolveSQL = `
	UPDATE bam_continuations AS c SET instance_id = p.instance_id, updated_at = now()
	FROM bam_continuations AS p
	WHERE c.instance_id IS NULL AND c.parent_token IS NOT NULL
	  AND p.activity = c.activity AND p.token = c.parent_token AND p.instance_id IS NOT NULL
	RETURNING c.activity, c.instance_id`

// foldSQL takes the kept-aside data out of linked continuations (only those
// linked or fed by this transaction have any) and returns it. FOR UPDATE
// reads the newest version of a row that a concurrent batch has just fed,
// so that no event is cleared without being returned.
const foldSQL = `
	WITH old AS (
		SELECT activity, token, instance_id, items, pending_events, first_event_at, last_modified
		FROM bam_continuations
		WHERE instance_id IS NOT NULL AND pending_events > 0
		ORDER BY activity, token
		FOR UPDATE
	)
	UPDATE bam_continuations AS c SET items = '{}', pending_events = 0
	FROM old
	WHERE c.activity = old.activity AND c.token = old.token
	RETURNING old.activity, old.token, old.instance_id, old.items, old.pending_events, old.first_event_at, old.last_modified`

// recountSQL sets the instances' counts of open continuations and the
// state that follows: completed only with begin, end and none open; a
// completed instance goes back to active when a continuation opens.
const recountSQL = `
	UPDATE bam_instances AS i SET
		open_continuations = k.n,
		state = CASE WHEN i.begin_time IS NULL THEN 'pending'
		             WHEN i.end_time IS NULL OR k.n > 0 THEN 'active'
		             ELSE 'completed' END
	FROM (SELECT u.activity, u.instance_id,
	             (SELECT count(*) FROM bam_continuations AS c
	              WHERE c.activity = u.activity AND c.instance_id = u.instance_id
	                AND c.enabled_at IS NOT NULL AND c.ended_at IS NULL) AS n
	      FROM unnest($1::text[], $2::text[]) AS u (activity, instance_id)) AS k
	WHERE i.activity = k.activity AND i.instance_id = k.instance_id`

const relationSQL = `
	INSERT INTO bam_relations (activity, instance_id, related_activity, related_instance)
	SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])
	ON CONFLICT DO NOTHING`

// referenceSQL keeps, per key, the data of the latest event time; a tie
// goes to the one applied last.
const referenceSQL = `
	INSERT INTO bam_references AS r (activity, instance_id, type, name, value, data, event_time)
	SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::timestamptz[])
	ON CONFLICT (activity, instance_id, type, name, value) DO UPDATE SET
		data = EXCLUDED.data, event_time = EXCLUDED.event_time, updated_at = now()
	WHERE EXCLUDED.event_time >= r.event_time`

// writeDeltas merges deltas into the store in tx with every rule of package
// event: the usual upsert alone when the deltas hold only begin, update and
// end of instances, else the whole vocabulary (package vocabulary gives the
// order). It returns the enables refused because another segment holds
// their token, as failed events at place, for the caller to quarantine in
// tx.
func writeDeltas(ctx context.Context, tx Tx, deltas []event.Delta, place vocabulary.Place) ([]store.Failure, error) {
	if !vocabulary.Has(deltas) {
		return nil, upsertInstances(ctx, tx, deltas)
	}
	p := vocabulary.Split(deltas)
	touched := vocabulary.Keys{}
	activity, token := keyArrays(p.Tokens())
	if len(token) > 0 {
		if _, err := tx.Exec(ctx, lockSQL, activity, token); err != nil {
			return nil, fmt.Errorf("lock continuations: %w", err)
		}
	}
	if err := writeEnables(ctx, tx, p, touched); err != nil {
		return nil, err
	}
	if err := keepAside(ctx, tx, p.Continuations(), touched); err != nil {
		return nil, err
	}
	if p.Rejected() > 0 {
		// A continuation whose only event here was a refused enable
		// got a row from lockSQL and nothing else: not a continuation
		// the store has seen.
		if _, err := tx.Exec(ctx, unlockEmptySQL, activity, token); err != nil {
			return nil, fmt.Errorf("drop empty continuations: %w", err)
		}
	}
	for {
		keys, err := queryKeys(ctx, tx, resolveSQL)
		if err != nil {
			return nil, fmt.Errorf("link nested continuations: %w", err)
		}
		if len(keys) == 0 {
			break // chains are short; a cycle of tokens without an instance changes nothing
		}
		for _, k := range keys {
			touched.Add(k)
		}
	}
	folds, err := fold(ctx, tx, touched)
	if err != nil {
		return nil, err
	}
	if err := upsertInstances(ctx, tx, append(p.Instances(), folds...)); err != nil {
		return nil, err
	}
	if err := writeRelations(ctx, tx, p); err != nil {
		return nil, err
	}
	keys := touched.Sorted()
	if len(keys) > 0 {
		activity, instance := keyArrays(keys)
		if _, err := tx.Exec(ctx, recountSQL, activity, instance); err != nil {
			return nil, fmt.Errorf("count open continuations: %w", err)
		}
	}
	return p.Failures(place), nil
}

// upsertInstances runs upsertSQL for deltas of instances.
func upsertInstances(ctx context.Context, tx Tx, deltas []event.Delta) error {
	up, err := upsertArgs(deltas)
	if err != nil || up == nil {
		return err
	}
	if _, err := tx.Exec(ctx, upsertSQL, up...); err != nil {
		return fmt.Errorf("merge instances: %w", err)
	}
	return nil
}

// writeEnables writes the plan's enables and rejects those whose token
// another segment holds.
func writeEnables(ctx context.Context, tx Tx, p *vocabulary.Plan, touched vocabulary.Keys) error {
	n := len(p.Enables)
	if n == 0 {
		return nil
	}
	var (
		activity, token      = make([]string, n), make([]string, n)
		parentInst, parentTk = make([]*string, n), make([]*string, n)
		at                   = make([]time.Time, n)
	)
	for i, e := range p.Enables {
		activity[i], token[i] = e.Activity, e.Token
		parentInst[i], parentTk[i] = nullText(e.ParentInstance), nullText(e.ParentToken)
		at[i] = e.Time.Truncate(time.Microsecond)
	}
	rows, err := tx.Query(ctx, enableSQL, activity, token, parentInst, parentTk, at)
	if err != nil {
		return fmt.Errorf("enable continuations: %w", err)
	}
	taken := map[event.Key]bool{}
	var k, linked event.Key
	_, err = pgx.ForEachRow(rows, []any{&k.Activity, &k.Instance, &linked.Instance}, func() error {
		taken[k] = true
		touched.Add(event.Key{Activity: k.Activity, Instance: linked.Instance})
		return nil
	})
	if err != nil {
		return fmt.Errorf("enable continuations: %w", err)
	}
	if len(taken) == n {
		return nil
	}
	var refused []vocabulary.Enable
	activity, token = activity[:0], token[:0]
	for _, e := range p.Enables {
		if !taken[event.Key{Activity: e.Activity, Instance: e.Token}] {
			refused = append(refused, e)
			activity, token = append(activity, e.Activity), append(token, e.Token)
		}
	}
	rows, err = tx.Query(ctx, enablersSQL, activity, token)
	if err != nil {
		return fmt.Errorf("read the enablers of refused continuations: %w", err)
	}
	type holder struct{ instance, token string }
	holders := map[event.Key]holder{}
	var h holder
	if _, err := pgx.ForEachRow(rows, []any{&k.Activity, &k.Instance, &h.instance, &h.token}, func() error {
		holders[k] = h
		return nil
	}); err != nil {
		return fmt.Errorf("read the enablers of refused continuations: %w", err)
	}
	for _, e := range refused {
		h := holders[event.Key{Activity: e.Activity, Instance: e.Token}]
		p.Reject(e, h.instance, h.token)
	}
	return nil
}

// nullText is s, or NULL when empty.
func nullText(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// keepAside writes continuation deltas under their token.
func keepAside(ctx context.Context, tx Tx, conts []event.Delta, touched vocabulary.Keys) error {
	up, err := upsertArgs(conts)
	if err != nil || up == nil {
		return err
	}
	// upsertArgs' columns: activity, instance (the token), begin, end,
	// first, last, events, items. A continuation has no begin.
	keys, err := queryKeys(ctx, tx, continuationSQL, up[0], up[1], up[3], up[4], up[5], up[6], up[7])
	if err != nil {
		return fmt.Errorf("keep continuation events aside: %w", err)
	}
	for _, k := range keys {
		touched.Add(k)
	}
	return nil
}

func queryKeys(ctx context.Context, tx Tx, query string, args ...any) ([]event.Key, error) {
	rows, err := tx.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, rowTo(store.ScanKey))
}

func keyArrays(keys []event.Key) (activity, instance []string) {
	activity, instance = make([]string, len(keys)), make([]string, len(keys))
	for i, k := range keys {
		activity[i], instance[i] = k.Activity, k.Instance
	}
	return activity, instance
}

// fold takes the kept-aside data of linked continuations out of them and
// returns it as deltas of their instances.
func fold(ctx context.Context, tx Tx, touched vocabulary.Keys) ([]event.Delta, error) {
	rows, err := tx.Query(ctx, foldSQL)
	if err != nil {
		return nil, fmt.Errorf("fold continuation events: %w", err)
	}
	pending, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (vocabulary.Pending, error) {
		var (
			pd          vocabulary.Pending
			items       []byte
			first, last *time.Time
		)
		err := row.Scan(&pd.Instance.Activity, &pd.Token, &pd.Instance.Instance, &items, &pd.Events, &first, &last)
		if err != nil {
			return pd, err
		}
		if err := json.Unmarshal(items, &pd.Items); err != nil {
			return pd, fmt.Errorf("items of continuation %q of %s: %w", pd.Token, pd.Instance.Activity, err)
		}
		if first != nil {
			pd.First = first.UTC()
		}
		if last != nil {
			pd.Last = last.UTC()
		}
		return pd, nil
	})
	if err != nil {
		return nil, fmt.Errorf("fold continuation events: %w", err)
	}
	for _, pd := range pending {
		touched.Add(pd.Instance)
	}
	return vocabulary.Fold(pending), nil
}

// writeRelations writes the plan's relations and references.
func writeRelations(ctx context.Context, tx Tx, p *vocabulary.Plan) error {
	if n := len(p.Relations); n > 0 {
		from := make([]event.Key, n)
		to := make([]event.Key, n)
		for i, r := range p.Relations {
			from[i], to[i] = r.From, r.To
		}
		fa, fi := keyArrays(from)
		ta, ti := keyArrays(to)
		if _, err := tx.Exec(ctx, relationSQL, fa, fi, ta, ti); err != nil {
			return fmt.Errorf("relate instances: %w", err)
		}
	}
	n := len(p.References)
	if n == 0 {
		return nil
	}
	keys := make([]event.Key, n)
	var (
		typ, name, value, data = make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		at                     = make([]time.Time, n)
	)
	for i, r := range p.References {
		keys[i] = r.Key
		typ[i], name[i], value[i], data[i] = r.Type, r.Name, r.Value, r.Data
		at[i] = time.UnixMicro(r.Time).UTC()
	}
	activity, instance := keyArrays(keys)
	if _, err := tx.Exec(ctx, referenceSQL, activity, instance, typ, name, value, data, at); err != nil {
		return fmt.Errorf("add references: %w", err)
	}
	return nil
}

// applyVocabulary commits a batch that holds more than begin, update and end
// of instances. Its statements read as they go, so it runs in an explicit
// transaction rather than Apply's pipeline; the fence still comes first and
// aborts everything after it. Enables refused for a token another segment
// holds are quarantined at the batch's checkpoint, and the session counts
// them as failed, not applied.
func (s *Store) applyVocabulary(ctx context.Context, b store.Batch) error {
	return pgx.BeginFunc(ctx, s.work, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, fenceSQL, b.Source, b.Partition, b.Node, b.Epoch,
			b.From.Major, b.From.Minor, b.Checkpoint.Major, b.Checkpoint.Minor,
			int64(b.Applied), int64(len(b.Failures)), store.EventsByActivity(b.Deltas))
		if err != nil {
			return err
		}
		if err := quarantine(ctx, tx, b.SessionID, b.Failures); err != nil {
			return err
		}
		refused, err := writeDeltas(ctx, tx, b.Deltas, vocabulary.Place{SessionID: b.SessionID, Position: b.Checkpoint})
		if err != nil || len(refused) == 0 {
			return err
		}
		if err := quarantine(ctx, tx, b.SessionID, refused); err != nil {
			return err
		}
		// The fence counted them as applied, in all and by activity.
		_, err = tx.Exec(ctx, `
			UPDATE bam_sessions SET applied_count = applied_count - $3, failed_count = failed_count + $3,
			    applied_by_activity = (
			        SELECT coalesce(jsonb_object_agg(e.key, e.n), '{}') FROM (
			            SELECT key, sum(value::text::bigint) AS n
			            FROM (SELECT * FROM jsonb_each(bam_sessions.applied_by_activity) UNION ALL SELECT * FROM jsonb_each($4::jsonb)) AS c
			            GROUP BY key HAVING sum(value::text::bigint) <> 0) AS e)
			WHERE source = $1 AND partition = $2`, b.Source, b.Partition, len(refused), store.RefusedByActivity(refused))
		if err != nil {
			return fmt.Errorf("count refused enables: %w", err)
		}
		return nil
	})
}

// quarantine inserts failures in tx.
func quarantine(ctx context.Context, tx Tx, id store.SessionID, failures []store.Failure) error {
	if len(failures) == 0 {
		return nil
	}
	if _, err := tx.Exec(ctx, failuresSQL, failureArgs(id, failures)...); err != nil {
		return fmt.Errorf("quarantine %d events: %w", len(failures), err)
	}
	return nil
}

// WriteEvents applies events inside the caller's transaction, without
// fence or checkpoint: the direct write of an application that writes its
// events in its own transaction on the store. The events are checked first;
// the first invalid one refuses the whole call with an *event.Error whose
// Field names it ("events[3].data.Amount"), and nothing is written.
// Otherwise they merge with exactly Apply's code and rules. An
// enable-continuation whose token another segment holds is quarantined in
// bam_failed in tx, under source store.DirectSource, and the rest is
// applied. tx must be on a store at this binary's schema version; on an
// error, roll it back.
func WriteEvents(ctx context.Context, tx Tx, events []event.Event) error {
	if err := vocabulary.Validate(events); err != nil {
		return err
	}
	if len(events) == 0 {
		return nil
	}
	refused, err := writeDeltas(ctx, tx, event.Coalesce(events), vocabulary.Direct)
	if err == nil {
		err = quarantine(ctx, tx, vocabulary.Direct.SessionID, refused)
	}
	if err != nil {
		return fmt.Errorf("write %d events: %w", len(events), err)
	}
	return nil
}
