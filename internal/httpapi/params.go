package httpapi

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// params reads a request's query parameters, refusing unknown ones and
// values that do not parse; the first problem is kept, for one 400.
type params struct {
	q   url.Values
	err error
}

// queryParams checks that r's query has only the known parameters, each
// once; the error names the unknown one and lists the known.
func queryParams(r *http.Request, known ...string) *params {
	p := &params{q: r.URL.Query()}
	names := make([]string, 0, len(p.q))
	for k := range p.q {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		switch {
		case !slices.Contains(known, k):
			list := "none"
			if len(known) > 0 {
				list = strings.Join(known, ", ")
			}
			p.fail("unknown query parameter %q (known: %s)", k, list)
		case len(p.q[k]) > 1:
			p.fail("query parameter %q is given %d times; give it once", k, len(p.q[k]))
		}
	}
	return p
}

func (p *params) fail(format string, args ...any) {
	if p.err == nil {
		p.err = fmt.Errorf(format, args...)
	}
}

func (p *params) str(name string) string { return p.q.Get(name) }

// bool reads true or false; absent is false.
func (p *params) bool(name string) bool {
	v := p.q.Get(name)
	if v == "" {
		return false
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		p.fail("%s %q: use true or false", name, v)
	}
	return b
}

// limit reads a page size from 1 to max; absent is def.
func (p *params) limit(name string, def, max int) int {
	v := p.q.Get(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > max {
		p.fail("%s %q: use a number from 1 to %d", name, v, max)
		return def
	}
	return n
}

// int64 reads a number of at least min; absent is 0, ok false.
func (p *params) int64(name string, min int64) (n int64, ok bool) {
	v := p.q.Get(name)
	if v == "" {
		return 0, false
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < min {
		p.fail("%s %q: use a whole number from %d", name, v, min)
		return 0, false
	}
	return n, true
}

// time reads an RFC 3339 time; absent is the zero time.
func (p *params) time(name string) time.Time {
	v := p.q.Get(name)
	if v == "" {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		p.fail("%s %q: use an RFC 3339 time such as 2026-11-25T10:00:00Z", name, v)
	}
	return t
}

// ok answers 400 when a parameter was wrong and returns false.
func (p *params) ok(w http.ResponseWriter) bool {
	if p.err != nil {
		writeError(w, http.StatusBadRequest, errorBody{Error: p.err.Error()})
		return false
	}
	return true
}

// pathID reads a path value that must be a positive id; it answers 400
// and returns false when it is not.
func pathID(w http.ResponseWriter, r *http.Request, name string) (int64, bool) {
	v := r.PathValue(name)
	id, err := strconv.ParseInt(v, 10, 64)
	if err != nil || id < 1 {
		writeError(w, http.StatusBadRequest, errorBody{Error: fmt.Sprintf("%s %q: use a positive whole number", name, v)})
		return 0, false
	}
	return id, true
}
