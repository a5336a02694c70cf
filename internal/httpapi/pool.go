package httpapi

import (
	"net/http"
	"slices"
	"strings"

	"github.com/bam-dev/bam/internal/ops"
	"github.com/bam-dev/bam/internal/store"
)

// nodeJSON is a node of the pool in GET /v1/nodes.
type nodeJSON struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// Host and PID are where the node runs (its address as the pool
	// knows it; nodes listen on no port of their own).
	Host        string  `json:"host"`
	PID         int     `json:"pid"`
	State       string  `json:"state"` // running, draining, stopping, or dead (heartbeat older than the lease TTL)
	JoinedAt    *string `json:"joined_at"`
	HeartbeatAt *string `json:"heartbeat_at"`
	// HeartbeatAgeSeconds is the store's now() minus HeartbeatAt.
	HeartbeatAgeSeconds float64          `json:"heartbeat_age_seconds"`
	Sessions            []sessionRefJSON `json:"sessions"` // the sessions it owns
}

// sessionRefJSON names a session.
type sessionRefJSON struct {
	Source    string `json:"source"`
	Partition int    `json:"partition"`
}

// goneJSON is a node that left the pool or was found dead less than
// store.DepartedMemory ago.
type goneJSON struct {
	ID          string  `json:"id"`
	Name        string  `json:"name"`
	Host        string  `json:"host"`
	PID         int     `json:"pid"`
	JoinedAt    *string `json:"joined_at"`
	HeartbeatAt *string `json:"heartbeat_at"`
	GoneAt      *string `json:"gone_at"`
	FoundDeadBy string  `json:"found_dead_by"` // empty: it left by itself
	Why         string  `json:"why"`
}

// nodeList is the body of GET /v1/nodes.
type nodeList struct {
	Nodes []nodeJSON `json:"nodes"`
	Gone  []goneJSON `json:"gone"`
}

// listNodes is GET /v1/nodes: the pool's nodes, each with the sessions it
// owns, and the nodes gone lately.
func (s *Server) listNodes(w http.ResponseWriter, r *http.Request) {
	if !queryParams(r).ok(w) {
		return
	}
	ctx, cancel := storeContext(r)
	defer cancel()
	nodes, err := s.st.Nodes(ctx)
	if err != nil {
		s.unavailable(w, r, "read nodes", err)
		return
	}
	sessions, err := s.st.Sessions(ctx)
	if err != nil {
		s.unavailable(w, r, "read sessions", err)
		return
	}
	departed, err := s.st.DepartedNodes(ctx)
	if err != nil {
		s.unavailable(w, r, "read the nodes gone", err)
		return
	}
	owned := map[string][]sessionRefJSON{}
	sortSessions(sessions)
	for _, se := range sessions {
		if se.Owner != "" && se.LeaseRemaining > 0 {
			owned[se.Owner] = append(owned[se.Owner], sessionRefJSON{se.Source, se.Partition})
		}
	}
	out := nodeList{Nodes: make([]nodeJSON, 0, len(nodes)), Gone: make([]goneJSON, 0, len(departed))}
	for _, n := range nodes {
		state := string(n.State)
		switch {
		case n.HeartbeatAge > s.cfg.LeaseTTL:
			// Silent, not dead: a node found dead leaves the member
			// list (gone). One still listed with a stale heartbeat
			// holds its liveness lock (paused, hung, cut off) or has no
			// live peer to find it dead.
			state = "silent"
		case n.Draining && n.State == store.NodeRunning:
			state = "draining"
		}
		out.Nodes = append(out.Nodes, nodeJSON{ID: n.ID, Name: n.Name, Host: n.Host, PID: n.PID, State: state,
			JoinedAt: jsonTime(&n.StartedAt), HeartbeatAt: jsonTime(&n.HeartbeatAt), HeartbeatAgeSeconds: n.HeartbeatAge.Seconds(),
			Sessions: append([]sessionRefJSON{}, owned[n.ID]...)})
	}
	slices.SortFunc(out.Nodes, func(a, b nodeJSON) int { return strings.Compare(a.Name+"\x00"+a.ID, b.Name+"\x00"+b.ID) })
	for _, d := range departed {
		out.Gone = append(out.Gone, goneJSON{ID: d.ID, Name: d.Name, Host: d.Host, PID: d.PID,
			JoinedAt: jsonTime(&d.StartedAt), HeartbeatAt: jsonTime(&d.HeartbeatAt), GoneAt: jsonTime(&d.DepartedAt),
			FoundDeadBy: d.FoundDeadBy, Why: d.Why})
	}
	writeJSON(w, http.StatusOK, out)
}

