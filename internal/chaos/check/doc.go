// Package check judges a chaos run: it compares the history the harness
// recorded (every event a writer tried to write, instance states polled during
// the run, the claims nodes logged, the session table polled) with the state
// of the store after the pool drained, and reports every broken promise
// (DESIGN.md, "Promises that always hold"). It is pure: it reads no store and
// no clock, so the same inputs always give the same Report.
//
// # What it proves
//
// For the events of the workload:
//
//   - nothing acknowledged is lost (promises 2 and 4): every event a writer
//     saw committed is in the store;
//   - nothing is doubled (promise 2): no event is applied twice, even one
//     whose write ended in an error and may or may not have gone through;
//   - nothing is reordered (promises 1 and 2): the events of an instance are
//     applied in the order they were written, at the end and at every moment
//     the harness looked, and what the store showed never went backwards;
//   - nothing appears that nobody wrote;
//   - a bad event is quarantined with a reason and never applied (promise 5).
//
// For the sessions:
//
//   - one writer per session (promise 1): no two nodes ever held the same
//     session under the same epoch, and a session's epoch never went down;
//   - after the drain every session has a live owner, and the report says
//     how long a session went without one at the longest: in all, per kind
//     of fault that caused it, and from a node fault's start until a
//     session of that node ran under a newer epoch (faults.go).
//
// # How the encoding makes order and doubles observable
//
// Each instance is written by one writer, sequentially, with events Seq 1..K
// that all carry the same event time. Event Seq sets two data items
// (EventData): "seq" = Seq and "e<Seq>" = 1. The store merges items per item,
// the later event time winning and, on a tie, the later-applied event. With
// all times equal, the stored instance therefore shows:
//
//   - the set of "e<n>" items: which distinct events were applied, so a
//     missing acknowledged event is visible as a missing item;
//   - the Events counter, incremented per application, against the number of
//     distinct "e<n>" items: any surplus is an event applied twice;
//   - the "seq" item: the Seq of the event applied last. Applied in write
//     order, that is the largest n among the "e<n>" items; anything else
//     means a later-written event was applied before an earlier one (or an
//     old event was applied again after newer ones).
//
// An event whose outcome the writer does not know (Event.Acked false) may be
// absent or present once; it may never be present twice.
//
// # Continuations and relations
//
// An instance may open a continuation (an enable-continuation event, then
// events under its token, through another partition, so in any order
// relative to the instance's own). The continuation's events form a second
// track with items "c<n>" and "cseq" (ContinuationData), checked like the
// first: each track's items, and each track's order. Events that set no
// item (enable-continuation, relate: Event.Itemless) count in Events only:
// the surplus is Events − distinct items − itemless events written, and
// Events − distinct items must reach the acknowledged itemless events.
// Relations read from the store (Instance.Related) must include every
// acknowledged relate event and nothing nobody wrote. An instance all of
// whose events were acknowledged, both tracks' ends included, must be
// completed (KindIncomplete): it is complete only when its continuation is.
// A continuation whose enable was of unknown outcome and not applied keeps
// its events aside under its token: StoreState.Pending counts them, and
// they must number at least its acknowledged events and at most its
// written ones.
//
// # Rules and kinds
//
// Violation.Kind is one of the Kind constants; each rule is documented on
// its constant. Snapshots are checked like the final state (the "seq" rule,
// no surplus of Events), and per instance, in time order and ending with the
// final state, the set of "e<n>" items and Events never shrink; a shrink is
// reported as KindReordered (the store went backwards).
//
// Check runs in O(n log n) in the size of the history and the store state:
// each instance's and snapshot's Data is parsed once.
package check
