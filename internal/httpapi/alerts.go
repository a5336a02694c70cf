package httpapi

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/bam-dev/bam/internal/alert"
	"github.com/bam-dev/bam/internal/store"
)

// Paging of the alert history.
const (
	defaultFiringsLimit = 50
	maxFiringsLimit     = 1000
)

// alertsOf returns the store's alerts, or answers 501 when it keeps none
// (an in-memory test store).
func (s *Server) alertsOf(w http.ResponseWriter) (alert.DetailReader, bool) {
	as, ok := s.st.(alert.DetailReader)
	if !ok {
		writeError(w, http.StatusNotImplemented, errorBody{Error: "this store keeps no alerts"})
	}
	return as, ok
}

// alertList is the body of GET /v1/alerts.
type alertList struct {
	Alerts []alert.AlertJSON `json:"alerts"`
}

// listAlerts is GET /v1/alerts: every deployed alert, with its open
// firings' count and when it last fired.
func (s *Server) listAlerts(w http.ResponseWriter, r *http.Request) {
	if !queryParams(r).ok(w) {
		return
	}
	as, ok := s.alertsOf(w)
	if !ok {
		return
	}
	ctx, cancel := storeContext(r)
	defer cancel()
	list, err := alert.List(ctx, as)
	if err != nil {
		s.unavailable(w, r, "list alerts", err)
		return
	}
	writeJSON(w, http.StatusOK, alertList{Alerts: list})
}

// getAlert is GET /v1/alerts/{activity}/{alert}: the alert, the node that
// evaluates it, its open firings (the first 100) and its 20 latest.
func (s *Server) getAlert(w http.ResponseWriter, r *http.Request) {
	if !queryParams(r).ok(w) {
		return
	}
	as, ok := s.alertsOf(w)
	if !ok {
		return
	}
	ctx, cancel := storeContext(r)
	defer cancel()
	d, err := alert.Detail(ctx, as, r.PathValue("activity")+"."+r.PathValue("alert"), 100, 20)
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, errorBody{Error: err.Error()})
	case err != nil:
		s.unavailable(w, r, "read the alert", err)
	default:
		writeJSON(w, http.StatusOK, d)
	}
}

// firingPage is the body of GET /v1/firings.
type firingPage struct {
	Firings []alert.FiringJSON `json:"firings"`
	// Next is the before= of the next (older) page; absent on the last.
	Next string `json:"next,omitempty"`
}

// listFirings is GET /v1/firings: alert firings, newest first, with their
// deliveries, paged by id.
func (s *Server) listFirings(w http.ResponseWriter, r *http.Request) {
	p := queryParams(r, "activity", "alert", "open", "before", "limit")
	q := store.AlertHistoryQuery{Activity: p.str("activity"), Alert: p.str("alert"), OpenOnly: p.bool("open"),
		Limit: p.limit("limit", defaultFiringsLimit, maxFiringsLimit)}
	q.BeforeID, _ = p.int64("before", 1)
	if !p.ok(w) {
		return
	}
	as, ok := s.alertsOf(w)
	if !ok {
		return
	}
	ctx, cancel := storeContext(r)
	defer cancel()
	limit := q.Limit
	q.Limit++ // one more: is there a next page?
	firings, err := as.AlertHistory(ctx, q)
	if err != nil {
		s.unavailable(w, r, "read the alert history", err)
		return
	}
	page := firingPage{Firings: make([]alert.FiringJSON, 0, len(firings))}
	if len(firings) > limit {
		firings = firings[:limit]
		page.Next = strconv.FormatInt(firings[limit-1].ID, 10)
	}
	for _, f := range firings {
		page.Firings = append(page.Firings, alert.NewFiringJSON(f))
	}
	writeJSON(w, http.StatusOK, page)
}
