package search

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/store"
)

// PageRequest asks for one page of a query's rows.
type PageRequest struct {
	// Limit is the most rows the page holds; 0: every row, and no cursor.
	Limit int
	// Cursor is the token the previous page ended with; empty for the
	// first page.
	Cursor string
	// Now is what relative times (IN LAST) count back from on the first
	// page; later pages use the first page's, which their cursor holds.
	Now time.Time
}

// Page is one page of rows.
type Page struct {
	Rows []Row
	// Next is the cursor of the next page; empty when this page is the
	// last.
	Next string
}

// Row is one instance as a page shows it.
type Row struct {
	ID           string
	State        store.InstanceState
	Begin, End   *time.Time
	LastModified time.Time
	Events       int64
	// Values are the query's Columns, in order: nil when empty, else a
	// string (text), int64, float64, Decimal, bool or time.Time (UTC).
	Values []any
}

// Compile compiles the SQL of one page of q for dialect d: what Run
// sends to a store.
func (q *Query) Compile(d Dialect, req PageRequest) (Statement, error) {
	st, _, err := q.compile(d, req)
	return st, err
}

func (q *Query) compile(d Dialect, req PageRequest) (Statement, *cursor, error) {
	if req.Limit < 0 {
		return Statement{}, nil, fmt.Errorf("page limit %d: use 0 (every row) or more", req.Limit)
	}
	now := req.Now.UTC().Truncate(time.Microsecond)
	var c *cursor
	if req.Cursor != "" {
		var err error
		if c, err = decodeCursor(q, req.Cursor); err != nil {
			return Statement{}, nil, err
		}
		now = c.now
	}
	limit := req.Limit
	if limit > 0 {
		limit++ // one more than the page: whether there is a next page
	}
	return q.sql(d, c, limit, now), &cursor{now: now}, nil
}

// Run reads one page of q from store s.
func Run(ctx context.Context, s store.Searcher, q *Query, req PageRequest) (Page, error) {
	d, err := DialectFor(ctx, s)
	if err != nil {
		return Page{}, err
	}
	st, next, err := q.compile(d, req)
	if err != nil {
		return Page{}, err
	}
	raw, err := s.SearchRows(ctx, st.SQL, st.Args)
	if err != nil {
		return Page{}, fmt.Errorf("search activity %s: %w", q.Activity.Name, err)
	}
	var page Page
	for i, r := range raw {
		if req.Limit > 0 && i == req.Limit {
			next.id = page.Rows[i-1].ID
			next.keys = sortValues(q, raw[i-1])
			page.Next = next.encode(q)
			break
		}
		row, err := q.row(r)
		if err != nil {
			return Page{}, fmt.Errorf("search activity %s: %w", q.Activity.Name, err)
		}
		page.Rows = append(page.Rows, row)
	}
	return page, nil
}

// Count counts q's matches, up to limit: more reports that there are more
// than limit (n is then limit+1).
func Count(ctx context.Context, s store.Searcher, q *Query, limit int, now time.Time) (n int64, more bool, err error) {
	d, err := DialectFor(ctx, s)
	if err != nil {
		return 0, false, err
	}
	st := q.CountSQL(d, limit, now)
	raw, err := s.SearchRows(ctx, st.SQL, st.Args)
	if err != nil {
		return 0, false, fmt.Errorf("count in activity %s: %w", q.Activity.Name, err)
	}
	if len(raw) != 1 || len(raw[0]) != 1 {
		return 0, false, fmt.Errorf("count in activity %s: %d rows", q.Activity.Name, len(raw))
	}
	v, err := normalize(KindInteger, raw[0][0])
	if err != nil {
		return 0, false, err
	}
	n = v.(int64)
	return n, n > int64(limit), nil
}

// fixedColumns are the instance's columns a row starts with.
const fixedColumns = 6

