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
// # A value the store refuses (promise 5)
//
// event.Decode refuses what a store is known to refuse (a number beyond a
// float, text that is not UTF-8, NUL), so such a record becomes a Failure
// at decode. Whatever still reaches the store and is refused as data (Apply
// returns store.ErrDataRefused: PostgreSQL's SQLSTATE class 22, SQLite's
// SQLITE_TOOBIG or SQLITE_MISMATCH; an outbox row the door never saw, a
// value class the door does not know yet) would fail the batch on every
// retry, so the session isolates it by splitting the batch's records, not
// its deltas (event.Coalesce folds every event of an instance into one
// delta: one bad value refuses its instance's whole delta):
//
//	isolate(records, from):            the store refused their batch as data
//	    one record: quarantine it      a batch of just its Failure, with the
//	                                   store's message, checkpoint at it
//	    else, for each half in order:  apply it as a batch of its own
//	        applied:  from = its last position
//	        refused as data:  isolate(half, from)
//	        any other error:  stop; the session retries from `from`
//
// Every part is an ordinary batch: fenced on owner, epoch and the From the
// previous part committed, its checkpoint the position of its own last
// record, its events coalesced on their own, the lease's local deadline
// checked before it. So the checkpoint only moves over records that were
// applied or quarantined, in order, and a crash or a lost lease between
// two parts leaves a committed prefix that the next owner reads on from.
// A record is quarantined only when a batch of it alone, applied on the
// current state, is refused as data; good records are applied (each once),
// whatever they share a batch or an instance with. A refused value that a
// later event of its instance, in the same part, overrides never reaches
// the store (the coalesced delta holds the later value, as the instance
// would after both): that event is applied, not quarantined, so whether
// such an event is quarantined can depend on how its batch was cut. A batch with k refused
// records costs about 2k·log2(n) extra transactions. An error that is not a
// data refusal (a lost connection, a serialization failure, a lock
// timeout, a shutdown) never quarantines anything: the batch fails, is
// retried with backoff, and Run carries on from the checkpoint of the last
// part that committed.
//
// # How a session ends
//
//	Stop()        graceful: the batch in hand commits, then Run returns nil
//	              (the node then releases the lease: a handoff)
//	ctx canceled  hard: an uncommitted batch is abandoned; nothing is lost,
//	              the next owner reads it again from the checkpoint
//	ErrLost       the store refused the fence (another node owns the session
//	              under a newer epoch), or the session's lease.Lease ended:
//	              its local deadline passed (lease.ErrExpired) or the node
//	              found it lost (lease.ErrLost). Every read and commit runs
//	              under the lease's context; nothing of the batch was
//	              committed
//
// # Trouble
//
// A source or store error is retried with exponential backoff (capped at
// MaxBackoff) and shown as the session's last error in `bam status`; the
// session never exits on it. A store that answers "fenced" is the only
// error that ends the session.
//
// # Metrics
//
// Config.Metrics, when set, gives each session a recorder (metrics.go)
// that it calls once per batch that reaches the store: committed (events
// applied, instance records written, events quarantined, the store's time)
// or failed. Its label values are resolved when the session starts, so a
// batch costs a few atomic adds, and nothing per event; nil records
// nothing.
//
// Progress says since when the batches have failed, with none succeeding
// since, and how many: a node's readiness (package health) counts a session
// that has failed for too long as stuck. A batch succeeds when it commits,
// or when it finds nothing to read; a source whose records are all held
// behind an open transaction is not failing, only waiting.
//
// # Waking
//
// An idle session sleeps until Wake is called (a notification that new
// events may be readable), or PollInterval passes (a missed notification
// costs only latency), or, when the source said records are held behind an
// open transaction, a short HeldRetry.
package bus
