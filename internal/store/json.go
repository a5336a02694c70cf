package store

import (
	"encoding/json"
	"sort"
	"time"
)

// InstanceJSON is the stable JSON form of an instance, shared by
// `bam instance get --json` and the HTTP API: times in RFC 3339 UTC, null
// when unknown; data never null.
type InstanceJSON struct {
	Activity     string                     `json:"activity"`
	Instance     string                     `json:"instance"`
	State        string                     `json:"state"`
	Begin        *string                    `json:"begin"`
	End          *string                    `json:"end"`
	LastModified *string                    `json:"last_modified"`
	Events       int64                      `json:"events"`
	Data         map[string]json.RawMessage `json:"data"`
}

// JSON returns the instance's stable JSON form.
func (in Instance) JSON() InstanceJSON {
	data := in.Data
	if data == nil {
		data = map[string]json.RawMessage{}
	}
	return InstanceJSON{
		Activity: in.Activity, Instance: in.ID, State: string(in.State),
		Begin: rfc3339(in.Begin), End: rfc3339(in.End), LastModified: rfc3339(&in.LastModified),
		Events: in.Events, Data: data,
	}
}

// InstanceDetailJSON is the stable JSON form of one instance read whole
// (`bam instance get --json`, the HTTP API's GET of an instance): the
// list's fields and the vocabulary beyond begin, update and end.
type InstanceDetailJSON struct {
	InstanceJSON
	// ArchivedAt is when the instance was moved to the archive; null for
	// an online instance.
	ArchivedAt *string `json:"archived_at"`
	// Archived says the same as a non-null ArchivedAt.
	Archived bool `json:"archived"`
	// URL is the instance's own in the HTTP API; absent elsewhere.
	URL string `json:"url,omitempty"`
	// Timeline lists the instance's milestone items (of the type
	// milestone in its activity's deployed definition) in time order;
	// empty when no definition is deployed or no milestone is reached.
	Timeline      []MilestoneJSON    `json:"timeline"`
	Continuations []ContinuationJSON `json:"continuations"`
	Related       []RelatedJSON      `json:"related"`
	References    []ReferenceJSON    `json:"references"`
}

// ContinuationJSON is a continuation in InstanceDetailJSON.
type ContinuationJSON struct {
	Activity string `json:"activity"`
	Token    string `json:"token"`
	// Instance is null while the token is not linked to an instance.
	Instance       *string `json:"instance"`
	EnabledByInst  *string `json:"enabled_by_instance"`
	EnabledByToken *string `json:"enabled_by_continuation"`
	EnabledAt      *string `json:"enabled_at"`
	EndedAt        *string `json:"ended_at"`
	LastModified   *string `json:"last_modified"`
	Open           bool    `json:"open"`
	Events         int64   `json:"events"`
	PendingEvents  int64   `json:"pending_events"`
}

// RelatedJSON is a related instance in InstanceDetailJSON.
type RelatedJSON struct {
	Activity string `json:"activity"`
	Instance string `json:"instance"`
	// URL is the related instance's in the HTTP API; absent elsewhere.
	URL string `json:"url,omitempty"`
}

// MilestoneJSON is a reached milestone in InstanceDetailJSON's timeline.
type MilestoneJSON struct {
	Item string `json:"item"`
	Time string `json:"time"` // RFC 3339, UTC
}

// ReferenceJSON is a reference in InstanceDetailJSON.
type ReferenceJSON struct {
	Type  string  `json:"type"`
	Name  string  `json:"name"`
	Value string  `json:"value"`
	Data  string  `json:"data"`
	Time  *string `json:"time"`
}

// DetailJSON returns the instance's stable JSON form read whole.
func (in Instance) DetailJSON() InstanceDetailJSON {
	out := InstanceDetailJSON{
		InstanceJSON:  in.JSON(),
		ArchivedAt:    rfc3339(in.ArchivedAt),
		Archived:      in.ArchivedAt != nil,
		Timeline:      []MilestoneJSON{},
		Continuations: make([]ContinuationJSON, 0, len(in.Continuations)),
		Related:       make([]RelatedJSON, 0, len(in.Related)),
		References:    make([]ReferenceJSON, 0, len(in.References)),
	}
	for _, c := range in.Continuations {
		out.Continuations = append(out.Continuations, c.JSON())
	}
	for _, k := range in.Related {
		out.Related = append(out.Related, RelatedJSON{Activity: k.Activity, Instance: k.Instance})
	}
	for _, r := range in.References {
		out.References = append(out.References, ReferenceJSON{Type: r.Type, Name: r.Name, Value: r.Value, Data: r.Data, Time: rfc3339(&r.Time)})
	}
	return out
}

// JSON returns the continuation's stable JSON form.
func (c Continuation) JSON() ContinuationJSON {
	text := func(s string) *string {
		if s == "" {
			return nil
		}
		return &s
	}
	return ContinuationJSON{
		Activity: c.Activity, Token: c.Token, Instance: text(c.Instance),
		EnabledByInst: text(c.ParentInstance), EnabledByToken: text(c.ParentToken),
		EnabledAt: rfc3339(c.EnabledAt), EndedAt: rfc3339(c.EndedAt), LastModified: rfc3339(c.LastModified),
		Open: c.Open(), Events: c.Events, PendingEvents: c.Pending,
	}
}

// rfc3339 formats a time for JSON: RFC 3339 in UTC, nil when unknown.
func rfc3339(t *time.Time) *string {
	if t == nil || t.IsZero() {
		return nil
	}
	s := t.UTC().Format(time.RFC3339Nano)
	return &s
}

// Timeline returns the milestones among items that the instance has
// reached (its data holds a time for them), earliest first (by name at
// the same time). A value that is not an RFC 3339 time is left out: an
// item kept untyped before its definition was deployed.
func (in Instance) Timeline(items []string) []MilestoneJSON {
	type reached struct {
		item string
		at   time.Time
	}
	var rs []reached
	for _, name := range items {
		var text string
		if err := json.Unmarshal(in.Data[name], &text); err != nil {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, text)
		if err != nil {
			continue
		}
		rs = append(rs, reached{name, at})
	}
	sort.Slice(rs, func(i, j int) bool {
		if !rs[i].at.Equal(rs[j].at) {
			return rs[i].at.Before(rs[j].at)
		}
		return rs[i].item < rs[j].item
	})
	out := make([]MilestoneJSON, len(rs))
	for i, r := range rs {
		out[i] = MilestoneJSON{Item: r.item, Time: *rfc3339(&r.at)}
	}
	return out
}
