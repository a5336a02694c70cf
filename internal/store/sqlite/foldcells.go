package sqlite

import (
	"context"
	"database/sql"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/bam-dev/bam/internal/store"
)

// The cells' side of the batch fold (batchfold.go): the changes a batch
// makes to an aggregation's cells, summed by cell in Go, and the
// statements that write them.

// keyParams are the parameters a fold's statements read a cell's key
// from: ?1 state, ?2 wb (a windowed aggregation's), then d1..dn.
func keyParams(m store.AggModel) (sel []string, next int) {
	sel = []string{"?1 AS state"}
	next = 2
	if m.Window != "" {
		sel = append(sel, "?2 AS wb")
		next = 3
	}
	for i := range m.Dims {
		sel = append(sel, fmt.Sprintf("?%d AS d%d", next, i+1))
		next++
	}
	return sel, next
}

// cellStatements are the upsert of a cell's change (its key, then
// instances, n1, [s1], ...) and the delete of the cells left empty; the
// key's text is computed by SQLite (m.Cell, m.Grp), as the triggers do.
func cellStatements(m store.AggModel) (upsert, deleteEmpty string) {
	params, p := keyParams(m)
	keys := m.KeyColumns()[1:] // state, [wb], d1..dn: grp is computed
	cols, set := []string{"instances"}, []string{"instances = instances + excluded.instances"}
	params = append(params, fmt.Sprintf("?%d AS instances", p))
	p++
	for j, v := range m.Values {
		cols = append(cols, fmt.Sprintf("n%d", j+1))
		params = append(params, fmt.Sprintf("?%d AS n%d", p, j+1))
		set = append(set, fmt.Sprintf("n%[1]d = n%[1]d + excluded.n%[1]d", j+1))
		p++
		if v.Sum {
			cols = append(cols, fmt.Sprintf("s%d", j+1))
			params = append(params, fmt.Sprintf("?%d AS s%d", p, j+1))
			set = append(set, fmt.Sprintf("s%[1]d = s%[1]d + excluded.s%[1]d", j+1))
			p++
		}
	}
	all := strings.Join(append(keys, cols...), ", ")
	upsert = fmt.Sprintf("INSERT INTO %s (cell, grp, %s)\n  SELECT %s, %s, %s FROM (SELECT %s) WHERE true\n    ON CONFLICT (cell) DO UPDATE SET %s",
		m.Table, all, m.Cell, m.Grp, all, strings.Join(params, ", "), strings.Join(set, ", "))
	return upsert, fmt.Sprintf("DELETE FROM %s WHERE instances <= 0", m.Table)
}

// valueStatements are the upsert of a change of value j's multiset (the
// cell's key, then value and n) and the delete of what fell to zero.
func valueStatements(m store.AggModel, j int) (upsert, deleteZero string) {
	sel, p := keyParams(m)
	sel = append(sel, fmt.Sprintf("?%d AS value", p), fmt.Sprintf("?%d AS n", p+1))
	wb := windowColumn(m)
	upsert = fmt.Sprintf("INSERT INTO %[1]s (cell, grp%[2]s, value, n)\n  SELECT %[3]s, %[4]s%[2]s, value, n FROM (SELECT %[5]s) WHERE true\n    ON CONFLICT (cell, value) DO UPDATE SET n = n + excluded.n",
		m.ValueTable(j), wb, m.Cell, m.Grp, strings.Join(sel, ", "))
	return upsert, fmt.Sprintf("DELETE FROM %s WHERE n <= 0", m.ValueTable(j))
}

// cellDeltas are the changes a batch makes to one aggregation's cells and
// value multisets, summed by cell and by value.
type cellDeltas struct {
	fold   aggregationFold
	cells  map[string]*cellDelta
	order  []*cellDelta // as first met, so that writes are reproducible
	values map[string]*valueDelta
	vorder []*valueDelta
	// Scratch: a cell's key, its values, an instance's inputs.
	key       []byte
	keyValues []any
	inputs    []any
}

// cellDelta is the change of one cell: its key's values, then the changes
// of its counts and sums.
type cellDelta struct {
	key       []any // state, [wb], d1..dn
	instances int64
	n         []int64
	s         []sum
}

// valueDelta is the change of how many instances of a cell hold value
// j.
type valueDelta struct {
	cell  *cellDelta
	j     int
	value any
	n     int64
}

// sum adds numbers as SQLite's + does: integers exactly, as a REAL once
// one is a REAL or the integers overflow.
type sum struct {
	i     int64
	f     float64
	float bool
}

func (s *sum) add(v any, sign int64) {
	switch v := v.(type) {
	case int64:
		if !s.float && v != math.MinInt64 {
			n := v * sign
			if r := s.i + n; (r > s.i) == (n > 0) || n == 0 {
				s.i = r
				return
			}
			s.float, s.f = true, float64(s.i)
		}
		s.f += float64(v) * float64(sign)
	case float64:
		if !s.float {
			s.float, s.f = true, float64(s.i)
		}
		s.f += v * float64(sign)
	}
}

