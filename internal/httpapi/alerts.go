package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/bam-dev/bam/internal/alert"
	"github.com/bam-dev/bam/internal/definition"
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

// alertChanged is the body of PUT and DELETE /v1/alerts/{activity}/{alert}.
type alertChanged struct {
	// Alert is the alert as deployed now; absent after a DELETE.
	Alert *alert.AlertJSON `json:"alert,omitempty"`
	// Version is the deployment that made the change, and Changes what it
	// changed (as `bam definition history` shows them).
	Version int64    `json:"version"`
	Changes []string `json:"changes"`
}

// deployedBy names who deploys through the API, for the deployment
// history: there is no authentication yet, so where the request came from.
func deployedBy(r *http.Request) string {
	return "http api (" + r.RemoteAddr + ")"
}

// putAlert is PUT /v1/alerts/{activity}/{alert}: the alert, as its
// activity's definition would declare it, added or put in place of the
// one of that name, as a deployment of the activity (docs/ALERTS.md).
// With If-None-Match: * it is only added: an alert of that name is kept,
// and the answer is 412.
func (s *Server) putAlert(w http.ResponseWriter, r *http.Request) {
	if !queryParams(r).ok(w) {
		return
	}
	onlyNew := false
	switch inm := r.Header.Values("If-None-Match"); {
	case len(inm) == 0:
	case len(inm) == 1 && strings.TrimSpace(inm[0]) == "*":
		onlyNew = true
	default:
		writeError(w, http.StatusBadRequest, errorBody{Error: "If-None-Match: only * is understood (add the alert only if it has no alert of that name); alerts have no ETags"})
		return
	}
	var al definition.Alert
	if !s.readJSON(w, r, &al) {
		return
	}
	name := r.PathValue("alert")
	if al.Name != "" && !strings.EqualFold(al.Name, name) {
		writeError(w, http.StatusBadRequest, errorBody{Error: fmt.Sprintf("the body names alert %q, the path %q: leave name out, or rename by deleting and putting", al.Name, name)})
		return
	}
	al.Name = name
	ctx, cancel := storeContext(r)
	defer cancel()
	var (
		dep     store.Deployment
		created = true
		err     error
	)
	if onlyNew {
		dep, err = alert.Create(ctx, s.st, r.PathValue("activity"), al, deployedBy(r))
	} else {
		dep, created, err = alert.Put(ctx, s.st, r.PathValue("activity"), al, deployedBy(r))
	}
	if !s.alertDeployed(w, r, err) {
		return
	}
	as, ok := s.alertsOf(w)
	if !ok {
		return
	}
	d, err := alert.Detail(ctx, as, r.PathValue("activity")+"."+name, 0, 0)
	if err != nil {
		s.unavailable(w, r, "read the alert deployed", err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, alertChanged{Alert: &d.AlertJSON, Version: dep.Version, Changes: dep.Changes})
}

// deleteAlert is DELETE /v1/alerts/{activity}/{alert}: the activity
// deployed without it. Its open firings are cleared at the next
// evaluation; its history stays.
func (s *Server) deleteAlert(w http.ResponseWriter, r *http.Request) {
	if !queryParams(r).ok(w) {
		return
	}
	ctx, cancel := storeContext(r)
	defer cancel()
	dep, err := alert.Remove(ctx, s.st, r.PathValue("activity"), r.PathValue("alert"), deployedBy(r))
	if !s.alertDeployed(w, r, err) {
		return
	}
	writeJSON(w, http.StatusOK, alertChanged{Version: dep.Version, Changes: dep.Changes})
}

// alertDeployed answers the error of an alert's deployment, if any, and
// says whether there was none.
func (s *Server) alertDeployed(w http.ResponseWriter, r *http.Request, err error) bool {
	switch {
	case err == nil:
		return true
	case errors.Is(err, alert.ErrInvalid):
		writeError(w, http.StatusBadRequest, errorBody{Error: err.Error()})
	case errors.Is(err, alert.ErrExists):
		writeError(w, http.StatusPreconditionFailed, errorBody{Error: err.Error() + ": kept as it is (If-None-Match: *); PUT without it replaces it"})
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, errorBody{Error: err.Error()})
	case errors.Is(err, store.ErrDefinitionsMoved):
		writeError(w, http.StatusConflict, errorBody{Error: err.Error() + "; send the request again"})
	default:
		s.unavailable(w, r, "deploy the alert", err)
	}
	return false
}
