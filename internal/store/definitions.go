package store

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/bam-dev/bam/internal/definition"
)

// Deployed activity definitions and their views.
//
// A deployment is one store transaction: it takes the deploy lock (a
// PostgreSQL advisory lock; SQLite's write lock), reads what is deployed,
// plans the file over it (definition.Plan), refuses destructive changes
// (removing, retyping or renaming an item) unless forced or unless no
// instance holds the item, writes the definitions, records the deployment
// under the next version, and drops and recreates the views and indexes of
// every activity it changed. An error anywhere rolls all of it back.
//
// Each activity gets three views over bam_instances, named after it in lower
// case: <name>_active, <name>_completed and <name>_all, and <name>_archive
// over bam_instances_archive once completed instances are archived. Their
// columns are instance_id, state, begin_time, end_time, last_modified,
// events, then one column per item, named after it in lower case, in the
// file's order, typed as the item is (docs/DEFINITIONS.md has the types of
// each store). A stored value that does not fit its item's type (written
// before the definition, or before a forced retype) reads as NULL: a view
// never fails at query time.

// viewStates are the suffixes of an activity's views over bam_instances and
// the state each one selects ("" for every state).
var viewStates = []struct{ Suffix, State string }{
	{"_active", string(StateActive)},
	{"_completed", string(StateCompleted)},
	{"_all", ""},
}

// ArchiveSuffix names an activity's view of its archived instances.
const ArchiveSuffix = "_archive"

// ViewNames returns the views of an activity: <name>_active,
// <name>_completed, <name>_all, and <name>_archive when archived is true.
func ViewNames(activity string, archived bool) []string {
	base := strings.ToLower(activity)
	var out []string
	for _, v := range viewStates {
		out = append(out, base+v.Suffix)
	}
	if archived {
		out = append(out, base+ArchiveSuffix)
	}
	return out
}

// IndexName names the index of an indexed item: bam_ix_<activity>_<item>
// in lower case, shortened with a hash of the whole when longer than
// PostgreSQL's 63-byte identifiers.
func IndexName(activity, item string) string {
	name := strings.ToLower("bam_ix_" + activity + "_" + item)
	if len(name) <= 63 {
		return name
	}
	h := fnv.New32a()
	h.Write([]byte(name))
	return fmt.Sprintf("%s_%08x", name[:54], h.Sum32())
}

// Window is how long completed instances of an activity stay in
// bam_instances, counted from their end time by the store's clock. Keep 0
// keeps them for ever. When Archive is set, PurgeCompleted moves them to
// bam_instances_archive (read through the <name>_archive view) instead of
// deleting them.
type Window struct {
	Keep    time.Duration
	Archive bool
}

func (w Window) String() string {
	if w.Keep <= 0 {
		return "keep for ever"
	}
	if w.Archive {
		return fmt.Sprintf("keep %s, then archive", w.Keep)
	}
	return fmt.Sprintf("keep %s, then delete", w.Keep)
}

// DeployRequest is a definition file to deploy.
type DeployRequest struct {
	File definition.File // parsed and checked by definition.Parse
	Text string          // the file as written, recorded with the deployment
	By   string          // who deploys (user@host)
	// Force makes the destructive changes that would lose stored data.
	Force bool
	// DryRun plans and checks everything, refusal included, and writes
	// nothing.
	DryRun bool
	// Expect, when above 0, deploys only if the definitions are still at
	// that version (else an error wrapping ErrDefinitionsMoved): a change
	// computed from what was read at Expect, such as one alert edited
	// through the HTTP API, never undoes a deployment made meanwhile.
	Expect int64
}

// Deployment is one recorded change of the deployed definitions: a file
// deployed, an activity removed or a window set.
type Deployment struct {
	Version int64 // grows by one with each deployment
	At      time.Time
	By      string
	// Changes are the plan's lines (definition.Change.String), or what
	// `bam activity remove` and `bam activity window` did.
	Changes []string
	// Plan is the plan behind Changes, on what Deploy returns only.
	Plan   []definition.Change
	Forced bool
	Text   string // the file deployed; empty for other changes
	// DryRun is set on what a dry run would have deployed (Version is then
	// the version it would have taken; nothing was recorded).
	DryRun bool
}

// DeployedActivity is an activity as deployed.
type DeployedActivity struct {
	definition.Activity
	Version int64 // the deployment that last changed it
	Window  Window
	// Archived reports whether its <name>_archive view exists: from the
	// first time archiving is turned on until the activity is removed.
	Archived bool
}

// DeployRefusedError is a deployment refused because it would change items
// that instances hold. Nothing was written.
type DeployRefusedError struct {
	Plan     []definition.Change // the whole plan
	Blocking []definition.Change // the destructive changes to items in use
}

func (e *DeployRefusedError) Error() string {
	lines := make([]string, len(e.Blocking))
	for i, c := range e.Blocking {
		lines[i] = c.String()
	}
	return fmt.Sprintf("deployment refused: %d change(s) would lose data that instances hold (%s); deploy again with force to make them",
		len(e.Blocking), strings.Join(lines, "; "))
}

// ErrInstancesExist is returned by RemoveActivity when the activity still
// has instances and dropData is false.
var ErrInstancesExist = errors.New("the activity still has instances")

// ErrDefinitionsMoved is returned by Deploy when DeployRequest.Expect is
// not the version of the definitions any more.
var ErrDefinitionsMoved = errors.New("the definitions changed meanwhile")

