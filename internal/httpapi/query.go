package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/ops"
	"github.com/bam-dev/bam/internal/store"
)

// Paging of GET /v1/activities/{activity}/instances.
const (
	defaultLimit = 100
	maxLimit     = 1000
)

// instancePage is the body of GET /v1/activities/{activity}/instances.
type instancePage struct {
	Instances []store.InstanceJSON `json:"instances"`
	// Next is the after= of the next page; absent on the last page.
	Next string `json:"next,omitempty"`
}

// getInstance is GET /v1/activities/{activity}/instances/{id}.
func (s *Server) getInstance(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !queryParams(r).ok(w) {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), storeTimeout)
	defer cancel()
	activity, ok := s.activityName(ctx, w, r)
	if !ok {
		return
	}
	in, err := s.st.Instance(ctx, event.Key{Activity: activity, Instance: id})
	switch {
	case errors.Is(err, store.ErrNotFound):
		if !s.knownActivity(ctx, w, r, activity) {
			return
		}
		writeError(w, http.StatusNotFound, errorBody{Error: fmt.Sprintf("no instance %q of activity %s", id, activity)})
	case err != nil:
		s.unavailable(w, r, "read instance", err)
	default:
		out, err := ops.InstanceDetail(ctx, s.st, in)
		if err != nil {
			s.unavailable(w, r, "read the definition", err)
			return
		}
		out.URL = instanceURL(in.Activity, in.ID)
		for i, rel := range out.Related {
			out.Related[i].URL = instanceURL(rel.Activity, rel.Instance)
		}
		writeJSON(w, http.StatusOK, out)
	}
}

// instanceURL is the path of an instance in this API.
func instanceURL(activity, id string) string {
	return "/v1/activities/" + url.PathEscape(activity) + "/instances/" + url.PathEscape(id)
}

// listInstances is GET /v1/activities/{activity}/instances.
func (s *Server) listInstances(w http.ResponseWriter, r *http.Request) {
	p := queryParams(r, "state", "after", "limit")
	f := store.InstanceFilter{State: store.InstanceState(p.str("state")), After: p.str("after"),
		Limit: p.limit("limit", defaultLimit, maxLimit)}
	switch f.State {
	case "", store.StatePending, store.StateActive, store.StateCompleted:
	default:
		p.fail("state %q: use pending, active or completed", f.State)
	}
	if !p.ok(w) {
		return
	}
	limit := f.Limit
	f.Limit++ // one more tells whether there is a next page
	ctx, cancel := context.WithTimeout(r.Context(), storeTimeout)
	defer cancel()
	var ok bool
	if f.Activity, ok = s.activityName(ctx, w, r); !ok {
		return
	}
	list, err := s.st.Instances(ctx, f)
	if err != nil {
		s.unavailable(w, r, "list instances", err)
		return
	}
	// A misspelled name must not read as "no instances", on any page.
	if len(list) == 0 && !s.knownActivity(ctx, w, r, f.Activity) {
		return
	}
	page := instancePage{Instances: make([]store.InstanceJSON, 0, min(len(list), limit))}
	if len(list) > limit {
		list = list[:limit]
		page.Next = list[limit-1].ID
	}
	for _, in := range list {
		page.Instances = append(page.Instances, in.JSON())
	}
	writeJSON(w, http.StatusOK, page)
}

// activityName is the {activity} of r as the store names it: a deployed
// activity named in any case, as GET /v1/activities/{activity} finds it
// (the events of a deployed activity are checked to name it exactly), else
// the name as given, which is how events name an activity without a
// definition. It answers 503 and returns false when the store fails.
func (s *Server) activityName(ctx context.Context, w http.ResponseWriter, r *http.Request) (string, bool) {
	name := r.PathValue("activity")
	d, err := ops.DeployedActivity(ctx, s.st, name)
	switch {
	case errors.Is(err, ops.ErrNotDeployed):
		return name, true
	case err != nil:
		s.unavailable(w, r, "read the definitions", err)
		return "", false
	}
	return d.Name, true
}

// knownActivity reports whether activity is deployed or has instances.
// When it is not, it answers 404 naming it and the closest known activity
// (or 503 when the store cannot tell) and returns false.
func (s *Server) knownActivity(ctx context.Context, w http.ResponseWriter, r *http.Request, activity string) bool {
	err := store.CheckActivity(ctx, s.st, activity)
	switch {
	case errors.Is(err, store.ErrNoActivity):
		writeError(w, http.StatusNotFound, errorBody{Error: err.Error()})
		return false
	case err != nil:
		s.unavailable(w, r, "check activity", err)
		return false
	}
	return true
}

// health is GET /healthz, kept for the monitors that were pointed at it:
// the node's readiness (GET /readyz, the same cached checks) in JSON. It
// used to answer 200 whenever the store answered a read, even while every
// write failed; a monitor of /healthz meant "can this node do its job",
// which readiness answers.
func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	results, err := s.cfg.Ready.Results(r.Context())
	if err != nil {
		s.unavailable(w, r, "check readiness", err)
		return
	}
	body := healthBody{Status: "ok", Store: s.st.Driver(), Checks: []healthCheck{}}
	var failed []string
	for _, res := range results {
		c := healthCheck{Name: res.Name, OK: res.Err == nil}
		if res.Err != nil {
			c.Error = res.Err.Error()
			failed = append(failed, res.Name+": "+c.Error)
		}
		body.Checks = append(body.Checks, c)
	}
	status := http.StatusOK
	if len(failed) > 0 {
		status, body.Status, body.Error = http.StatusServiceUnavailable, "failed", strings.Join(failed, "; ")
		w.Header().Set("Retry-After", retryAfter)
	}
	writeJSON(w, status, body)
}

// healthBody is GET /healthz's answer.
type healthBody struct {
	Status string        `json:"status"` // ok or failed
	Store  string        `json:"store"`
	Error  string        `json:"error,omitempty"` // the failed checks and why
	Checks []healthCheck `json:"checks"`
}

type healthCheck struct {
	Name  string `json:"name"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}
