package event

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// What every store can hold. A value outside these limits is valid JSON
// but one store or another refuses it or changes it, and a value that one
// store refuses fails its whole batch on every retry: such values are
// refused where events enter (DESIGN.md, trap "a poison value that only
// the store refuses"), the same on every store.
const (
	// MaxNumberScale is the most digits a number may have after the
	// decimal point, counting the exponent (1e-3 has 3): PostgreSQL's
	// numeric, which jsonb stores numbers in, holds 16383.
	MaxNumberScale = 16383
	// MaxNumber is the largest magnitude a number may have: the largest
	// 64-bit float. Beyond it a number reads as ±Inf in SQLite and in
	// every client that reads numbers as floats (PostgreSQL's numeric
	// goes further, to 131072 digits before the point).
	MaxNumber = 1.7976931348623157e308
)

// numberProblem returns why a JSON number literal cannot be stored in
// every store, or "" when it can. It reads the digits and the exponent
// without converting the number, except at the edge of the float range.
func numberProblem(lit []byte) string {
	n, ok := SplitNumber(lit)
	if !ok {
		return "is not a JSON number"
	}
	intDigits, frac, exp := n.Int, n.Frac, n.Exp
	if scale := int64(len(frac)) - exp; scale > MaxNumberScale {
		return fmt.Sprintf("number %s has %s digits after the decimal point, over the limit of %d that every store can hold",
			quoteNumber(lit), countDigits(scale), MaxNumberScale)
	}
	// The decimal exponent of the first significant digit: 1 for 12.5,
	// -2 for 0.012.
	var lead int64
	switch n := len(bytes.TrimLeft(intDigits, "0")); {
	case n > 0:
		lead = int64(n - 1)
	default:
		zeros := len(frac) - len(bytes.TrimLeft(frac, "0"))
		if zeros == len(frac) {
			return "" // zero, whatever its exponent
		}
		lead = -int64(zeros + 1)
	}
	switch lead += exp; {
	case lead < 308:
		return ""
	case lead == 308:
		if _, err := strconv.ParseFloat(string(lit), 64); err == nil {
			return ""
		}
	}
	return fmt.Sprintf("number %s is beyond ±%g, the largest number every store can hold", quoteNumber(lit), MaxNumber)
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// NumberParts are the parts of a number literal: -?Int(.Frac)?([eE]Exp)?.
type NumberParts struct {
	Negative bool
	Int      []byte // the digits before the point, at least one
	Dot      bool   // a point was written (Frac may still be empty)
	Frac     []byte // the digits after it
	HasExp   bool   // an exponent was written
	Exp      int64  // the exponent; it saturates far beyond any float's, never overflows
}

// SplitNumber splits a number literal into its parts, without converting
// it; false when lit is not digits, an optional fraction and an optional
// exponent of at least one digit. It does not refuse what JSON also
// refuses beyond that (leading zeros, a point with no digit after it).
func SplitNumber(lit []byte) (NumberParts, bool) {
	var n NumberParts
	i := 0
	if i < len(lit) && lit[i] == '-' {
		n.Negative = true
		i++
	}
	from := i
	for i < len(lit) && isDigit(lit[i]) {
		i++
	}
	n.Int = lit[from:i]
	if i < len(lit) && lit[i] == '.' {
		n.Dot = true
		i++
		from := i
		for i < len(lit) && isDigit(lit[i]) {
			i++
		}
		n.Frac = lit[from:i]
	}
	if i < len(lit) && (lit[i] == 'e' || lit[i] == 'E') {
		n.HasExp = true
		i++
		neg := false
		if i < len(lit) && (lit[i] == '+' || lit[i] == '-') {
			neg = lit[i] == '-'
			i++
		}
		from := i
		for ; i < len(lit) && isDigit(lit[i]); i++ {
			if n.Exp < 1<<40 {
				n.Exp = n.Exp*10 + int64(lit[i]-'0')
			}
		}
		if i == from {
			return NumberParts{}, false
		}
		if neg {
			n.Exp = -n.Exp
		}
	}
	if len(n.Int) == 0 || i != len(lit) {
		return NumberParts{}, false
	}
	return n, true
}

// quoteNumber shows a number literal in a message, cut when it is long.
func quoteNumber(lit []byte) string {
	const show = 24
	if len(lit) <= show {
		return string(lit)
	}
	return fmt.Sprintf("%s… (%d characters)", lit[:show], len(lit))
}

// countDigits writes a count that an exponent may have made absurd.
func countDigits(n int64) string {
	if n >= 1<<40 {
		return "more than a trillion"
	}
	return strconv.FormatInt(n, 10)
}

// utf8Reason is why text that is not UTF-8 is refused. PostgreSQL refuses
// it in text and jsonb (invalid byte sequence); a JSON decoder replaces it
// silently; either way the store would not hold what was sent.
func utf8Reason(text []byte) string {
	at := invalidUTF8(text)
	return fmt.Sprintf("text must be valid UTF-8: byte 0x%02x at offset %d of the value is not", text[at], at)
}

// invalidUTF8 returns the offset of the first byte of b that is not part
// of valid UTF-8; b must hold one.
func invalidUTF8(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return 0
}

// utf8Error refuses an event whose raw form is not valid UTF-8, naming the
// field whose text holds the first bad byte (its offset is within the
// event).
func utf8Error(raw []byte) *Error {
	at := invalidUTF8(raw)
	return &Error{Field: fieldAt(raw, int64(at)),
		Reason: fmt.Sprintf("text must be valid UTF-8: byte 0x%02x at byte %d of the event is not", raw[at], at)}
}

// fieldAt returns the path of the JSON value (or key) of raw that holds
// the byte at offset at, as Error.Field names it ("reference.value",
// "data.Customer", "related.instance"); "" when it cannot tell.
func fieldAt(raw []byte, at int64) string {
	type level struct {
		object  bool
		wantKey bool
		key     string
		index   int
	}
	var stack []level
	path := func(last string) string {
		var parts []string
		for _, l := range stack[:len(stack)-1] {
			if l.object {
				parts = append(parts, l.key)
			} else {
				parts = append(parts, fmt.Sprintf("[%d]", l.index))
			}
		}
		if last != "" {
			parts = append(parts, last)
		}
		return strings.ReplaceAll(strings.Join(parts, "."), ".[", "[")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	for {
		tok, err := dec.Token()
		if err != nil {
			return ""
		}
		end := dec.InputOffset()
		top := len(stack) - 1
		if s, isString := tok.(string); isString && top >= 0 && stack[top].object && stack[top].wantKey {
			stack[top].key, stack[top].wantKey = s, false
			if at < end {
				return path(s)
			}
			continue
		}
		if at < end {
			if top < 0 {
				return ""
			}
			if stack[top].object {
				return path(stack[top].key)
			}
			return path(fmt.Sprintf("[%d]", stack[top].index))
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			stack = append(stack, level{object: tok == json.Delim('{'), wantKey: true})
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:top]
			top--
		}
		// A value ended: the next token of an object is a key, of an
		// array the next element.
		if top >= 0 {
			stack[top].wantKey = true
			if !stack[top].object {
				stack[top].index++
			}
		}
	}
}
