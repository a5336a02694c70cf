package store

import "time"

// DefaultBacklogBound is how many events a backlog count reads at most
// before it stops and says "at least": enough to tell a session that keeps
// up from one that falls behind, few enough that counting never loads the
// store (an index range of that many entries).
const DefaultBacklogBound = 10_000

// Backlog is what waits in one session's source after its checkpoint.
type Backlog struct {
	// Events counts the events after the checkpoint, held ones included,
	// up to the bound the count was asked for: AtLeast is set when it
	// stopped there and more wait.
	Events  int64
	AtLeast bool
	// OldestAge is how long the first event after the checkpoint (in read
	// order) has waited: the clock of the database that holds it minus the
	// time it was written. Zero when nothing waits.
	OldestAge time.Duration
}
