package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/store"
)

// Paging of GET /v1/activities/{activity}/instances.
const (
	defaultLimit = 100
	maxLimit     = 1000
)

// instanceJSON is an instance in responses; the same shape as
// `bam instance get --json`.
type instanceJSON struct {
	Activity     string                     `json:"activity"`
	Instance     string                     `json:"instance"`
	State        string                     `json:"state"`
	Begin        *string                    `json:"begin"`
	End          *string                    `json:"end"`
	LastModified *string                    `json:"last_modified"`
	Events       int64                      `json:"events"`
	Data         map[string]json.RawMessage `json:"data"`
}

func toJSON(in store.Instance) instanceJSON {
	data := in.Data
	if data == nil {
		data = map[string]json.RawMessage{}
	}
	return instanceJSON{
		Activity: in.Activity, Instance: in.ID, State: string(in.State),
		Begin: timeJSON(in.Begin), End: timeJSON(in.End), LastModified: timeJSON(&in.LastModified),
		Events: in.Events, Data: data,
	}
}

// timeJSON is an instant as RFC 3339 in UTC, null for none.
func timeJSON(t *time.Time) *string {
	if t == nil || t.IsZero() {
		return nil
	}
	s := t.UTC().Format(time.RFC3339Nano)
	return &s
}

// instancePage is the body of GET /v1/activities/{activity}/instances.
type instancePage struct {
	Instances []instanceJSON `json:"instances"`
	// Next is the after= of the next page; absent on the last page.
	Next string `json:"next,omitempty"`
}

// getInstance is GET /v1/activities/{activity}/instances/{id}.
func (s *Server) getInstance(w http.ResponseWriter, r *http.Request) {
	activity, id := r.PathValue("activity"), r.PathValue("id")
	ctx, cancel := context.WithTimeout(r.Context(), storeTimeout)
	defer cancel()
	in, err := s.st.Instance(ctx, event.Key{Activity: activity, Instance: id})
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, errorBody{Error: fmt.Sprintf("no instance %q of activity %s", id, activity)})
	case err != nil:
		s.unavailable(w, r, "read instance", err)
	default:
		writeJSON(w, http.StatusOK, toJSON(in))
	}
}

// listInstances is GET /v1/activities/{activity}/instances.
func (s *Server) listInstances(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	for k := range q {
		switch k {
		case "state", "after", "limit":
		default:
			writeError(w, http.StatusBadRequest, errorBody{Error: fmt.Sprintf("unknown query parameter %q (known: state, after, limit)", k)})
			return
		}
	}
	f := store.InstanceFilter{Activity: r.PathValue("activity"), State: store.InstanceState(q.Get("state")), After: q.Get("after"), Limit: defaultLimit}
	switch f.State {
	case "", store.StatePending, store.StateActive, store.StateCompleted:
	default:
		writeError(w, http.StatusBadRequest, errorBody{Error: fmt.Sprintf("state %q: use pending, active or completed", f.State)})
		return
	}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > maxLimit {
			writeError(w, http.StatusBadRequest, errorBody{Error: fmt.Sprintf("limit %q: use a number from 1 to %d", l, maxLimit)})
			return
		}
		f.Limit = n
	}
	limit := f.Limit
	f.Limit++ // one more tells whether there is a next page
	ctx, cancel := context.WithTimeout(r.Context(), storeTimeout)
	defer cancel()
	list, err := s.st.Instances(ctx, f)
	if err != nil {
		s.unavailable(w, r, "list instances", err)
		return
	}
	page := instancePage{Instances: make([]instanceJSON, 0, min(len(list), limit))}
	if len(list) > limit {
		list = list[:limit]
		page.Next = list[limit-1].ID
	}
	for _, in := range list {
		page.Instances = append(page.Instances, toJSON(in))
	}
	writeJSON(w, http.StatusOK, page)
}

// health is GET /healthz: 200 when the store answers with the schema this
// bam knows.
func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	if err := s.st.CheckSchema(ctx); err != nil {
		s.unavailable(w, r, "check the store's schema", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "store": s.st.Driver()})
}
