package alert

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/bam-dev/bam/internal/definition"
	"github.com/bam-dev/bam/internal/search"
	"github.com/bam-dev/bam/internal/store"
)

// Check checks what definition.Parse cannot of a file's alerts: each
// filter against its activity, in the filter language (package search),
// and each message's placeholders. It returns every problem, or nil.
func Check(f definition.File) error {
	var probs []string
	for _, a := range f.Activities {
		for _, al := range a.Alerts {
			if al.Where != "" {
				if _, err := search.Prepare(a, search.Spec{Where: al.Where}); err != nil {
					probs = append(probs, fmt.Sprintf("activity %s, alert %q: where: %v", a.Name, al.Name, err))
				}
			}
			if err := checkMessage(a, al); err != nil {
				probs = append(probs, fmt.Sprintf("activity %s, alert %q: message: %v", a.Name, al.Name, err))
			}
		}
	}
	switch len(probs) {
	case 0:
		return nil
	case 1:
		return fmt.Errorf("invalid alert: %s", probs[0])
	}
	return fmt.Errorf("invalid alerts (%d problems):\n  %s", len(probs), strings.Join(probs, "\n  "))
}

// EnsureSession adds the built-in source whose session evaluates the
// alerts (store.AlertsSource) when a deployed activity has an alert and the
// source is not there yet. `bam deploy` calls it after each deployment.
func EnsureSession(ctx context.Context, st interface {
	Definitions(ctx context.Context) ([]store.DeployedActivity, int64, error)
	AddSource(ctx context.Context, src store.Source) error
}) (added bool, err error) {
	acts, _, err := st.Definitions(ctx)
	if err != nil {
		return false, err
	}
	if !slices.ContainsFunc(acts, func(a store.DeployedActivity) bool { return len(a.Alerts) > 0 }) {
		return false, nil
	}
	switch err := st.AddSource(ctx, store.AlertsSessionSource); {
	case err == nil:
		return true, nil
	case errors.Is(err, store.ErrExists):
		return false, nil
	default:
		return false, fmt.Errorf("add the alerts session: %w", err)
	}
}

// The placeholders every message may use besides the fields of its kind.
var (
	commonFields    = []string{"activity", "alert", "severity", "key"}
	instanceFields  = []string{"instance"}
	aggregateFields = []string{"value", "measure", "threshold", "state"}
)

// placeholders returns the names between braces in a message, in order.
func placeholders(msg string) ([]string, error) {
	var out []string
	for rest := msg; ; {
		open := strings.IndexByte(rest, '{')
		if open < 0 {
			if strings.IndexByte(rest, '}') >= 0 {
				return nil, fmt.Errorf("a } without its { (write a placeholder as {name})")
			}
			return out, nil
		}
		if strings.IndexByte(rest[:open], '}') >= 0 {
			return nil, fmt.Errorf("a } without its { (write a placeholder as {name})")
		}
		end := strings.IndexByte(rest[open:], '}')
		if end < 0 {
			return nil, fmt.Errorf("a { without its } (write a placeholder as {name})")
		}
		out = append(out, strings.TrimSpace(rest[open+1:open+end]))
		rest = rest[open+end+1:]
	}
}

// checkMessage checks that each placeholder of al's message names what
// its firings have: for an instance alert an item, for an aggregate alert
// one of the cell's dimension columns, and the common fields.
func checkMessage(a definition.Activity, al definition.Alert) error {
	names, err := placeholders(al.Message)
	if err != nil {
		return err
	}
	known := slices.Clone(commonFields)
	if al.IsAggregate() {
		known = append(known, aggregateFields...)
		if g, ok := a.Aggregation(al.Aggregation); ok {
			for _, d := range g.Dimensions {
				known = append(known, d.Column())
			}
		}
	} else {
		known = append(known, instanceFields...)
		for _, it := range a.Items {
			known = append(known, it.Name)
		}
	}
	for _, n := range names {
		if !slices.ContainsFunc(known, func(k string) bool { return strings.EqualFold(k, n) }) {
			return fmt.Errorf("{%s} names nothing a firing of this alert has (it has %s)", n, braced(known))
		}
	}
	return nil
}

func braced(names []string) string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = "{" + n + "}"
	}
	return strings.Join(out, ", ")
}

// expand fills a message's placeholders from fields (names in any case).
func expand(msg string, fields map[string]string) string {
	lower := make(map[string]string, len(fields))
	for k, v := range fields {
		lower[strings.ToLower(k)] = v
	}
	var b strings.Builder
	for rest := msg; ; {
		open := strings.IndexByte(rest, '{')
		end := -1
		if open >= 0 {
			end = strings.IndexByte(rest[open:], '}')
		}
		if open < 0 || end < 0 {
			b.WriteString(rest)
			return b.String()
		}
		b.WriteString(rest[:open])
		name := strings.ToLower(strings.TrimSpace(rest[open+1 : open+end]))
		if v, ok := lower[name]; ok {
			b.WriteString(v)
		} else {
			b.WriteString(rest[open : open+end+1])
		}
		rest = rest[open+end+1:]
	}
}

// DefaultMessage is the message of an alert that gives none.
func DefaultMessage(al definition.Alert) string {
	if al.IsAggregate() {
		return "{activity}.{alert}: " + al.MeasureName() + " is {value} in cell {key} (" + al.Condition() + ")"
	}
	return "{activity}.{alert}: instance {instance} matches " + al.Where
}
