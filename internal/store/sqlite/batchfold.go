package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/tidwall/gjson"

	"github.com/bam-dev/bam/internal/definition"
	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/store"
)

// The batch fold
//
// A batch (Apply) changes up to a thousand instances, most of them into
// the cells of a few. Row by row, as the triggers do (aggregationTriggers),
// it would write each cell once per instance. It folds instead, in Go:
//
//  1. Before its upserts it silences the row triggers (a row in
//     bam_agg_deferred) and reads the moving instances as they are: their
//     state, times, open continuations and items (instanceState).
//  2. After its upserts it merges the batch's rows into what it read, as
//     the upsert does (activityFold.merge: the earliest begin, the latest
//     end, the state they give, per item the latest event's value), rather
//     than read each instance again.
//  3. From both it computes each moving instance's inputs (store.Input:
//     the typed values of the items and times the aggregations read) and,
//     with the model's steps (store.Step), its old and new cells, and sums
//     the changes by cell: one upsert per cell, and per value of a min or
//     max multiset, that the batch changed, whose key SQLite computes from
//     the values Go gives it (m.Cell, as the triggers do).
//
// The moving instances are those a row begins or ends (their state
// moves), gives an item an aggregation reads (for that aggregation), or
// creates (an update of an instance not yet begun enters a cell of every
// aggregation, pending); every other row leaves its instance's cells as
// they are, since nothing an aggregation reads changes. A moving instance
// whose inputs did not change (an application sending the customer again
// with every update) moves nothing: its old and new contributions cancel.
//
// SQLite's expressions are the definition of every value (the views, the
// triggers and the recomputation use them): Go computes a value only where
// it is sure to get SQLite's answer, and asks SQLite otherwise. Inputs:
// readInput reads a JSON value under an item's type as itemExpr does, and
// leaves to SQLite text with escapes and numbers beyond a float's exact
// digits (the whole row is then computed by SQLite, inputsSQL). Steps:
// a bucket is a prefix of a stored time's text, a duration a difference of
// whole seconds and fractions; any other text goes to SQLite
// (evaluator.sql). The merge: an instance whose stored items Go cannot
// read, or whose merged inputs it cannot be sure of, is read again after
// the upserts. The package's tests check every merge against the upsert
// (verifyMerges) and every value against SQLite (evaluator_test.go).

// activityFold is an activity's aggregations as a batch keeps them.
type activityFold struct {
	// aggItems are, per aggregation, the items it reads (begin_time and
	// end_time aside: the rows that set those begin or end the instance).
	aggItems []map[string]bool
	aggs     []aggregationFold
	// reads are the inputs of every aggregation, each once; items maps
	// the items they read to their place in an instanceRow's values.
	reads []store.Input
	items map[string]int
	// inputsSQL computes the inputs in SQL, of (?1 state, ?2 begin_time,
	// ?3 end_time, ?4 items): for the rows whose inputs Go cannot be sure
	// to read as SQLite does (readInput).
	inputsSQL string
}

// readRows selects, for the instances ?2 (a JSON array of ids) of the
// activity ?1, the id and the columns an aggregation reads; findNew, the
// ids of ?2 that are not instances yet.
const (
	readRows = `SELECT t.value, i.state, i.begin_time, i.end_time, i.open_continuations, i.last_modified, i.items
		FROM json_each(?2) AS t CROSS JOIN bam_instances AS i ON i.activity = ?1 AND i.instance_id = t.value`
	findNew = `SELECT t.value FROM json_each(?2) AS t
		WHERE NOT EXISTS (SELECT 1 FROM bam_instances AS i WHERE i.activity = ?1 AND i.instance_id = t.value)`
)

// aggregationFold is one aggregation of an activityFold.
type aggregationFold struct {
	model store.AggModel
	// inputs maps the model's inputs to the activity's.
	inputs []int
	// bounds are, per dimension, the bounds of a Ranges step as SQLite
	// reads their literals (nil for other steps).
	bounds [][]float64
	// upsertCell adds (state, [wb], d1..dn, instances, n1, [s1], ...) to
	// a cell; deleteEmpty deletes the cells left with no instance.
	upsertCell, deleteEmpty string
	// upsertValue adds (state, [wb], d1..dn, value, n) to value j's
	// multiset, for a value a min or max reads ("" for the others);
	// deleteValues deletes the values no instance holds any more.
	upsertValue, deleteValues []string
}

