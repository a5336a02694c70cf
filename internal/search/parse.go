package search

import (
	"strings"
)

// Filter is a parsed filter: syntax only, not yet checked against an
// activity. Its Expr is nil for the empty filter, which matches everything.
type Filter struct {
	Expr Expr
}

// Expr is a node of a filter: *And, *Or, *Not or *Cond.
type Expr interface {
	write(b *strings.Builder, parent int)
}

// And holds when all its terms do (two or more; never an *And).
type And struct{ Terms []Expr }

// Or holds when one of its terms does (two or more; never an *Or).
type Or struct{ Terms []Expr }

// Not holds when X does not.
type Not struct{ X Expr }

// Op is a condition's operator.
type Op string

// The operators, as String writes them.
const (
	OpEq         Op = "="
	OpNe         Op = "!="
	OpLt         Op = "<"
	OpLe         Op = "<="
	OpGt         Op = ">"
	OpGe         Op = ">="
	OpBetween    Op = "BETWEEN"
	OpIn         Op = "IN"
	OpNotIn      Op = "NOT IN"
	OpContains   Op = "CONTAINS"
	OpStartsWith Op = "STARTS WITH"
	OpIsEmpty    Op = "IS EMPTY"
	OpIsNotEmpty Op = "IS NOT EMPTY"
	OpInLast     Op = "IN LAST"
)

// Cond is one condition on a field: Field Op Values.
type Cond struct {
	Field  string // as written
	Op     Op
	Values []Literal // none for IS [NOT] EMPTY, two for BETWEEN, one or more for IN
	Pos    int       // column of the field
}

// LitKind is what a literal is.
type LitKind int

// The kinds of literals.
const (
	LitString LitKind = iota
	LitNumber
	LitBool
	LitDuration
)

// Literal is a value as written: a string's content, a number's or a
// duration's text, "true" or "false".
type Literal struct {
	Kind LitKind
	Text string
	Pos  int
}

// Parse reads a filter. Its error is a *SyntaxError naming the column and
// what was expected there.
func Parse(s string) (Filter, error) {
	toks, err := lex(s)
	if err != nil {
		return Filter{}, err
	}
	p := &parser{toks: toks}
	if p.peek().kind == tokEOF {
		return Filter{}, nil
	}
	e, err := p.or()
	if err != nil {
		return Filter{}, err
	}
	if t := p.peek(); t.kind != tokEOF {
		if t.kind == tokRParen {
			return Filter{}, errAt(t.pos, `found ")" without its "("`)
		}
		return Filter{}, errAt(t.pos, "expected AND, OR or the end of the filter, found %s", t.describe())
	}
	return Filter{Expr: e}, nil
}

type parser struct {
	toks []token
	at   int
}

func (p *parser) peek() token { return p.toks[p.at] }

func (p *parser) next() token {
	t := p.toks[p.at]
	if t.kind != tokEOF {
		p.at++
	}
	return t
}

// maxDepth bounds nesting, so that a hostile filter cannot exhaust the
// stack.
const maxDepth = 100

func (p *parser) or() (Expr, error) { return p.or1(0) }

func (p *parser) or1(depth int) (Expr, error) {
	var terms []Expr
	for {
		e, err := p.and(depth)
		if err != nil {
			return nil, err
		}
		if o, ok := e.(*Or); ok {
			terms = append(terms, o.Terms...)
		} else {
			terms = append(terms, e)
		}
		if !p.peek().keyword("OR") {
			break
		}
		p.next()
	}
	if len(terms) == 1 {
		return terms[0], nil
	}
	return &Or{Terms: terms}, nil
}

func (p *parser) and(depth int) (Expr, error) {
	var terms []Expr
	for {
		e, err := p.unary(depth)
		if err != nil {
			return nil, err
		}
		if a, ok := e.(*And); ok {
			terms = append(terms, a.Terms...)
		} else {
			terms = append(terms, e)
		}
		if !p.peek().keyword("AND") {
			break
		}
		p.next()
	}
	if len(terms) == 1 {
		return terms[0], nil
	}
	return &And{Terms: terms}, nil
}

func (p *parser) unary(depth int) (Expr, error) {
	if depth > maxDepth {
		return nil, errAt(p.peek().pos, "the filter nests deeper than %d", maxDepth)
	}
	t := p.peek()
	switch {
	case t.keyword("NOT"):
		p.next()
		x, err := p.unary(depth + 1)
		if err != nil {
			return nil, err
		}
		return &Not{X: x}, nil
	case t.kind == tokLParen:
		p.next()
		e, err := p.or1(depth + 1)
		if err != nil {
			return nil, err
		}
		if c := p.next(); c.kind != tokRParen {
			return nil, errAt(c.pos, `expected ")" to close the "(" at %d, found %s`, t.pos, c.describe())
		}
		return e, nil
	}
	return p.condition()
}

