package search

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseCanonical(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"   ", ""},
		{"Customer = 'ACME'", "Customer = 'ACME'"},
		{"customer='it''s'", "customer = 'it''s'"},
		{"a != 1 and b<=2.5 Or c>-3e2", "a != 1 AND b <= 2.5 OR c > -3e2"},
		{"a = 1 OR b = 2 AND c = 3", "a = 1 OR b = 2 AND c = 3"},
		{"(a = 1 OR b = 2) AND c = 3", "(a = 1 OR b = 2) AND c = 3"},
		{"((a = 1))", "a = 1"},
		{"(a = 1 AND b = 2) AND c = 3", "a = 1 AND b = 2 AND c = 3"},
		{"a = 1 OR (b = 2 OR c = 3)", "a = 1 OR b = 2 OR c = 3"},
		{"not a = 1 and b = 2", "NOT a = 1 AND b = 2"},
		{"NOT (a = 1 AND b = 2)", "NOT (a = 1 AND b = 2)"},
		{"NOT NOT a IS EMPTY", "NOT NOT a IS EMPTY"},
		{"Amount between 10 and 20", "Amount BETWEEN 10 AND 20"},
		{"x in (1,2 , 3)", "x IN (1, 2, 3)"},
		{"x not in ('a')", "x NOT IN ('a')"},
		{"Customer contains 'AC'", "Customer CONTAINS 'AC'"},
		{"Customer starts with 'AC'", "Customer STARTS WITH 'AC'"},
		{"Shipped is empty", "Shipped IS EMPTY"},
		{"Shipped IS not EMPTY", "Shipped IS NOT EMPTY"},
		{"Received in last 90m", "Received IN LAST 90m"},
		{"end_time IN LAST 7d", "end_time IN LAST 7d"},
		{"Rush = TRUE", "Rush = true"},
		{`"Not" = 1 AND "and" = 2`, `"Not" = 1 AND "and" = 2`},
		{"a = 1 AND (b = 2 OR NOT (c = 3 OR d = 4))", "a = 1 AND (b = 2 OR NOT (c = 3 OR d = 4))"},
	} {
		f, err := Parse(tc.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.in, err)
			continue
		}
		if got := f.String(); got != tc.want {
			t.Errorf("Parse(%q).String() = %q, want %q", tc.in, got, tc.want)
		}
		again, err := Parse(f.String())
		if err != nil || !sameFilter(again, f) {
			t.Errorf("Parse(%q) = %#v, %v; want %#v", f.String(), again, err, f)
		}
	}
}

func TestParsePrecedence(t *testing.T) {
	f, err := Parse("NOT a = 1 AND b = 2 OR c = 3")
	if err != nil {
		t.Fatal(err)
	}
	or, ok := f.Expr.(*Or)
	if !ok || len(or.Terms) != 2 {
		t.Fatalf("top = %#v, want an OR of two", f.Expr)
	}
	and, ok := or.Terms[0].(*And)
	if !ok || len(and.Terms) != 2 {
		t.Fatalf("left of OR = %#v, want an AND of two", or.Terms[0])
	}
	if _, ok := and.Terms[0].(*Not); !ok {
		t.Fatalf("first of AND = %#v, want a NOT", and.Terms[0])
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"Customer =", `at 11: expected a value after "=" ('text', a number, true, false), found end of filter`},
		{"Customer = 'x", `at 12: a string has no closing quote`},
		{"= 'x'", `at 1: expected a field`},
		{"Customer 'x'", `at 10: expected an operator after "Customer"`},
		{"Customer ! 'x'", `at 10: expected "!=", found "!" alone`},
		{"a = 1 b = 2", `at 7: expected AND, OR or the end of the filter, found "b"`},
		{"(a = 1", `at 7: expected ")" to close the "(" at 1, found end of filter`},
		{"a = 1)", `at 6: found ")" without its "("`},
		{"a BETWEEN 1 2", `at 13: expected AND between BETWEEN's two values, found "2"`},
		{"a IN 1", `at 6: expected "(" and a list of values after "IN", found "1"`},
		{"a IN (1 2)", `at 9: expected "," or ")" in the list of values`},
		{"a IN LAST 5", `at 11: expected a duration such as 90m, 2h or 7d after "IN LAST", found "5"`},
		{"a IN LAST 5y", `at 11: "5y" is not a number`},
		{"a CONTAINS 5", `at 12: expected a 'string' after CONTAINS, found 5`},
		{"a STARTS 'x'", `at 10: expected WITH after STARTS`},
		{"a IS FULL", `at 6: expected EMPTY after IS, found "FULL"`},
		{"a NOT LIKE 'x'", `at 7: expected IN after "a" NOT`},
		{"a = 1.", `at 7: expected digits after the decimal point`},
		{"a = -", `at 5: expected digits after "-"`},
		{"a = 'x\x00'", `at 7: a string may not hold the NUL character`},
		{"a = 1; DROP TABLE x", `at 6: unexpected ';'`},
		{`"a b" = 1`, `at 1: "a b" is not a name`},
		{"a = \xff", `not valid UTF-8`},
		{strings.Repeat("(", 200) + "a = 1" + strings.Repeat(")", 200), "nests deeper than 100"},
	} {
		_, err := Parse(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) = %v, want an error with %q", tc.in, err, tc.want)
		}
	}
}

