package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/bam-dev/bam/internal/ops"
	"github.com/bam-dev/bam/internal/store"
)

// Paging of the failed events, and the most ids a bulk request lists.
const (
	defaultFailedLimit = 100
	maxFailedLimit     = 1000
	maxBulkIDs         = 1000
)

// failedFilterParams are the query parameters of GET /v1/failed, and the
// fields of a bulk request's filter.
var failedFilterParams = []string{"source", "partition", "activity", "reason", "since", "until"}

// failedPage is the body of GET /v1/failed.
type failedPage struct {
	Failed []ops.FailedJSON `json:"failed"`
	// Count is how many failed events the filters match (all pages),
	// counted up to Config.CountBound: CountIsLowerBound when it stopped
	// there. Without the activity filter only: the store counts, the
	// activity is read from each payload.
	Count             *int64 `json:"count"`
	CountIsLowerBound bool   `json:"count_is_lower_bound"`
	// Next is the after= of the next page; absent on the last page. A
	// page may hold fewer than limit events and still have a next one: a
	// request reads at most Config.CountBound rows, or limit (the activity
	// filter is read from each payload, so it may read many to find few).
	Next string `json:"next,omitempty"`
}

// listFailed is GET /v1/failed: the failed events the filters select,
// oldest first, paged by id.
func (s *Server) listFailed(w http.ResponseWriter, r *http.Request) {
	p := queryParams(r, append([]string{"after", "limit"}, failedFilterParams...)...)
	ff := failedFilterFrom(p)
	after, _ := p.int64("after", 0)
	limit := p.limit("limit", defaultFailedLimit, maxFailedLimit)
	if !p.ok(w) {
		return
	}
	ff.AfterID = after
	ctx, cancel := storeContext(r)
	defer cancel()
	if !s.knownFailedSource(ctx, w, r, ff) {
		return
	}
	list, next, err := ops.SelectFailed(ctx, s.st, ff, limit, max(int(s.cfg.CountBound), limit))
	if err != nil {
		s.unavailable(w, r, "list failed events", err)
		return
	}
	page := failedPage{Failed: make([]ops.FailedJSON, 0, len(list))}
	for _, f := range list {
		page.Failed = append(page.Failed, ops.ToFailedJSON(f, false))
	}
	if next != 0 {
		page.Next = strconv.FormatInt(next, 10)
	}
	if ff.Activity == "" {
		q := ff.FailedQuery
		q.AfterID = 0
		n, atLeast, err := s.st.CountFailed(ctx, q, s.cfg.CountBound)
		if err != nil {
			s.unavailable(w, r, "count failed events", err)
			return
		}
		page.Count, page.CountIsLowerBound = &n, atLeast
	}
	writeJSON(w, http.StatusOK, page)
}

// failedFilterFrom reads the filters of failedFilterParams.
func failedFilterFrom(p *params) ops.FailedFilter {
	ff := ops.FailedFilter{FailedQuery: store.FailedQuery{Source: p.str("source"), Reason: p.str("reason"),
		Since: p.time("since"), Until: p.time("until")}, Activity: p.str("activity")}
	if n, ok := p.int64("partition", 0); ok {
		part := int(n)
		ff.Partition = &part
		if ff.Source == "" {
			p.fail("partition is a partition of one source: give source too")
		}
	}
	return ff
}

// knownFailedSource answers 404 for a source filter that names no source,
// and 400 for a partition the source does not have and that keeps no
// failed event (a misspelt name or a wrong number must not read as "no
// failed events"; a partition repartitioned away may keep some), and
// returns false.
func (s *Server) knownFailedSource(ctx context.Context, w http.ResponseWriter, r *http.Request, ff ops.FailedFilter) bool {
	err := ops.CheckFailedSource(ctx, s.st, ff.Source, "see GET /v1/sources")
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, errorBody{Error: err.Error()})
		return false
	case err != nil:
		s.unavailable(w, r, "check source", err)
		return false
	case ff.Partition == nil:
		return true
	}
	src, err := s.st.Source(ctx, ff.Source)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return true // removed, or bam's direct writes: only its failed events are left to say
	case err != nil:
		s.unavailable(w, r, "read source", err)
		return false
	case *ff.Partition < src.Partitions:
		return true
	}
	// A partition a repartition took away may still hold failed events
	// (ops.Unfiled): those are what is asked for.
	kept, err := s.st.FailedOutstanding(ctx)
	if err != nil {
		s.unavailable(w, r, "count failed events", err)
		return false
	}
	if kept[store.SessionID{Source: src.Name, Partition: *ff.Partition}] > 0 {
		return true
	}
	writeError(w, http.StatusBadRequest, errorBody{Error: fmt.Sprintf("partition %d: source %s has partitions 0 to %d", *ff.Partition, src.Name, src.Partitions-1)})
	return false
}

