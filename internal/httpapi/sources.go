package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/bam-dev/bam/internal/ops"
	"github.com/bam-dev/bam/internal/store"
)

// sourceJSON is a source in the API: ops.SourceJSON (never its DSN) and
// its backlog over every partition.
type sourceJSON struct {
	ops.SourceJSON
	// Backlog sums the partitions' backlogs, each counted up to
	// Config.CountBound (EventsIsLowerBound when one stopped
	// there); OldestAgeSeconds is the oldest partition's. Null when it
	// could not be read: BacklogError says why.
	Backlog      *sourceBacklogJSON `json:"backlog"`
	BacklogError string             `json:"backlog_error,omitempty"`
}

// sourceBacklogJSON is a source's backlog over its partitions.
type sourceBacklogJSON struct {
	Events             int64   `json:"events"`
	EventsIsLowerBound bool    `json:"events_is_lower_bound"`
	OldestAgeSeconds   float64 `json:"oldest_age_seconds"`
	// Held: a partition's first event waits for a transaction of the
	// outbox's server to end (see GET /v1/sessions for which one).
	Held bool `json:"held"`
}

// sourceList is the body of GET /v1/sources.
type sourceList struct {
	Sources []sourceJSON `json:"sources"`
}

// listSources is GET /v1/sources.
func (s *Server) listSources(w http.ResponseWriter, r *http.Request) {
	if !queryParams(r).ok(w) {
		return
	}
	ctx, cancel := storeContext(r)
	defer cancel()
	srcs, err := s.st.Sources(ctx)
	if err != nil {
		s.unavailable(w, r, "list sources", err)
		return
	}
	sessions, err := s.st.Sessions(ctx)
	if err != nil {
		s.unavailable(w, r, "read sessions", err)
		return
	}
	backlogs := ops.NewBacklogs(s.st)
	defer backlogs.Close()
	out := sourceList{Sources: make([]sourceJSON, 0, len(srcs))}
	for _, src := range srcs {
		j, err := s.sourceWithBacklog(r, backlogs, src, sessions)
		if err != nil {
			s.unavailable(w, r, "read the backlogs", err)
			return
		}
		out.Sources = append(out.Sources, j)
	}
	writeJSON(w, http.StatusOK, out)
}

// getSource is GET /v1/sources/{source}.
func (s *Server) getSource(w http.ResponseWriter, r *http.Request) {
	if !queryParams(r).ok(w) {
		return
	}
	s.writeSource(w, r, r.PathValue("source"), http.StatusOK)
}

// writeSource answers with a source and its backlog.
func (s *Server) writeSource(w http.ResponseWriter, r *http.Request, name string, status int) {
	src, ok := s.readSource(w, r, name)
	if !ok {
		return
	}
	ctx, cancel := storeContext(r)
	defer cancel()
	sessions, err := s.st.Sessions(ctx)
	if err != nil {
		s.unavailable(w, r, "read sessions", err)
		return
	}
	backlogs := ops.NewBacklogs(s.st)
	defer backlogs.Close()
	j, err := s.sourceWithBacklog(r, backlogs, src, sessions)
	if err != nil {
		s.unavailable(w, r, "read the backlog", err)
		return
	}
	writeJSON(w, status, j)
}

// sourceWithBacklog sums src's sessions' backlogs. An error is the
// request's end (its context); a source that cannot be read says so in
// BacklogError.
func (s *Server) sourceWithBacklog(r *http.Request, backlogs *ops.Backlogs, src store.Source, sessions []store.SessionRow) (sourceJSON, error) {
	j := sourceJSON{SourceJSON: ops.ToSourceJSON(src)}
	sum := &sourceBacklogJSON{}
	for _, se := range sessions {
		if se.Source != src.Name {
			continue
		}
		b, err := backlogs.Bounded(r.Context(), se, s.cfg.CountBound)
		if err != nil {
			if r.Context().Err() != nil {
				return sourceJSON{}, err
			}
			j.BacklogError = err.Error()
			return j, nil
		}
		sum.Events += b.Events
		sum.EventsIsLowerBound = sum.EventsIsLowerBound || b.AtLeast
		sum.OldestAgeSeconds = max(sum.OldestAgeSeconds, b.OldestAge.Seconds())
		sum.Held = sum.Held || b.Held
	}
	j.Backlog = sum
	return j, nil
}

// readSource reads a source; when there is none of that name, or the store
// fails, it answers (404 naming the closest source, or 503) and returns
// false.
func (s *Server) readSource(w http.ResponseWriter, r *http.Request, name string) (store.Source, bool) {
	ctx, cancel := storeContext(r)
	defer cancel()
	src, err := s.st.Source(ctx, name)
	switch {
	case errors.Is(err, store.ErrNotFound):
		s.noSource(ctx, w, name)
	case err != nil:
		s.unavailable(w, r, "read source", err)
	default:
		return src, true
	}
	return store.Source{}, false
}

// noSource answers 404 for a source that does not exist, naming the
// closest one.
func (s *Server) noSource(ctx context.Context, w http.ResponseWriter, name string) {
	writeError(w, http.StatusNotFound, errorBody{Error: ops.NoSource(name, "see GET /v1/sources", ops.SourceNames(ctx, s.st)...).Error()})
}

// newSourceJSON is the body of POST /v1/sources.
type newSourceJSON struct {
	Name       string `json:"name"`
	Kind       string `json:"kind"`
	Partitions int    `json:"partitions"`
	// DSN and Table are a pg-outbox source's application database and
	// outbox table (default bam_outbox). The DSN is never shown again.
	DSN      string  `json:"dsn"`
	Table    *string `json:"table"`
	Disabled bool    `json:"disabled"`
	Paused   bool    `json:"paused"`
}

