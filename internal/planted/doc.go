// Package planted holds a deliberate bug that the chaos harness must find.
//
// A fault-injection harness that never fails proves nothing: it may be
// unable to see the failures it looks for. So the harness is itself tested
// against a build of bam with a bug planted in it (internal/chaos,
// TestHarnessFindsPlantedBug). The bug is compiled in only with the build
// tag bam_planted_bug; every normal build has SkipFence = false, a constant,
// so the compiler removes the branches that test it.
//
// SkipFence turns off every guard of promise 1 (DESIGN.md, "One writer per
// session") at once: the store's fence no longer compares the session's
// owner, epoch and checkpoint with the batch's, and a session no longer
// stops committing when its lease's local deadline has passed. A node that
// wakes up from a pause past its lease then commits what it had read before
// the pause, on top of what the session's new owner already applied: events
// are doubled. Either guard alone would prevent it, so both must go.
package planted
