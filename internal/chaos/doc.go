// Package chaos is the fault-injection harness of the event bus: it runs a
// pool of real `bam serve` processes against a real store while writers
// write events and faults are injected at random, then checks with package
// check that every acknowledged event was applied exactly once and in
// order, and that no session had two owners under one epoch.
//
// # A run
//
//		setup ──► faults + writes (Duration) ──► heal ──► drain ──► check ──► teardown
//
//	  - setup: the store (a PostgreSQL server the harness starts itself with
//	    initdb and pg_ctl, so that it may restart it; or SQLite; or an
//	    external PostgreSQL, which is never restarted), the sources (buffer
//	    and pg-outbox, alternating), one TCP fault proxy per node in front
//	    of the store and one in front of the outbox database, and Nodes
//	    `bam serve` processes.
//	  - faults + writes: writers append events continuously (buffer writers
//	    through the store, outbox writers through their own transactions,
//	    some of them held open for seconds so that commits land out of
//	    order), with poison events mixed in, straight into the buffer or
//	    the outbox as an application may (past the checks of emit, the HTTP
//	    API and the SDK): malformed, of an unknown kind, refused by the
//	    deployed definition, and values a store refuses (a number beyond
//	    numeric's range, a float's or numeric's scale, text that is not
//	    UTF-8, NUL), which event.Decode refuses too; and a value only the
//	    store refuses (setup gives the store a trigger that holds the item
//	    seq to a smallint, as a typed column would: SQLSTATE 22003 on
//	    PostgreSQL, SQLITE_MISMATCH on SQLite), which the session must find
//	    in its batch and quarantine alone, with the store's message. The
//	    check requires each acknowledged poison event quarantined with the
//	    reason of its kind, never applied, and the report counts them per
//	    kind. Every FaultEvery (± half), a
//	    fault chosen by the seeded random source strikes a node that is not
//	    already under a fault, never the last healthy one:
//	    kill (SIGKILL, restarted 1-4 s later), pause (SIGSTOP for longer than
//	    the lease, then SIGCONT), cut (the node's proxy closes its
//	    connections and refuses new ones for 0.5-5 s), blackhole (the proxy
//	    forwards nothing for 1-6 s: a partition), slow (50-400 ms added per
//	    chunk for 2-8 s), join-leave (a transient node joins, and leaves with
//	    SIGTERM 1-4 s later), outbox-cut (the outbox database unreachable
//	    for 1-4 s), restart (the harness's own PostgreSQL server restarted,
//	    fast or immediate, at most every 15 s; then the harness waits until
//	    every healthy node holds its liveness lock again and logs how long
//	    that took, or "RELOCK SLOW" past the lease TTL), burst (10× the
//	    writers' pace for 3-8 s), mid-batch (a burst builds a backlog, and
//	    the node's proxy forwards half of the first large chunk the node
//	    sends, a batch's pipelined request, then nothing: the link is cut in
//	    the middle of the batch, and the node paused too half of the time,
//	    for longer than the lease; its backend is left holding the session's
//	    row, which a peer must end to take over; the log says how many
//	    backends each one caught mid-request) and lock-reset (the store
//	    backend holding a node's liveness lock ended with
//	    pg_terminate_backend, as a proxy recycling the connection would: the
//	    node lives on, takes its lock back, and should keep its sessions),
//	    and the operator's commands, run as a person would type them
//	    (operate.go): drain (bam node drain of a healthy node, bam node
//	    undrain 1-4 s later), move (bam session move of a random session to
//	    a random healthy node) and pool-pause (bam pause, bam resume 1-3 s
//	    later).
//	  - heal: faults stop and are undone (proxies pass, paused nodes
//	    continue, killed nodes restart); writers stop.
//	  - drain: wait until every session is owned and its source has no
//	    backlog.
//	  - check: the history (every event written, acknowledged or of unknown
//	    outcome; the claims the nodes logged; the owners sampled from the
//	    store every 100 ms; instance snapshots taken during the run) against
//	    the store's final state. The report counts the faults by kind, the
//	    events written, applied, lost, doubled and quarantined, and the
//	    longest time a session went without an owner: in all, per kind of
//	    fault (the fault that struck its last owner, else one of the whole
//	    pool), and from a node fault's start until a session of that node
//	    ran under a newer epoch (check.Report.TakeoverByFault).
//
// # Reproducing
//
// The seed fixes the fault schedule, the workload and every random choice;
// timings are real, so a seed reproduces the same kinds of fault in the
// same order, not the same interleaving at the instruction level. A seed
// that found a bug becomes a case in TestRegressionSeeds.
//
// # Proving the harness
//
// TestHarnessFindsPlantedBug builds bam with the build tag bam_planted_bug
// (package planted: no fence, no lease deadline) and expects the check to
// fail: a harness that cannot see a broken fence proves nothing.
package chaos
