package bus

import (
	"time"

	"github.com/bam-dev/bam/internal/store"
)

// Metrics makes the recorder of each session a node runs (package
// metrics implements it). A nil Config.Metrics records nothing, so that a
// node without metrics, and the benchmark's baseline, pay nothing for
// them.
type Metrics interface {
	Session(id store.SessionID) SessionMetrics
}

// SessionMetrics records one session's batches. It is called once per
// batch that reaches the store (a batch split around a refused value is
// several batches), never per event, so that its cost does not grow with
// the batch.
type SessionMetrics interface {
	// Committed records a batch the store committed: events applied,
	// instance records written (events coalesce per instance) and events
	// quarantined, and how long the store took.
	Committed(events, records, failed int, took time.Duration)
	// Failed records a batch the store did not commit (an error, a fence
	// refusal), and how long it took to fail.
	Failed(took time.Duration)
}

// noMetrics records nothing.
type noMetrics struct{}

func (noMetrics) Committed(int, int, int, time.Duration) {}
func (noMetrics) Failed(time.Duration)                   {}

func sessionMetrics(m Metrics, id store.SessionID) SessionMetrics {
	if m == nil {
		return noMetrics{}
	}
	return m.Session(id)
}