func TestParseOrder(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"Amount desc, begin_time", "Amount DESC, begin_time"},
		{"a ASC,b DESC", "a, b DESC"},
	} {
		o, err := ParseOrder(tc.in)
		if err != nil || o.String() != tc.want {
			t.Errorf("ParseOrder(%q) = %q, %v; want %q", tc.in, o.String(), err, tc.want)
		}
	}
	for _, tc := range []struct{ in, want string }{
		{"Amount DESC DESC", `at 13: expected ASC, DESC, "," or the end of the order, found "DESC"`},
		{"Amount,", `at 8: expected a field to order by`},
		{"Amount; DROP TABLE bam_instances", `at 7: unexpected ';'`},
	} {
		_, err := ParseOrder(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseOrder(%q) = %v, want an error with %q", tc.in, err, tc.want)
		}
	}
}

// sameFilter compares two filters but for the positions they were read at.
func sameFilter(a, b Filter) bool {
	return reflect.DeepEqual(withoutPos(a.Expr), withoutPos(b.Expr))
}

func withoutPos(e Expr) Expr {
	switch e := e.(type) {
	case *And:
		out := &And{}
		for _, t := range e.Terms {
			out.Terms = append(out.Terms, withoutPos(t))
		}
		return out
	case *Or:
		out := &Or{}
		for _, t := range e.Terms {
			out.Terms = append(out.Terms, withoutPos(t))
		}
		return out
	case *Not:
		return &Not{X: withoutPos(e.X)}
	case *Cond:
		out := &Cond{Field: e.Field, Op: e.Op}
		for _, v := range e.Values {
			out.Values = append(out.Values, Literal{Kind: v.Kind, Text: v.Text})
		}
		return out
	}
	return e
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"", "Customer = 'ACME'", "a = 1 OR b = 2 AND NOT c = 3", "(a = 1 OR b = 2) AND c = 3",
		"Amount BETWEEN 10 AND 20.5", "x IN (1, 2, 3)", "x NOT IN ('a', 'b')", "Customer CONTAINS 'it''s'",
		"Customer STARTS WITH 'AC'", "Shipped IS EMPTY", "Shipped IS NOT EMPTY", "Received IN LAST 90m",
		"Rush = true", `"Not" = 1`, "NOT NOT (a = -1e3 OR b != 2)", "x = 'x''; DROP TABLE bam_instances; --'",
		"a = 1 AND (b = 2 OR NOT (c = 3 OR d = 4))",
	} {
		f.Add(s)
	}
	f.Add("Amount DESC, begin_time")
	f.Fuzz(func(t *testing.T, s string) {
		if o, err := ParseOrder(s); err == nil {
			again, err := ParseOrder(o.String())
			if err != nil || again.String() != o.String() || len(again.Keys) != len(o.Keys) {
				t.Fatalf("ParseOrder(%q) wrote %q, which reads as %+v, %v", s, o.String(), again, err)
			}
			for i, k := range o.Keys {
				if again.Keys[i].Field != k.Field || again.Keys[i].Desc != k.Desc {
					t.Fatalf("ParseOrder(%q) wrote %q, which reads as %+v", s, o.String(), again)
				}
			}
		}
		p, err := Parse(s)
		if err != nil {
			return
		}
		again, err := Parse(p.String())
		if err != nil {
			t.Fatalf("Parse(%q) read %q, which Parse refuses: %v", s, p.String(), err)
		}
		if !sameFilter(again, p) {
			t.Fatalf("Parse(%q) = %#v; its String %q reads as %#v", s, p, p.String(), again)
		}
		if again.String() != p.String() {
			t.Fatalf("String is not stable: %q then %q", p.String(), again.String())
		}
	})
}