// newActivityFold prepares the fold of a's aggregations; q computes the
// bounds of ranges as SQLite reads them.
func newActivityFold(ctx context.Context, q *sql.Tx, a definition.Activity) (activityFold, error) {
	f := activityFold{items: map[string]int{}}
	var inputs []string
	for _, g := range a.Aggregations {
		items := map[string]bool{}
		for _, name := range g.ItemsRead() {
			if name != definition.BeginTime && name != definition.EndTime {
				items[name] = true
			}
		}
		f.aggItems = append(f.aggItems, items)
		m := aggregations.Model(a, g)
		af := aggregationFold{model: m}
		for _, in := range m.Inputs {
			k := slices.Index(inputs, in)
			if k < 0 {
				k = len(inputs)
				inputs = append(inputs, in)
				read := m.Reads[len(af.inputs)]
				f.reads = append(f.reads, read)
				if _, ok := f.items[read.Item.Name]; !ok && read.Column == "" {
					f.items[read.Item.Name] = len(f.items)
				}
			}
			af.inputs = append(af.inputs, k)
		}
		for _, d := range m.Dims {
			var bounds []float64
			if d.Step.Op == store.RangesStep {
				for _, b := range d.Step.Bounds {
					var v float64
					if err := q.QueryRowContext(ctx, "SELECT "+boundLiteral(b)).Scan(&v); err != nil {
						return activityFold{}, err
					}
					bounds = append(bounds, v)
				}
			}
			af.bounds = append(af.bounds, bounds)
		}
		af.upsertCell, af.deleteEmpty = cellStatements(m)
		for j, v := range m.Values {
			up, del := "", ""
			if v.Extremes {
				up, del = valueStatements(m, j)
			}
			af.upsertValue = append(af.upsertValue, up)
			af.deleteValues = append(af.deleteValues, del)
		}
		f.aggs = append(f.aggs, af)
	}
	cols := make([]string, len(inputs))
	for i, in := range inputs {
		cols[i] = fmt.Sprintf("%s AS i%d", in, i+1)
	}
	f.inputsSQL = fmt.Sprintf("SELECT %s FROM (SELECT ?1 AS state, ?2 AS begin_time, ?3 AS end_time, ?4 AS items)", strings.Join(cols, ", "))
	return f, nil
}

// boundLiteral is a bound of a range as a REAL, read from the literal
// aggregations.Ranges writes.
func boundLiteral(b float64) string {
	return "CAST(" + strconv.FormatFloat(b, 'g', -1, 64) + " AS REAL)"
}

// aggregationFolds are the activityFolds of the deployed aggregations, as
// of a definitions version.
type aggregationFolds struct {
	mu       sync.Mutex
	version  int64 // 0: not read
	activity map[string]activityFold
}

// read returns the folds as tx sees them: read again when the definitions
// version moved. tx holds the write lock, which deployments take, so that
// the version it reads is that of the tables it writes.
func (c *aggregationFolds) read(ctx context.Context, tx *sql.Tx) (map[string]activityFold, error) {
	v, err := store.ReadDefinitionsVersion(ctx, query(tx))
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.version == v && v != 0 {
		return c.activity, nil
	}
	acts, _, err := readDefinitions(ctx, tx)
	if err != nil {
		return nil, err
	}
	folds := map[string]activityFold{}
	for _, a := range acts {
		if len(a.Activity.Aggregations) == 0 {
			continue
		}
		if folds[a.Activity.Name], err = newActivityFold(ctx, tx, a.Activity); err != nil {
			return nil, err
		}
	}
	c.version, c.activity = v, folds
	return folds, nil
}

// aggregationBit is the bit of a touch's mask that names the k-th
// aggregation of an activity; those past the 62nd share the last bit.
func aggregationBit(k int) int { return min(k, 62) }

// changes returns the bits of the aggregations whose cells r may move: all
// of them when r begins or ends its instance, else those that read an
// item r carries.
func (f activityFold) changes(r upsertRow) int64 {
	var mask int64
	for k, items := range f.aggItems {
		if r.begin != nil || r.end != nil || carries(r.data, items) {
			mask |= 1 << aggregationBit(k)
		}
	}
	return mask
}

// carries reports whether data holds any of items.
func carries(data event.Items, items map[string]bool) bool {
	for name := range data {
		if items[name] {
			return true
		}
	}
	return false
}

// batchFold is a batch's fold in progress: what it read before the
// upserts.
type batchFold struct {
	activities []*activityBatch
}

