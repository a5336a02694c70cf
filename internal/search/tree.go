package search

import (
	"github.com/bam-dev/bam/internal/definition"
)

// The portal's query builder (package portal) shows a filter as a tree
// of groups and conditions, and shows for each field the operators its
// type takes. It reads both from here, through the HTTP API, rather than
// from a second grammar and a second table of types written in
// JavaScript: a filter has one parser, this package's.

// FieldJSON is a field of an activity as a query builder offers it.
type FieldJSON struct {
	Name string `json:"name"`
	// Type is the field's kind (text, state, time, integer, float,
	// decimal, boolean).
	Type string `json:"type"`
	// Item: the field is an item of the activity (else a built-in column).
	Item bool `json:"item"`
	// Operators are those its type takes, in the order a menu shows them.
	Operators []string `json:"operators"`
}

// Fields lists the fields of activity a, its items in their order, then
// the built-in columns.
func Fields(a definition.Activity) []FieldJSON {
	var out []FieldJSON
	for _, it := range a.Items {
		kind, ok := itemKinds[it.Type]
		if !ok {
			continue // a type this bam cannot filter on
		}
		out = append(out, FieldJSON{Name: it.Name, Type: kind.String(), Item: true, Operators: opNames(kind)})
	}
	for _, b := range builtins {
		out = append(out, FieldJSON{Name: b.Name, Type: b.Kind.String(), Operators: opNames(b.Kind)})
	}
	return out
}

// opNames are the operators of kind k, the usual first.
func opNames(k Kind) []string {
	order := []Op{OpEq, OpNe, OpLt, OpLe, OpGt, OpGe, OpBetween, OpIn, OpNotIn, OpContains, OpStartsWith, OpInLast, OpIsEmpty, OpIsNotEmpty}
	takes := map[Op]bool{}
	for _, o := range opsFor(k) {
		takes[o] = true
	}
	var out []string
	for _, o := range order {
		if takes[o] {
			out = append(out, string(o))
		}
	}
	return out
}

// TreeJSON is a node of a filter as a tree: a group (And or Or, with its
// Terms), a negation (Not) or a condition (Field, Op, Values: none for
// IS EMPTY and IS NOT EMPTY).
type TreeJSON struct {
	And   []TreeJSON  `json:"and,omitempty"`
	Or    []TreeJSON  `json:"or,omitempty"`
	Not   *TreeJSON   `json:"not,omitempty"`
	Field string      `json:"field,omitempty"`
	Op    string      `json:"op,omitempty"`
	Value []ValueJSON `json:"values,omitempty"`
}

// ValueJSON is a literal of a condition: its kind (string, number,
// boolean, duration) and its text (a string's content, unquoted).
type ValueJSON struct {
	Kind string `json:"kind"`
	Text string `json:"text"`
}

// Tree returns f as a tree; nil for the empty filter.
func Tree(f Filter) *TreeJSON {
	if f.Expr == nil {
		return nil
	}
	t := tree(f.Expr)
	return &t
}

func tree(e Expr) TreeJSON {
	switch e := e.(type) {
	case *And:
		return TreeJSON{And: trees(e.Terms)}
	case *Or:
		return TreeJSON{Or: trees(e.Terms)}
	case *Not:
		x := tree(e.X)
		return TreeJSON{Not: &x}
	case *Cond:
		t := TreeJSON{Field: e.Field, Op: string(e.Op)}
		for _, v := range e.Values {
			t.Value = append(t.Value, ValueJSON{Kind: [...]string{"string", "number", "boolean", "duration"}[v.Kind], Text: v.Text})
		}
		return t
	}
	panic("search: unknown node")
}

func trees(es []Expr) []TreeJSON {
	out := make([]TreeJSON, len(es))
	for i, e := range es {
		out[i] = tree(e)
	}
	return out
}
