package search

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	"github.com/bam-dev/bam/internal/definition"
)

// Scope is which of an activity's views a query reads.
type Scope string

// The scopes: the <name>_active, <name>_completed and <name>_all views,
// and the pending instances, which have no view of their own: the
// <name>_all view, under the condition state = 'pending' (ANDed with the
// filter, which Query.Filter keeps as written).
const (
	ScopeActive    Scope = "active"
	ScopeCompleted Scope = "completed"
	ScopeAll       Scope = "all"
	ScopePending   Scope = "pending"
)

// Query is a filter, an order and the columns to show, checked against an
// activity's deployed definition: what compiles to SQL and what Match
// evaluates.
type Query struct {
	Activity definition.Activity
	Scope    Scope
	// Filter and Order are the parsed ones, with every field named as the
	// definition names it: their String is the canonical form.
	Filter Filter
	Order  Order
	// Columns are the item columns a page's rows carry, in order.
	Columns []Field

	where node
	keys  []sortKey
}

// node is a checked filter expression: an and, or, not, or a condition.
type node struct {
	kind  nodeKind
	terms []node // and, or: two or more; not: one
	cond  *cond
}

type nodeKind int

const (
	nodeAll nodeKind = iota // the empty filter
	nodeAnd
	nodeOr
	nodeNot
	nodeCond
)

// cond is a checked condition: typed values.
type cond struct {
	field  Field
	op     Op
	values []any // typed (values.go); a time.Duration for IN LAST
}

// sortKey is one key of the checked order.
type sortKey struct {
	field Field
	desc  bool
}

// Spec is what a query is made of, as a user writes it.
type Spec struct {
	Scope   Scope    // empty: ScopeAll
	Where   string   // a filter (Parse)
	Order   string   // an order (ParseOrder)
	Columns []string // item names, any case; nil: every item
}

// Prepare parses spec and checks it against activity a. Its errors name
// the column of the filter or order where the problem is (*SyntaxError),
// prefixed with which of them.
func Prepare(a definition.Activity, spec Spec) (*Query, error) {
	q := &Query{Activity: a, Scope: spec.Scope}
	switch q.Scope {
	case "":
		q.Scope = ScopeAll
	case ScopeActive, ScopeCompleted, ScopeAll, ScopePending:
	default:
		return nil, fmt.Errorf("scope %q: use pending, active, completed or all", spec.Scope)
	}
	f, err := Parse(spec.Where)
	if err != nil {
		return nil, fmt.Errorf("filter: %w", err)
	}
	if f.Expr != nil {
		if q.where, err = check(a, f.Expr); err != nil {
			return nil, fmt.Errorf("filter: %w", err)
		}
	}
	q.Filter = f
	if q.Scope == ScopePending {
		p, err := Parse("state = 'pending'")
		if err != nil {
			return nil, err
		}
		pending, err := check(a, p.Expr)
		if err != nil {
			return nil, err
		}
		if f.Expr == nil {
			q.where = pending
		} else {
			q.where = node{kind: nodeAnd, terms: []node{pending, q.where}}
		}
	}
	o, err := ParseOrder(spec.Order)
	if err != nil {
		return nil, fmt.Errorf("order: %w", err)
	}
	seen := map[string]bool{}
	for i, k := range o.Keys {
		field, err := resolve(a, k.Field, k.Pos)
		if err != nil {
			return nil, fmt.Errorf("order: %w", err)
		}
		if seen[field.Name] {
			return nil, fmt.Errorf("order: %w", errAt(k.Pos, "%s is in the order twice", field.Name))
		}
		seen[field.Name] = true
		o.Keys[i].Field = field.Name
		q.keys = append(q.keys, sortKey{field: field, desc: k.Desc})
	}
	q.Order = o
	if spec.Columns == nil {
		for _, it := range a.Items {
			spec.Columns = append(spec.Columns, it.Name)
		}
	}
	for _, name := range spec.Columns {
		field, err := resolve(a, strings.TrimSpace(name), 0)
		if err != nil {
			return nil, fmt.Errorf("column %q: %s", name, err.(*SyntaxError).Msg)
		}
		if field.Item == nil {
			return nil, fmt.Errorf("column %q: every row has the instance's id, state, times and events already; name items", name)
		}
		q.Columns = append(q.Columns, field)
	}
	return q, nil
}

// check resolves and types a parsed expression, renaming its fields as
// the definition names them.
func check(a definition.Activity, e Expr) (node, error) {
	switch e := e.(type) {
	case *And, *Or:
		kind, terms := nodeAnd, []Expr(nil)
		if and, ok := e.(*And); ok {
			terms = and.Terms
		} else {
			kind, terms = nodeOr, e.(*Or).Terms
		}
		n := node{kind: kind}
		for _, t := range terms {
			c, err := check(a, t)
			if err != nil {
				return node{}, err
			}
			n.terms = append(n.terms, c)
		}
		return n, nil
	case *Not:
		x, err := check(a, e.X)
		if err != nil {
			return node{}, err
		}
		return node{kind: nodeNot, terms: []node{x}}, nil
	case *Cond:
		c, err := checkCond(a, e)
		if err != nil {
			return node{}, err
		}
		return node{kind: nodeCond, cond: c}, nil
	}
	panic(fmt.Sprintf("search: check of %T", e))
}

func checkCond(a definition.Activity, c *Cond) (*cond, error) {
	f, err := resolve(a, c.Field, c.Pos)
	if err != nil {
		return nil, err
	}
	c.Field = f.Name
	ops := opsFor(f.Kind)
	if !slices.Contains(ops, c.Op) {
		return nil, errAt(c.Pos, "%s does not apply to %s: use %s", c.Op, f.describe(), opList(ops))
	}
	out := &cond{field: f, op: c.Op}
	if c.Op == OpInLast {
		d, err := parseDuration(c.Values[0])
		if err != nil {
			return nil, err
		}
		out.values = []any{d}
		return out, nil
	}
	for _, l := range c.Values {
		v, err := typed(a, f, l)
		if err != nil {
			return nil, err
		}
		out.values = append(out.values, v)
	}
	if c.Op == OpBetween && compare(out.values[0], out.values[1]) > 0 {
		return nil, errAt(c.Values[0].Pos, "BETWEEN %s AND %s: the first value is after the second, so nothing matches; swap them", c.Values[0], c.Values[1])
	}
	return out, nil
}

// fingerprint identifies what a cursor belongs to: the activity, scope,
// filter and order (not the columns, nor the page size, which may change
// between pages).
func (q *Query) fingerprint() string {
	h := sha256.Sum256([]byte(strings.Join([]string{q.Activity.Name, string(q.Scope), q.Filter.String(), q.Order.String()}, "\x00")))
	return hex.EncodeToString(h[:8])
}
