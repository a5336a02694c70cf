// Package bus runs one session: it moves the events of one source partition
// into the store, batch after batch, for as long as its node owns the
// session.
//
// # One batch
//
//	read     up to BatchSize records after the checkpoint (the source returns
//	         only records nothing can be inserted behind: promise 4); after
//	         a full batch (a backlog) up to MaxBatchSize, until a short one
//	         brings it back to BatchSize
//	decode   each record; a bad one becomes a Failure with its reason and
//	         original bytes (promise 5), the rest coalesce per instance
//	trust?   the node's own monotonic deadline for this lease (claim or last
//	         renewal + TTL − safety margin) must not have passed
//	apply    one store transaction: the checkpoint moves from From to the
//	         batch's last position only if owner, epoch and From still match
//	         (promise 1), with the instances and failures (promise 2)
//	trim     delete the source's records up to the checkpoint: after the
//	         commit, idempotent, a failure only delays it; while a backlog
//	         drains, only every TrimEvery full batches
//
// # How a session ends
//
//	Stop()        graceful: the batch in hand commits, then Run returns nil
//	              (the node then releases the lease: a handoff)
//	ctx canceled  hard: an uncommitted batch is abandoned; nothing is lost,
//	              the next owner reads it again from the checkpoint
//	ErrLost       the store refused the fence (another node owns the session
//	              under a newer epoch) or the lease could no longer be
//	              trusted: nothing of the batch was committed
//
// # Trouble
//
// A source or store error is retried with exponential backoff (capped at
// MaxBackoff) and shown as the session's last error in `bam status`; the
// session never exits on it. A store that answers "fenced" is the only
// error that ends the session.
//
// # Waking
//
// An idle session sleeps until Wake is called (a notification that new
// events may be readable), or PollInterval passes (a missed notification
// costs only latency), or, when the source said records are held behind an
// open transaction, a short HeldRetry.
package bus