// identifyTimeout bounds how long POST /v1/sources tries to reach a
// pg-outbox database to record which outbox it is.
const identifyTimeout = 10 * time.Second

// sourceAdded is the body of a 201 to POST /v1/sources.
type sourceAdded struct {
	sourceJSON
	// Warning says why a pg-outbox source's outbox is not recorded yet (a
	// node records it once it reaches the database).
	Warning string `json:"warning,omitempty"`
}

// addSource is POST /v1/sources: the checks of `bam source add`, then the
// source and its sessions, answered 201 with the source.
func (s *Server) addSource(w http.ResponseWriter, r *http.Request) {
	if !queryParams(r).ok(w) {
		return
	}
	var req newSourceJSON
	if !s.readJSON(w, r, &req) {
		return
	}
	n := ops.NewSource{Name: req.Name, Kind: store.SourceKind(req.Kind), Partitions: req.Partitions, DSN: req.DSN,
		Disabled: req.Disabled, Paused: req.Paused}
	if req.Table != nil {
		n.Table, n.TableSet = *req.Table, true
	}
	src, err := n.Source()
	if err != nil {
		writeError(w, http.StatusBadRequest, errorBody{Error: err.Error()})
		return
	}
	var warning string
	if werr := ops.Identify(r.Context(), &src, identifyTimeout); werr != nil {
		warning = werr.Error() + " (bam records which outbox the source reads when a node first reaches it)"
	}
	ctx, cancel := storeContext(r)
	defer cancel()
	err = ops.AddSource(ctx, s.st, src)
	switch {
	case errors.Is(err, store.ErrExists), errors.Is(err, store.ErrOutboxTaken), errors.Is(err, store.ErrTombstone):
		writeError(w, http.StatusConflict, errorBody{Error: err.Error()})
		return
	case err != nil:
		s.unavailable(w, r, "add source", err)
		return
	}
	s.audit(ctx, r, "source add", src.Name, fmt.Sprintf("%s, %d partitions, %s", src.Kind, src.Partitions, ops.SourceState(src)))
	added, err := s.st.Source(ctx, src.Name)
	if err != nil {
		s.unavailable(w, r, "read the source added", err)
		return
	}
	backlogs := ops.NewBacklogs(s.st)
	defer backlogs.Close()
	j := sourceAdded{sourceJSON: sourceJSON{SourceJSON: ops.ToSourceJSON(added)}, Warning: warning}
	if added.Kind == store.KindBuffer {
		j.Backlog = &sourceBacklogJSON{} // a new buffer holds nothing
	}
	w.Header().Set("Location", "/v1/sources/"+src.Name)
	writeJSON(w, http.StatusCreated, j)
}

// switchSource is POST /v1/sources/{source}/{enable,disable,pause,resume}:
// as `bam source enable` and the others, answered with the source.
func (s *Server) switchSource(verb string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !queryParams(r).ok(w) {
			return
		}
		name := r.PathValue("source")
		src, ok := s.readSource(w, r, name)
		if !ok {
			return
		}
		// Already so: nothing to change, nor to record (bam source pause
		// says "nothing to do" too).
		if already := map[string]bool{"enable": src.Enabled, "disable": !src.Enabled, "pause": src.Paused, "resume": !src.Paused}[verb]; already {
			s.writeSource(w, r, name, http.StatusOK)
			return
		}
		ctx, cancel := storeContext(r)
		defer cancel()
		var err error
		switch verb {
		case "enable", "disable":
			err = s.st.SetSourceEnabled(ctx, name, verb == "enable")
		case "pause", "resume":
			err = s.st.SetSourcePaused(ctx, name, verb == "pause")
		default:
			panic("switchSource: unknown verb " + verb)
		}
		switch {
		case errors.Is(err, store.ErrNotFound): // removed meanwhile
			s.readSource(w, r, name)
			return
		case err != nil:
			s.unavailable(w, r, verb+" source", err)
			return
		}
		s.audit(ctx, r, "source "+verb, name, "")
		s.writeSource(w, r, name, http.StatusOK)
	}
}

// readJSON decodes a JSON request body into v, refusing unknown fields,
// trailing data and bodies over Config.MaxBody; it answers 400 (or 413,
// 415) and returns false when it cannot.
func (s *Server) readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	if format, err := bodyFormat(r.Header); err != nil || format != formatJSON {
		writeError(w, http.StatusUnsupportedMediaType, errorBody{Error: "send the body as application/json"})
		return false
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, s.cfg.MaxBody))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil && dec.More() {
		err = errors.New("more than one JSON value")
	}
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		writeError(w, http.StatusRequestEntityTooLarge, errorBody{Error: fmt.Sprintf("the body is over %d bytes", s.cfg.MaxBody), Limit: s.cfg.MaxBody})
		return false
	case err != nil:
		writeError(w, http.StatusBadRequest, errorBody{Error: "the body is not the JSON object this endpoint takes: " + err.Error()})
		return false
	}
	return true
}

// audit records in the store's audit log what a request changed. The API
// has no authentication yet: who is the client's address, as the request
// came in ("http 127.0.0.1:53122"). A failure to record is logged; the
// change is made.
func (s *Server) audit(ctx context.Context, r *http.Request, action, target, detail string) {
	if err := ops.Audit(ctx, s.st, "http "+r.RemoteAddr, action, target, detail); err != nil {
		s.log.Warn("done, but not recorded in the audit log", "action", action, "target", target, "err", err)
	}
}
