package ops

import (
	"context"
	"errors"

	"github.com/bam-dev/bam/internal/definition"
	"github.com/bam-dev/bam/internal/store"
)

// InstanceDetail returns an instance's JSON read whole, with the timeline
// of its milestones by its activity's deployed definition (none when no
// definition is deployed).
func InstanceDetail(ctx context.Context, st store.Store, in store.Instance) (store.InstanceDetailJSON, error) {
	out := in.DetailJSON()
	d, err := DeployedActivity(ctx, st, in.Activity)
	switch {
	case errors.Is(err, ErrNotDeployed):
		return out, nil
	case err != nil:
		return store.InstanceDetailJSON{}, err
	}
	var milestones []string
	for _, it := range d.Items {
		if it.Type == definition.Milestone {
			milestones = append(milestones, it.Name)
		}
	}
	out.Timeline = in.Timeline(milestones)
	return out, nil
}
