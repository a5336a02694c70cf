package alert

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/bam-dev/bam/internal/definition"
	"github.com/bam-dev/bam/internal/store"
	"github.com/bam-dev/bam/internal/suggest"
)

// Editing one alert without a file (the HTTP API, the portal): the
// activity's deployed definition with the alert put in place or taken
// out, checked as `bam deploy` checks a file and deployed as one, only if
// no deployment came in between (store.DeployRequest.Expect). The
// deployment is recorded like any other, and `bam definition export`
// gives the alert back in the file.

// Deployer is what editing an alert needs of the store.
type Deployer interface {
	Definitions(ctx context.Context) ([]store.DeployedActivity, int64, error)
	Deploy(ctx context.Context, req store.DeployRequest) (store.Deployment, error)
	AddSource(ctx context.Context, src store.Source) error
}

// ErrInvalid wraps the errors that say what is wrong with an alert as
// given: its definition's problems, or its filter's.
var ErrInvalid = errors.New("invalid alert")

// Put deploys activity with al in place of its alert of the same name (in
// any case; the name keeps the deployed spelling), or added after the
// others when it has none; created says which. by is recorded as who
// deployed.
func Put(ctx context.Context, st Deployer, activity string, al definition.Alert, by string) (dep store.Deployment, created bool, err error) {
	return put(ctx, st, activity, al, by, false)
}

// ErrExists is Create's refusal of a name the activity has an alert of.
var ErrExists = errors.New("the activity has an alert of that name")

// Create is Put of a new alert only: an alert of that name (in any case)
// is left as it is, and Create returns ErrExists. The check and the
// deployment are one: a deployment between them (the same name created
// by another client) makes the deployment fail with
// store.ErrDefinitionsMoved, and Create again finds the name taken.
func Create(ctx context.Context, st Deployer, activity string, al definition.Alert, by string) (store.Deployment, error) {
	dep, _, err := put(ctx, st, activity, al, by, true)
	return dep, err
}

func put(ctx context.Context, st Deployer, activity string, al definition.Alert, by string, onlyNew bool) (dep store.Deployment, created bool, err error) {
	a, version, err := deployedActivity(ctx, st, activity)
	if err != nil {
		return store.Deployment{}, false, err
	}
	created = true
	alerts := make([]definition.Alert, 0, len(a.Alerts)+1)
	for _, have := range a.Alerts {
		if strings.EqualFold(have.Name, al.Name) {
			if onlyNew {
				return store.Deployment{}, false, fmt.Errorf("alert %s.%s: %w", a.Name, have.Name, ErrExists)
			}
			al.Name, created = have.Name, false
			alerts = append(alerts, al)
			continue
		}
		alerts = append(alerts, have)
	}
	if created {
		alerts = append(alerts, al)
	}
	a.Alerts = alerts
	dep, err = deployActivity(ctx, st, a, version, by)
	return dep, created, err
}

// Remove deploys activity without its alert name (in any case). Its open
// firings are cleared at the next evaluation; its history stays.
func Remove(ctx context.Context, st Deployer, activity, name, by string) (store.Deployment, error) {
	a, version, err := deployedActivity(ctx, st, activity)
	if err != nil {
		return store.Deployment{}, err
	}
	var (
		kept  []definition.Alert
		names []string
	)
	for _, have := range a.Alerts {
		names = append(names, have.Name)
		if !strings.EqualFold(have.Name, name) {
			kept = append(kept, have)
		}
	}
	if len(kept) == len(a.Alerts) {
		return store.Deployment{}, fmt.Errorf("alert %s.%s: %w%s", a.Name, name, store.ErrNotFound, suggest.DidYouMean(name, names))
	}
	a.Alerts = kept
	return deployActivity(ctx, st, a, version, by)
}

func deployedActivity(ctx context.Context, st Deployer, name string) (definition.Activity, int64, error) {
	acts, version, err := st.Definitions(ctx)
	if err != nil {
		return definition.Activity{}, 0, err
	}
	d, err := store.FindActivity(acts, name)
	if err != nil {
		var names []string
		for _, a := range acts {
			names = append(names, a.Name)
		}
		return definition.Activity{}, 0, fmt.Errorf("activity %s: %w (deploy a definition of it first)%s", name, store.ErrNotFound, suggest.DidYouMean(name, names))
	}
	return d.Activity, version, nil
}

// deployActivity checks a as a file holding it alone would be checked, and
// deploys it over version.
func deployActivity(ctx context.Context, st Deployer, a definition.Activity, version int64, by string) (store.Deployment, error) {
	text := definition.Format(definition.File{Activities: []definition.Activity{a}})
	f, err := definition.Parse(text)
	var defErr *definition.Error
	if errors.As(err, &defErr) {
		var reasons []string
		for _, p := range defErr.Problems {
			reasons = append(reasons, p.Reason)
		}
		return store.Deployment{}, fmt.Errorf("%w: %s", ErrInvalid, strings.Join(reasons, "; "))
	}
	if err != nil {
		return store.Deployment{}, err
	}
	if err := Check(f); err != nil {
		return store.Deployment{}, fmt.Errorf("%w: %s", ErrInvalid, strings.TrimPrefix(err.Error(), "invalid alert: "))
	}
	dep, err := st.Deploy(ctx, store.DeployRequest{File: f, Text: string(text), By: by, Expect: version})
	if err != nil {
		return store.Deployment{}, err
	}
	if _, err := EnsureSession(ctx, st); err != nil {
		return dep, fmt.Errorf("deployed, but the alerts will not be evaluated: %w", err)
	}
	return dep, nil
}
