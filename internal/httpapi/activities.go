package httpapi

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/bam-dev/bam/internal/ops"
	"github.com/bam-dev/bam/internal/store"
)

// activityList is the body of GET /v1/activities.
type activityList struct {
	// Version is the definitions' version (0: nothing ever deployed).
	Version    int64              `json:"version"`
	Activities []ops.ActivityJSON `json:"activities"`
}

// listActivities is GET /v1/activities: the deployed activities, then
// those with instances but no deployed definition; ?counts=true adds each
// one's instances by state.
func (s *Server) listActivities(w http.ResponseWriter, r *http.Request) {
	p := queryParams(r, "counts", "events")
	counts, events := p.bool("counts"), p.bool("events")
	if !p.ok(w) {
		return
	}
	ctx, cancel := storeContext(r)
	defer cancel()
	deployed, untyped, version, err := ops.Activities(ctx, s.st)
	if err != nil {
		s.unavailable(w, r, "list activities", err)
		return
	}
	out := activityList{Version: version, Activities: make([]ops.ActivityJSON, 0, len(deployed)+len(untyped))}
	for _, d := range deployed {
		out.Activities = append(out.Activities, ops.ToActivityJSON(d))
	}
	for _, name := range untyped {
		out.Activities = append(out.Activities, ops.UntypedActivityJSON(name))
	}
	if counts {
		for i := range out.Activities {
			if out.Activities[i].Instances, err = ops.CountInstances(ctx, s.st, out.Activities[i].Name); err != nil {
				s.unavailable(w, r, "count instances", err)
				return
			}
		}
	}
	if ec, ok := s.st.(store.ActivityEventCounter); ok && events {
		applied, err := ec.ActivityEvents(ctx)
		if err != nil {
			s.unavailable(w, r, "count the events applied", err)
			return
		}
		for i := range out.Activities {
			n := applied[out.Activities[i].Name]
			out.Activities[i].EventsApplied = &n
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// getActivity is GET /v1/activities/{activity}: its definition (items,
// their types and columns, indexes, window, views) and its instances by
// state. An activity with instances but no deployed definition is
// answered too, as deployed: false.
func (s *Server) getActivity(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("activity")
	if !queryParams(r).ok(w) {
		return
	}
	ctx, cancel := storeContext(r)
	defer cancel()
	var out ops.ActivityJSON
	d, err := ops.DeployedActivity(ctx, s.st, name)
	switch {
	case errors.Is(err, ops.ErrNotDeployed):
		if !s.knownActivity(ctx, w, r, name) {
			return
		}
		out = ops.UntypedActivityJSON(name)
	case err != nil:
		s.unavailable(w, r, "read the definition", err)
		return
	default:
		out = ops.ToActivityJSON(d)
	}
	if out.Instances, err = ops.CountInstances(ctx, s.st, out.Name); err != nil {
		s.unavailable(w, r, "count instances", err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// exportDefinitions is GET /v1/definitions: the deployed definitions as a
// file `bam deploy` accepts (YAML), or one activity's with ?activity=.
func (s *Server) exportDefinitions(w http.ResponseWriter, r *http.Request) {
	p := queryParams(r, "activity")
	activity := p.str("activity")
	if !p.ok(w) {
		return
	}
	ctx, cancel := storeContext(r)
	defer cancel()
	file, err := ops.Export(ctx, s.st, activity)
	switch {
	case errors.Is(err, ops.ErrNotDeployed):
		s.notDeployed(w, r, activity, "")
	case errors.Is(err, ops.ErrNothingDeployed):
		writeError(w, http.StatusNotFound, errorBody{Error: err.Error() + " (deploy a definition file with bam deploy FILE)"})
	case err != nil:
		s.unavailable(w, r, "export the definitions", err)
	default:
		w.Header().Set("Content-Type", "application/yaml")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(file)
	}
}

// notDeployed answers 404 for an activity that is not deployed, naming the
// closest deployed or known one; consequence, when set, says what the
// request lacks for it ("so it has no aggregations").
func (s *Server) notDeployed(w http.ResponseWriter, r *http.Request, name, consequence string) {
	ctx, cancel := storeContext(r)
	defer cancel()
	err := store.CheckActivity(ctx, s.st, name)
	var no *store.NoActivityError
	switch {
	case errors.As(err, &no):
		writeError(w, http.StatusNotFound, errorBody{Error: err.Error()})
	case err != nil:
		s.unavailable(w, r, "check activity", err)
	default: // it has instances but no definition
		if consequence != "" {
			consequence = ", " + consequence
		}
		writeError(w, http.StatusNotFound, errorBody{Error: fmt.Sprintf("activity %s has instances but no deployed definition%s (deploy one with bam deploy FILE)", name, consequence)})
	}
}

// Paging of GET /v1/deployments.
const (
	defaultDeployments = 20
	maxDeployments     = 1000
)

// deploymentList is the body of GET /v1/deployments.
type deploymentList struct {
	Deployments []ops.DeploymentJSON `json:"deployments"`
}

// listDeployments is GET /v1/deployments: the deployment history, newest
// first; ?files=true adds the file each one deployed.
func (s *Server) listDeployments(w http.ResponseWriter, r *http.Request) {
	p := queryParams(r, "limit", "files")
	limit, files := p.limit("limit", defaultDeployments, maxDeployments), p.bool("files")
	if !p.ok(w) {
		return
	}
	ctx, cancel := storeContext(r)
	defer cancel()
	deps, err := s.st.Deployments(ctx, limit)
	if err != nil {
		s.unavailable(w, r, "list deployments", err)
		return
	}
	out := deploymentList{Deployments: make([]ops.DeploymentJSON, 0, len(deps))}
	for _, d := range deps {
		out.Deployments = append(out.Deployments, ops.ToDeploymentJSON(d, files))
	}
	writeJSON(w, http.StatusOK, out)
}
