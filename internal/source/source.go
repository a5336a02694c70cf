// Package source reads events from the places applications write them. One
// subpackage per kind implements Reader; the bus reads every session through
// it. A Reader never returns an event that a writer could still insert
// before an event it already returned (DESIGN.md, promise 4).
package source

import (
	"context"
	"errors"
	"fmt"

	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/store"
)

// Reader reads the partitions of one source.
type Reader interface {
	// Read returns up to limit records of a partition after a position, in
	// position order. held is true when records exist after the last one
	// returned that cannot be read yet because a transaction that may
	// write before them is still open: read again soon.
	Read(ctx context.Context, partition int, after store.Position, limit int) (recs []store.Record, held bool, err error)
	// Trim deletes the partition's records up to and including a position
	// that the store has committed as its checkpoint. It is idempotent.
	Trim(ctx context.Context, partition int, upTo store.Position) error
	// Backlog counts the partition's records after a position.
	Backlog(ctx context.Context, partition int, after store.Position) (int64, error)
	// Watch calls wake each time new records may be readable, until ctx
	// ends or the watch fails. Readers without notifications return
	// ErrNoWatch at once; callers then rely on their fallback timer.
	Watch(ctx context.Context, wake func()) error
	Close() error
}

// ErrNoWatch is returned by Watch of a Reader that cannot notify.
var ErrNoWatch = errNoWatch{}

type errNoWatch struct{}

func (errNoWatch) Error() string { return "source cannot notify new events" }

// ErrHalted marks a Reader's error that no other node would fare better
// with: the source stopped the session on purpose (for example, the outbox
// server is not the one the checkpoint was taken on) and waits for an
// operator. A node hands over a session whose source it cannot reach, so
// that a peer may try; never one whose reader returned ErrHalted.
var ErrHalted = errors.New("the source halted the session until an operator acts")

// CheckSegment returns an *event.Error when a record was filed under
// another segment than its event's (a pg-outbox row whose instance_id is
// not the event's instance or continuation token): the record's partition
// was chosen by that other id, so applying it would break its instance's
// order. nil when they agree or the source keeps no segment apart.
func CheckSegment(rec store.Record, ev event.Event) error {
	if rec.Segment == "" || rec.Segment == ev.Segment() {
		return nil
	}
	what, want := "instance", ev.Instance
	if ev.Continuation != "" {
		what, want = "continuation token", ev.Continuation
	}
	return &event.Error{Field: "instance_id", Reason: fmt.Sprintf(
		"the row is filed under %q but its event's %s is %q; write the event's %s in instance_id, which picks the partition that keeps its instance's order",
		rec.Segment, what, want, what)}
}
