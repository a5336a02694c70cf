package search

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"time"

	"github.com/bam-dev/bam/internal/event"
)

// cursor is a position in a query's order: the last row's sort values and
// instance id, and the Now of the first page.
type cursor struct {
	keys []any // typed; nil for an empty value
	id   string
	now  time.Time
}

// cursorJSON is a cursor as its token holds it: sort values as text.
type cursorJSON struct {
	Query string    `json:"q"` // the query's fingerprint
	Now   int64     `json:"n"` // microseconds since the Unix epoch
	Keys  []*string `json:"k"`
	ID    string    `json:"i"`
}

// ErrCursor: a cursor token that is not one of this query's (another
// filter, order, scope or activity, or not a cursor at all).
var ErrCursor = errors.New("invalid cursor")

// encode writes the cursor as an opaque token for query q.
func (c *cursor) encode(q *Query) string {
	j := cursorJSON{Query: q.fingerprint(), Now: c.now.UnixMicro(), ID: c.id}
	for _, v := range c.keys {
		if v == nil {
			j.Keys = append(j.Keys, nil)
			continue
		}
		s := valueText(v)
		j.Keys = append(j.Keys, &s)
	}
	b, _ := json.Marshal(j)
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodeCursor reads a token that q encoded.
func decodeCursor(q *Query, token string) (*cursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(token)
	var j cursorJSON
	if err == nil {
		err = json.Unmarshal(b, &j)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: not a cursor of bam's (copy the whole token a page ended with)", ErrCursor)
	}
	if j.Query != q.fingerprint() || len(j.Keys) != len(q.keys) {
		return nil, fmt.Errorf("%w: the cursor belongs to another activity, scope, filter or order; page with the same ones, or start again without the cursor", ErrCursor)
	}
	c := &cursor{id: j.ID, now: time.UnixMicro(j.Now).UTC()}
	for i, s := range j.Keys {
		if s == nil {
			c.keys = append(c.keys, nil)
			continue
		}
		v, err := parseText(q.keys[i].field.Kind, *s)
		if err != nil {
			return nil, fmt.Errorf("%w: sort value %d: %v", ErrCursor, i+1, err)
		}
		c.keys = append(c.keys, v)
	}
	return c, nil
}

// valueText writes a typed value as text, exactly.
func valueText(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case int64:
		return strconv.FormatInt(v, 10)
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64)
	case Decimal:
		return v.Text
	case bool:
		return strconv.FormatBool(v)
	case time.Time:
		return v.UTC().Format(event.StoredTimeLayout)
	}
	panic(fmt.Sprintf("search: text of %T", v))
}

// parseText reads what valueText wrote for a value of kind k.
func parseText(k Kind, s string) (any, error) {
	switch k {
	case KindText, KindState:
		return s, nil
	case KindInteger:
		return strconv.ParseInt(s, 10, 64)
	case KindFloat:
		return strconv.ParseFloat(s, 64)
	case KindDecimal:
		if !decimalString.MatchString(s) || !smallNumber(s) {
			return nil, fmt.Errorf("%q is not a decimal", s)
		}
		r, _ := new(big.Rat).SetString(s)
		return Decimal{Rat: r, Text: s}, nil
	case KindBoolean:
		return strconv.ParseBool(s)
	case KindTime:
		return time.Parse(event.StoredTimeLayout, s)
	}
	return nil, fmt.Errorf("no kind %d", k)
}
