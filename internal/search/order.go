package search

import "strings"

// Order is a parsed order: its keys, first to last. Empty: by instance id.
type Order struct {
	Keys []OrderKey
}

// OrderKey is one key of an order.
type OrderKey struct {
	Field string // as written
	Desc  bool
	Pos   int
}

// ParseOrder reads an order such as "Amount DESC, begin_time". Its error
// is a *SyntaxError.
func ParseOrder(s string) (Order, error) {
	toks, err := lex(s)
	if err != nil {
		return Order{}, err
	}
	p := &parser{toks: toks}
	var o Order
	if p.peek().kind == tokEOF {
		return o, nil
	}
	for {
		f, err := p.field("a field to order by (an item or instance_id, state, begin_time, end_time, last_modified, events)")
		if err != nil {
			return Order{}, err
		}
		k := OrderKey{Field: f.text, Pos: f.pos}
		switch t := p.peek(); {
		case t.keyword("ASC"):
			p.next()
		case t.keyword("DESC"):
			p.next()
			k.Desc = true
		}
		o.Keys = append(o.Keys, k)
		t := p.next()
		if t.kind == tokEOF {
			return o, nil
		}
		if t.kind != tokComma {
			return Order{}, errAt(t.pos, `expected ASC, DESC, "," or the end of the order, found %s`, t.describe())
		}
	}
}

// String writes the order as ParseOrder reads it: "Amount DESC, begin_time".
func (o Order) String() string {
	var b strings.Builder
	for i, k := range o.Keys {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(fieldString(k.Field))
		if k.Desc {
			b.WriteString(" DESC")
		}
	}
	return b.String()
}
