package search

import (
	"encoding/json"
	"math"
	"math/big"
	"regexp"
	"strings"
	"time"

	"github.com/bam-dev/bam/internal/definition"
	"github.com/bam-dev/bam/internal/store"
)

// Match reports whether instance in matches the query's filter, with
// relative times (IN LAST) counted back from now: the reference the SQL is
// held to, and what evaluates a filter on an instance in memory. The
// instance's values are read as the activity's views read them (value).
// The scope is not checked: Match is the filter alone.
func (q *Query) Match(in store.Instance, now time.Time) bool {
	return q.where.match(in, now.UTC().Truncate(time.Microsecond))
}

func (n node) match(in store.Instance, now time.Time) bool {
	switch n.kind {
	case nodeAll:
		return true
	case nodeAnd:
		for _, t := range n.terms {
			if !t.match(in, now) {
				return false
			}
		}
		return true
	case nodeOr:
		for _, t := range n.terms {
			if t.match(in, now) {
				return true
			}
		}
		return false
	case nodeNot:
		return !n.terms[0].match(in, now)
	}
	return n.cond.match(in, now)
}

func (c *cond) match(in store.Instance, now time.Time) bool {
	v, ok := value(c.field, in)
	switch c.op {
	case OpIsEmpty:
		return !ok
	case OpIsNotEmpty:
		return ok
	}
	if !ok {
		return false // every other condition is false on an empty field
	}
	switch c.op {
	case OpEq:
		return compare(v, c.values[0]) == 0
	case OpNe:
		return compare(v, c.values[0]) != 0
	case OpLt:
		return compare(v, c.values[0]) < 0
	case OpLe:
		return compare(v, c.values[0]) <= 0
	case OpGt:
		return compare(v, c.values[0]) > 0
	case OpGe:
		return compare(v, c.values[0]) >= 0
	case OpBetween:
		return compare(v, c.values[0]) >= 0 && compare(v, c.values[1]) <= 0
	case OpIn, OpNotIn:
		in := false
		for _, x := range c.values {
			if compare(v, x) == 0 {
				in = true
				break
			}
		}
		return in == (c.op == OpIn)
	case OpContains:
		return strings.Contains(v.(string), c.values[0].(string))
	case OpStartsWith:
		return strings.HasPrefix(v.(string), c.values[0].(string))
	case OpInLast:
		t := v.(time.Time)
		return !t.Before(now.Add(-c.values[0].(time.Duration))) && !t.After(now)
	}
	return false
}

// Compare orders two instances as the query's order does: its keys, empty
// values last in either direction, then instance_id ascending.
func (q *Query) Compare(a, b store.Instance) int {
	for _, k := range q.keys {
		va, oka := value(k.field, a)
		vb, okb := value(k.field, b)
		switch {
		case !oka && !okb:
			continue
		case !oka:
			return 1
		case !okb:
			return -1
		}
		c := compare(va, vb)
		if k.desc {
			c = -c
		}
		if c != 0 {
			return c
		}
	}
	return strings.Compare(a.ID, b.ID)
}

// value reads field f of an instance as the views show it; false when it
// is empty.
func value(f Field, in store.Instance) (any, bool) {
	if f.Item == nil {
		switch f.Name {
		case ColInstanceID:
			return in.ID, true
		case ColState:
			return string(in.State), true
		case ColBeginTime:
			return optionalTime(in.Begin)
		case ColEndTime:
			return optionalTime(in.End)
		case ColLastModified:
			return optionalTime(&in.LastModified)
		case ColEvents:
			return in.Events, true
		}
		return nil, false
	}
	raw, ok := in.Data[f.Item.Name]
	if !ok {
		return nil, false
	}
	return itemValue(*f.Item, raw)
}

func optionalTime(t *time.Time) (any, bool) {
	if t == nil {
		return nil, false
	}
	return t.UTC().Truncate(time.Microsecond), true
}

// decimalString is the shape of a decimal held in a string that the views
// read (PostgreSQL's bam_num).
var decimalString = regexp.MustCompile(`^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]{1,3})?$`)

// itemValue reads an item's stored JSON value with its type, as the
// views do: a value that does not fit the type is empty.
func itemValue(it definition.Item, raw json.RawMessage) (any, bool) {
	var x any
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.UseNumber()
	if dec.Decode(&x) != nil {
		return nil, false
	}
	switch it.Type {
	case definition.Milestone:
		s, ok := x.(string)
		if !ok {
			return nil, false
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return nil, false
		}
		return t.UTC().Truncate(time.Microsecond), true
	case definition.Text:
		s, ok := x.(string)
		return s, ok
	case definition.Boolean:
		b, ok := x.(bool)
		return b, ok
	case definition.Integer:
		n, ok := x.(json.Number)
		if !ok || !smallNumber(string(n)) {
			return nil, false
		}
		r, ok := new(big.Rat).SetString(string(n))
		if !ok || !r.IsInt() || !r.Num().IsInt64() {
			return nil, false
		}
		return r.Num().Int64(), true
	case definition.Float:
		n, ok := x.(json.Number)
		if !ok {
			return nil, false
		}
		f, err := n.Float64()
		if err != nil || math.IsInf(f, 0) || f != 0 && math.Abs(f) < 1e-307 {
			return nil, false
		}
		return f, true
	case definition.Decimal:
		text := ""
		switch v := x.(type) {
		case json.Number:
			text = string(v)
		case string:
			if !decimalString.MatchString(v) {
				return nil, false
			}
			text = v
		default:
			return nil, false
		}
		if !smallNumber(text) {
			return nil, false
		}
		r, ok := new(big.Rat).SetString(text)
		if !ok {
			return nil, false
		}
		return Decimal{Rat: r, Text: text}, true
	}
	return nil, false
}

// smallNumber reports whether a number's exponent, if any, is small
// enough to compute with exactly.
func smallNumber(text string) bool {
	return !strings.ContainsAny(text, "eE") || smallExponent(text)
}
