package search

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// tokKind is what a token is.
type tokKind int

const (
	tokEOF      tokKind = iota
	tokName             // a bare name or keyword
	tokQuoted           // a "quoted" field name
	tokString           // a 'string'
	tokNumber           // 12, -1.5, 2e3
	tokDuration         // 90m
	tokOp               // = != < <= > >=
	tokLParen
	tokRParen
	tokComma
)

// token is one token and the column (1-based, in bytes) it starts at.
type token struct {
	kind tokKind
	text string // a string's content without quotes or escapes; else as written
	pos  int
}

// describe names a token in an error: `"AND"`, `'x'`, "end of filter".
func (t token) describe() string {
	switch t.kind {
	case tokEOF:
		return "end of filter"
	case tokString:
		return quoteString(t.text)
	}
	return fmt.Sprintf("%q", t.text)
}

// keyword reports whether t is the keyword kw (in any case).
func (t token) keyword(kw string) bool { return t.kind == tokName && strings.EqualFold(t.text, kw) }

// SyntaxError is a filter or an order that cannot be read, or a condition
// that does not fit the activity: Pos is the column (1-based, in bytes) of
// the string where the problem is.
type SyntaxError struct {
	Pos int
	Msg string
}

func (e *SyntaxError) Error() string { return fmt.Sprintf("at %d: %s", e.Pos, e.Msg) }

func errAt(pos int, format string, args ...any) error {
	return &SyntaxError{Pos: pos, Msg: fmt.Sprintf(format, args...)}
}

// durationUnits are the units of a duration, in the order of their size.
const durationUnits = "smhdw"

// lex splits s into tokens, ending with tokEOF.
func lex(s string) ([]token, error) {
	if !utf8.ValidString(s) {
		return nil, errAt(1+strings.IndexFunc(s, func(r rune) bool { return r == utf8.RuneError }), "the filter is not valid UTF-8")
	}
	var out []token
	i := 0
	for {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') {
			i++
		}
		if i == len(s) {
			return append(out, token{kind: tokEOF, pos: i + 1}), nil
		}
		start, c := i, s[i]
		switch {
		case c == '(' || c == ')' || c == ',':
			kind := map[byte]tokKind{'(': tokLParen, ')': tokRParen, ',': tokComma}[c]
			out = append(out, token{kind: kind, text: string(c), pos: start + 1})
			i++
		case c == '=':
			out = append(out, token{kind: tokOp, text: "=", pos: start + 1})
			i++
		case c == '!' || c == '<' || c == '>':
			op := string(c)
			if i+1 < len(s) && s[i+1] == '=' {
				op += "="
			} else if c == '!' {
				return nil, errAt(start+1, `expected "!=", found "!" alone`)
			}
			out = append(out, token{kind: tokOp, text: op, pos: start + 1})
			i += len(op)
		case c == '\'':
			text, end, err := lexString(s, i)
			if err != nil {
				return nil, err
			}
			out = append(out, token{kind: tokString, text: text, pos: start + 1})
			i = end
		case c == '"':
			end := strings.IndexByte(s[i+1:], '"')
			if end < 0 {
				return nil, errAt(start+1, `a quoted name has no closing '"'`)
			}
			name := s[i+1 : i+1+end]
			if !isName(name) {
				return nil, errAt(start+1, "%q is not a name: a letter, then letters, digits and underscores", name)
			}
			out = append(out, token{kind: tokQuoted, text: name, pos: start + 1})
			i += end + 2
		case c == '-' || isDigit(c):
			tok, end, err := lexNumber(s, i)
			if err != nil {
				return nil, err
			}
			out = append(out, tok)
			i = end
		case isLetter(c):
			for i < len(s) && (isLetter(s[i]) || isDigit(s[i]) || s[i] == '_') {
				i++
			}
			out = append(out, token{kind: tokName, text: s[start:i], pos: start + 1})
		default:
			r, _ := utf8.DecodeRuneInString(s[i:])
			return nil, errAt(start+1, "unexpected %q: expected a field, a value, an operator or a parenthesis", r)
		}
	}
}

// lexString reads the 'string' starting at s[i]; a doubled quote is one.
func lexString(s string, i int) (text string, end int, err error) {
	var b strings.Builder
	for j := i + 1; j < len(s); j++ {
		switch s[j] {
		case '\'':
			if j+1 < len(s) && s[j+1] == '\'' {
				b.WriteByte('\'')
				j++
				continue
			}
			return b.String(), j + 1, nil
		case 0:
			return "", 0, errAt(j+1, "a string may not hold the NUL character")
		}
		b.WriteByte(s[j])
	}
	return "", 0, errAt(i+1, "a string has no closing quote (write '' for a quote inside one)")
}

// lexNumber reads a number, or a duration (digits and a unit), at s[i].
func lexNumber(s string, i int) (token, int, error) {
	start := i
	if s[i] == '-' {
		i++
	}
	digits := func() int {
		from := i
		for i < len(s) && isDigit(s[i]) {
			i++
		}
		return i - from
	}
	if digits() == 0 {
		return token{}, 0, errAt(start+1, `expected digits after "-"`)
	}
	if i < len(s) && strings.IndexByte(durationUnits, s[i]) >= 0 && s[start] != '-' &&
		(i+1 == len(s) || !(isLetter(s[i+1]) || isDigit(s[i+1]) || s[i+1] == '_')) {
		return token{kind: tokDuration, text: s[start : i+1], pos: start + 1}, i + 1, nil
	}
	if i < len(s) && s[i] == '.' {
		i++
		if digits() == 0 {
			return token{}, 0, errAt(i+1, "expected digits after the decimal point")
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if digits() == 0 {
			return token{}, 0, errAt(i+1, "expected the exponent's digits")
		}
	}
	if i < len(s) && (isLetter(s[i]) || s[i] == '_' || s[i] == '.') {
		return token{}, 0, errAt(start+1, "%q is not a number (a duration is digits and one of s, m, h, d, w)", s[start:i+1])
	}
	return token{kind: tokNumber, text: s[start:i], pos: start + 1}, i, nil
}

func isDigit(c byte) bool  { return c >= '0' && c <= '9' }
func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// isName reports whether s is a name: a letter, then letters, digits and
// underscores (the rule of item names).
func isName(s string) bool {
	if s == "" || !isLetter(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !isLetter(s[i]) && !isDigit(s[i]) && s[i] != '_' {
			return false
		}
	}
	return true
}

// quoteString writes s as a filter string: in single quotes, a quote
// doubled.
func quoteString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