// PlanDeployment plans a file over the deployed activities. It refuses
// (with a *definition.Error) an activity deployed under the same name in
// another case: events name activities case-sensitively, so the views would
// stop seeing the instances.
func PlanDeployment(deployed []DeployedActivity, f definition.File) ([]definition.Change, error) {
	have := definition.File{}
	byKey := map[string]string{}
	for _, a := range deployed {
		have.Activities = append(have.Activities, a.Activity)
		byKey[strings.ToLower(a.Name)] = a.Name
	}
	var probs []definition.Problem
	for _, a := range f.Activities {
		if name, ok := byKey[strings.ToLower(a.Name)]; ok && name != a.Name {
			probs = append(probs, definition.Problem{Activity: a.Name, Reason: fmt.Sprintf(
				"deployed as %q: events name activities case-sensitively, so keep that spelling (or remove the activity first)", name)})
		}
	}
	probs = append(probs, viewClashes(deployed, f)...)
	if len(probs) > 0 {
		return nil, &definition.Error{Problems: probs}
	}
	return definition.Plan(have, f), nil
}

// viewClashes finds the views two activities would both name once f is
// deployed: an aggregation's view "<activity>_<aggregation>" may be named
// like another activity's view ("A" with "B_all" and "A_B" with its
// "_all" view).
func viewClashes(deployed []DeployedActivity, f definition.File) []definition.Problem {
	final := map[string]definition.Activity{}
	archived := map[string]bool{}
	for _, a := range deployed {
		final[strings.ToLower(a.Name)], archived[strings.ToLower(a.Name)] = a.Activity, a.Archived
	}
	for _, a := range f.Activities {
		final[strings.ToLower(a.Name)] = a
	}
	owner := map[string]string{}
	var probs []definition.Problem
	for _, key := range slices.Sorted(maps.Keys(final)) {
		a := final[key]
		names := ViewNames(a.Name, archived[key])
		for _, g := range a.Aggregations {
			names = append(names, definition.ViewName(a.Name, g.Name))
		}
		for _, v := range names {
			if other, taken := owner[v]; taken && other != a.Name {
				probs = append(probs, definition.Problem{Activity: a.Name, Reason: fmt.Sprintf(
					"its view %s would have the name of a view of activity %s: rename an aggregation", v, other)})
			}
			owner[v] = a.Name
		}
	}
	return probs
}

// Blocking returns the destructive changes of a plan whose item some
// instance holds. inUse answers for an item under its deployed name.
func Blocking(ctx context.Context, deployed []DeployedActivity, plan []definition.Change,
	inUse func(ctx context.Context, activity, item string) (bool, error)) ([]definition.Change, error) {
	var out []definition.Change
	checked := map[[2]string]bool{}
	for _, c := range plan {
		if !c.Destructive() {
			continue
		}
		act, item, ok := deployedItem(deployed, c.Activity, c.Item)
		if !ok {
			return nil, fmt.Errorf("plan names %s.%s, which is not deployed", c.Activity, c.Item)
		}
		key := [2]string{act, item}
		used, seen := checked[key]
		if !seen {
			var err error
			if used, err = inUse(ctx, act, item); err != nil {
				return nil, fmt.Errorf("check whether instances of %s hold %s: %w", act, item, err)
			}
			checked[key] = used
		}
		if used {
			out = append(out, c)
		}
	}
	return out, nil
}

// deployedItem finds an item as deployed, names compared without regard
// to case.
func deployedItem(deployed []DeployedActivity, activity, item string) (string, string, bool) {
	for _, a := range deployed {
		if !strings.EqualFold(a.Name, activity) {
			continue
		}
		for _, it := range a.Items {
			if strings.EqualFold(it.Name, item) {
				return a.Name, it.Name, true
			}
		}
	}
	return "", "", false
}

// ChangeLines writes a plan as the lines a deployment records.
func ChangeLines(plan []definition.Change) []string {
	out := make([]string, len(plan))
	for i, c := range plan {
		out[i] = c.String()
	}
	return out
}

// Changed returns the activities of f that the plan changes, in f's order.
func Changed(f definition.File, plan []definition.Change) []definition.Activity {
	touched := map[string]bool{}
	for _, c := range plan {
		touched[strings.ToLower(c.Activity)] = true
	}
	var out []definition.Activity
	for _, a := range f.Activities {
		if touched[strings.ToLower(a.Name)] {
			out = append(out, a)
		}
	}
	return out
}

// Windows is what PurgeWindows needs of a store.
type Windows interface {
	Definitions(ctx context.Context) ([]DeployedActivity, int64, error)
	PurgeCompleted(ctx context.Context, activity string) (int64, error)
}

// PurgeWindows runs PurgeCompleted for every deployed activity that has a
// window, and PurgeAggregations when the store has it, and returns how
// many instances it purged in all. Nodes call it
// periodically; several nodes calling it at once is harmless (each
// instance is deleted or moved once).
func PurgeWindows(ctx context.Context, s Windows) (int64, error) {
	acts, _, err := s.Definitions(ctx)
	if err != nil {
		return 0, fmt.Errorf("purge windows: %w", err)
	}
	var total int64
	for _, a := range acts {
		if a.Window.Keep <= 0 {
			continue
		}
		n, err := s.PurgeCompleted(ctx, a.Name)
		total += n
		if err != nil {
			return total, fmt.Errorf("purge windows: %w", err)
		}
	}
	// The buckets of windowed aggregations that left their window go at
	// the same time (a store that keeps aggregations can).
	if ag, ok := s.(interface{ PurgeAggregations(context.Context) error }); ok {
		if err := ag.PurgeAggregations(ctx); err != nil {
			return total, fmt.Errorf("purge windows: %w", err)
		}
	}
	return total, nil
}

// SplitChanges reads the changes a deployment recorded, one per line.
func SplitChanges(text string) []string {
	if text == "" {
		return nil
	}
	return strings.Split(text, "\n")
}