// getFailed is GET /v1/failed/{id}: one failed event with its reason and
// its original bytes.
func (s *Server) getFailed(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "id")
	if !ok || !queryParams(r).ok(w) {
		return
	}
	ctx, cancel := storeContext(r)
	defer cancel()
	f, err := s.st.FailedEvent(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		noFailed(w, id)
	case err != nil:
		s.unavailable(w, r, "read failed event", err)
	default:
		writeJSON(w, http.StatusOK, ops.ToFailedJSON(f, true))
	}
}

func noFailed(w http.ResponseWriter, id int64) {
	writeError(w, http.StatusNotFound, errorBody{Error: ops.NoFailedEventError(id).Error() + " (see GET /v1/failed)"})
}

// retryRequest is the optional body of POST /v1/failed/{id}/retry.
type retryRequest struct {
	// Payload replaces the stored event: the fixed event, as JSON text.
	Payload *string `json:"payload"`
}

// retried is the body of a retry's 200.
type retried struct {
	ID      int64 `json:"id"`
	Applied bool  `json:"applied"`
}

// retryFailed is POST /v1/failed/{id}/retry: the failed event (or the
// fixed payload of the body) applied again and removed, with the checks a
// node makes (Config.MaxEventSize, Config.RequireDefinitions). An event
// still refused stays, with its new reason: 422.
func (s *Server) retryFailed(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "id")
	if !ok || !queryParams(r).ok(w) {
		return
	}
	var req retryRequest
	if r.ContentLength != 0 && !s.readJSON(w, r, &req) {
		return
	}
	var payload []byte
	if req.Payload != nil {
		payload = []byte(*req.Payload)
	}
	ctx, cancel := storeContext(r)
	defer cancel()
	err := ops.Retry(ctx, s.st, id, payload, s.retryOptions())
	var still *ops.StillFailedError
	switch {
	case errors.Is(err, store.ErrNotFound):
		noFailed(w, id)
	case errors.As(err, &still):
		writeError(w, http.StatusUnprocessableEntity, errorBody{Error: still.Error()})
	case err != nil:
		s.unavailable(w, r, "retry failed event", err)
	default:
		detail := "applied"
		if payload != nil {
			detail = "applied, with a replacement payload"
		}
		s.audit(ctx, r, "failed retry", strconv.FormatInt(id, 10), detail)
		writeJSON(w, http.StatusOK, retried{ID: id, Applied: true})
	}
}

func (s *Server) retryOptions() ops.RetryOptions {
	tuned := s.tunables()
	return ops.RetryOptions{MaxEventSize: tuned.MaxEventSize, RequireDefinitions: tuned.RequireDefinitions}
}

// discardFailed is DELETE /v1/failed/{id}: the failed event deleted for
// good, answered 204.
func (s *Server) discardFailed(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "id")
	if !ok || !queryParams(r).ok(w) {
		return
	}
	ctx, cancel := storeContext(r)
	defer cancel()
	err := ops.Discard(ctx, s.st, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		noFailed(w, id)
	case err != nil:
		s.unavailable(w, r, "discard failed event", err)
	default:
		s.audit(ctx, r, "failed discard", strconv.FormatInt(id, 10), "")
		w.WriteHeader(http.StatusNoContent)
	}
}

// bulkRequest is the body of POST /v1/failed:retry and :discard: a list of
// ids, or filters (all of them: every failed event), not both.
type bulkRequest struct {
	IDs       []int64 `json:"ids"`
	Source    string  `json:"source"`
	Partition *int    `json:"partition"`
	Activity  string  `json:"activity"`
	Reason    string  `json:"reason"`
	Since     string  `json:"since"`
	Until     string  `json:"until"`
	All       bool    `json:"all"`
	// After takes up only the events after this id: the next of the
	// previous answer, to go past events a retry refused.
	After int64 `json:"after"`
}

// bulkResult is the body of a bulk request's 200: what it did, and whether
// the filters match more than Config.MaxBulk (send it again).
type bulkResult struct {
	// Matched counts the events the request took up.
	Matched int `json:"matched"`
	// Retried or Discarded counts those it applied and removed, or
	// deleted.
	Retried   *int `json:"retried,omitempty"`
	Discarded *int `json:"discarded,omitempty"`
	// Refused are the events that stay failed, each with why.
	Refused []ops.Refusal `json:"refused"`
	// Gone counts the events that were no longer failed (retried or
	// discarded meanwhile, or never were).
	Gone int `json:"gone"`
	// More: the filters may match more events than one request takes
	// (Config.MaxBulk, or Config.CountBound rows read); send the request
	// again, with after: next to go past the events it refused.
	More bool  `json:"more"`
	Next int64 `json:"next,omitempty"`
}

