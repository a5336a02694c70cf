package definition

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/bam-dev/bam/internal/event"
)

// Validate checks an event's data against the activity's items: every item
// the event sets must be defined, and its value must fit the item's type.
// A null value sets nothing and is always valid. The error is an
// *event.Error whose Field is "data.<item>" and whose Reason names the rule,
// so that an event refused here reads like one refused by event.Decode.
func (a Activity) Validate(ev event.Event) error {
	// The usual event is valid: check it in map order, without allocating,
	// and look for the first problem in name order only when there is one.
	valid := true
	for name, v := range ev.Data {
		if it, ok := a.item(name); ok && it.fits(v) {
			continue
		}
		if bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
			continue
		}
		valid = false
		break
	}
	if valid {
		return nil
	}
	names := make([]string, 0, len(ev.Data))
	for name := range ev.Data {
		names = append(names, name)
	}
	slices.Sort(names) // the first problem in name order: the same event, the same error
	for _, name := range names {
		v := bytes.TrimSpace(ev.Data[name])
		if bytes.Equal(v, []byte("null")) {
			continue
		}
		it, ok := a.item(name)
		if !ok {
			return &event.Error{Field: "data." + name, Reason: a.unknownItem(name)}
		}
		if reason := it.check(v); reason != "" {
			return &event.Error{Field: "data." + name, Reason: reason}
		}
	}
	return nil
}

func (a Activity) item(name string) (Item, bool) {
	for _, it := range a.Items {
		if it.Name == name {
			return it, true
		}
	}
	return Item{}, false
}

func (a Activity) unknownItem(name string) string {
	for _, it := range a.Items {
		if strings.EqualFold(it.Name, name) {
			return fmt.Sprintf("not an item of activity %s (did you mean %s? names are case-sensitive)", a.Name, it.Name)
		}
	}
	return fmt.Sprintf("not an item of activity %s; deploy a definition that adds it", a.Name)
}

// fits reports whether check surely accepts v, by a quick look that knows
// the usual shapes (a plain string, a small integer, a short decimal) and
// leaves every other value to check: when in doubt, false.
func (it Item) fits(v []byte) bool {
	switch it.Type {
	case Milestone:
		s, ok := plainString(v)
		if !ok {
			return false
		}
		_, err := time.Parse(time.RFC3339Nano, s)
		return err == nil
	case Text:
		s, ok := plainString(v)
		return ok && (len(s) <= it.MaxLength || utf8.RuneCountInString(s) <= it.MaxLength)
	case Boolean:
		return string(v) == "true" || string(v) == "false"
	case Integer:
		if !plainNumber(v) {
			return false
		}
		_, err := strconv.ParseInt(string(v), 10, 64)
		return err == nil // digits without a point, within 64 bits
	case Float:
		if !plainNumber(v) {
			return false
		}
		// A zero may be a nonzero value below float's precision: check
		// tells them apart.
		f, err := strconv.ParseFloat(string(v), 64)
		return err == nil && math.Abs(f) >= 1e-307
	case Decimal:
		if s, ok := plainString(v); ok {
			v = []byte(s)
		}
		return plainDecimalFits(v, it.Precision, it.scale())
	}
	return false
}

// plainString returns the text of a JSON string without escapes.
func plainString(v []byte) (string, bool) {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' || bytes.IndexByte(v[1:len(v)-1], '\\') >= 0 || bytes.IndexByte(v[1:len(v)-1], '"') >= 0 {
		return "", false
	}
	for _, c := range v[1 : len(v)-1] {
		if c < 0x20 {
			return "", false // not valid JSON: check says why
		}
	}
	return string(v[1 : len(v)-1]), true
}

// plainNumber reports whether v is a JSON number without an exponent:
// an optional minus, digits without a leading zero (but "0"), and an
// optional fraction.
func plainNumber(v []byte) bool {
	i := 0
	if i < len(v) && v[i] == '-' {
		i++
	}
	start := i
	for i < len(v) && v[i] >= '0' && v[i] <= '9' {
		i++
	}
	if i == start || (v[start] == '0' && i-start > 1) {
		return false
	}
	if i < len(v) && v[i] == '.' {
		i++
		frac := i
		for i < len(v) && v[i] >= '0' && v[i] <= '9' {
			i++
		}
		if i == frac {
			return false
		}
	}
	return i == len(v)
}

// plainDecimalFits reports whether v is a plain number (plainNumber) with
// at most scale digits after the point, ignoring trailing zeros, and at
// most precision − scale before it, ignoring leading zeros.
func plainDecimalFits(v []byte, precision, scale int) bool {
	if !plainNumber(v) {
		return false
	}
	if v[0] == '-' {
		v = v[1:]
	}
	intPart, frac, _ := bytes.Cut(v, []byte("."))
	intPart = bytes.TrimLeft(intPart, "0")
	frac = bytes.TrimRight(frac, "0")
	return len(frac) <= scale && len(intPart) <= precision-scale
}

// scale is the decimal's scale, 0 when unset.
func (it Item) scale() int {
	if it.Scale != nil {
		return *it.Scale
	}
	return 0
}

