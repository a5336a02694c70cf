package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/bam-dev/bam/internal/ops"
	"github.com/bam-dev/bam/internal/search"
	"github.com/bam-dev/bam/internal/store"
)

// searchPage is the body of GET /v1/activities/{activity}/search.
type searchPage struct {
	search.PageJSON
	// Where and Order are the filter and order as bam writes them (the
	// canonical form), for a link or a query builder.
	Where string `json:"where"`
	Order string `json:"order"`
	// Count, with ?count=true: the matches, counted up to Config.CountBound;
	// CountIsLowerBound when there are more.
	Count             *int64 `json:"count,omitempty"`
	CountIsLowerBound bool   `json:"count_is_lower_bound,omitempty"`
}

// searchInstances is GET /v1/activities/{activity}/search: the instances
// a filter matches (package search), a page at a time.
func (s *Server) searchInstances(w http.ResponseWriter, r *http.Request) {
	p := queryParams(r, "where", "order", "columns", "state", "limit", "cursor", "count")
	spec := search.Spec{Where: p.str("where"), Order: p.str("order"), Scope: search.Scope(p.str("state"))}
	if c := p.str("columns"); c != "" {
		for _, name := range strings.Split(c, ",") {
			spec.Columns = append(spec.Columns, strings.TrimSpace(name))
		}
	}
	limit := p.limit("limit", defaultLimit, maxLimit)
	count := p.bool("count")
	if !p.ok(w) {
		return
	}
	ctx, cancel := storeContext(r)
	defer cancel()
	q, ok := s.prepareSearch(w, r, spec)
	if !ok {
		return
	}
	searcher, ok := s.st.(store.Searcher)
	if !ok {
		writeError(w, http.StatusNotImplemented, errorBody{Error: fmt.Sprintf("the %s store cannot search", s.st.Driver())})
		return
	}
	now := time.Now()
	page, err := search.Run(ctx, searcher, q, search.PageRequest{Limit: limit, Cursor: p.str("cursor"), Now: now})
	switch {
	case errors.Is(err, search.ErrCursor):
		writeError(w, http.StatusBadRequest, errorBody{Error: "cursor: " + err.Error()})
		return
	case err != nil:
		s.unavailable(w, r, "search instances", err)
		return
	}
	out := searchPage{PageJSON: search.NewPageJSON(q, page), Where: q.Filter.String(), Order: q.Order.String()}
	if count {
		n, more, err := search.Count(ctx, searcher, q, int(s.cfg.CountBound), now)
		if err != nil {
			s.unavailable(w, r, "count instances", err)
			return
		}
		out.Count, out.CountIsLowerBound = &n, more
	}
	writeJSON(w, http.StatusOK, out)
}

// filterBody is the body of GET /v1/activities/{activity}/filter.
type filterBody struct {
	Activity string `json:"activity"`
	// Where and Order are the filter and the order as bam writes them.
	Where string `json:"where"`
	Order string `json:"order"`
	// Tree is the filter as groups and conditions; null for the empty one.
	Tree *search.TreeJSON `json:"tree"`
	// Fields are the activity's fields and the operators each takes.
	Fields []search.FieldJSON `json:"fields"`
}

// checkFilter is GET /v1/activities/{activity}/filter: a filter and an
// order checked against the activity's definition, the filter as a tree,
// and the fields a query builder offers. It reads no instance.
func (s *Server) checkFilter(w http.ResponseWriter, r *http.Request) {
	p := queryParams(r, "where", "order")
	if !p.ok(w) {
		return
	}
	q, ok := s.prepareSearch(w, r, search.Spec{Where: p.str("where"), Order: p.str("order")})
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, filterBody{Activity: q.Activity.Name, Where: q.Filter.String(), Order: q.Order.String(),
		Tree: search.Tree(q.Filter), Fields: search.Fields(q.Activity)})
}

// prepareSearch checks spec against the activity's deployed definition:
// 404 for an activity that is not deployed (naming the closest), 400 for a
// filter, order or column that does not fit it.
func (s *Server) prepareSearch(w http.ResponseWriter, r *http.Request, spec search.Spec) (*search.Query, bool) {
	ctx, cancel := storeContext(r)
	defer cancel()
	name := r.PathValue("activity")
	d, err := ops.DeployedActivity(ctx, s.st, name)
	switch {
	case errors.Is(err, ops.ErrNotDeployed):
		if s.knownActivity(ctx, w, r, name) {
			writeError(w, http.StatusNotFound, errorBody{Error: fmt.Sprintf("activity %s has no deployed definition: searches read its typed views (deploy one first)", name)})
		}
		return nil, false
	case err != nil:
		s.unavailable(w, r, "read the definition", err)
		return nil, false
	}
	q, err := search.Prepare(d.Activity, spec)
	if err != nil {
		writeError(w, http.StatusBadRequest, errorBody{Error: err.Error()})
		return nil, false
	}
	return q, true
}

// maxAggregationLimit bounds an aggregation's ?limit=, the cells of one
// answer (without it, every cell).
const maxAggregationLimit = 100_000

// getAggregation is GET /v1/activities/{activity}/aggregations/{aggregation}:
// its cells, each with its drill-down filter and the URL that searches its
// instances ("instances_url").
func (s *Server) getAggregation(w http.ResponseWriter, r *http.Request) {
	p := queryParams(r, "state", "where", "limit")
	state, where := p.str("state"), p.str("where")
	limit := p.limit("limit", 0, maxAggregationLimit)
	switch state {
	case "", "all", "pending", "active", "completed":
	default:
		p.fail("state %q: use pending, active, completed or all", state)
	}
	if !p.ok(w) {
		return
	}
	ctx, cancel := storeContext(r)
	defer cancel()
	activity, name := r.PathValue("activity"), r.PathValue("aggregation")
	q := store.AggregationQuery{State: state, Limit: limit}
	if where != "" {
		sq, ok := s.prepareSearch(w, r, search.Spec{Where: where})
		if !ok {
			return
		}
		dialect, err := search.DialectOf(s.st.Driver())
		if err != nil {
			writeError(w, http.StatusNotImplemented, errorBody{Error: err.Error()})
			return
		}
		q.Of, where = sq.Selection(dialect, time.Now()), sq.Filter.String()
	}
	res, err := s.st.Aggregation(ctx, activity, name, q)
	switch {
	case errors.As(err, new(*store.NotDeployedError)):
		// The store knows only the deployed activities; one with instances
		// is no misspelling, and is told so.
		s.notDeployed(w, r, activity, "so it has no aggregations")
		return
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, errorBody{Error: err.Error()})
		return
	case err != nil:
		s.unavailable(w, r, "read the aggregation", err)
		return
	}
	body := search.NewAggregationJSON(res, state, where)
	for _, cell := range body.Cells {
		v := url.Values{"where": {cell["filter"].(string)}}
		cell["instances_url"] = "/v1/activities/" + url.PathEscape(res.Activity.Name) + "/search?" + v.Encode()
	}
	writeJSON(w, http.StatusOK, body)
}