// bulkFailed is POST /v1/failed:retry (retry) and POST /v1/failed:discard.
func (s *Server) bulkFailed(retry bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !queryParams(r).ok(w) {
			return
		}
		var req bulkRequest
		if !s.readJSON(w, r, &req) {
			return
		}
		ff, err := req.filter()
		if err != nil {
			writeError(w, http.StatusBadRequest, errorBody{Error: err.Error()})
			return
		}
		ctx, cancel := storeContext(r)
		defer cancel()
		ids, next := distinct(req.IDs), int64(0)
		if ff != nil {
			if !s.knownFailedSource(ctx, w, r, *ff) {
				return
			}
			list, n, err := ops.SelectFailed(ctx, s.st, *ff, s.cfg.MaxBulk, max(int(s.cfg.CountBound), s.cfg.MaxBulk))
			if err != nil {
				s.unavailable(w, r, "list failed events", err)
				return
			}
			ids, next = ops.IDs(list), n
		}
		var out ops.Outcome
		if retry {
			out, err = ops.RetryAll(ctx, s.st, ids, s.retryOptions())
		} else {
			out, err = ops.DiscardAll(ctx, s.st, ids)
		}
		if err != nil {
			s.unavailable(w, r, fmt.Sprintf("bulk (%d done before the store failed)", out.Done), err)
			return
		}
		res := bulkResult{Matched: len(ids), Refused: out.Refused, Gone: out.Gone, More: next != 0, Next: next}
		if retry {
			res.Retried = &out.Done
			if out.Done+len(out.Refused) > 0 {
				s.audit(ctx, r, "failed retry", req.target(), fmt.Sprintf("%d applied, %d still failed", out.Done, len(out.Refused)))
			}
		} else {
			res.Discarded = &out.Done
			if out.Done > 0 {
				s.audit(ctx, r, "failed discard", req.target(), fmt.Sprintf("%d discarded", out.Done))
			}
		}
		writeJSON(w, http.StatusOK, res)
	}
}

// target names what a bulk request took up, for the audit log: its ids
// (the first ten), or its filters as the body gave them, or all.
func (b bulkRequest) target() string {
	if len(b.IDs) > 0 {
		ids := distinct(b.IDs)
		parts := make([]string, 0, min(len(ids), 10))
		for _, id := range ids[:min(len(ids), 10)] {
			parts = append(parts, strconv.FormatInt(id, 10))
		}
		if len(ids) > 10 {
			parts = append(parts, fmt.Sprintf("and %d more", len(ids)-10))
		}
		return "ids " + strings.Join(parts, ", ")
	}
	var parts []string
	for _, p := range [][2]string{{"source", b.Source}, {"activity", b.Activity}, {"reason", b.Reason}, {"since", b.Since}, {"until", b.Until}} {
		if p[1] != "" {
			parts = append(parts, fmt.Sprintf("%s %q", p[0], p[1]))
		}
	}
	if b.Partition != nil {
		parts = append(parts, fmt.Sprintf("partition %d", *b.Partition))
	}
	if len(parts) == 0 {
		return "all"
	}
	return strings.Join(parts, " ")
}

// distinct returns ids without repeats, in the order each first comes: an
// id given twice is one event, matched and retried or discarded once.
func distinct(ids []int64) []int64 {
	seen := make(map[int64]bool, len(ids))
	out := make([]int64, 0, len(ids))
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// filter checks the request: ids, or filters, or all. It returns the
// filter to select by, nil for a list of ids.
func (b bulkRequest) filter() (*ops.FailedFilter, error) {
	filtered := b.Source != "" || b.Partition != nil || b.Activity != "" || b.Reason != "" || b.Since != "" || b.Until != ""
	switch {
	case len(b.IDs) > 0 && (filtered || b.All || b.After != 0):
		return nil, errors.New("give ids, or filters (source, partition, activity, reason, since, until), or all: not ids with the others")
	case len(b.IDs) > maxBulkIDs:
		return nil, fmt.Errorf("%d ids: give at most %d at a time", len(b.IDs), maxBulkIDs)
	case len(b.IDs) > 0:
		for _, id := range b.IDs {
			if id < 1 {
				return nil, fmt.Errorf("id %d: ids are positive whole numbers", id)
			}
		}
		return nil, nil
	case filtered && b.All:
		return nil, errors.New("all selects every failed event: give it without filters")
	case b.After < 0:
		return nil, fmt.Errorf("after %d: use the next of the previous answer", b.After)
	case !filtered && !b.All:
		return nil, errors.New(`say which failed events: "ids", filters (source, partition, activity, reason, since, until), or "all": true`)
	case b.Partition != nil && b.Source == "":
		return nil, errors.New("partition is a partition of one source: give source too")
	case b.Partition != nil && *b.Partition < 0:
		return nil, fmt.Errorf("partition %d: partitions count from 0", *b.Partition)
	}
	ff := &ops.FailedFilter{FailedQuery: store.FailedQuery{Source: b.Source, Partition: b.Partition, Reason: b.Reason, AfterID: b.After}, Activity: b.Activity}
	for _, t := range []struct {
		name, text string
		at         *time.Time
	}{{"since", b.Since, &ff.Since}, {"until", b.Until, &ff.Until}} {
		if t.text == "" {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, t.text)
		if err != nil {
			return nil, fmt.Errorf("%s %q: use an RFC 3339 time such as 2026-11-25T10:00:00Z", t.name, t.text)
		}
		*t.at = at
	}
	return ff, nil
}