// activityBatch is the part of a batchFold of one activity.
type activityBatch struct {
	name string
	fold activityFold
	// masks are the aggregations each instance may move (-1: all, for an
	// instance the batch creates); ids their order.
	masks map[string]int64
	ids   []string
	// before are the instances' inputs before the batch; absent for an
	// instance that did not exist. prior is what the merge needs of
	// them (mergedInputs): absent for one that did not exist, nil where Go
	// cannot merge. rows are the batch's rows of each instance, in order.
	before map[string]instanceInputs
	prior  map[string]*instanceState
	rows   map[string][]*upsertRow
}

// instanceInputs are an instance's state and the activity's inputs.
type instanceInputs struct {
	state  string
	inputs []any
}

// startFold begins the fold of a batch of plain upserts (rows): when an
// activity of the batch has aggregations it silences the row triggers and
// reads the inputs of the instances whose cells the rows may move. It
// returns nil when there is nothing to fold.
func (s *Store) startFold(ctx context.Context, tx *sql.Tx, rows []upsertRow) (*batchFold, error) {
	folds, err := s.folds.read(ctx, tx)
	if err != nil {
		return nil, fmt.Errorf("read the aggregations: %w", err)
	}
	if len(folds) == 0 {
		return nil, nil
	}
	var b batchFold
	byName := map[string]*activityBatch{}
	for i := range rows {
		r := &rows[i]
		f, ok := folds[r.activity]
		if !ok {
			continue
		}
		ab := byName[r.activity]
		if ab == nil {
			ab = &activityBatch{name: r.activity, fold: f, masks: map[string]int64{}, rows: map[string][]*upsertRow{}}
			byName[r.activity] = ab
			b.activities = append(b.activities, ab)
		}
		mask, seen := ab.masks[r.instance]
		if !seen {
			ab.ids = append(ab.ids, r.instance)
		}
		ab.masks[r.instance] = mask | f.changes(*r)
		ab.rows[r.instance] = append(ab.rows[r.instance], r)
	}
	if len(b.activities) == 0 {
		return nil, nil
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO bam_agg_deferred (deferred) VALUES (1)`); err != nil {
		return nil, fmt.Errorf("defer aggregations: %w", err)
	}
	for _, ab := range b.activities {
		// The instances that move: read their inputs (absent: new).
		// The others: only whether they exist.
		var moving, still []string
		for _, id := range ab.ids {
			if ab.masks[id] != 0 {
				moving = append(moving, id)
			} else {
				still = append(still, id)
			}
		}
		if ab.before, ab.prior, err = ab.fold.readInputs(ctx, tx, ab.name, moving); err != nil {
			return nil, fmt.Errorf("keep aggregations: %w", err)
		}
		for _, id := range moving {
			if _, ok := ab.before[id]; !ok {
				ab.masks[id] = -1
			}
		}
		if len(still) > 0 {
			list, _ := json.Marshal(still)
			rows, err := tx.QueryContext(ctx, findNew, ab.name, string(list))
			if err != nil {
				return nil, fmt.Errorf("keep aggregations: %w", err)
			}
			for rows.Next() {
				var id string
				if err := rows.Scan(&id); err != nil {
					rows.Close()
					return nil, fmt.Errorf("keep aggregations: %w", err)
				}
				ab.masks[id] = -1
			}
			if err := rows.Close(); err != nil {
				return nil, fmt.Errorf("keep aggregations: %w", err)
			}
		}
	}
	return &b, nil
}

// readInputs reads the inputs of the instances ids of activity: their
// columns from SQLite, the inputs computed from them in Go (readInput),
// or by SQLite (inputsSQL) for a row Go cannot be sure of; and what a
// merge needs of them (instanceState), nil for those it cannot be sure
// of.
func (f activityFold) readInputs(ctx context.Context, tx *sql.Tx, activity string, ids []string) (map[string]instanceInputs, map[string]*instanceState, error) {
	out := make(map[string]instanceInputs, len(ids))
	states := make(map[string]*instanceState, len(ids))
	if len(ids) == 0 {
		return out, states, nil
	}
	list, err := json.Marshal(ids)
	if err != nil {
		return nil, nil, err
	}
	rows, err := tx.QueryContext(ctx, readRows, activity, string(list))
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	var unsure []instanceRow
	objects := make([]gjson.Result, len(f.items))
	for rows.Next() {
		var r instanceRow
		if err := rows.Scan(&r.id, &r.state, &r.begin, &r.end, &r.open, &r.lastModified, &r.items); err != nil {
			return nil, nil, err
		}
		st, ok := f.state(r, objects)
		if ok {
			var in instanceInputs
			if in, ok = f.inputs(st); ok {
				out[r.id], states[r.id] = in, st
				continue
			}
		}
		unsure = append(unsure, r)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	rows.Close()
	for _, r := range unsure {
		in, err := f.inputsBySQLite(ctx, tx, r)
		if err != nil {
			return nil, nil, err
		}
		out[r.id], states[r.id] = in, nil
	}
	return out, states, nil
}

// inputsBySQLite computes the inputs of r in SQLite.
func (f activityFold) inputsBySQLite(ctx context.Context, tx *sql.Tx, r instanceRow) (instanceInputs, error) {
	in := instanceInputs{state: r.state, inputs: make([]any, len(f.reads))}
	dest := make([]any, len(in.inputs))
	for i := range dest {
		dest[i] = &in.inputs[i]
	}
	err := tx.QueryRowContext(ctx, f.inputsSQL, r.state, r.begin, r.end, r.items).Scan(dest...)
	return in, err
}

// instanceRow is an instance's columns an aggregation reads.
type instanceRow struct {
	id, state    string
	begin, end   any
	open         int64
	lastModified int64
	items        string
}

// instanceState is what the aggregations read of an instance, and what
// merging a row into it needs: its state, begin and end times
// (microseconds, or nil), open continuations, last change and the items
// the aggregations read, as stored.
type instanceState struct {
	state        string
	begin, end   any
	open         int64
	lastModified int64
	items        event.Items
}

// state reads r's instanceState in Go; false when r must be left to
// SQLite. objects is scratch, of len(f.items).
func (f activityFold) state(r instanceRow, objects []gjson.Result) (*instanceState, bool) {
	st := &instanceState{state: r.state, begin: r.begin, end: r.end, open: r.open, lastModified: r.lastModified}
	if len(f.items) == 0 {
		return st, true
	}
	if !strings.HasPrefix(r.items, "{") {
		return nil, false // SQLite says what it makes of it
	}
	clear(objects)
	unsure := false
	gjson.Parse(r.items).ForEach(func(key, value gjson.Result) bool {
		if strings.IndexByte(key.Raw, '\\') >= 0 {
			unsure = true // SQLite compares keys as it unescapes them
			return false
		}
		if i, ok := f.items[key.Str]; ok && !objects[i].Exists() {
			objects[i] = value
		}
		return true
	})
	if unsure {
		return nil, false
	}
	st.items = make(event.Items, len(f.items))
	for name, i := range f.items {
		o := objects[i]
		if !o.Exists() {
			continue
		}
		v, t := o.Get("v"), o.Get("t")
		if !v.Exists() || t.Type != gjson.Number || strings.ContainsAny(t.Raw, ".eE") {
			return nil, false
		}
		st.items[name] = event.Item{Value: json.RawMessage(v.Raw), Time: t.Int()}
	}
	return st, true
}

// inputs computes the inputs of an instance in st in Go; false when one
// of them must be left to SQLite.
func (f activityFold) inputs(st *instanceState) (instanceInputs, bool) {
	in := instanceInputs{state: st.state, inputs: make([]any, len(f.reads))}
	for i, read := range f.reads {
		var v gjson.Result
		if read.Column == "" {
			if it, ok := st.items[read.Item.Name]; ok {
				v = gjson.Parse(string(it.Value))
			}
		}
		var ok bool
		if in.inputs[i], ok = readInput(read, st.begin, st.end, v); !ok {
			return instanceInputs{}, false
		}
	}
	return in, true
}

// merge returns st (nil: the instance does not exist) with r upserted
// into it, as upsertInstance and upsertUpdate merge it: the earliest
// begin, the latest end, the state they give (kept by a row without
// either), and the items: r's over the stored ones when r's first event
// is not older than the instance's last change (json_patch), else per
// item the value of the latest event, r's on a tie (event.Merge). Only
// the items the aggregations read are kept.
func (f activityFold) merge(st *instanceState, r *upsertRow) *instanceState {
	var items event.Items
	for name, it := range r.data {
		if _, read := f.items[name]; !read {
			continue
		}
		if v := bytes.TrimSpace(it.Value); len(v) == 0 || string(v) == "null" {
			continue // not stored (event.Items.AppendJSON)
		}
		if items == nil {
			items = event.Items{}
		}
		items[name] = it
	}
	if st == nil {
		next := &instanceState{begin: r.begin, end: r.end, lastModified: r.lastModified, items: items}
		next.state = stateOf(r.begin, r.end, 0)
		return next
	}
	next := &instanceState{state: st.state, begin: st.begin, end: st.end, open: st.open,
		lastModified: max(st.lastModified, r.lastModified), items: st.items}
	if r.begin != nil || r.end != nil {
		next.begin = earliest(st.begin, r.begin)
		next.end = latest(st.end, r.end)
		next.state = stateOf(next.begin, next.end, st.open)
	}
	if items == nil {
		return next
	}
	if first, ok := r.first.(int64); ok && st.lastModified <= first {
		next.items = maps.Clone(st.items) // json_patch: every item r carries replaces its stored value
		if next.items == nil {
			next.items = event.Items{}
		}
		maps.Copy(next.items, items)
	} else {
		next.items = event.Merge(st.items, items)
	}
	return next
}

// stateOf is the state of an instance of these begin and end times and
// open continuations.
func stateOf(begin, end any, open int64) string {
	switch {
	case begin == nil:
		return string(store.StatePending)
	case end == nil || open > 0:
		return string(store.StateActive)
	}
	return string(store.StateCompleted)
}

// earliest and latest are min and max of two times in microseconds, nil
// for none.
func earliest(a, b any) any {
	if a == nil || b != nil && b.(int64) < a.(int64) {
		return b
	}
	return a
}

func latest(a, b any) any {
	if a == nil || b != nil && b.(int64) > a.(int64) {
		return b
	}
	return a
}

// finish ends the fold after the batch's upserts: it reads the moving
// instances' inputs again, writes the cells' changes and lets the row
// triggers run again.
func (b *batchFold) finish(ctx context.Context, tx *sql.Tx) error {
	ev := &evaluator{ctx: ctx, tx: tx}
	defer ev.close()
	for _, ab := range b.activities {
		var moving []string
		for _, id := range ab.ids {
			if ab.masks[id] != 0 {
				moving = append(moving, id)
			}
		}
		after, err := ab.mergedInputs(ctx, tx, moving)
		if err != nil {
			return fmt.Errorf("keep aggregations: %w", err)
		}
		for k, af := range ab.fold.aggs {
			bit := int64(1) << aggregationBit(k)
			d := newCellDeltas(af)
			for _, id := range moving {
				if ab.masks[id]&bit == 0 {
					continue
				}
				if old, ok := ab.before[id]; ok {
					if err := d.add(ev, old, -1); err != nil {
						return fmt.Errorf("keep aggregation %s.%s: %w", ab.name, af.model.Aggregation.Name, err)
					}
				}
				if now, ok := after[id]; ok {
					if err := d.add(ev, now, 1); err != nil {
						return fmt.Errorf("keep aggregation %s.%s: %w", ab.name, af.model.Aggregation.Name, err)
					}
				}
			}
			if err := d.write(ctx, tx); err != nil {
				return fmt.Errorf("keep aggregation %s.%s: %w", ab.name, af.model.Aggregation.Name, err)
			}
		}
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM bam_agg_deferred`); err != nil {
		return fmt.Errorf("keep aggregations: %w", err)
	}
	return nil
}