// check returns why the JSON value v does not fit the item, or "".
func (it Item) check(v []byte) string {
	switch it.Type {
	case Milestone:
		var s string
		if json.Unmarshal(v, &s) != nil {
			return fmt.Sprintf("milestone: must be an RFC 3339 time as a string such as \"2026-11-25T10:02:00Z\", got %s", v)
		}
		if _, err := time.Parse(time.RFC3339Nano, s); err != nil {
			return fmt.Sprintf("milestone: %q is not an RFC 3339 time such as 2026-11-25T10:02:00Z", s)
		}
	case Text:
		var s string
		if json.Unmarshal(v, &s) != nil {
			return fmt.Sprintf("text: must be a string, got %s", v)
		}
		if n := utf8.RuneCountInString(s); n > it.MaxLength {
			return fmt.Sprintf("text(%d): %d characters, more than the %d allowed", it.MaxLength, n, it.MaxLength)
		}
	case Boolean:
		if !bytes.Equal(v, []byte("true")) && !bytes.Equal(v, []byte("false")) {
			return fmt.Sprintf("boolean: must be true or false, got %s", v)
		}
	case Integer:
		n, ok := number(v)
		if !ok {
			return fmt.Sprintf("integer: must be a number, got %s", v)
		}
		if !n.IsInt() {
			return fmt.Sprintf("integer: %s is not a whole number", v)
		}
		if i := n.Num(); !i.IsInt64() {
			return fmt.Sprintf("integer: %s is outside the 64-bit range", v)
		}
	case Float:
		n, ok := number(v)
		if !ok {
			return fmt.Sprintf("float: must be a number, got %s", v)
		}
		f, _ := n.Float64()
		if math.IsInf(f, 0) {
			return fmt.Sprintf("float: %s is outside the 64-bit range", v)
		}
		// A nonzero value that rounds to 0 or to a subnormal would be
		// refused by SQL casts (PostgreSQL's float8 stops at ±1e-307).
		if n.Sign() != 0 && math.Abs(f) < 1e-307 {
			return fmt.Sprintf("float: %s is too close to 0 for a 64-bit float", v)
		}
	case Decimal:
		return it.checkDecimal(v)
	}
	return ""
}

// checkDecimal takes a JSON number or a string holding one (clients that
// keep decimals exact send them as strings).
func (it Item) checkDecimal(v []byte) string {
	text := string(v)
	var s string
	if json.Unmarshal(v, &s) == nil {
		text = s
	}
	// Whether it is a number at all comes first: the exponent's check
	// below reads any "e" as one, and called "hello" out of range.
	if !jsonNumber(strings.TrimPrefix(text, "+")) {
		return fmt.Sprintf("decimal: must be a number or a string holding one, got %s", v)
	}
	scale := it.scale()
	if !smallExponent(text) {
		return fmt.Sprintf("decimal(%d,%d): %s is out of range", it.Precision, scale, text)
	}
	n, ok := new(big.Rat).SetString(text)
	if !ok {
		return fmt.Sprintf("decimal: must be a number or a string holding one, got %s", v)
	}
	// Digits after the point: the value times 10^scale must be whole.
	shifted := new(big.Rat).Mul(n, new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(scale)), nil)))
	if !shifted.IsInt() {
		return fmt.Sprintf("decimal(%d,%d): %s has more than %d digits after the point", it.Precision, scale, text, scale)
	}
	// Digits in all: |value| × 10^scale < 10^precision.
	limit := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(it.Precision)), nil)
	if new(big.Int).Abs(shifted.Num()).Cmp(limit) >= 0 {
		return fmt.Sprintf("decimal(%d,%d): %s has more than %d digits before the point", it.Precision, scale, text, it.Precision-scale)
	}
	return ""
}

// jsonNumber reports whether text is exactly a JSON number: no sign but
// "-", no space around it, no fraction such as 1/3.
func jsonNumber(text string) bool {
	return text != "" && (text[0] == '-' || isDigit(text[0])) && isDigit(text[len(text)-1]) && json.Valid([]byte(text))
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// number parses a JSON number exactly. A number with an exponent beyond
// ±maxExponent is taken as ±10^401 or ±10^-401 (out of every range, or
// below every precision), so that 1e999999999 cannot make big.Rat build a
// billion-digit integer.
func number(v []byte) (*big.Rat, bool) {
	if !jsonNumber(string(v)) {
		return nil, false
	}
	if !smallExponent(string(v)) {
		// Beyond every range, or a nonzero speck below every precision:
		// what matters is which, and the sign.
		tenToMax := new(big.Int).Exp(big.NewInt(10), big.NewInt(maxExponent+1), nil)
		r := new(big.Rat).SetInt(tenToMax)
		if strings.Contains(string(v), "e-") || strings.Contains(string(v), "E-") {
			r.Inv(r)
		}
		if v[0] == '-' {
			r.Neg(r)
		}
		return r, true
	}
	return new(big.Rat).SetString(string(v))
}

// maxExponent bounds the exponents number and checkDecimal compute with:
// beyond it a value is outside every type's range anyway.
const maxExponent = 400

// smallExponent reports whether a number's exponent, if any, is within
// ±maxExponent.
func smallExponent(text string) bool {
	i := strings.IndexAny(text, "eE")
	if i < 0 {
		return true
	}
	exp, err := strconv.Atoi(strings.TrimPrefix(text[i+1:], "+"))
	return err == nil && exp >= -maxExponent && exp <= maxExponent
}
