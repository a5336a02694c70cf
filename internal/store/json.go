package store

import (
	"encoding/json"
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
	ArchivedAt    *string            `json:"archived_at"`
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
