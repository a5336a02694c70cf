package postgres

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/planted"
	"github.com/bam-dev/bam/internal/store"
	"github.com/bam-dev/bam/internal/store/vocabulary"
)

// fenceSQL moves the checkpoint if, and only if, the session is still owned
// by the node under the epoch, and its checkpoint is still where the batch
// starts (a batch whose commit landed but whose answer was lost is then
// refused when retried). bam_fence aborts the transaction when no row
// matched. The row lock it takes makes a concurrent claim wait for this
// transaction, and is taken before any instance row: one lock order for
// every Apply, so a zombie writer never blocks the new owner on instances.
var fenceSQL = `
	WITH fence AS (
		UPDATE bam_sessions
		SET checkpoint_major = $7, checkpoint_minor = $8,
		    applied_count = applied_count + $9, failed_count = failed_count + $10,
		    last_error = NULL, last_error_at = NULL,
		    applied_by_activity = CASE WHEN $11::jsonb = '{}' THEN applied_by_activity ELSE (
		        SELECT jsonb_object_agg(e.key, e.n) FROM (
		            SELECT key, sum(value::text::bigint) AS n
		            FROM (SELECT * FROM jsonb_each(bam_sessions.applied_by_activity) UNION ALL SELECT * FROM jsonb_each($11::jsonb)) AS c
		            GROUP BY key) AS e) END
		WHERE source = $1 AND partition = $2 AND ` + fenceGuard + `
		RETURNING 1
	)
	SELECT bam_fence((SELECT count(*) FROM fence))`

// fenceGuard is the heart of the fence; a build with the planted bug
// (package planted) keeps only the parameters' types.
var fenceGuard = func() string {
	if planted.SkipFence {
		return `$3::text IS NOT NULL AND $4::bigint IS NOT NULL AND $5::bigint IS NOT NULL AND $6::bigint IS NOT NULL`
	}
	return `owner = $3 AND epoch = $4 AND checkpoint_major = $5 AND checkpoint_minor = $6`
}()

// upsertSQL merges deltas into instances in one set-based statement, with
// the rules of event's package comment: earliest begin, latest end, latest
// last-modified, items merged per item by event time, events counted, state
// from begin, end and the open continuations (which only the statements of
// the vocabulary change, and recount: recountSQL). LEAST and GREATEST
// ignore NULLs.
//
// The items take a fast path when the delta's earliest event is not older
// than the instance's last_modified, the usual case of events arriving in
// order: every stored item's time is at most last_modified, and a tie goes
// to the incoming value, so every incoming item wins and the merge is a
// plain jsonb ||, which costs about 40 % less than bam_merge_items: that
// function cannot be inlined, so every row runs it through the SQL-function
// executor. A delta without a first event time (NULL) takes the slow
// path. first_event_at stays NULL, "not known", once it is.
const upsertSQL = `
	INSERT INTO bam_instances AS i
		(activity, instance_id, state, begin_time, end_time, first_event_at, last_modified, events, items, updated_at)
	SELECT d.activity, d.instance_id,
	       CASE WHEN d.begin_time IS NULL THEN 'pending' WHEN d.end_time IS NULL THEN 'active' ELSE 'completed' END,
	       d.begin_time, d.end_time, d.first_event_at, d.last_modified, d.events, d.items, now()
	FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::timestamptz[], $5::timestamptz[], $6::timestamptz[], $7::bigint[], $8::jsonb[])
	     AS d (activity, instance_id, begin_time, end_time, first_event_at, last_modified, events, items)
	ON CONFLICT (activity, instance_id) DO UPDATE SET
		state = CASE
			WHEN i.begin_time IS NULL AND EXCLUDED.begin_time IS NULL THEN 'pending'
			WHEN i.end_time IS NULL AND EXCLUDED.end_time IS NULL THEN 'active'
			WHEN i.open_continuations > 0 THEN 'active'
			ELSE 'completed' END,
		begin_time = LEAST(i.begin_time, EXCLUDED.begin_time),
		end_time = GREATEST(i.end_time, EXCLUDED.end_time),
		first_event_at = CASE WHEN i.first_event_at IS NOT NULL THEN LEAST(i.first_event_at, EXCLUDED.first_event_at) END,
		last_modified = GREATEST(i.last_modified, EXCLUDED.last_modified),
		events = i.events + EXCLUDED.events,
		items = CASE WHEN i.last_modified <= EXCLUDED.first_event_at
			THEN i.items || EXCLUDED.items
			ELSE bam_merge_items(i.items, EXCLUDED.items) END,
		updated_at = now()`

