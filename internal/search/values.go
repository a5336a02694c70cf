package search

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bam-dev/bam/internal/definition"
	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/store"
)

// A typed value is one of: string (text, state), int64 (integer), float64
// (float), Decimal, bool, time.Time (UTC, to the microsecond).

// Decimal is a decimal value: exact, with the text it was written or
// stored as.
type Decimal struct {
	Rat  *big.Rat
	Text string
}

// Float64 is the decimal as a 64-bit float, as SQLite compares it.
func (d Decimal) Float64() float64 {
	f, _ := d.Rat.Float64()
	return f
}

// dateLayout is a date alone, which a filter takes as midnight UTC.
const dateLayout = "2006-01-02"

// states are the values of the state column.
var states = []string{string(store.StatePending), string(store.StateActive), string(store.StateCompleted)}

// typed reads literal l as a value of field f.
func typed(a definition.Activity, f Field, l Literal) (any, error) {
	wrong := func(want string) error {
		return errAt(l.Pos, "%s takes %s, found %s", f.describe(), want, l)
	}
	switch f.Kind {
	case KindText:
		if l.Kind != LitString {
			return nil, wrong("a 'string'")
		}
		if err := fits(a, f, l, l.Text); err != nil {
			return nil, err
		}
		return l.Text, nil
	case KindState:
		if l.Kind != LitString || !slices.Contains(states, l.Text) {
			return nil, wrong("'pending', 'active' or 'completed'")
		}
		return l.Text, nil
	case KindTime:
		if l.Kind != LitString {
			return nil, wrong("a time as a string such as '2026-11-25T10:02:00Z', or a date '2026-11-25' (midnight UTC)")
		}
		t, err := ParseTime(l.Text)
		if err != nil {
			return nil, wrong("an RFC 3339 time such as '2026-11-25T10:02:00Z', or a date '2026-11-25' (midnight UTC)")
		}
		return t, nil
	case KindBoolean:
		if l.Kind != LitBool {
			return nil, wrong("true or false")
		}
		return l.Text == "true", nil
	}
	// The numbers.
	if l.Kind != LitNumber {
		return nil, wrong("a number")
	}
	if strings.ContainsAny(l.Text, "eE") && !smallExponent(l.Text) {
		return nil, wrong("a number within range")
	}
	if err := fits(a, f, l, json.RawMessage(l.Text)); err != nil {
		return nil, err
	}
	r, ok := new(big.Rat).SetString(l.Text)
	if !ok {
		return nil, wrong("a number")
	}
	switch f.Kind {
	case KindInteger:
		if !r.IsInt() || !r.Num().IsInt64() {
			return nil, wrong("a whole number within 64 bits")
		}
		return r.Num().Int64(), nil
	case KindFloat:
		v, err := strconv.ParseFloat(l.Text, 64)
		if err != nil || math.IsInf(v, 0) {
			return nil, wrong("a number within 64 bits")
		}
		return v, nil
	}
	return Decimal{Rat: r, Text: l.Text}, nil
}

// smallExponent reports whether a number's exponent is within ±400, so
// that big.Rat never builds a huge integer for 1e999999999.
func smallExponent(text string) bool {
	i := strings.IndexAny(text, "eE")
	exp, err := strconv.Atoi(strings.TrimPrefix(text[i+1:], "+"))
	return err == nil && exp >= -400 && exp <= 400
}

// fits checks a value of an item with the definition's own rule for an
// event's value (definition.Activity.Validate), so that a filter accepts
// exactly the values an item can hold.
func fits(a definition.Activity, f Field, l Literal, v any) error {
	if f.Item == nil {
		return nil
	}
	raw, ok := v.(json.RawMessage)
	if !ok {
		raw, _ = json.Marshal(v)
	}
	err := a.Validate(event.Event{Data: map[string]json.RawMessage{f.Item.Name: raw}})
	var evErr *event.Error
	if errors.As(err, &evErr) {
		return errAt(l.Pos, "%s does not fit item %s: %s", l, f.Item.Name, evErr.Reason)
	}
	return err
}

// ParseTime reads an RFC 3339 time or a date alone (its midnight, UTC),
// in UTC to the microsecond.
func ParseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		var dateErr error
		if t, dateErr = time.Parse(dateLayout, s); dateErr != nil {
			return time.Time{}, err
		}
	}
	return t.UTC().Truncate(time.Microsecond), nil
}

// parseDuration reads a duration of IN LAST: digits and a unit.
func parseDuration(l Literal) (time.Duration, error) {
	units := map[byte]time.Duration{'s': time.Second, 'm': time.Minute, 'h': time.Hour, 'd': 24 * time.Hour, 'w': 7 * 24 * time.Hour}
	unit := units[l.Text[len(l.Text)-1]]
	n, err := strconv.ParseInt(l.Text[:len(l.Text)-1], 10, 64)
	if err != nil || n > math.MaxInt64/int64(unit) {
		return 0, errAt(l.Pos, "%s is longer than bam can count (about 290 years)", l.Text)
	}
	return time.Duration(n) * unit, nil
}

// compare orders two non-empty values of one kind: text by bytes, false
// before true.
func compare(a, b any) int {
	switch x := a.(type) {
	case string:
		return strings.Compare(x, b.(string))
	case int64:
		return cmp.Compare(x, b.(int64))
	case float64:
		return cmp.Compare(x, b.(float64))
	case Decimal:
		return x.Rat.Cmp(b.(Decimal).Rat)
	case bool:
		y := b.(bool)
		switch {
		case x == y:
			return 0
		case !x:
			return -1
		}
		return 1
	case time.Time:
		return x.Compare(b.(time.Time))
	}
	panic(fmt.Sprintf("search: compare of %T", a))
}

// String is the decimal's text.
func (d Decimal) String() string { return d.Text }

// MarshalJSON writes a decimal as a JSON string holding its text: exact,
// as definitions take decimals.
func (d Decimal) MarshalJSON() ([]byte, error) { return json.Marshal(d.Text) }