func (p *parser) field(what string) (token, error) {
	t := p.next()
	if t.kind == tokQuoted || t.kind == tokName && isName(t.text) {
		return t, nil
	}
	return token{}, errAt(t.pos, "expected %s, found %s", what, t.describe())
}

func (p *parser) condition() (Expr, error) {
	f, err := p.field("a field (an item or instance_id, state, begin_time, end_time, last_modified, events)")
	if err != nil {
		return nil, err
	}
	c := &Cond{Field: f.text, Pos: f.pos}
	t := p.next()
	switch {
	case t.kind == tokOp:
		c.Op = Op(t.text)
		v, err := p.value(t)
		if err != nil {
			return nil, err
		}
		c.Values = []Literal{v}
	case t.keyword("BETWEEN"):
		c.Op = OpBetween
		lo, err := p.value(t)
		if err != nil {
			return nil, err
		}
		and := p.next()
		if !and.keyword("AND") {
			return nil, errAt(and.pos, `expected AND between BETWEEN's two values, found %s`, and.describe())
		}
		hi, err := p.value(and)
		if err != nil {
			return nil, err
		}
		c.Values = []Literal{lo, hi}
	case t.keyword("NOT"):
		in := p.next()
		if !in.keyword("IN") {
			return nil, errAt(in.pos, `expected IN after %q NOT, found %s`, f.text, in.describe())
		}
		c.Op = OpNotIn
		if c.Values, err = p.list(in); err != nil {
			return nil, err
		}
	case t.keyword("IN"):
		if p.peek().keyword("LAST") {
			p.next()
			d := p.next()
			if d.kind != tokDuration {
				return nil, errAt(d.pos, `expected a duration such as 90m, 2h or 7d after "IN LAST", found %s`, d.describe())
			}
			c.Op, c.Values = OpInLast, []Literal{{Kind: LitDuration, Text: d.text, Pos: d.pos}}
			break
		}
		c.Op = OpIn
		if c.Values, err = p.list(t); err != nil {
			return nil, err
		}
	case t.keyword("CONTAINS"), t.keyword("STARTS"):
		c.Op = OpContains
		after := t
		if t.keyword("STARTS") {
			with := p.next()
			if !with.keyword("WITH") {
				return nil, errAt(with.pos, `expected WITH after STARTS, found %s`, with.describe())
			}
			c.Op, after = OpStartsWith, with
		}
		v, err := p.value(after)
		if err != nil {
			return nil, err
		}
		if v.Kind != LitString {
			return nil, errAt(v.Pos, "expected a 'string' after %s, found %s", c.Op, v.Text)
		}
		c.Values = []Literal{v}
	case t.keyword("IS"):
		c.Op = OpIsEmpty
		n := p.next()
		if n.keyword("NOT") {
			c.Op = OpIsNotEmpty
			n = p.next()
		}
		if !n.keyword("EMPTY") {
			return nil, errAt(n.pos, `expected EMPTY after %s, found %s`, strings.TrimSuffix(string(c.Op), " EMPTY"), n.describe())
		}
	default:
		return nil, errAt(t.pos, "expected an operator after %q (= != < <= > >= BETWEEN IN NOT IN CONTAINS STARTS WITH IS EMPTY IS NOT EMPTY IN LAST), found %s",
			f.text, t.describe())
	}
	return c, nil
}

// value reads a value after the token after.
func (p *parser) value(after token) (Literal, error) {
	t := p.next()
	switch {
	case t.kind == tokString:
		return Literal{Kind: LitString, Text: t.text, Pos: t.pos}, nil
	case t.kind == tokNumber:
		return Literal{Kind: LitNumber, Text: t.text, Pos: t.pos}, nil
	case t.keyword("true"), t.keyword("false"):
		return Literal{Kind: LitBool, Text: strings.ToLower(t.text), Pos: t.pos}, nil
	}
	return Literal{}, errAt(t.pos, "expected a value after %s ('text', a number, true, false), found %s", after.describe(), t.describe())
}

// list reads "(" value { "," value } ")" after IN.
func (p *parser) list(in token) ([]Literal, error) {
	open := p.next()
	if open.kind != tokLParen {
		return nil, errAt(open.pos, `expected "(" and a list of values after %s, found %s`, in.describe(), open.describe())
	}
	var out []Literal
	prev := open
	for {
		v, err := p.value(prev)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
		t := p.next()
		if t.kind == tokRParen {
			return out, nil
		}
		if t.kind != tokComma {
			return nil, errAt(t.pos, `expected "," or ")" in the list of values, found %s`, t.describe())
		}
		prev = t
	}
}