// sessionJSON is a session in GET /v1/sessions.
type sessionJSON struct {
	Source    string `json:"source"`
	Partition int    `json:"partition"`
	Kind      string `json:"kind"`
	Enabled   bool   `json:"enabled"`
	Paused    bool   `json:"paused"` // the source is paused
	// PoolPaused: the whole pool is paused (bam pause); PoolPausedAt
	// and PoolPausedBy say since when and who paused it.
	PoolPaused   bool    `json:"pool_paused"`
	PoolPausedAt *string `json:"pool_paused_at,omitempty"`
	PoolPausedBy string  `json:"pool_paused_by,omitempty"`
	// Owner is the owning node's id, empty when free; OwnerName its name
	// while it is a member of the pool.
	Owner     string `json:"owner"`
	OwnerName string `json:"owner_name"`
	// MovingTo is the node an operator moved the session to, while that
	// move holds (bam session move).
	MovingTo string `json:"moving_to"`
	Epoch    int64  `json:"epoch"`
	// LeaseRemainingSeconds is the lease's expiry minus the store's now():
	// 0 when free or expired.
	LeaseRemainingSeconds float64        `json:"lease_remaining_seconds"`
	Checkpoint            store.Position `json:"checkpoint"`
	Applied               int64          `json:"applied"`
	// FailedOutstanding counts the session's failed events still kept;
	// FailedTotal every event it ever quarantined.
	FailedOutstanding int64   `json:"failed_outstanding"`
	FailedTotal       int64   `json:"failed_total"`
	LastError         string  `json:"last_error"`
	LastErrorAt       *string `json:"last_error_at"`
	// Backlog is null when it could not be read; BacklogError says why.
	Backlog      *backlogJSON `json:"backlog"`
	BacklogError string       `json:"backlog_error,omitempty"`
}

// backlogJSON is what waits in a session's source after its checkpoint.
type backlogJSON struct {
	// Events is counted up to Config.CountBound: past it, it is
	// that bound and EventsIsLowerBound is set.
	Events             int64 `json:"events"`
	EventsIsLowerBound bool  `json:"events_is_lower_bound"`
	// OldestAgeSeconds is how long the first event waiting has waited, by
	// the clock of the database that holds it; 0 when none waits.
	OldestAgeSeconds float64 `json:"oldest_age_seconds"`
	// Held (pg-outbox): the first event cannot be read until a
	// transaction of the outbox's server that started before it ends;
	// Holder is that transaction, when it could be found.
	Held        bool        `json:"held"`
	Holder      *holderJSON `json:"holder,omitempty"`
	HolderError string      `json:"holder_error,omitempty"`
}

// holderJSON is the transaction that holds a pg-outbox server's horizon.
type holderJSON struct {
	Kind        string  `json:"kind"` // transaction, prepared transaction
	PID         int     `json:"pid,omitempty"`
	Database    string  `json:"database"`
	User        string  `json:"user"`
	Application string  `json:"application"`
	State       string  `json:"state"`
	AgeSeconds  float64 `json:"age_seconds"`
}

// sessionList is the body of GET /v1/sessions.
type sessionList struct {
	Sessions []sessionJSON `json:"sessions"`
}

