package ops

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/bam-dev/bam/internal/definition"
	"github.com/bam-dev/bam/internal/store"
)

// ItemJSON is an item of an activity in JSON. The field names are stable.
type ItemJSON struct {
	Name      string `json:"name"`
	Type      string `json:"type"`
	Describe  string `json:"describe"` // text(100), decimal(12,2), ...
	MaxLength int    `json:"max_length,omitempty"`
	Precision int    `json:"precision,omitempty"`
	Scale     *int   `json:"scale,omitempty"`
	Index     bool   `json:"index"`
	Column    string `json:"column"` // the views' column
}

// ActivityJSON is an activity in JSON (`bam activity list --json`, the
// HTTP API).
type ActivityJSON struct {
	Name string `json:"name"`
	// Deployed is false for an activity that has instances but no
	// deployed definition (its items are kept untyped).
	Deployed bool       `json:"deployed"`
	Version  int64      `json:"version"`
	Items    []ItemJSON `json:"items"`
	Views    []string   `json:"views"`
	// Aggregations are as the definition declares them, each with its view.
	Aggregations []AggregationJSON `json:"aggregations"`
	Window       WindowJSON        `json:"window"`
	// Instances counts the online instances by state, when asked for
	// (CountInstances).
	Instances map[string]int64 `json:"instances,omitempty"`
	// EventsApplied, when asked for, is how many events the pool's
	// sessions have applied to its instances (store.ActivityEventCounter):
	// a running total, whose change over time is the activity's rate.
	EventsApplied *int64 `json:"events_applied,omitempty"`
}

// AggregationJSON is an aggregation of a deployed activity.
type AggregationJSON struct {
	definition.Aggregation
	View string `json:"view"`
}

// WindowJSON is an activity's online window in JSON.
type WindowJSON struct {
	Keep    string `json:"keep"` // a Go duration; "0s": kept for ever
	Archive bool   `json:"archive"`
}

// ToActivityJSON returns a deployed activity's JSON form.
func ToActivityJSON(d store.DeployedActivity) ActivityJSON {
	out := ActivityJSON{Name: d.Name, Deployed: true, Version: d.Version, Views: store.ViewNames(d.Name, d.Archived),
		Window: WindowJSON{Keep: d.Window.Keep.String(), Archive: d.Window.Archive}, Items: []ItemJSON{}}
	for _, it := range d.Items {
		out.Items = append(out.Items, ItemJSON{Name: it.Name, Type: string(it.Type), Describe: it.Describe(),
			MaxLength: it.MaxLength, Precision: it.Precision, Scale: it.Scale, Index: it.Index, Column: strings.ToLower(it.Name)})
	}
	out.Aggregations = []AggregationJSON{}
	for _, g := range d.Aggregations {
		view := definition.ViewName(d.Name, g.Name)
		out.Aggregations = append(out.Aggregations, AggregationJSON{Aggregation: g, View: view})
		out.Views = append(out.Views, view)
	}
	return out
}

// UntypedActivityJSON is the JSON form of an activity that has instances
// but no deployed definition.
func UntypedActivityJSON(name string) ActivityJSON {
	return ActivityJSON{Name: name, Items: []ItemJSON{}, Views: []string{}, Aggregations: []AggregationJSON{}}
}

// Activities returns the deployed activities, by name, then the ones that
// have instances but no deployed definition, and the definitions' version.
func Activities(ctx context.Context, st store.Store) (deployed []store.DeployedActivity, untyped []string, version int64, err error) {
	deployed, version, err = st.Definitions(ctx)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("list activities: %w", err)
	}
	names := map[string]bool{}
	for _, d := range deployed {
		names[d.Name] = true
	}
	withInstances, err := st.InstanceActivities(ctx)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("list activities: %w", err)
	}
	for _, name := range withInstances {
		if !names[name] {
			untyped = append(untyped, name)
		}
	}
	return deployed, untyped, version, nil
}

// CountInstances counts an activity's online instances by state, every
// state present. It reads an index entry per instance (seconds at tens of
// millions: store.Store.CountInstances).
func CountInstances(ctx context.Context, st store.Store, activity string) (map[string]int64, error) {
	counts, err := st.CountInstances(ctx, activity)
	if err != nil {
		return nil, fmt.Errorf("count instances of %s: %w", activity, err)
	}
	out := map[string]int64{}
	for _, state := range []store.InstanceState{store.StatePending, store.StateActive, store.StateCompleted} {
		out[string(state)] = counts[state]
	}
	return out, nil
}

// ErrNotDeployed is DeployedActivity's error for a name no deployed
// activity has; errors.Is(err, store.ErrNotFound) holds too.
var ErrNotDeployed = fmt.Errorf("no such deployed activity: %w", store.ErrNotFound)

// DeployedActivity reads one deployed activity, named in any case; an
// error wrapping ErrNotDeployed when there is none.
func DeployedActivity(ctx context.Context, st store.Store, name string) (store.DeployedActivity, error) {
	acts, _, err := st.Definitions(ctx)
	if err != nil {
		return store.DeployedActivity{}, fmt.Errorf("read the definition of %s: %w", name, err)
	}
	d, err := store.FindActivity(acts, name)
	if errors.Is(err, store.ErrNotFound) {
		return store.DeployedActivity{}, fmt.Errorf("activity %q: %w", name, ErrNotDeployed)
	}
	return d, err
}

// DeploymentJSON is a deployment in JSON (`bam definition history
// --json`, the HTTP API).
type DeploymentJSON struct {
	Version int64    `json:"version"`
	At      string   `json:"at"`
	By      string   `json:"by"`
	Forced  bool     `json:"forced"`
	Changes []string `json:"changes"`
	File    string   `json:"file,omitempty"`
}

// ToDeploymentJSON returns a deployment's JSON form, with the file it
// deployed or without.
func ToDeploymentJSON(d store.Deployment, withFile bool) DeploymentJSON {
	j := DeploymentJSON{Version: d.Version, At: *rfc3339(&d.At), By: d.By, Forced: d.Forced, Changes: d.Changes}
	if withFile {
		j.File = definition.RedactedText(d.Text)
	}
	if j.Changes == nil {
		j.Changes = []string{}
	}
	return j
}

// ErrNothingDeployed is Export's error when no activity is deployed.
var ErrNothingDeployed = errors.New("no activities deployed: nothing to export")

// Export returns the deployed definitions, or only activity's (named in
// any case) when it is not "", as a file `bam deploy` accepts, headed by
// the version it was exported from. A webhook's query is hidden (it may
// hold a token), as every listing hides it: deploy refuses such a webhook
// until its whole URL is put back. An error wraps ErrNotDeployed when
// activity is not deployed, ErrNothingDeployed when nothing is.
func Export(ctx context.Context, st store.Store, activity string) ([]byte, error) {
	acts, version, err := st.Definitions(ctx)
	if err != nil {
		return nil, fmt.Errorf("export definitions: %w", err)
	}
	var f definition.File
	for _, d := range acts {
		if activity == "" || strings.EqualFold(d.Name, activity) {
			f.Activities = append(f.Activities, d.Activity.WebhooksRedacted())
		}
	}
	switch {
	case activity != "" && len(f.Activities) == 0:
		return nil, fmt.Errorf("activity %q: %w", activity, ErrNotDeployed)
	case len(f.Activities) == 0:
		return nil, ErrNothingDeployed
	}
	return append(fmt.Appendf(nil, "# exported from definitions version %d\n", version), definition.Format(f)...), nil
}