const failuresSQL = `
	INSERT INTO bam_failed (source, partition, pos_major, pos_minor, reason, payload, written_at)
	SELECT * FROM unnest($1::text[], $2::integer[], $3::bigint[], $4::bigint[], $5::text[], $6::bytea[], $7::timestamptz[])`

// Apply implements store.Store in one round trip: the fence, the upsert and
// the quarantine are pipelined in one implicit transaction (the extended
// protocol runs everything up to a Sync as one transaction). The fence runs
// first; when it fails it aborts the transaction, so nothing after it is
// written, and ErrFenced is returned. A batch that holds more than begin,
// update and end of instances runs the vocabulary's statements too, in an
// explicit transaction (applyVocabulary), fence first as well.
func (s *Store) Apply(ctx context.Context, b store.Batch) error {
	ctx = forNode(ctx, b.Node) // a peer may end this backend once the lease expired (Claim)
	var err error
	if vocabulary.Has(b.Deltas) {
		err = s.applyVocabulary(ctx, b)
	} else {
		err = s.applyPipelined(ctx, b)
	}
	if isSQLState(err, sqlstateFenced) {
		return fmt.Errorf("apply batch of session %s/%d (node %s, epoch %d, from %v): %w",
			b.Source, b.Partition, b.Node, b.Epoch, b.From, store.ErrFenced)
	}
	if err != nil {
		return fmt.Errorf("apply batch of session %s/%d: %w", b.Source, b.Partition, classify(err))
	}
	return nil
}

// classify wraps a data exception (SQLSTATE class 22: a number out of
// range, bytes that are not UTF-8, \u0000 in text, a bad cast) in a
// *store.DataRefusedError: the batch holds a value PostgreSQL refuses,
// and will on every retry. Every other error (a lost connection, a
// serialization failure, a lock or statement timeout, a shutdown) passes
// unchanged: it may well not happen again.
func classify(err error) error {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || !strings.HasPrefix(pgErr.Code, "22") {
		return err
	}
	reason := pgErr.Message
	if pgErr.Detail != "" {
		reason += " (" + pgErr.Detail + ")"
	}
	return &store.DataRefusedError{Reason: fmt.Sprintf("%s (SQLSTATE %s)", reason, pgErr.Code), Err: err}
}