// listSessions is GET /v1/sessions (?source= for one source's): every
// session with its lease, checkpoint, counts, last error and backlog.
func (s *Server) listSessions(w http.ResponseWriter, r *http.Request) {
	p := queryParams(r, "source")
	source := p.str("source")
	if !p.ok(w) {
		return
	}
	ctx, cancel := storeContext(r)
	defer cancel()
	if source != "" {
		if _, ok := s.readSource(w, r, source); !ok {
			return
		}
	}
	nodes, err := s.st.Nodes(ctx)
	if err != nil {
		s.unavailable(w, r, "read nodes", err)
		return
	}
	sessions, err := s.st.Sessions(ctx)
	if err != nil {
		s.unavailable(w, r, "read sessions", err)
		return
	}
	outstanding, err := s.st.FailedOutstanding(ctx)
	if err != nil {
		s.unavailable(w, r, "count failed events", err)
		return
	}
	names := map[string]string{}
	for _, n := range nodes {
		names[n.ID] = n.Name
	}
	var pause store.PoolState
	for _, se := range sessions {
		if se.PoolPaused {
			if pause, err = s.st.PoolState(ctx); err != nil {
				s.unavailable(w, r, "read the pool's pause", err)
				return
			}
			break
		}
	}
	sortSessions(sessions)
	backlogs := ops.NewBacklogs(s.st)
	defer backlogs.Close()
	out := sessionList{Sessions: []sessionJSON{}}
	for _, se := range sessions {
		if source != "" && se.Source != source {
			continue
		}
		j := sessionJSON{Source: se.Source, Partition: se.Partition, Kind: string(se.Kind), Enabled: se.SourceEnabled, Paused: se.SourcePaused, PoolPaused: se.PoolPaused, MovingTo: se.MoveTo,
			Owner: se.Owner, OwnerName: names[se.Owner], Epoch: se.Epoch, Checkpoint: se.Checkpoint, Applied: se.Applied,
			FailedOutstanding: outstanding[se.SessionID], FailedTotal: se.Failed, LastError: se.LastError, LastErrorAt: jsonTime(se.LastErrorAt)}
		if se.Owner != "" {
			j.LeaseRemainingSeconds = max(se.LeaseRemaining, 0).Seconds()
		}
		if se.PoolPaused {
			j.PoolPausedAt, j.PoolPausedBy = jsonTime(pause.PausedAt), pause.PausedBy
		}
		b, err := backlogs.Bounded(ctx, se, s.cfg.CountBound)
		if err != nil {
			if ctx.Err() != nil {
				s.unavailable(w, r, "read the backlogs", err)
				return
			}
			j.BacklogError = err.Error()
		} else {
			j.Backlog = toBacklogJSON(b)
		}
		out.Sessions = append(out.Sessions, j)
	}
	writeJSON(w, http.StatusOK, out)
}

func toBacklogJSON(b ops.SessionBacklog) *backlogJSON {
	j := &backlogJSON{Events: b.Events, EventsIsLowerBound: b.AtLeast, OldestAgeSeconds: b.OldestAge.Seconds(), Held: b.Held}
	switch h := b.Holder; {
	case h == nil:
	case h.Err != nil:
		j.HolderError = h.Err.Error()
	case h.Holder == nil:
		j.HolderError = "no open transaction visible to the source's database role holds the horizon (a role without pg_read_all_stats does not see other roles' transactions)"
	default:
		j.Holder = &holderJSON{Kind: h.Kind, PID: h.PID, Database: h.Database, User: h.User, Application: h.Application,
			State: h.State, AgeSeconds: h.Age.Seconds()}
	}
	return j
}

// sortSessions orders sessions by source, then partition.
func sortSessions(ss []store.SessionRow) {
	slices.SortFunc(ss, func(a, b store.SessionRow) int {
		if c := strings.Compare(a.Source, b.Source); c != 0 {
			return c
		}
		return a.Partition - b.Partition
	})
}
