package store

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/bam-dev/bam/internal/suggest"
)

// ErrNoActivity means a name is no activity of the store: no definition of
// it is deployed and no instance, online or archived, has it.
var ErrNoActivity = errors.New("no such activity")

// ActivityLister is what CheckActivity reads: the deployed definitions and
// the activities that have instances.
type ActivityLister interface {
	Definitions(ctx context.Context) ([]DeployedActivity, int64, error)
	InstanceActivities(ctx context.Context) ([]string, error)
}

// CheckActivity returns nil when name is an activity of the store: deployed,
// or held by an instance. Else it returns an error wrapping ErrNoActivity
// (a *NoActivityError) that names it and the closest known activity, so that a misspelled name
// is an error rather than an empty answer. Names are case-sensitive, as
// events are.
func CheckActivity(ctx context.Context, s ActivityLister, name string) error {
	deployed, _, err := s.Definitions(ctx)
	if err != nil {
		return fmt.Errorf("check activity %q: %w", name, err)
	}
	known := make([]string, 0, len(deployed))
	for _, a := range deployed {
		if a.Name == name {
			return nil
		}
		known = append(known, a.Name)
	}
	withInstances, err := s.InstanceActivities(ctx)
	if err != nil {
		return fmt.Errorf("check activity %q: %w", name, err)
	}
	if slices.Contains(withInstances, name) {
		return nil
	}
	known = append(known, withInstances...)
	slices.Sort(known)
	known = slices.Compact(known)
	return &NoActivityError{Name: name, Closest: suggest.Closest(name, known)}
}

// NoActivityError is CheckActivity's answer for a name that is no activity.
// errors.Is(err, ErrNoActivity) holds.
type NoActivityError struct {
	Name    string
	Closest string // the nearest known activity; "" when none is near
}

func (e *NoActivityError) Error() string {
	if e.Closest != "" {
		return fmt.Sprintf("no activity %q is deployed or has instances (did you mean %s?)", e.Name, e.Closest)
	}
	return fmt.Sprintf("no activity %q is deployed or has instances", e.Name)
}

func (e *NoActivityError) Is(target error) bool { return target == ErrNoActivity }

// NotDeployedError is a name that no deployed activity has, from what reads
// only the deployed definitions (an aggregation): it cannot tell whether
// instances have the name, so it says only what it knows.
// errors.Is(err, ErrNotFound) holds.
type NotDeployedError struct {
	Name    string
	Closest string // the nearest deployed activity; "" when none is near
	Lacks   string // what such a name has none of: "aggregations"
}

func (e *NotDeployedError) Error() string {
	msg := fmt.Sprintf("no deployed activity is named %q, so it has no %s", e.Name, e.Lacks)
	if e.Closest != "" {
		msg += fmt.Sprintf(" (did you mean %s?)", e.Closest)
	}
	return msg
}

func (e *NotDeployedError) Is(target error) bool { return target == ErrNotFound }
