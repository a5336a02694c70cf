package search

import (
	"strings"
)

// Precedences, for parentheses: a node is written in parentheses when its
// parent binds tighter.
const (
	precOr = iota
	precAnd
	precNot
)

// String writes the filter in its canonical form, which Parse reads as the
// same filter: keywords in upper case, one space between tokens,
// parentheses only where precedence needs them.
func (f Filter) String() string {
	if f.Expr == nil {
		return ""
	}
	var b strings.Builder
	f.Expr.write(&b, precOr)
	return b.String()
}

func (e *Or) write(b *strings.Builder, parent int) {
	writeTerms(b, e.Terms, " OR ", precOr, parent)
}

func (e *And) write(b *strings.Builder, parent int) {
	writeTerms(b, e.Terms, " AND ", precAnd, parent)
}

func writeTerms(b *strings.Builder, terms []Expr, sep string, own, parent int) {
	if parent > own {
		b.WriteByte('(')
	}
	for i, t := range terms {
		if i > 0 {
			b.WriteString(sep)
		}
		// A term of the same kind would be flattened by Parse: keep it
		// apart with parentheses (own+1).
		t.write(b, own+1)
	}
	if parent > own {
		b.WriteByte(')')
	}
}

func (e *Not) write(b *strings.Builder, _ int) {
	b.WriteString("NOT ")
	e.X.write(b, precNot)
}

func (c *Cond) write(b *strings.Builder, _ int) {
	b.WriteString(fieldString(c.Field))
	b.WriteByte(' ')
	b.WriteString(string(c.Op))
	switch c.Op {
	case OpIsEmpty, OpIsNotEmpty:
	case OpBetween:
		b.WriteString(" " + c.Values[0].String() + " AND " + c.Values[1].String())
	case OpIn, OpNotIn:
		b.WriteString(" (")
		for i, v := range c.Values {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(v.String())
		}
		b.WriteByte(')')
	default:
		b.WriteString(" " + c.Values[0].String())
	}
}

// String writes a literal as a filter reads it.
func (l Literal) String() string {
	if l.Kind == LitString {
		return quoteString(l.Text)
	}
	return l.Text
}

// keywords are the words a bare field name may not be written as.
var keywords = []string{"and", "or", "not", "in", "between", "contains", "starts", "with", "is", "empty", "last", "true", "false", "asc", "desc"}

// fieldString writes a field name, in double quotes when it is a keyword.
func fieldString(name string) string {
	for _, k := range keywords {
		if strings.EqualFold(name, k) {
			return `"` + name + `"`
		}
	}
	return name
}