// mergedInputs are the inputs of the moving instances after the batch's
// upserts: merged in Go from what startFold read and the batch's rows
// (activityFold.merge), or read again where Go cannot be sure.
func (ab *activityBatch) mergedInputs(ctx context.Context, tx *sql.Tx, moving []string) (map[string]instanceInputs, error) {
	out := make(map[string]instanceInputs, len(moving))
	var again []string
	for _, id := range moving {
		st, existed := ab.prior[id]
		if existed && st == nil {
			again = append(again, id)
			continue
		}
		for _, r := range ab.rows[id] {
			st = ab.fold.merge(st, r)
		}
		in, ok := ab.fold.inputs(st)
		if !ok {
			again = append(again, id)
			continue
		}
		out[id] = in
	}
	if len(again) > 0 {
		read, _, err := ab.fold.readInputs(ctx, tx, ab.name, again)
		if err != nil {
			return nil, err
		}
		maps.Copy(out, read)
	}
	if verifyMerges {
		stored, _, err := ab.fold.readInputs(ctx, tx, ab.name, moving)
		if err != nil {
			return nil, err
		}
		for _, id := range moving {
			if got, want := fmt.Sprint(out[id]), fmt.Sprint(stored[id]); got != want {
				return nil, fmt.Errorf("the merge of %s/%s gives %s, the upsert %s", ab.name, id, got, want)
			}
		}
	}
	return out, nil
}

// verifyMerges, set by the package's tests, makes mergedInputs check each
// merge against the instance as the upsert wrote it.
var verifyMerges = false