func (s sum) value() any {
	if s.float {
		return s.f
	}
	return s.i
}

func (s sum) zero() bool { return !s.float && s.i == 0 || s.float && s.f == 0 }

func newCellDeltas(f aggregationFold) *cellDeltas {
	return &cellDeltas{fold: f, cells: map[string]*cellDelta{}, values: map[string]*valueDelta{}}
}

// add adds sign times the contribution of an instance of the given
// inputs.
func (d *cellDeltas) add(ev *evaluator, in instanceInputs, sign int64) error {
	m := d.fold.model
	inputs := d.inputs[:0]
	for _, k := range d.fold.inputs {
		inputs = append(inputs, in.inputs[k])
	}
	d.inputs = inputs
	key := append(d.keyValues[:0], in.state)
	if m.Window != "" {
		var wb any
		if in.state == "completed" {
			var err error
			if wb, err = ev.step(m.WindowStep, inputs, nil); err != nil {
				return err
			}
		}
		key = append(key, wb)
	}
	for i, dim := range m.Dims {
		v, err := ev.step(dim.Step, inputs, d.fold.bounds[i])
		if err != nil {
			return err
		}
		key = append(key, v)
	}
	d.keyValues = key
	d.key = d.key[:0]
	for _, v := range key {
		d.key = appendKey(d.key, v)
	}
	c := d.cells[string(d.key)]
	if c == nil {
		c = &cellDelta{key: slices.Clone(key), n: make([]int64, len(m.Values)), s: make([]sum, len(m.Values))}
		d.cells[string(d.key)] = c
		d.order = append(d.order, c)
	}
	c.instances += sign
	cellKey := len(d.key)
	for j, val := range m.Values {
		v, err := ev.step(val.Step, inputs, nil)
		if err != nil {
			return err
		}
		if v == nil {
			continue
		}
		c.n[j] += sign
		if val.Sum {
			c.s[j].add(v, sign)
		}
		if val.Extremes {
			d.key = appendKey(binary.AppendUvarint(d.key[:cellKey], uint64(j)), v)
			vd := d.values[string(d.key)]
			if vd == nil {
				vd = &valueDelta{cell: c, j: j, value: v}
				d.values[string(d.key)] = vd
				d.vorder = append(d.vorder, vd)
			}
			vd.n += sign
		}
	}
	return nil
}

// appendKey appends v, typed, to a key that tells apart what SQLite's
// comparison tells apart.
func appendKey(b []byte, v any) []byte {
	switch v := v.(type) {
	case nil:
		return append(b, 0)
	case int64:
		return binary.AppendVarint(append(b, 1), v)
	case float64:
		return binary.BigEndian.AppendUint64(append(b, 2), math.Float64bits(v))
	case string:
		return append(binary.AppendUvarint(append(b, 3), uint64(len(v))), v...)
	case []byte:
		return append(binary.AppendUvarint(append(b, 4), uint64(len(v))), v...)
	}
	panic(fmt.Sprintf("sqlite: a value of type %T in an aggregation", v))
}

// write writes the changes: the cells', then the multisets'; then deletes
// what fell to zero.
func (d *cellDeltas) write(ctx context.Context, tx *sql.Tx) error {
	var stmt *sql.Stmt
	shrank := false
	for _, c := range d.order {
		changed := c.instances != 0
		args := append([]any(nil), c.key...)
		args = append(args, c.instances)
		for j, v := range d.fold.model.Values {
			changed = changed || c.n[j] != 0
			args = append(args, c.n[j])
			if v.Sum {
				changed = changed || !c.s[j].zero()
				args = append(args, c.s[j].value())
			}
		}
		if !changed {
			continue
		}
		if stmt == nil {
			var err error
			if stmt, err = tx.PrepareContext(ctx, d.fold.upsertCell); err != nil {
				return err
			}
			defer stmt.Close()
		}
		if _, err := stmt.ExecContext(ctx, args...); err != nil {
			return err
		}
		shrank = shrank || c.instances < 0
	}
	if shrank {
		if _, err := tx.ExecContext(ctx, d.fold.deleteEmpty); err != nil {
			return err
		}
	}
	stmts := map[int]*sql.Stmt{}
	shrunk := map[int]bool{}
	for _, vd := range d.vorder {
		if vd.n == 0 {
			continue
		}
		stmt := stmts[vd.j]
		if stmt == nil {
			var err error
			if stmt, err = tx.PrepareContext(ctx, d.fold.upsertValue[vd.j]); err != nil {
				return err
			}
			defer stmt.Close()
			stmts[vd.j] = stmt
		}
		args := append(append([]any(nil), vd.cell.key...), vd.value, vd.n)
		if _, err := stmt.ExecContext(ctx, args...); err != nil {
			return err
		}
		shrunk[vd.j] = shrunk[vd.j] || vd.n < 0
	}
	for j := range d.fold.model.Values {
		if shrunk[j] {
			if _, err := tx.ExecContext(ctx, d.fold.deleteValues[j]); err != nil {
				return err
			}
		}
	}
	return nil
}