// applyPipelined is Apply of the usual batch, in one round trip.
func (s *Store) applyPipelined(ctx context.Context, b store.Batch) error {
	up, err := upsertArgs(b.Deltas)
	if err != nil {
		return err
	}
	batch := &pgx.Batch{}
	batch.Queue(fenceSQL, b.Source, b.Partition, b.Node, b.Epoch,
		b.From.Major, b.From.Minor, b.Checkpoint.Major, b.Checkpoint.Minor,
		int64(b.Applied), int64(len(b.Failures)), store.EventsByActivity(b.Deltas))
	if up != nil {
		batch.Queue(upsertSQL, up...)
	}
	if len(b.Failures) > 0 {
		batch.Queue(failuresSQL, failureArgs(b.SessionID, b.Failures)...)
	}
	br := s.work.SendBatch(ctx, batch)
	for range batch.Len() {
		if _, err = br.Exec(); err != nil {
			break
		}
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return err
}

// upsertArgs turns deltas into upsertSQL's column arrays, nil when there
// are none. Deltas of one instance are merged first (ON CONFLICT cannot
// touch a row twice in one statement), and the rows are sorted by key so
// that concurrent batches that share instances lock them in one order and
// cannot deadlock.
func upsertArgs(deltas []event.Delta) ([]any, error) {
	if len(deltas) == 0 {
		return nil, nil
	}
	ds := mergeDuplicates(deltas)
	slices.SortFunc(ds, func(a, b event.Delta) int {
		return cmp.Or(strings.Compare(a.Activity, b.Activity), strings.Compare(a.Instance, b.Instance))
	})
	n := len(ds)
	var (
		activity = make([]string, n)
		instance = make([]string, n)
		begin    = make([]*time.Time, n)
		end      = make([]*time.Time, n)
		first    = make([]*time.Time, n)
		last     = make([]time.Time, n)
		events   = make([]int64, n)
		items    = make([]string, n)
		buf      []byte
		err      error
	)
	for i, d := range ds {
		activity[i], instance[i] = d.Activity, d.Instance
		// The fast path of the item merge compares these two with items'
		// times, which are microseconds rounded down (UnixMicro): send
		// them so, whatever the driver's encoding would do.
		begin[i], end[i], last[i] = d.Begin, d.End, d.LastModified.Truncate(time.Microsecond)
		if !d.First.IsZero() {
			f := d.First.Truncate(time.Microsecond)
			first[i] = &f
		}
		events[i] = int64(d.Events)
		if buf, err = jsonbItems(d.Items).AppendJSON(buf[:0]); err != nil {
			return nil, fmt.Errorf("instance %s/%s: %w", d.Activity, d.Instance, err)
		}
		items[i] = string(buf)
	}
	return []any{activity, instance, begin, end, first, last, events, items}, nil
}

// mergeDuplicates returns deltas with at most one per instance, folding
// later ones into the first with the same merge rules as the store.
func mergeDuplicates(deltas []event.Delta) []event.Delta {
	index := make(map[event.Key]int, len(deltas))
	out := make([]event.Delta, 0, len(deltas))
	for _, d := range deltas {
		i, ok := index[d.Key]
		if !ok {
			index[d.Key] = len(out)
			out = append(out, d)
			continue
		}
		m := &out[i]
		if d.Begin != nil && (m.Begin == nil || d.Begin.Before(*m.Begin)) {
			m.Begin = d.Begin
		}
		if d.End != nil && (m.End == nil || d.End.After(*m.End)) {
			m.End = d.End
		}
		if d.First.IsZero() || d.First.Before(m.First) {
			m.First = d.First // zero, not known, stays so
		}
		if d.LastModified.After(m.LastModified) {
			m.LastModified = d.LastModified
		}
		m.Events += d.Events
		m.Items = event.Merge(m.Items, d.Items)
	}
	return out
}

// jsonbItems returns items that jsonb accepts. jsonb refuses two escapes
// that JSON allows in strings, \u0000 and an unpaired surrogate, and
// event.Decode refuses both where events enter; a value that still holds
// one (a delta built another way) would fail the whole batch again and
// again and block the session (DESIGN.md, promise 5), so such a string is
// decoded, its NULs and broken surrogates become U+FFFD, and it is encoded
// again. Items without one are returned as they are.
func jsonbItems(items event.Items) event.Items {
	var out event.Items
	for name, it := range items {
		if !bytes.Contains(it.Value, []byte(`\u`)) || event.StorableText(it.Value) {
			continue
		}
		var str string
		if err := json.Unmarshal(it.Value, &str); err != nil {
			continue // not a string: AppendJSON refuses what is not JSON
		}
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		// encoding/json already turned unpaired surrogates into U+FFFD.
		_ = enc.Encode(strings.ReplaceAll(str, "\x00", "\uFFFD"))
		if out == nil {
			out = maps.Clone(items)
		}
		out[name] = event.Item{Value: bytes.TrimSuffix(buf.Bytes(), []byte("\n")), Time: it.Time}
	}
	if out == nil {
		return items
	}
	return out
}

// cleanText makes a message storable in a text column, which refuses NUL
// bytes and invalid UTF-8. Reasons can quote the bad event they describe.
func cleanText(s string) string {
	return strings.ToValidUTF8(strings.ReplaceAll(s, "\x00", `\x00`), "\uFFFD")
}

func failureArgs(id store.SessionID, fs []store.Failure) []any {
	n := len(fs)
	var (
		source    = make([]string, n)
		partition = make([]int32, n)
		major     = make([]int64, n)
		minor     = make([]int64, n)
		reason    = make([]string, n)
		payload   = make([][]byte, n)
		written   = make([]*time.Time, n)
	)
	for i, f := range fs {
		sid := f.SessionID
		if sid.Source == "" {
			sid = id
		}
		source[i], partition[i] = sid.Source, int32(sid.Partition)
		major[i], minor[i] = f.Position.Major, f.Position.Minor
		reason[i] = cleanText(f.Reason)
		payload[i] = f.Payload
		if payload[i] == nil {
			payload[i] = []byte{}
		}
		if !f.WrittenAt.IsZero() {
			written[i] = &f.WrittenAt
		}
	}
	return []any{source, partition, major, minor, reason, payload, written}
}