// row reads one row of a page's statement.
func (q *Query) row(r []any) (Row, error) {
	if len(r) != fixedColumns+len(q.Columns)+len(q.keys) {
		return Row{}, fmt.Errorf("a row has %d columns, expected %d", len(r), fixedColumns+len(q.Columns)+len(q.keys))
	}
	var out Row
	fixed := make([]any, fixedColumns)
	for i, k := range []Kind{KindText, KindState, KindTime, KindTime, KindTime, KindInteger} {
		v, err := normalize(k, r[i])
		if err != nil {
			return Row{}, fmt.Errorf("column %d: %w", i+1, err)
		}
		fixed[i] = v
	}
	out.ID = fixed[0].(string)
	out.State = store.InstanceState(fixed[1].(string))
	if t, ok := fixed[2].(time.Time); ok {
		out.Begin = &t
	}
	if t, ok := fixed[3].(time.Time); ok {
		out.End = &t
	}
	out.LastModified, _ = fixed[4].(time.Time)
	out.Events, _ = fixed[5].(int64)
	for i, f := range q.Columns {
		v, err := normalize(f.Kind, r[fixedColumns+i])
		if err != nil {
			return Row{}, fmt.Errorf("column %s: %w", f.Name, err)
		}
		out.Values = append(out.Values, v)
	}
	return out, nil
}

// sortValues reads the order's keys of a row, for its cursor.
func sortValues(q *Query, r []any) []any {
	at := fixedColumns + len(q.Columns)
	out := make([]any, len(q.keys))
	for i, k := range q.keys {
		out[i], _ = normalize(k.field.Kind, r[at+i]) // read as the row was: no error
	}
	return out
}

// normalize turns a value as a database client hands it over into a typed
// value of kind k (nil for NULL): SQLite's text times and 0/1 booleans,
// PostgreSQL's numeric text.
func normalize(k Kind, v any) (any, error) {
	if b, ok := v.([]byte); ok {
		v = string(b)
	}
	if v == nil {
		return nil, nil
	}
	switch k {
	case KindText, KindState:
		if s, ok := v.(string); ok {
			return s, nil
		}
	case KindTime:
		switch t := v.(type) {
		case time.Time:
			return t.UTC(), nil
		case string:
			return time.Parse(event.StoredTimeLayout, t)
		}
	case KindInteger:
		switch n := v.(type) {
		case int64:
			return n, nil
		case int32:
			return int64(n), nil
		case int:
			return int64(n), nil
		}
	case KindFloat:
		switch n := v.(type) {
		case float64:
			return n, nil
		case int64:
			return float64(n), nil
		}
	case KindDecimal:
		switch n := v.(type) {
		case string:
			return parseText(KindDecimal, n)
		case int64:
			return parseText(KindDecimal, strconv.FormatInt(n, 10))
		case float64:
			return parseText(KindDecimal, strconv.FormatFloat(n, 'g', -1, 64))
		}
	case KindBoolean:
		switch b := v.(type) {
		case bool:
			return b, nil
		case int64:
			return b != 0, nil
		}
	}
	return nil, fmt.Errorf("a %s column holds %T", k, v)
}

// PageJSON is a page of a search as bam's JSON shows it (the CLI's
// --format json, the HTTP API).
type PageJSON struct {
	Rows []RowJSON `json:"rows"`
	// Next is the cursor of the next page; null on the last.
	Next *string `json:"next"`
}

// RowJSON is one instance of a page: its columns, and its chosen items by
// name. Times are RFC 3339 UTC.
type RowJSON struct {
	Instance     string         `json:"instance_id"`
	State        string         `json:"state"`
	Begin        *string        `json:"begin_time"`
	End          *string        `json:"end_time"`
	LastModified *string        `json:"last_modified"`
	Events       int64          `json:"events"`
	Items        map[string]any `json:"items"`
}

// NewPageJSON writes page, of q, as JSON.
func NewPageJSON(q *Query, page Page) PageJSON {
	out := PageJSON{Rows: []RowJSON{}}
	if page.Next != "" {
		out.Next = &page.Next
	}
	for _, r := range page.Rows {
		row := RowJSON{Instance: r.ID, State: string(r.State), Begin: jsonTime(r.Begin), End: jsonTime(r.End),
			LastModified: jsonTime(&r.LastModified), Events: r.Events, Items: map[string]any{}}
		for i, f := range q.Columns {
			v := r.Values[i]
			if t, ok := v.(time.Time); ok {
				v = jsonTime(&t)
			}
			row.Items[f.Name] = v
		}
		out.Rows = append(out.Rows, row)
	}
	return out
}

func jsonTime(t *time.Time) *string {
	if t == nil || t.IsZero() {
		return nil
	}
	s := t.UTC().Format(time.RFC3339Nano)
	return &s
}
