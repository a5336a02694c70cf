// Package health answers a node's health endpoints, in the style of
// Kubernetes' own: /livez says the process works, /readyz says the node
// can do its job now.
//
// # Liveness
//
// Live answers 200 "ok" for as long as the process serves HTTP. It checks
// no dependency on purpose: a liveness probe that fails restarts the
// process, and restarting a node whose store is down cures nothing (it
// waits for the store by itself) while it costs a session move per
// session.
//
// # Readiness
//
// A Checker runs named checks (Check) and keeps their results for
// Config.CacheFor (1 s), so that any number of scrapers and load balancers
// asking /readyz cost the store one probe per second at most; asks that
// come while an evaluation runs wait for it instead of starting their own.
// An evaluation is bounded by Config.Timeout (1 s), whatever the asker's
// own deadline, and is not cut short when the asker goes away. A node's
// readiness is four checks (NodeChecks):
//
//	store-write    a write transaction, begun as batches begin theirs,
//	               commits within Config.Timeout (store.WriteProber: on
//	               SQLite it takes the write lock, on PostgreSQL a row lock
//	               on the node's own row; held no longer than the probe)
//	liveness-lock  the node holds its liveness lock, by which peers see it
//	               alive (a store without one passes)
//	heartbeat      the node has joined the pool, is not stopping, and its
//	               last heartbeat (a renewal of its leases) that succeeded
//	               began less than Bounds.Heartbeat ago (LeaseTTL −
//	               SafetyMargin: past it, its sessions commit nothing)
//	sessions       no session the node runs is stuck: its batches have all
//	               failed, none succeeding, for Bounds.Stuck (30 s) or more.
//	               A batch that finds nothing to read succeeds; a session
//	               whose records wait behind an open transaction of its
//	               source is not failing. How far behind the pool's sessions
//	               are (backlog age) is judged pool-wide by `bam status
//	               --check`, not per node
//
// # The answer
//
// Handler answers GET and HEAD: 200 with "ok" when every check passes, 503
// with one line per failed check and why ("[-]store-write failed: ...")
// otherwise. With ?verbose every check has its line, "[+]name ok" or
// "[-]name failed: why", and a last line "readyz check passed" or "readyz
// check failed". ?exclude=NAME (repeatable) leaves a check out of the
// verdict, e.g. the sessions of a node behind a load balancer that only
// routes ingest; an unknown name is a 400 naming it.
package health
